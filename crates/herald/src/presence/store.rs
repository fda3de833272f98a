//! The store behind presence: each operation is atomic in the store itself, so several Herald
//! processes can share one store without losing updates. Liveness and announcements live in
//! `Presence`; stores only keep entries.

use super::MemberEntry;
use futures_util::future::BoxFuture;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
#[error("presence store: {0}")]
pub struct StoreError(pub String);

/// An entry taken out of a channel, and how many entries of its user are still stored there
/// (live or not: `Presence` decides).
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    /// The removed entry.
    pub entry: MemberEntry,
    /// Entries of the same user left in the channel.
    pub others_of_user: u64,
}

/// Where presence entries live.
pub trait PresenceStore: Send + Sync + 'static {
    /// Adds `entry` to `channel` and returns every entry stored there afterwards, as one atomic
    /// step; `None` (nothing changed) if the entry's socket already has one there.
    fn add<'a>(
        &'a self,
        channel: &'a str,
        entry: &'a MemberEntry,
    ) -> BoxFuture<'a, Result<Option<Vec<MemberEntry>>, StoreError>>;
    /// Removes the entry of `socket_id` from `channel`, as one atomic step; `None` if it had
    /// none. An emptied channel leaves nothing behind.
    fn remove<'a>(
        &'a self,
        channel: &'a str,
        socket_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Removed>, StoreError>>;
    /// Every entry of `channel` (empty when none).
    fn list<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<MemberEntry>, StoreError>>;
    /// Every presence channel with stored entries, to sweep entries nobody will remove.
    fn channels(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
}
