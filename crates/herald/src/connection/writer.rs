//! Writing to an upgraded connection: one frame with a deadline, a queued batch with one flush,
//! and the close frame. Shared by every protocol on the core.

use super::upgrade::WRITE_BATCH;
use super::{Outbox, WebSocket};
use crate::hub::FrameText;
use futures_util::SinkExt;
use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
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

/// Writes `first` and every frame queued behind it, gathered into writes of up to 64 KiB, then
/// flushes once; false if the client is gone. Each frame is shown to `sent` as it is written.
/// No timer of its own: the caller races it against the queue's overflow and silence.
///
/// The frames are framed here and written to the socket under tungstenite, which costs a
/// fraction of its per-message path (docs/performance.md): a server's text frame is a header
/// and the payload, nothing masked. Frames must not interleave, so what tungstenite may still
/// hold goes first: `owes_pong` says a client's ping arrived since the last write (tungstenite
/// answers it itself, and may not have written all of the pong yet); every other frame
/// tungstenite writes (the handshake's, close) is written and flushed before it returns.
pub async fn write_queued(
    websocket: &mut WebSocket,
    first: FrameText,
    outbox: &Outbox,
    owes_pong: bool,
    mut sent: impl FnMut(&FrameText),
) -> bool {
    if owes_pong && websocket.flush().await.is_err() {
        return false;
    }
    let socket = websocket.get_mut();
    let mut next = Some(first);
    while next.is_some() {
        // Gathered in this thread's scratch buffer and written at once, within one poll: most
        // batches go through whole, with no allocation of their own. What the socket does not
        // take is copied out and awaited.
        let written = std::future::poll_fn(|cx| {
            Poll::Ready(SCRATCH.with_borrow_mut(|batch| {
                batch.clear();
                while let Some(frame) = next.take() {
                    sent(&frame);
                    put_text_frame(batch, frame.as_str().as_bytes());
                    next = outbox.pop();
                    if batch.len() >= WRITE_BATCH {
                        break;
                    }
                }
                let result = write_at_once(Pin::new(&mut *socket), cx, batch);
                if batch.capacity() > SCRATCH_KEPT {
                    *batch = Vec::new();
                }
                result
            }))
        })
        .await;
        match written {
            Err(()) => return false,
            Ok(None) => {}
            Ok(Some(rest)) => {
                if socket.write_all(&rest).await.is_err() {
                    return false;
                }
            }
        }
    }
    socket.flush().await.is_ok()
}

thread_local! {
    /// Frames gathered for one write, shared by every connection of this thread: a write that
    /// completes within one poll (nearly all) leaves nothing behind.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Largest scratch buffer kept between writes; a larger one (a batch that ended with a large
/// frame) is let go.
const SCRATCH_KEPT: usize = 2 * WRITE_BATCH;

/// Writes what `socket` takes of `batch` now: `Ok(None)` if it took everything, `Ok(Some(rest))`
/// with what is left to await, `Err` if the client is gone.
fn write_at_once<S: AsyncWrite + ?Sized>(
    mut socket: Pin<&mut S>,
    cx: &mut Context<'_>,
    batch: &[u8],
) -> Result<Option<Vec<u8>>, ()> {
    let mut written = 0;
    while written < batch.len() {
        match socket.as_mut().poll_write(cx, &batch[written..]) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Err(()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Pending => return Ok(Some(batch[written..].to_vec())),
        }
    }
    Ok(None)
}

/// Appends `payload` as one unmasked text frame (RFC 6455 §5.2: FIN, opcode 1, the length in
/// 7, 7+16 or 7+64 bits).
fn put_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_carry_the_length_in_the_shortest_form() {
        for (len, header) in [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
            (65_535, vec![0x81, 126, 0xFF, 0xFF]),
            (65_536, vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let payload = vec![b'x'; len];
            let mut out = Vec::new();
            put_text_frame(&mut out, &payload);
            assert_eq!(&out[..header.len()], &header[..], "length {len}");
            assert_eq!(&out[header.len()..], &payload[..]);
        }
    }
}
