//! The store behind presence: laravel-echo-server's key-value shape, one member list per
//! channel. Logic (dedupe, liveness) lives in `Presence`; stores only keep lists.

use super::MemberEntry;
use futures_util::future::BoxFuture;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
#[error("presence store: {0}")]
pub struct StoreError(pub String);

/// Where member lists live.
pub trait PresenceStore: Send + Sync + 'static {
    /// The members stored for `channel` (empty when none).
    fn get<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<MemberEntry>, StoreError>>;
    /// Replaces the members of `channel`.
    fn set<'a>(
        &'a self,
        channel: &'a str,
        members: &'a [MemberEntry],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Every presence channel with a stored list.
    fn channels(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
}
