//! Pusher watchlists across nodes: a user is online while any node has a connection signed in
//! as them, that is while their channel (`#server-to-user-<id>`) is occupied in the cluster.
//! The node whose write made the cluster occupy or vacate it (`cluster::Occupancy`, once per
//! cluster) tells the user's watchers on every node, over the bus. Going offline waits for the
//! leave delay, like a vacancy: a reload tells nothing.

use crate::hub::{
    ChannelChange, ChannelWatcher, Hub, Message, Publication, user_of_channel, visible_name,
    watchlist_channel,
};
use std::sync::{Arc, Weak};

/// Tells watchers when the cluster's first connection of a user signs in or its last one goes.
pub struct ClusterWatchlists {
    /// Weak: the Hub holds its watchers.
    hub: Weak<Hub>,
}

impl ClusterWatchlists {
    /// A watcher for `hub`.
    pub fn new(hub: Weak<Hub>) -> ClusterWatchlists {
        ClusterWatchlists { hub }
    }

    fn tell(&self, key: &str, online: bool) {
        let name = visible_name(key);
        let Some(user_id) = user_of_channel(name) else {
            return;
        };
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        // The same space as the user's channel: the part of the key before its visible name.
        let space = &key[..key.len() - name.len()];
        let channel = format!("{space}{}", watchlist_channel(user_id));
        let message = Message::Watchlist {
            user_id: Arc::from(user_id),
            online,
        };
        hub.broadcast(&Publication::with(&channel, message, None), false);
    }
}

impl ChannelWatcher for ClusterWatchlists {
    fn observe(&self, change: ChannelChange<'_>) {
        match change {
            ChannelChange::ClusterOccupied(key) => self.tell(key, true),
            ChannelChange::ClusterVacated(key) => self.tell(key, false),
            _ => {}
        }
    }
}
