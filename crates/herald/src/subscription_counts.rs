//! Subscription counts (Pusher's `enableSubscriptionCount`): a channel's subscribers are told
//! `pusher_internal:subscription_count` when its count changes, and the `subscription_count`
//! webhook fires. Counts every protocol's subscribers; never for presence channels (their
//! members are told already) or the server's own `#` channels.
//!
//! The Hub only says that a count changed ([`ChannelChange::Counted`], under the channel's
//! lock); one task reads the count later, at most twice a second per channel (every 5 s above
//! 100 subscribers, as Pusher does), so a burst of joins is one frame, not one per join.
//!
//! In a cluster the count is every node's ([`ChannelChange::ClusterCounted`], from
//! `cluster::Occupancy`), and the node where it changed tells the subscribers of every node.

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
    /// A channel whose count changed, with the cluster's count in a cluster.
    queue: mpsc::Sender<(String, Option<usize>)>,
    cluster: bool,
}

impl SubscriptionCounts {
    /// Starts counting if an app enables subscription counts or a webhook asks for them.
    /// `cluster`: this node is one of several, and counts are the cluster's.
    pub fn start(
        clients: &[ApiClient],
        hub: &Arc<Hub>,
        cluster: bool,
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
        tokio::spawn(run(rx, Arc::downgrade(hub), told_to_clients));
        Some(Arc::new(SubscriptionCounts { queue, cluster }))
    }
}

impl ChannelWatcher for SubscriptionCounts {
    fn observe(&self, change: ChannelChange<'_>) {
        let (channel, cluster_count) = match change {
            ChannelChange::Counted(channel) if !self.cluster => (channel, None),
            ChannelChange::ClusterCounted(channel, count) if self.cluster => (channel, Some(count)),
            _ => return,
        };
        let name = visible_name(channel);
        if name.starts_with('#') || ChannelKind::of(name) == ChannelKind::Presence {
            return;
        }
        // Full: this change is not told, but the channel's next one reads the count anew.
        let _ = self.queue.try_send((channel.to_owned(), cluster_count));
    }
}

async fn run(
    mut queue: mpsc::Receiver<(String, Option<usize>)>,
    hub: Weak<Hub>,
    told_to_clients: Vec<Space>,
) {
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut told: HashMap<String, usize> = HashMap::new();
    // In a cluster: the latest count of every node, per channel waiting to be told.
    let mut cluster_counts: HashMap<String, usize> = HashMap::new();
    loop {
        let wake = due.values().min().copied();
        tokio::select! {
            changed = queue.recv() => {
                let Some((channel, cluster_count)) = changed else { return };
                if let Some(count) = cluster_count {
                    cluster_counts.insert(channel.clone(), count);
                }
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
            let (count, cluster) = match cluster_counts.remove(&channel) {
                Some(count) => (count, true),
                None => (hub.subscription_count(&channel), false),
            };
            // In a cluster, other nodes tell counts too: what this node told last may not be
            // what the subscribers saw last.
            if !cluster && told.get(&channel).copied().unwrap_or(0) == count {
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
