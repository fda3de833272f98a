//! Herald's own connection core, shared by the protocols that run on it (Pusher, and
//! Socket.IO over websocket): the WebSocket upgrade, and a per-connection queue bounded in frames and bytes whose
//! frames are shared by every recipient of a publication.

mod outbox;
mod upgrade;
pub mod writer;

pub use outbox::{MAX_QUEUED_FRAMES, Next, Outbox, Refused};
pub use upgrade::{Accepted, MAX_CLIENT_MESSAGE, Upgrading, WebSocket, upgrade};

/// Resolves when `deadline` passes; never if there is none (a timer only some connections
/// need, boxed so the others carry 8 bytes).
pub async fn until(deadline: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match deadline {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}
