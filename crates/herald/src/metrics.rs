//! Prometheus metrics. Names follow soketi's where the concept is the same
//! (`soketi_connected` → `herald_connected`, `soketi_new_connections_total` →
//! `herald_new_connections_total`, …), so existing dashboards port by renaming the prefix.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;
use std::time::Duration;

/// Labels by client protocol.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    /// `socketio` (later also `pusher`).
    pub protocol: &'static str,
}

/// Labels by broadcast source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// `redis`, `http` or `whisper`.
    pub source: &'static str,
}

/// Labels by auth outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `granted`, `refused` (the app said no), `unreachable`, `timeout`, or `throttled`
    /// (too many requests waiting: Herald refused without asking).
    pub outcome: &'static str,
}

/// Every metric Herald exports.
pub struct Metrics {
    registry: Registry,
    /// Open connections.
    pub connected: Family<ProtocolLabel, Gauge>,
    /// Connections opened.
    pub new_connections: Family<ProtocolLabel, Counter>,
    /// Connections closed.
    pub new_disconnections: Family<ProtocolLabel, Counter>,
    /// Messages received from clients (subscribe, unsubscribe, whispers).
    pub ws_messages_received: Family<ProtocolLabel, Counter>,
    /// Events queued for clients.
    pub ws_messages_sent: Counter,
    /// Payload bytes queued for clients (event data, before framing).
    pub socket_transmitted_bytes: Counter,
    /// Publications received, by source.
    pub published: Family<SourceLabel, Counter>,
    /// HTTP API requests.
    pub http_calls_received: Counter,
    /// Channel subscriptions on this node.
    pub subscriptions: Gauge,
    /// Channel authorization requests, by outcome.
    pub auth_requests: Family<OutcomeLabel, Counter>,
    /// Auth endpoint latency.
    pub auth_request_duration: Histogram,
    /// 1 while the Redis source is subscribed.
    pub redis_source_up: Gauge,
    /// Deliveries dropped because a client's queue was full.
    pub queue_drops: Counter,
    /// Clients disconnected for reading too slowly.
    pub slow_disconnections: Counter,
    /// Publications a worker's queue had no room for, delivered by the publishing thread.
    pub worker_queue_full: Counter,
    /// Requests naming a session they do not own (a bare Engine.IO 4 id, another client's
    /// Engine.IO 3 session), refused.
    pub session_refusals: Counter,
    /// Publications not sent to the cluster's other nodes (queue full, or Redis down).
    pub cluster_relay_dropped: Counter,
    /// Webhook events delivered (a 2xx answer).
    pub webhook_events_sent: Counter,
    /// Webhook requests that failed (an error or a non-2xx answer); each is retried.
    pub webhook_failures: Counter,
    /// Webhook events given up on: retried for 5 minutes, or no room to queue them.
    pub webhook_events_dropped: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("herald");
        let metrics = Metrics {
            connected: Family::default(),
            new_connections: Family::default(),
            new_disconnections: Family::default(),
            ws_messages_received: Family::default(),
            ws_messages_sent: Counter::default(),
            socket_transmitted_bytes: Counter::default(),
            published: Family::default(),
            http_calls_received: Counter::default(),
            subscriptions: Gauge::default(),
            auth_requests: Family::default(),
            auth_request_duration: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            redis_source_up: Gauge::default(),
            queue_drops: Counter::default(),
            slow_disconnections: Counter::default(),
            worker_queue_full: Counter::default(),
            session_refusals: Counter::default(),
            cluster_relay_dropped: Counter::default(),
            webhook_events_sent: Counter::default(),
            webhook_failures: Counter::default(),
            webhook_events_dropped: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connected",
            "Open client connections",
            metrics.connected.clone(),
        );
        registry.register(
            "new_connections",
            "Client connections opened",
            metrics.new_connections.clone(),
        );
        registry.register(
            "new_disconnections",
            "Client connections closed",
            metrics.new_disconnections.clone(),
        );
        registry.register(
            "ws_messages_received",
            "Messages received from clients",
            metrics.ws_messages_received.clone(),
        );
        registry.register(
            "ws_messages_sent",
            "Events queued for clients",
            metrics.ws_messages_sent.clone(),
        );
        registry.register(
            "socket_transmitted_bytes",
            "Event payload bytes queued for clients",
            metrics.socket_transmitted_bytes.clone(),
        );
        registry.register(
            "published",
            "Publications received, by source",
            metrics.published.clone(),
        );
        registry.register(
            "http_calls_received",
            "HTTP API requests received",
            metrics.http_calls_received.clone(),
        );
        registry.register(
            "subscriptions",
            "Channel subscriptions on this node",
            metrics.subscriptions.clone(),
        );
        registry.register(
            "auth_requests",
            "Channel authorization requests, by outcome",
            metrics.auth_requests.clone(),
        );
        registry.register(
            "auth_request_duration_seconds",
            "Auth endpoint latency",
            metrics.auth_request_duration.clone(),
        );
        registry.register(
            "redis_source_up",
            "1 while the Redis source is subscribed",
            metrics.redis_source_up.clone(),
        );
        registry.register(
            "queue_drops",
            "Deliveries dropped because a client's queue was full",
            metrics.queue_drops.clone(),
        );
        registry.register(
            "slow_disconnections",
            "Clients disconnected for reading too slowly",
            metrics.slow_disconnections.clone(),
        );
        registry.register(
            "worker_queue_full",
            "Publications a worker's queue had no room for, delivered by the publishing thread instead",
            metrics.worker_queue_full.clone(),
        );
        registry.register(
            "session_refusals",
            "Requests refused for naming a session they do not own",
            metrics.session_refusals.clone(),
        );
        registry.register(
            "cluster_relay_dropped",
            "Publications not sent to the cluster's other nodes (queue full or Redis down)",
            metrics.cluster_relay_dropped.clone(),
        );
        registry.register(
            "webhook_events_sent",
            "Webhook events delivered",
            metrics.webhook_events_sent.clone(),
        );
        registry.register(
            "webhook_failures",
            "Webhook requests that failed and will be retried or given up",
            metrics.webhook_failures.clone(),
        );
        registry.register(
            "webhook_events_dropped",
            "Webhook events given up on after 5 minutes of retries, or not queued",
            metrics.webhook_events_dropped.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The Prometheus/OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// Counts one auth request.
    pub fn auth_request(&self, outcome: &'static str, took: Duration) {
        self.auth_requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.auth_request_duration.observe(took.as_secs_f64());
    }

    /// Counts an authorization Herald refused without asking the app (`throttled`).
    pub fn auth_request_refused(&self, outcome: &'static str) {
        self.auth_requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts one publication from `source`.
    pub fn publication(&self, source: &'static str) {
        self.published.get_or_create(&SourceLabel { source }).inc();
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Label value for Socket.IO connections.
pub const SOCKETIO: ProtocolLabel = ProtocolLabel {
    protocol: "socketio",
};

/// Label value for Pusher protocol connections.
pub const PUSHER: ProtocolLabel = ProtocolLabel { protocol: "pusher" };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.connected.get_or_create(&SOCKETIO).inc();
        m.auth_request("granted", Duration::from_millis(20));
        let text = m.render();
        assert!(
            text.contains("herald_connected{protocol=\"socketio\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_auth_requests_total{outcome=\"granted\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_auth_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
