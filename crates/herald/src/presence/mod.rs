//! Presence channels: who is in a channel, with joining/leaving decided per user (not per
//! socket), over a store (memory, Redis or SQLite) whose every change is atomic, so several
//! Herald processes can share it.
//!
//! Each entry names the node (process) holding its socket. An entry is live if its node is this
//! one and the socket is still subscribed in this Hub, or if its node is another that is still
//! running (its heartbeat in the store). Everything else is a ghost, removed when met.
//!
//! Protocol-free: it returns what happened, and adapters tell their clients.

mod leave_marks;
mod member;
mod memory;
mod nodes;
mod redis;
mod sqlite;
mod store;

pub use leave_marks::LeaveMarks;
pub use member::{MemberEntry, decode_members, dedupe_by_user, same_user};
pub use memory::MemoryStore;
pub use nodes::{Beat, HEARTBEAT_EVERY, NODE_TTL, NodeDirectory, ThisNodeOnly};
pub use redis::RedisStore;
pub use sqlite::SqliteStore;
pub use store::{PresenceStore, Removed, StoreError};

use crate::config::{Config, PresenceDriver, WebhookKind};
use crate::hub::{ChannelChange, Hub, Message, Publication, SocketId};
use crate::node::NodeId;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

/// How long a user's last leave stays marked: the webhook's leave delay, and room for a slow
/// confirmation.
const LEAVE_MARK: std::time::Duration = std::time::Duration::from_secs(30);

/// A socket joined: the channel's members (one per user, newest socket first) and whether
/// this socket is its user's first in the channel (then the others hear `joining`).
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The joining socket's entry.
    pub member: MemberEntry,
    /// Everyone present, deduplicated by `user_id`.
    pub members: Vec<MemberEntry>,
    /// No other live socket of this user was in the channel.
    pub first_for_user: bool,
}

/// A socket left: its entry, and whether it was its user's last (then the rest hear `leaving`).
#[derive(Debug, Clone, PartialEq)]
pub struct Left {
    /// The leaving socket's entry.
    pub member: MemberEntry,
    /// No other live socket of this user remains in the channel.
    pub last_for_user: bool,
}

/// Bounds on a presence channel's members: a Pusher app's `maxPresenceMembersPerChannel` and
/// `maxPresenceMemberSizeInKb`; none for Socket.IO connections, as in laravel-echo-server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberLimits {
    /// Most users in one channel; a further user's join is refused (another tab of a user
    /// already present is not a further user).
    pub max_members: Option<usize>,
    /// Largest `user_info`, in bytes of JSON.
    pub max_user_info_bytes: Option<usize>,
}

