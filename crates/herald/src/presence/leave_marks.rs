//! Leave marks: a member's `member_removed` webhook waits a few seconds in case the user comes
//! back (a page reload). On one node the webhook dispatcher sees both and cancels them; across
//! nodes the leave and the come-back happen on different nodes, so the shared store keeps a
//! mark: the user's last leave sets it (atomically, in the remove script), and whoever takes it
//! first decides — a come-back takes it and tells nothing, the held removal takes it when its
//! delay is over and tells it.

use super::StoreError;
use futures_util::future::BoxFuture;

/// Leave marks in a store that several nodes share.
pub trait LeaveMarks: Send + Sync + 'static {
    /// Takes the mark `user_id`'s last leave of `channel` set, if it is still there: `true`
    /// for the one caller that took it.
    fn take<'a>(
        &'a self,
        channel: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}
