//! Cluster-wide channel counts, for the HTTP APIs: each node writes how many of its connections
//! each channel has into its own Redis hash, `<keyPrefix><prefix>:channels:<node>`, and an API
//! read sums the hashes of every node. Nothing waits on the subscribe path: the Hub only says a
//! count changed; one task writes the counts a moment later, in one pipeline. A node's hash
//! expires with its heartbeat ([`NODE_TTL`]) if it dies, and is deleted when it stops.

use crate::config::RedisOptions;
use crate::hub::{ChannelChange, ChannelInfo, ChannelWatcher, Hub};
use crate::node::NodeId;
use crate::presence::{HEARTBEAT_EVERY, NODE_TTL};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Changes written together: the counts are read and written this long after a change.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// Channels waiting to be written; beyond, a change is dropped (the hash is rewritten whole
/// every minute, so it heals).
const QUEUE: usize = 10_000;
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// This node's share of the cluster's channel counts, and the sum of every node's.
pub struct Occupancy {
    client: redis::Client,
    /// `<keyPrefix><prefix>:channels:`, followed by a node id.
    key_prefix: String,
    node: NodeId,
    queue: mpsc::Sender<String>,
}

impl Occupancy {
    /// Starts writing this node's counts.
    pub fn start(
        options: &RedisOptions,
        deployment: &str,
        node: NodeId,
        hub: Weak<Hub>,
    ) -> anyhow::Result<Arc<Occupancy>> {
        let client = crate::redis_client::client(options)?;
        let key_prefix = format!("{}{deployment}:channels:", options.key_prefix);
        let (queue, rx) = mpsc::channel(QUEUE);
        let occupancy = Arc::new(Occupancy {
            client,
            key_prefix,
            node,
            queue,
        });
        tokio::spawn(write(rx, Arc::downgrade(&occupancy), hub));
        Ok(occupancy)
    }

    fn own_key(&self) -> String {
        format!("{}{}", self.key_prefix, self.node)
    }

    /// Every node's occupied channels whose key starts with `prefix`, with their summed
    /// counts, sorted by key.
    pub async fn channels(&self, prefix: &str) -> anyhow::Result<Vec<ChannelInfo>> {
        let read = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            let pattern = format!("{}*", crate::redis_client::escape_glob(&self.key_prefix));
            let keys = crate::redis_client::scan_keys(&mut connection, &pattern).await?;
            let mut sums: BTreeMap<String, usize> = BTreeMap::new();
            for key in keys {
                let counts: Vec<(String, usize)> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await?;
                for (channel, count) in counts {
                    if channel.starts_with(prefix) {
                        *sums.entry(channel).or_default() += count;
                    }
                }
            }
            Ok::<_, redis::RedisError>(sums)
        };
        let sums = tokio::time::timeout(REDIS_TIMEOUT, read)
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer within 5 s"))??;
        Ok(sums
            .into_iter()
            .filter(|(_, count)| *count > 0)
            .map(|(name, subscription_count)| ChannelInfo {
                name,
                subscription_count,
            })
            .collect())
    }

    /// Every node's connections subscribed to `channel`.
    pub async fn count(&self, channel: &str) -> anyhow::Result<usize> {
        Ok(self
            .channels(channel)
            .await?
            .into_iter()
            .find(|c| c.name == channel)
            .map_or(0, |c| c.subscription_count))
    }

    /// Deletes this node's hash (a graceful stop: its connections are gone).
    pub async fn withdraw(&self) {
        let delete = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            redis::cmd("DEL")
                .arg(self.own_key())
                .query_async::<()>(&mut connection)
                .await
        };
        let _ = tokio::time::timeout(REDIS_TIMEOUT, delete).await;
    }
}

impl ChannelWatcher for Occupancy {
    fn observe(&self, change: ChannelChange<'_>) {
        if let ChannelChange::Counted(channel) = change {
            // Full: this change waits for the next heartbeat's full rewrite.
            let _ = self.queue.try_send(channel.to_owned());
        }
    }
}

/// The whole hash is rewritten this often, healing changes a full queue dropped.
const REWRITE_EVERY: Duration = Duration::from_secs(60);

/// What one round of writing does.
enum Round {
    /// Write the channels that changed.
    Changed,
    /// Renew the hash's expiry (with the heartbeat).
    Renew,
    /// Rewrite the whole hash.
    Rewrite,
}

/// Writes changed counts every [`WRITE_EVERY`], renews the hash's expiry with each heartbeat,
/// and rewrites it whole every [`REWRITE_EVERY`].
async fn write(mut queue: mpsc::Receiver<String>, occupancy: Weak<Occupancy>, hub: Weak<Hub>) {
    let mut changed: HashSet<String> = HashSet::new();
    let mut flush = tokio::time::interval(WRITE_EVERY);
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut rewrite = tokio::time::interval(REWRITE_EVERY);
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    loop {
        let round = tokio::select! {
            channel = queue.recv() => match channel {
                    Some(channel) => {
                    changed.insert(channel);
                    continue;
                }
                None => return,
            },
            _ = flush.tick() => Round::Changed,
            _ = heartbeat.tick() => Round::Renew,
            _ = rewrite.tick() => Round::Rewrite,
        };
        if matches!(round, Round::Changed) && changed.is_empty() {
            continue;
        }
        let (Some(occupancy), Some(hub)) = (occupancy.upgrade(), hub.upgrade()) else {
            return;
        };
        let key = occupancy.own_key();
        let mut pipe = redis::pipe();
        match round {
            Round::Rewrite => {
                changed.clear();
                pipe.cmd("DEL").arg(&key).ignore();
                for channel in hub.channels("") {
                    pipe.cmd("HSET")
                        .arg(&key)
                        .arg(&channel.name)
                        .arg(channel.subscription_count)
                        .ignore();
                }
            }
            Round::Changed => {
                for channel in changed.drain() {
                    match hub.subscription_count(&channel) {
                        0 => pipe.cmd("HDEL").arg(&key).arg(&channel).ignore(),
                        count => pipe.cmd("HSET").arg(&key).arg(&channel).arg(count).ignore(),
                    };
                }
            }
            Round::Renew => {}
        }
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(NODE_TTL.as_millis() as u64)
            .ignore();
        if connection.is_none() {
            let attempt = occupancy.client.get_multiplexed_async_connection();
            connection = tokio::time::timeout(REDIS_TIMEOUT, attempt)
                .await
                .ok()
                .and_then(Result::ok);
        }
        let written = match connection.as_mut() {
            Some(connection) => matches!(
                tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(connection)).await,
                Ok(Ok(()))
            ),
            None => false,
        };
        if !written {
            // The next rewrite writes the whole hash again.
            connection = None;
            tracing::warn!("could not write this node's channel counts to Redis");
        }
    }
}
