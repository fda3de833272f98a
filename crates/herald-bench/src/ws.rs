//! Just enough of RFC 6455 for a load generator and a floor server: the upgrade handshake and
//! frame encoding/decoding over a plain TCP stream, with no per-frame allocation on receive.

use anyhow::{Context, bail};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Mask applied to client frames (RFC 6455 requires one; its value does not matter here).
const MASK: [u8; 4] = [0x3d, 0x91, 0x07, 0xe2];

/// A complete frame at the head of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FrameHead {
    /// Opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub(crate) opcode: u8,
    /// Where the (unmasked, in place) payload starts.
    pub(crate) start: usize,
    /// Bytes of payload.
    pub(crate) len: usize,
}

/// Encodes a final text frame; `masked` for client-to-server frames.
pub(crate) fn text_frame(text: &str, masked: bool) -> Bytes {
    let len = text.len();
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut frame = BytesMut::with_capacity(len + 14);
    frame.extend_from_slice(&[0x81]);
    if len < 126 {
        frame.extend_from_slice(&[mask_bit | len as u8]);
    } else if len <= usize::from(u16::MAX) {
        frame.extend_from_slice(&[mask_bit | 126]);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.extend_from_slice(&[mask_bit | 127]);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        frame.extend_from_slice(&MASK);
        frame.extend(text.bytes().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    } else {
        frame.extend_from_slice(text.as_bytes());
    }
    frame.freeze()
}

/// Finds the frame at the head of `buffer`, unmasking its payload in place; `None` until the
/// whole frame is there.
pub(crate) fn parse_frame(buffer: &mut [u8]) -> anyhow::Result<Option<FrameHead>> {
    if buffer.len() < 2 {
        return Ok(None);
    }
    let opcode = buffer[0] & 0x0f;
    let masked = buffer[1] & 0x80 != 0;
    let (len, mut start) = match buffer[1] & 0x7f {
        126 if buffer.len() >= 4 => (usize::from(u16::from_be_bytes([buffer[2], buffer[3]])), 4),
        127 if buffer.len() >= 10 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&buffer[2..10]);
            (usize::try_from(u64::from_be_bytes(raw))?, 10)
        }
        126 | 127 => return Ok(None),
        short => (usize::from(short), 2),
    };
    let mask_len = if masked { 4 } else { 0 };
    if buffer.len() < start + mask_len + len {
        return Ok(None);
    }
    if masked {
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&buffer[start..start + 4]);
        start += 4;
        for (i, byte) in buffer[start..start + len].iter_mut().enumerate() {
            *byte ^= mask[i % 4];
        }
    }
    Ok(Some(FrameHead { opcode, start, len }))
}

/// Reads the next frame into `buffer` (refilling it from `stream`) and returns its head; the
/// caller consumes it with `buffer.advance(head.start + head.len)`. `None` at end of stream.
pub(crate) async fn next_frame(
    stream: &mut (impl AsyncReadExt + Unpin),
    buffer: &mut BytesMut,
) -> anyhow::Result<Option<FrameHead>> {
    loop {
        if let Some(head) = parse_frame(buffer)? {
            return Ok(Some(head));
        }
        if buffer.capacity() - buffer.len() < 4096 {
            buffer.reserve(64 * 1024);
        }
        if stream.read_buf(buffer).await? == 0 {
            return Ok(None);
        }
    }
}

/// Performs the client side of the upgrade on `stream` for `path_and_query` at `host`;
/// returns bytes already read past the response.
pub(crate) async fn client_handshake(
    stream: &mut TcpStream,
    host: &str,
    path_and_query: &str,
) -> anyhow::Result<BytesMut> {
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let (head, rest) = read_http_head(stream).await?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 101 ") {
        bail!("the server refused the websocket upgrade: {status}");
    }
    Ok(rest)
}

/// Reads an HTTP head (up to the blank line); returns it and whatever followed.
pub(crate) async fn read_http_head(stream: &mut TcpStream) -> anyhow::Result<(String, BytesMut)> {
    let mut buffer = BytesMut::with_capacity(4096);
    let head = read_http_head_from(stream, &mut buffer).await?;
    Ok((head, buffer))
}

/// Reads one HTTP head, starting with what `buffer` already holds; leaves the bytes after it
/// in `buffer`.
pub(crate) async fn read_http_head_from(
    stream: &mut TcpStream,
    buffer: &mut BytesMut,
) -> anyhow::Result<String> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end + 4]).into_owned();
            buffer.advance(end + 4);
            return Ok(head);
        }
        if buffer.len() > 16 * 1024 {
            bail!("HTTP head too large");
        }
        if stream
            .read_buf(buffer)
            .await
            .context("reading the HTTP head")?
            == 0
        {
            bail!("connection closed during the HTTP handshake");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_masked_and_not() {
        for masked in [false, true] {
            for len in [0, 125, 126, 70_000] {
                let text = "x".repeat(len);
                let mut buffer = BytesMut::from(&text_frame(&text, masked)[..]);
                let head = parse_frame(&mut buffer).expect("frame").expect("complete");
                assert_eq!(head.opcode, 1);
                assert_eq!(&buffer[head.start..head.start + head.len], text.as_bytes());
                assert_eq!(head.start + head.len, buffer.len());
            }
        }
    }

    #[test]
    fn partial_frames_wait() {
        let frame = text_frame("hello", true);
        for cut in 0..frame.len() {
            let mut partial = BytesMut::from(&frame[..cut]);
            assert_eq!(parse_frame(&mut partial).expect("partial"), None);
        }
    }
}
