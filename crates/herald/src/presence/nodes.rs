//! Which Herald processes are running, so presence entries of a process that died are told
//! apart from entries of a process that is merely elsewhere.

use super::StoreError;
use futures_util::future::{BoxFuture, FutureExt};
use std::collections::HashSet;
use std::time::Duration;

/// How long a node counts as running after its last heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(60);

/// How often a node renews its heartbeat: four chances before [`NODE_TTL`] lapses.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

/// The running nodes, as the store that presence shares knows them.
pub trait NodeDirectory: Send + Sync + 'static {
    /// Says `node` runs for the next [`NODE_TTL`].
    fn announce<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Says `node` stopped.
    fn withdraw<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Which of `nodes` are running.
    fn running<'a>(
        &'a self,
        nodes: &'a [&'a str],
    ) -> BoxFuture<'a, Result<HashSet<String>, StoreError>>;
}

/// For stores no other process shares (memory, SQLite): no other node is running, so every
/// entry of another node was left by a previous run.
pub struct ThisNodeOnly;

impl NodeDirectory for ThisNodeOnly {
    fn announce<'a>(&'a self, _node: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async { Ok(()) }.boxed()
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
}