/// Why a member could not be added.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// `channel_data` has no `user_id`.
    #[error("channel_data has no user_id")]
    NoUserId,
    /// The channel holds its most users already.
    #[error("the channel has its maximum of {0} members")]
    Full(usize),
    /// `user_info` is over the limit.
    #[error("user_info is larger than {0} bytes")]
    MemberTooLarge(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Presence bookkeeping over a store; the Hub says which of this node's sockets are alive,
/// the node directory which other nodes are.
pub struct Presence {
    store: Arc<dyn PresenceStore>,
    nodes: Arc<dyn NodeDirectory>,
    hub: Arc<Hub>,
    node: NodeId,
    /// This node's own entries, by channel and socket id: what it writes back when a shared
    /// store lost them (Redis restarted empty, or other nodes took this one for dead). The
    /// store stays the record of who is present; this is only this node's share of it.
    own: Mutex<HashMap<String, HashMap<String, MemberEntry>>>,
    /// Leave marks, when the store keeps them (Redis, with `member_removed` webhooks).
    marks: Option<Arc<dyn LeaveMarks>>,
}

impl Presence {
    /// Presence over `store`, for sockets of `node` subscribed in `hub`.
    pub fn new(
        store: Arc<dyn PresenceStore>,
        nodes: Arc<dyn NodeDirectory>,
        hub: Arc<Hub>,
        node: NodeId,
    ) -> Presence {
        Presence {
            store,
            nodes,
            hub,
            node,
            own: Mutex::default(),
            marks: None,
        }
    }

    /// The leave marks that `member_removed` webhooks wait on, if the store keeps them.
    pub fn leave_marks(&self) -> Option<Arc<dyn LeaveMarks>> {
        self.marks.clone()
    }

    /// Presence over the store the config names (`database`).
    pub fn for_config(config: &Config, hub: Arc<Hub>, node: NodeId) -> anyhow::Result<Presence> {
        let mut marks: Option<Arc<dyn LeaveMarks>> = None;
        let (store, nodes): (Arc<dyn PresenceStore>, Arc<dyn NodeDirectory>) = match config.database
        {
            PresenceDriver::Memory => (Arc::new(MemoryStore::default()), Arc::new(ThisNodeOnly)),
            PresenceDriver::Redis => {
                let deployment = config.cluster.as_ref().map_or("herald", |c| &c.prefix);
                let mut store =
                    RedisStore::new(config.shared_redis(), config.publish_presence, deployment)?;
                let told_removed = config.clients.iter().any(|client| {
                    client
                        .webhooks
                        .iter()
                        .any(|hook| hook.kinds.contains(&WebhookKind::MemberRemoved))
                });
                if told_removed {
                    store = store.with_leave_marks(LEAVE_MARK);
                }
                let store = Arc::new(store);
                if told_removed {
                    marks = Some(store.clone());
                }
                (store.clone(), store)
            }
            PresenceDriver::Sqlite => (
                Arc::new(SqliteStore::open(&config.sqlite_path)?),
                Arc::new(ThisNodeOnly),
            ),
        };
        let mut presence = Presence::new(store, nodes, hub, node);
        presence.marks = marks;
        Ok(presence)
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Adds `socket_id` with the app's `channel_data`. The socket must already be subscribed
    /// in the Hub. A re-subscribe replaces the socket's previous entry.
    pub async fn join(
        &self,
        channel: &str,
        socket_id: &SocketId,
        channel_data: &Value,
    ) -> Result<Joined, JoinError> {
        let member =
            MemberEntry::from_channel_data(channel_data, socket_id.as_str(), self.node.as_str())
                .ok_or(JoinError::NoUserId)?;
        let entries = match self.store.add(channel, &member).await? {
            Some(entries) => entries,
            None => {
                self.store.remove(channel, socket_id.as_str()).await?;
                // Only this socket's connection adds its entry, and it waits for each join.
                self.store
                    .add(channel, &member)
                    .await?
                    .unwrap_or_else(|| vec![member.clone()])
            }
        };
        self.own()
            .entry(channel.to_owned())
            .or_default()
            .insert(member.socket_id.clone(), member.clone());
        let live = self.live(channel, entries).await;
        let first_for_user = !live
            .iter()
            .any(|e| e.socket_id != member.socket_id && same_user(&e.user_id, &member.user_id));
        Ok(Joined {
            member,
            members: dedupe_by_user(live.iter().rev()),
            first_for_user,
        })
    }

    /// [`Presence::join`], then, if the socket is its user's first in the channel, tells the
    /// channel's other members (`MemberAdded`, whatever protocol each speaks).
    /// Within `limits`: a member over them is refused, and none of the others hears of it.
    pub async fn join_announced(
        &self,
        channel: &str,
        socket_id: &SocketId,
        channel_data: &Value,
        limits: MemberLimits,
    ) -> Result<Joined, JoinError> {
        if let Some(limit) = limits.max_user_info_bytes {
            let size = channel_data
                .get("user_info")
                .map_or(0, |info| info.to_string().len());
            if size > limit {
                return Err(JoinError::MemberTooLarge(limit));
            }
        }
        let joined = self.join(channel, socket_id, channel_data).await?;
        // Counted after the store took the member, so the count is the store's, not a guess
        // made before a concurrent join elsewhere; two such joins may both step back, never
        // both stay.
        if let Some(limit) = limits.max_members
            && joined.first_for_user
            && joined.members.len() > limit
        {
            self.leave(channel, socket_id).await?;
            return Err(JoinError::Full(limit));
        }
        if joined.first_for_user {
            let member = Arc::new(joined.member.public());
            // Back within the leave delay, maybe on another node: the held member_removed
            // and this member_added are both left untold (the members still hear both).
            let came_back = match &self.marks {
                Some(marks) => marks
                    .take(channel, &joined.member.user_key())
                    .await
                    .unwrap_or(false),
                None => false,
            };
            if !came_back {
                self.hub
                    .observe(ChannelChange::MemberAdded(channel, &member));
            }
            self.hub.broadcast(
                &Publication::with(
                    channel,
                    Message::MemberAdded(member),
                    Some(socket_id.clone()),
                ),
                false,
            );
        }
        Ok(joined)
    }

    /// [`Presence::leave`], then, if the socket was its user's last in the channel, tells the
    /// rest (`MemberRemoved`). A store failure is logged: the entry is then a ghost, removed
    /// when next met.
    pub async fn leave_announced(&self, channel: &str, socket_id: &SocketId) {
        match self.leave(channel, socket_id).await {
            Ok(Some(left)) if left.last_for_user => self.announce_removed(channel, &left.member),
            Ok(_) => {}
            Err(e) => crate::console::error(&format!(
                "could not remove {socket_id} from presence channel {channel}: {e}"
            )),
        }
    }

    /// Tells the watchers and every node's members of `channel` that `entry`'s user left.
    fn announce_removed(&self, channel: &str, entry: &MemberEntry) {
        let member = Arc::new(entry.public());
        self.hub
            .observe(ChannelChange::MemberRemoved(channel, &member));
        self.hub.broadcast(
            &Publication::with(channel, Message::MemberRemoved(member), None),
            false,
        );
    }

    /// Removes `socket_id`'s entry. `None` if it had none (never joined, or already left).
    pub async fn leave(
        &self,
        channel: &str,
        socket_id: &SocketId,
    ) -> Result<Option<Left>, StoreError> {
        self.forget_own(channel, socket_id.as_str());
        let Some(removed) = self.store.remove(channel, socket_id.as_str()).await? else {
            return Ok(None);
        };
        // The common case (one tab per user) needs no read; otherwise the other entries of
        // the user may be ghosts.
        let last_for_user = removed.others_of_user == 0 || {
            let live = self.live(channel, self.store.list(channel).await?).await;
            !live
                .iter()
                .any(|e| same_user(&e.user_id, &removed.entry.user_id))
        };
        Ok(Some(Left {
            member: removed.entry,
            last_for_user,
        }))
    }

    /// Live members of `channel`, one per user.
    pub async fn members(&self, channel: &str) -> Result<Vec<MemberEntry>, StoreError> {
        let live = self.live(channel, self.store.list(channel).await?).await;
        Ok(dedupe_by_user(live.iter().rev()))
    }

    /// Removes ghosts from every stored presence channel: entries of sockets no longer here
    /// and of nodes no longer running (a crash, a `kill -9`). Returns how many channels held
    /// ghosts.
    pub async fn remove_ghosts(&self) -> Result<usize, StoreError> {
        self.prune_own();
        let mut cleaned = 0;
        for channel in self.store.channels().await? {
            let entries = self.store.list(&channel).await?;
            let count = entries.len();
            if self.live(&channel, entries).await.len() != count {
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }

    /// Says this node runs, for the next [`NODE_TTL`]; call every [`HEARTBEAT_EVERY`]. The
    /// store may not have listed this node although it ran before (a Redis that restarted
    /// empty, or a heartbeat that lapsed while Redis was out of reach, so other nodes removed
    /// this node's members): then [`Presence::reassert`]. Nodes that stopped or died are
    /// named to one heartbeat only: then [`Presence::remove_ghosts`].
    pub async fn heartbeat(&self) -> Result<Beat, StoreError> {
        self.nodes.announce(self.node.as_str()).await
    }

    /// The nodes running now.
    pub async fn running_nodes(&self) -> Result<HashSet<String>, StoreError> {
        self.nodes.all_running().await
    }

    /// Writes this node's members back into the store. `announce`: the other nodes' clients
    /// heard them leave (this node was taken for dead), so a user back in a channel is
    /// announced again; otherwise (a Redis that lost its data) they still list them and hear
    /// nothing. Returns how many entries were missing.
    pub async fn reassert(&self, announce: bool) -> Result<usize, StoreError> {
        let own: Vec<(String, MemberEntry)> = self
            .own()
            .iter()
            .flat_map(|(channel, entries)| {
                entries
                    .values()
                    .map(move |entry| (channel.clone(), entry.clone()))
            })
            .collect();
        let mut missing = 0;
        for (channel, entry) in own {
            if !self
                .hub
                .is_subscribed(&channel, &SocketId::new(&entry.socket_id))
            {
                self.forget_own(&channel, &entry.socket_id);
                continue;
            }
            let Some(entries) = self.store.add(&channel, &entry).await? else {
                continue;
            };
            missing += 1;
            let others_of_user = entries
                .iter()
                .any(|e| e.socket_id != entry.socket_id && same_user(&e.user_id, &entry.user_id));
            if announce && !others_of_user {
                let member = Arc::new(entry.public());
                self.hub
                    .observe(ChannelChange::MemberAdded(&channel, &member));
                self.hub.broadcast(
                    &Publication::with(
                        &channel,
                        Message::MemberAdded(member),
                        Some(SocketId::new(&entry.socket_id)),
                    ),
                    false,
                );
            }
        }
        Ok(missing)
    }

    /// Drops this node's own entries whose socket is no longer subscribed here (a join that
    /// finished after its connection closed), so the record stays bounded by the live ones.
    fn prune_own(&self) {
        self.own().retain(|channel, entries| {
            entries
                .retain(|socket_id, _| self.hub.is_subscribed(channel, &SocketId::new(socket_id)));
            !entries.is_empty()
        });
    }

    fn own(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, MemberEntry>>> {
        self.own.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_own(&self, channel: &str, socket_id: &str) {
        let mut own = self.own();
        if let Some(entries) = own.get_mut(channel) {
            entries.remove(socket_id);
            if entries.is_empty() {
                own.remove(channel);
            }
        }
    }

    /// Says this node stopped, so others drop its entries at once rather than after the TTL.
    pub async fn withdraw(&self) -> Result<(), StoreError> {
        self.withdraw_node(&self.node).await
    }

    /// Says `node` stopped (one known to be gone, such as the previous run here).
    pub async fn withdraw_node(&self, node: &NodeId) -> Result<(), StoreError> {
        self.nodes.withdraw(node.as_str()).await
    }

    /// The live ones of `entries`; the ghosts among them are removed from the store (a failed
    /// removal is only logged: the ghost is skipped now and removed when next met).
    async fn live(&self, channel: &str, entries: Vec<MemberEntry>) -> Vec<MemberEntry> {
        let others: HashSet<&str> = entries
            .iter()
            .map(|e| e.node.as_str())
            .filter(|node| *node != self.node.as_str())
            .collect();
        let running = if others.is_empty() {
            HashSet::new()
        } else {
            let others: Vec<&str> = others.into_iter().collect();
            match self.nodes.running(&others).await {
                Ok(running) => running,
                Err(e) => {
                    // Unknown is not dead: keep the others' entries rather than drop members.
                    tracing::warn!(error = %e, "could not tell which Herald nodes run");
                    others.iter().map(|node| (*node).to_owned()).collect()
                }
            }
        };
        let (live, ghosts): (Vec<MemberEntry>, Vec<MemberEntry>) =
            entries.into_iter().partition(|e| {
                if e.node == self.node.as_str() {
                    self.hub
                        .is_subscribed(channel, &SocketId::new(&e.socket_id))
                } else {
                    running.contains(&e.node)
                }
            });
        for ghost in ghosts {
            match self.store.remove(channel, &ghost.socket_id).await {
                // The user's last entry, and this node the one that removed it (the store
                // decides, atomically): tell every node's members, once, that the user left.
                Ok(Some(removed)) if removed.others_of_user == 0 => {
                    self.announce_removed(channel, &removed.entry);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not remove a presence ghost"),
            }
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Delivery, Frames, Publication, Subscriber};
    use futures_util::future::{BoxFuture, FutureExt};
    use serde_json::json;
    use std::sync::Mutex;

    struct Socket(SocketId);

    impl Subscriber for Socket {
        fn socket_id(&self) -> &SocketId {
            &self.0
        }
        fn deliver(&self, _: &Publication, _: &mut Frames<'_>) -> Delivery {
            Delivery::Queued
        }
    }

    /// A directory where the nodes in `running` run.
    #[derive(Default)]
    struct Directory {
        running: Mutex<HashSet<String>>,
    }

    impl NodeDirectory for Directory {
        fn announce<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Beat, StoreError>> {
            let missing = self.running.lock().expect("lock").insert(node.to_owned());
            async move {
                Ok(Beat {
                    missing,
                    swept: false,
                    lapsed: Vec::new(),
                })
            }
            .boxed()
        }
        fn withdraw<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
            self.running.lock().expect("lock").remove(node);
            async { Ok(()) }.boxed()
        }
        fn running<'a>(
            &'a self,
            nodes: &'a [&'a str],
        ) -> BoxFuture<'a, Result<HashSet<String>, StoreError>> {
            let running = self.running.lock().expect("lock").clone();
            let found = nodes
                .iter()
                .filter(|n| running.contains(**n))
                .map(|n| (*n).to_owned())
                .collect();
            async move { Ok(found) }.boxed()
        }
        fn all_running(&self) -> BoxFuture<'_, Result<HashSet<String>, StoreError>> {
            let running = self.running.lock().expect("lock").clone();
            async move { Ok(running) }.boxed()
        }
    }

    /// Two nodes sharing one store and one directory, each with its own Hub.
    fn two_nodes() -> (Presence, Presence, Arc<Directory>) {
        let store: Arc<dyn PresenceStore> = Arc::new(MemoryStore::default());
        let directory = Arc::new(Directory::default());
        let node = || {
            Presence::new(
                store.clone(),
                directory.clone(),
                Arc::new(Hub::new()),
                NodeId::random(),
            )
        };
        (node(), node(), directory)
    }

    async fn join(presence: &Presence, socket: &str, user: u64) -> Joined {
        let id = SocketId::new(socket);
        presence
            .hub
            .subscribe("presence-room", Arc::new(Socket(id.clone())));
        presence
            .join("presence-room", &id, &json!({"user_id": user}))
            .await
            .expect("join")
    }

    fn users(members: &[MemberEntry]) -> Vec<Value> {
        members.iter().map(|m| m.user_id.clone()).collect()
    }

    #[tokio::test]
    async fn joining_and_leaving_are_per_user_across_nodes() {
        let (a, b, _directory) = two_nodes();
        a.heartbeat().await.expect("beat");
        b.heartbeat().await.expect("beat");
        assert!(join(&a, "a1", 1).await.first_for_user);
        let second_tab = join(&b, "b1", 1).await;
        assert!(
            !second_tab.first_for_user,
            "a second tab (on another node) adds no member"
        );
        assert_eq!(users(&second_tab.members), vec![json!(1)]);
        let other = join(&b, "b2", 2).await;
        assert!(other.first_for_user);
        assert_eq!(users(&other.members), vec![json!(2), json!(1)]);

        let left = a
            .leave("presence-room", &SocketId::new("a1"))
            .await
            .expect("leave");
        assert!(
            !left.expect("had an entry").last_for_user,
            "the user's other tab stays"
        );
        let left = b
            .leave("presence-room", &SocketId::new("b1"))
            .await
            .expect("leave");
        assert!(left.expect("had an entry").last_for_user);
        assert_eq!(
            a.leave("presence-room", &SocketId::new("a1"))
                .await
                .expect("leave"),
            None,
            "leaving twice announces nothing"
        );
        assert_eq!(
            users(&a.members("presence-room").await.expect("members")),
            vec![json!(2)]
        );
    }

    #[tokio::test]
    async fn entries_of_a_stopped_node_are_ghosts() {
        let (a, b, directory) = two_nodes();
        a.heartbeat().await.expect("beat");
        b.heartbeat().await.expect("beat");
        join(&a, "a1", 1).await;
        join(&b, "b1", 2).await;
        assert_eq!(a.members("presence-room").await.expect("members").len(), 2);
        // b crashes: its heartbeat lapses (here: is withdrawn).
        directory
            .withdraw(b.node().as_str())
            .await
            .expect("withdraw");
        assert_eq!(
            users(&a.members("presence-room").await.expect("members")),
            vec![json!(1)]
        );
        // The ghost was removed from the store, not only hidden.
        assert_eq!(a.store.list("presence-room").await.expect("list").len(), 1);
        // A user whose only entry was a ghost is new again when they come back.
        assert!(join(&a, "a2", 2).await.first_for_user);
    }

    #[tokio::test]
    async fn sockets_gone_from_this_node_are_ghosts_and_swept() {
        let (a, _b, _directory) = two_nodes();
        join(&a, "a1", 1).await;
        join(&a, "a2", 1).await;
        // a2 left the Hub without its presence leave (the store was down, say).
        a.hub.unsubscribe("presence-room", &SocketId::new("a2"));
        let left = a
            .leave("presence-room", &SocketId::new("a1"))
            .await
            .expect("leave");
        assert!(
            left.expect("entry").last_for_user,
            "a ghost tab keeps nobody present"
        );
        join(&a, "a3", 3).await;
        a.hub.unsubscribe("presence-room", &SocketId::new("a3"));
        assert_eq!(a.remove_ghosts().await.expect("sweep"), 1);
        assert!(
            a.store
                .list("presence-room")
                .await
                .expect("list")
                .is_empty()
        );
        assert!(a.store.channels().await.expect("channels").is_empty());
    }

    #[tokio::test]
    async fn own_members_are_written_back_after_a_loss_and_the_record_stays_bounded() {
        let store: Arc<dyn PresenceStore> = Arc::new(MemoryStore::default());
        let directory = Arc::new(Directory::default());
        let a = Presence::new(
            store.clone(),
            directory.clone(),
            Arc::new(Hub::new()),
            NodeId::random(),
        );
        join(&a, "a1", 1).await;
        join(&a, "a2", 2).await;
        // The store loses everything (Redis restarted empty).
        for socket in ["a1", "a2"] {
            store.remove("presence-room", socket).await.expect("remove");
        }
        assert_eq!(a.reassert(false).await.expect("reassert"), 2);
        assert_eq!(
            users(&a.members("presence-room").await.expect("list")).len(),
            2
        );
        assert_eq!(
            a.reassert(false).await.expect("again"),
            0,
            "nothing missing now"
        );
        // a2's connection went without a presence leave: the sweep drops it from the record.
        a.hub.unsubscribe("presence-room", &SocketId::new("a2"));
        a.remove_ghosts().await.expect("sweep");
        assert_eq!(a.own().get("presence-room").map(HashMap::len), Some(1));
        a.leave("presence-room", &SocketId::new("a1"))
            .await
            .expect("leave");
        assert!(a.own().is_empty(), "a leave forgets the entry");
    }

    #[tokio::test]
    async fn a_resubscribe_replaces_the_entry() {
        let (a, _b, _directory) = two_nodes();
        join(&a, "a1", 1).await;
        let again = a
            .join(
                "presence-room",
                &SocketId::new("a1"),
                &json!({"user_id": 5}),
            )
            .await
            .expect("join");
        assert_eq!(users(&again.members), vec![json!(5)]);
        assert_eq!(a.store.list("presence-room").await.expect("list").len(), 1);
    }
}
