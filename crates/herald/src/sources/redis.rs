//! The Redis source: `PSUBSCRIBE <keyPrefix>*`, Laravel payloads to Hub publications.
//!
//! Redis may be down at start or go away later: Herald keeps serving, logs one line per state
//! change, reconnects with capped exponential backoff and subscribes again.

use super::{dispatch, parse_laravel_message};
use crate::config::RedisOptions;
use crate::console;
use crate::hub::EventSource;
use crate::hub::Hub;
use crate::redis_client;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause between reconnection attempts; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Distinct unmatched prefixes reported in devMode before going quiet.
const MAX_PREFIX_REPORTS: usize = 20;

/// Whether the Redis source is subscribed right now (for readiness).
#[derive(Debug, Default)]
pub struct RedisSourceState {
    subscribed: AtomicBool,
}

impl RedisSourceState {
    /// True while the PSUBSCRIBE is active.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }
}

/// The Redis subscriber task.
#[derive(Clone)]
pub struct RedisSource {
    options: RedisOptions,
    hub: Arc<Hub>,
    state: Arc<RedisSourceState>,
    /// In devMode: subscribe to every channel and report those the prefix would never match.
    report_unmatched: bool,
    reported_prefixes: HashSet<String>,
    max_event_bytes: usize,
    last_oversize_warning: Option<std::time::Instant>,
    keepalive: Duration,
}

/// How a subscription ended.
enum Ended {
    ConnectionLost(String),
}

impl RedisSource {
    /// A source for `options`; `report_unmatched` turns on devMode's prefix warnings.
    pub fn new(
        options: RedisOptions,
        hub: Arc<Hub>,
        report_unmatched: bool,
        max_event_bytes: usize,
        keepalive: Duration,
    ) -> RedisSource {
        RedisSource {
            options,
            hub,
            state: Arc::default(),
            report_unmatched,
            reported_prefixes: HashSet::new(),
            max_event_bytes,
            last_oversize_warning: None,
            keepalive,
        }
    }

    /// Runs the source, and runs it again if it ever panics: a bug in handling one message
    /// must not silently stop every later broadcast.
    pub async fn supervise(self, first_attempt: oneshot::Sender<()>) {
        let mut first_attempt = Some(first_attempt);
        loop {
            let task = tokio::spawn(self.clone().run(first_attempt.take()));
            match task.await {
                Err(e) if e.is_panic() => {
                    self.state.subscribed.store(false, Ordering::Relaxed);
                    console::error(&format!(
                        "The Redis source failed ({}); restarting it.",
                        panic_message(e.into_panic())
                    ));
                    tokio::time::sleep(MAX_BACKOFF).await;
                }
                _ => return,
            }
        }
    }

    /// Shared state for readiness checks.
    pub fn state(&self) -> Arc<RedisSourceState> {
        self.state.clone()
    }

