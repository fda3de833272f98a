//! Subscription counts (Pusher's `enableSubscriptionCount`): a channel's subscribers are told
//! `pusher_internal:subscription_count` when its count changes, and the `subscription_count`
//! webhook fires. Counts every protocol's subscribers; never for presence channels (their
//! members are told already) or the server's own `#` channels.
//!
//! The Hub only says that a count changed ([`ChannelChange::Counted`], under the channel's
//! lock); one task reads the count later, at most twice a second per channel (every 5 s above
//! 100 subscribers, as Pusher does), so a burst of joins is one frame, not one per join.
//!
//! In a cluster the count is every node's: a change this node wrote
//! ([`ChannelChange::ClusterCounted`], from `cluster::Occupancy`) is told to the subscribers of
//! every node, with the total read from Redis when it is told (not when it was written), so of
//! two nodes telling one channel's count the later one tells a total that includes both
//! changes.

use crate::cluster::Occupancy;
use crate::config::{ApiClient, WebhookKind};
use crate::hub::{
    ChannelChange, ChannelKind, ChannelWatcher, Hub, Message, Publication, Space, visible_name,
};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long after a change the count is read and told.
const WINDOW: Duration = Duration::from_millis(500);
/// The same for channels of more than [`BUSY`] subscribers.
const BUSY_WINDOW: Duration = Duration::from_secs(5);
const BUSY: usize = 100;
/// Channels waiting to be counted; beyond, a change is dropped (the next one counts again).
const QUEUE: usize = 10_000;

/// The subscription-count watcher.
pub struct SubscriptionCounts {
    /// A channel whose count changed.
    queue: mpsc::Sender<String>,
    cluster: bool,
}

impl SubscriptionCounts {
    /// Starts counting if an app enables subscription counts or a webhook asks for them.
    /// `cluster`: this node is one of several, and counts are the cluster's.
    pub fn start(
        clients: &[ApiClient],
        hub: &Arc<Hub>,
        cluster: Option<Arc<Occupancy>>,
    ) -> Option<Arc<SubscriptionCounts>> {
        let told_to_clients: Vec<Space> = clients
            .iter()
            .filter(|client| client.subscription_count && client.secret.is_some())
            .map(ApiClient::space)
            .collect();
        let webhook = clients
            .iter()
            .flat_map(|client| &client.webhooks)
            .any(|hook| hook.kinds.contains(&WebhookKind::SubscriptionCount));
        if told_to_clients.is_empty() && !webhook {
            return None;
        }
        let (queue, rx) = mpsc::channel(QUEUE);
        // A weak Hub: the Hub holds this watcher, so a strong one would be a cycle.
        let in_cluster = cluster.is_some();
        tokio::spawn(run(rx, Arc::downgrade(hub), told_to_clients, cluster));
        Some(Arc::new(SubscriptionCounts {
            queue,
            cluster: in_cluster,
        }))
    }
}

impl ChannelWatcher for SubscriptionCounts {
    fn observe(&self, change: ChannelChange<'_>) {
        let channel = match change {
            ChannelChange::Counted(channel) if !self.cluster => channel,
            ChannelChange::ClusterCounted(channel) if self.cluster => channel,
            _ => return,
        };
        let name = visible_name(channel);
        if name.starts_with('#') || ChannelKind::of(name) == ChannelKind::Presence {
            return;
        }
        // Full: this change is not told, but the channel's next one reads the count anew.
        let _ = self.queue.try_send(channel.to_owned());
    }
}

async fn run(
    mut queue: mpsc::Receiver<String>,
    hub: Weak<Hub>,
    told_to_clients: Vec<Space>,
    cluster: Option<Arc<Occupancy>>,
) {
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut told: HashMap<String, usize> = HashMap::new();
    loop {
        let wake = due.values().min().copied();
        tokio::select! {
            changed = queue.recv() => {
                let Some(channel) = changed else { return };
                let window = match told.get(&channel) {
                    Some(count) if *count > BUSY => BUSY_WINDOW,
                    _ => WINDOW,
                };
                due.entry(channel).or_insert_with(|| Instant::now() + window);
            }
            () = sleep_until(wake) => {}
        }
        let now = Instant::now();
        let mut ready = Vec::new();
        due.retain(|channel, at| {
            let wait = *at > now;
            if !wait {
                ready.push(channel.clone());
            }
            wait
        });
        if ready.is_empty() {
            continue;
        }
        let Some(hub) = hub.upgrade() else { return };
        for channel in ready {
            let count = match &cluster {
                Some(occupancy) => match occupancy.count(&channel).await {
                    Ok(count) => count,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read a channel's count from Redis");
                        continue;
                    }
                },
                None => hub.subscription_count(&channel),
            };
            // In a cluster, other nodes tell counts too: what this node told last may not be
            // what the subscribers saw last.
            if cluster.is_none() && told.get(&channel).copied().unwrap_or(0) == count {
                continue;
            }
            match count {
                0 => told.remove(&channel),
                _ => told.insert(channel.clone(), count),
            };
            if count > 0
                && told_to_clients
                    .iter()
                    .any(|space| space.name_of(&channel).is_some())
            {
                let message = Message::SubscriptionCount(count);
                hub.broadcast(&Publication::with(&channel, message, None), false);
            }
            hub.observe(ChannelChange::SubscriptionCount(&channel, count));
        }
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
