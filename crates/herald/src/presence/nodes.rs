//! Which Herald processes are running, so presence entries of a process that died are told
//! apart from entries of a process that is merely elsewhere.

use super::StoreError;
use futures_util::future::{BoxFuture, FutureExt};
use std::collections::HashSet;
use std::time::Duration;

/// How long a node counts as running after its last heartbeat. With [`HEARTBEAT_EVERY`], a
/// node that dies is noticed by the others within 13 s (its heartbeat lapses, then their next
/// check), so its presence members are gone everywhere within 15 s.
pub const NODE_TTL: Duration = Duration::from_secs(10);

/// How often a node renews its heartbeat, and looks for nodes that died: three chances before
/// [`NODE_TTL`] lapses.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);

/// What a heartbeat learnt.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Beat {
    /// The directory did not list this node (its first heartbeat, one that lapsed, or a store
    /// that lost its data).
    pub missing: bool,
    /// Of `missing`: another node had taken this one for dead and removed its members (a
    /// partition), so the other nodes' clients heard them leave.
    pub swept: bool,
    /// Nodes whose heartbeat lapsed (they died) or that stopped, taken out of the directory by
    /// this heartbeat: this node alone heard of them, and cleans up after them.
    pub lapsed: Vec<String>,
}

/// The running nodes, as the store that presence shares knows them.
pub trait NodeDirectory: Send + Sync + 'static {
    /// Says `node` runs for the next [`NODE_TTL`].
    fn announce<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Beat, StoreError>>;
    /// Says `node` stopped (the next heartbeat of another node hears of it).
    fn withdraw<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Which of `nodes` are running.
    fn running<'a>(
        &'a self,
        nodes: &'a [&'a str],
    ) -> BoxFuture<'a, Result<HashSet<String>, StoreError>>;
    /// Every node running now.
    fn all_running(&self) -> BoxFuture<'_, Result<HashSet<String>, StoreError>>;
}

/// For stores no other process shares (memory, SQLite): no other node is running, so every
/// entry of another node was left by a previous run.
pub struct ThisNodeOnly;

impl NodeDirectory for ThisNodeOnly {
    fn announce<'a>(&'a self, _node: &'a str) -> BoxFuture<'a, Result<Beat, StoreError>> {
        async { Ok(Beat::default()) }.boxed()
    }

    fn withdraw<'a>(&'a self, _node: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async { Ok(()) }.boxed()
    }

    fn running<'a>(
        &'a self,
        _nodes: &'a [&'a str],
    ) -> BoxFuture<'a, Result<HashSet<String>, StoreError>> {
        async { Ok(HashSet::new()) }.boxed()
    }

    fn all_running(&self) -> BoxFuture<'_, Result<HashSet<String>, StoreError>> {
        async { Ok(HashSet::new()) }.boxed()
    }
}
