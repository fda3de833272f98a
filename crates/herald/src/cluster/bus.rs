//! The cluster bus: each node PUBLISHes what other nodes' clients must receive on one Redis
//! channel, `<prefix>:bus`, and SUBSCRIBEs to it, delivering what other nodes sent to its own
//! Hub. Redis pub/sub, nothing home-made: a message is delivered to the nodes connected when it
//! is published, at most once.
//!
//! Never on the publish path: [`ClusterBus::relay`] encodes and queues (bounded); one task
//! sends, one task receives, each reconnecting with back-off on its own.

use super::wire::Relayed;
use crate::config::RedisOptions;
use crate::console;
use crate::hub::{Hub, Publication, Relay};
use crate::metrics::metrics;
use crate::node::NodeId;
use futures_util::StreamExt;
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::mpsc;

/// Publications waiting to be sent; beyond, one is dropped (counted, and said once a minute).
const QUEUE: usize = 10_000;
/// Longest wait for Redis to connect or answer.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A silent subscription is PINGed this often, so a dead connection is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// This node's end of the bus.
pub struct ClusterBus {
    node: NodeId,
    queue: mpsc::Sender<Vec<u8>>,
}

impl ClusterBus {
    /// Starts the sending and receiving tasks on `<prefix>:bus` of the Redis `options` name.
    /// `hub` is weak: the Hub holds the bus, so a strong one would be a cycle.
    pub fn start(
        options: &RedisOptions,
        prefix: &str,
        node: NodeId,
        hub: Weak<Hub>,
        max_message_bytes: usize,
    ) -> anyhow::Result<ClusterBus> {
        let client = crate::redis_client::client(options)?;
        let channel = format!("{prefix}:bus");
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(send(rx, client.clone(), channel.clone()));
        tokio::spawn(receive(
            client,
            channel,
            node.clone(),
            hub,
            max_message_bytes,
        ));
        Ok(ClusterBus { node, queue })
    }
}

impl Relay for ClusterBus {
    fn relay(&self, publication: &Publication, cacheable: bool) {
        let relayed = Relayed::of(self.node.as_str(), publication, cacheable);
        let Ok(payload) = serde_json::to_vec(&relayed) else {
            return;
        };
        if self.queue.try_send(payload).is_err() {
            metrics().cluster_relay_dropped.inc();
        }
    }
}

async fn send(mut queue: mpsc::Receiver<Vec<u8>>, client: redis::Client, channel: String) {
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut down_since: Option<tokio::time::Instant> = None;
    while let Some(payload) = queue.recv().await {
        // A connection kept from before may have broken meanwhile (Redis restarted, a
        // partition healed): then this message is sent again on a new one.
        let mut sent = false;
        for _ in 0..2 {
            let reused = connection.is_some();
            if connection.is_none() {
                let attempt = client.get_multiplexed_async_connection();
                connection = tokio::time::timeout(REDIS_TIMEOUT, attempt)
                    .await
                    .ok()
                    .and_then(Result::ok);
            }
            let Some(open) = connection.as_mut() else {
                break;
            };
            let mut command = redis::cmd("PUBLISH");
            command.arg(&channel).arg(&payload);
            let publish = command.query_async::<i64>(open);
            sent = matches!(
                tokio::time::timeout(REDIS_TIMEOUT, publish).await,
                Ok(Ok(_))
            );
            if sent {
                break;
            }
            connection = None;
            if !reused {
                break;
            }
        }
        if sent {
            if down_since.take().is_some() {
                console::success("Cluster bus: publishing to Redis again.");
            }
            continue;
        }
        metrics().cluster_relay_dropped.inc();
        if down_since.is_none_or(|since| since.elapsed() > Duration::from_secs(60)) {
            down_since = Some(tokio::time::Instant::now());
            console::warning(
                "Cluster bus: could not publish to Redis; clients on other nodes miss what this node publishes until it is back",
            );
        }
    }
}

async fn receive(
    client: redis::Client,
    channel: String,
    node: NodeId,
    hub: Weak<Hub>,
    max_message_bytes: usize,
) {
    let mut backoff = MIN_BACKOFF;
    let mut reported = false;
    loop {
        let attempt = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(REDIS_TIMEOUT, attempt).await {
            Ok(Ok(pubsub)) => {
                if reported {
                    console::success("Cluster bus: receiving from other nodes again.");
                }
                backoff = MIN_BACKOFF;
                let reason = consume(pubsub, &node, &hub, max_message_bytes).await;
                if hub.strong_count() == 0 {
                    return;
                }
                console::warning(&format!(
                    "Cluster bus: lost the Redis subscription ({reason}); reconnecting. What other nodes publish meanwhile does not reach this node's clients."
                ));
                reported = true;
            }
            _ if !reported => {
                console::warning(
                    "Cluster bus: cannot subscribe to Redis; retrying in the background.",
                );
                reported = true;
            }
            _ => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn consume(
    pubsub: redis::aio::PubSub,
    node: &NodeId,
    hub: &Weak<Hub>,
    max_message_bytes: usize,
) -> String {
    let (mut sink, mut stream) = pubsub.split();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return "connection closed".to_owned();
                };
                let Some(hub) = hub.upgrade() else {
                    return "shutting down".to_owned();
                };
                deliver(&hub, node, message.get_payload_bytes(), max_message_bytes);
            }
            _ = keepalive.tick() => {
                match tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return e.to_string(),
                    Err(_) => return "PING unanswered".to_owned(),
                }
            }
        }
    }
}

/// Delivers what another node sent to this node's subscribers (only: it is not relayed again).
fn deliver(hub: &Hub, node: &NodeId, payload: &[u8], max_message_bytes: usize) {
    if payload.len() > max_message_bytes {
        return;
    }
    let Ok(relayed) = serde_json::from_slice::<Relayed>(payload) else {
        tracing::warn!("cluster bus: a message that is not Herald's was ignored");
        return;
    };
    if relayed.node == node.as_str() {
        return;
    }
    let cacheable = relayed.cacheable;
    let publication = relayed.into_publication();
    if cacheable {
        hub.remember(&publication);
    }
    crate::sources::deliver_from_cluster(hub, &publication);
}
