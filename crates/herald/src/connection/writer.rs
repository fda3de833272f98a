//! Writing to an upgraded connection: one frame with a deadline, a queued batch with one flush,
//! and the close frame. Shared by every protocol on the core.

use super::{Outbox, WebSocket};
use crate::hub::FrameText;
use futures_util::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Longest a single frame may take to write: a client whose TCP window stays shut this long is
/// not reading, and is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes one text frame; false if the client is gone or too slow to take it.
pub async fn send(websocket: &mut WebSocket, frame: FrameText) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, websocket.send(Message::Text(frame))).await,
        Ok(Ok(()))
    )
}

/// Writes `first` and every frame queued behind it, then flushes once; false if the client is
/// gone. Each frame is shown to `sent` as it is written. No timer of its own: the caller races
/// it against the queue's overflow and silence.
pub async fn write_queued(
    websocket: &mut WebSocket,
    first: FrameText,
    outbox: &Outbox,
    mut sent: impl FnMut(&FrameText),
) -> bool {
    let mut next = Some(first);
    while let Some(frame) = next {
        sent(&frame);
        if websocket.feed(Message::Text(frame)).await.is_err() {
            return false;
        }
        next = outbox.pop();
    }
    websocket.flush().await.is_ok()
}

/// Sends the close frame with `code` and `reason` (cut to the 123 bytes a close frame holds).
pub async fn close(websocket: &mut WebSocket, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason[..end].to_owned()),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, websocket.close(Some(frame))).await;
}