    /// Runs until the task is aborted. `first_attempt` fires after the first connection
    /// attempt, successful or not, so start-up can print "Server ready!" in order.
    pub async fn run(mut self, mut first_attempt: Option<oneshot::Sender<()>>) {
        let mut backoff = MIN_BACKOFF;
        let mut ever_connected = false;
        // One warning per outage, not one per attempt.
        let mut down_reported = false;
        let address = redis_client::describe(&self.options);
        loop {
            match self.subscribe().await {
                Ok(pubsub) => {
                    self.state.subscribed.store(true, Ordering::Relaxed);
                    crate::metrics::metrics().redis_source_up.set(1);
                    if ever_connected {
                        console::success(&format!(
                            "Redis connection to {address} restored; listening for redis events again."
                        ));
                    } else {
                        // laravel-echo-server's line, then where and what is subscribed: a
                        // wrong address or prefix is the first thing to rule out.
                        console::success(&format!(
                            "Listening for redis events... ({address}, keyPrefix {:?})",
                            self.options.key_prefix
                        ));
                    }
                    ever_connected = true;
                    backoff = MIN_BACKOFF;
                    if let Some(tx) = first_attempt.take() {
                        let _ = tx.send(());
                    }
                    let Ended::ConnectionLost(reason) = self.consume(pubsub).await;
                    self.state.subscribed.store(false, Ordering::Relaxed);
                    crate::metrics::metrics().redis_source_up.set(0);
                    console::warning(&format!(
                        "Lost the Redis connection to {address} ({reason}); reconnecting. Events published meanwhile are lost."
                    ));
                    down_reported = true;
                }
                Err(reason) => {
                    if !down_reported {
                        console::warning(&format!(
                            "Redis is unreachable at {address} ({reason}); Herald keeps serving and retries in the background. Events published to Redis meanwhile are lost."
                        ));
                        down_reported = true;
                    }
                    if let Some(tx) = first_attempt.take() {
                        let _ = tx.send(());
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn pattern(&self) -> String {
        // Watching everything is only needed to notice events outside a non-empty prefix.
        if self.report_unmatched && !self.options.key_prefix.is_empty() {
            "*".to_owned()
        } else {
            format!("{}*", redis_client::escape_glob(&self.options.key_prefix))
        }
    }

    async fn subscribe(&self) -> Result<redis::aio::PubSub, String> {
        let client = redis_client::client(&self.options).map_err(|e| e.to_string())?;
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(self.pattern()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
        }
    }

    async fn consume(&mut self, pubsub: redis::aio::PubSub) -> Ended {
        let (mut sink, mut stream) = pubsub.split();
        let mut keepalive = tokio::time::interval(self.keepalive);
        keepalive.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.handle(message.get_channel_name(), message.get_payload_bytes()),
                    None => return Ended::ConnectionLost("connection closed".into()),
                },
                // In subscriber mode Redis answers PING with ["pong", ""], not "PONG": any
                // answer proves the connection is alive.
                _ = keepalive.tick() => {
                    match tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Ended::ConnectionLost(e.to_string()),
                        Err(_) => return Ended::ConnectionLost("PING unanswered".into()),
                    }
                }
            }
        }
    }

    fn handle(&mut self, full_channel: &str, payload: &[u8]) {
        if payload.len() > self.max_event_bytes {
            let quiet = self
                .last_oversize_warning
                .is_some_and(|at| at.elapsed() < Duration::from_secs(60));
            if !quiet {
                self.last_oversize_warning = Some(std::time::Instant::now());
                console::warning(&format!(
                    "Dropped a {} byte message on Redis channel {full_channel}: larger than limits.maxEventBytes ({}). (Said at most once a minute.)",
                    payload.len(),
                    self.max_event_bytes
                ));
            }
            return;
        }
        let prefix = &self.options.key_prefix;
        let Some(channel) = full_channel.strip_prefix(prefix.as_str()) else {
            self.report_prefix_mismatch(full_channel, payload);
            return;
        };
        if prefix.is_empty()
            && self.report_unmatched
            && self.hub.subscription_count(channel) == 0
            && crate::prefix::implied_prefix(channel).is_some()
        {
            self.report_prefix_mismatch(full_channel, payload);
        }
        if let Err(e) = crate::hub::validate_channel_name(channel) {
            console::dev_error(&format!("Redis channel {full_channel:?} ignored: {e}"));
            return;
        }
        let message = match parse_laravel_message(payload) {
            Ok(message) => message,
            Err(e) => {
                console::dev_plain(&format!("Channel: {full_channel}"));
                console::dev_error(&e.to_string());
                return;
            }
        };
        console::dev_plain(&format!("Channel: {full_channel}"));
        console::dev_plain(&format!("Event: {}", message.event));
        dispatch(
            &self.hub,
            &message.into_publication(channel),
            EventSource::Redis,
        );
    }

    /// devMode only: a Laravel-looking message whose channel the configured prefix gets wrong.
    fn report_prefix_mismatch(&mut self, full_channel: &str, payload: &[u8]) {
        if parse_laravel_message(payload).is_err()
            || self.reported_prefixes.len() >= MAX_PREFIX_REPORTS
        {
            return;
        }
        let implied = crate::prefix::implied_prefix(full_channel).unwrap_or_default();
        if self.reported_prefixes.insert(implied.clone()) {
            console::warning(&format!(
                "A Laravel event arrived on Redis channel {full_channel:?}, but keyPrefix is {:?}, so no subscriber can receive it. Laravel's prefix looks like {implied:?}: set databaseConfig.redis.keyPrefix to that (run `herald doctor` to check).",
                self.options.key_prefix
            ));
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "panic".to_owned(), |s| (*s).to_owned()),
    }
}
