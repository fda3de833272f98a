//! Herald's own connection core, shared by the protocols that run on it (Pusher, and
//! Socket.IO over websocket): the WebSocket upgrade, and a per-connection queue bounded in frames and bytes whose
//! frames are shared by every recipient of a publication.

mod outbox;
mod upgrade;
mod woken_only;
pub mod writer;

pub use outbox::{MAX_QUEUED_FRAMES, Next, Outbox, Refused};
pub use upgrade::{Accepted, MAX_CLIENT_MESSAGE, Upgrading, WebSocket, upgrade};
pub use woken_only::WokenOnly;

/// The next message from `websocket`, its read side polled only once it was woken (a
/// connection's task wakes for every queued frame; see [`WokenOnly`]).
pub fn next_message<'a>(
    websocket: &'a mut WebSocket,
    reads: &'a WokenOnly,
) -> impl std::future::Future<
    Output = Option<
        Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
    >,
> + 'a {
    use futures_util::StreamExt;
    std::future::poll_fn(move |cx| reads.poll(cx, |cx| websocket.poll_next_unpin(cx)))
}

/// Polls `future` once: most writes go through at once, and only one that waits needs racing
/// against the queue's overflow and the clock (setting those up costs more than the write).
pub async fn poll_once<F: std::future::Future + ?Sized>(
    future: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    let mut future = Some(future);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.take() {
            Some(future) => future.poll(cx),
            None => std::task::Poll::Pending,
        })
    })
    .await
}

/// Resolves when `deadline` passes; never if there is none (a timer only some connections
/// need, boxed so the others carry 8 bytes).
pub async fn until(deadline: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match deadline {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}
