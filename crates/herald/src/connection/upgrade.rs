//! The WebSocket upgrade of an HTTP/1.1 request (RFC 6455 §4.2), handing the connection to
//! tokio-tungstenite for framing.

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded connection.
pub type WebSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Bytes of frames gathered before they go to the socket in one write (a flush writes what is
/// gathered at once). One write per 64 KiB rather than per 8 KiB: with 10 KB events to 1,000
/// subscribers, 8 KiB meant a write per frame per recipient and a p99 of 230 ms; 64 KiB gives
/// 33–47 ms, the floor's (docs/performance.md). Queued frames are written by `writer.rs` in
/// batches of this size; tungstenite's own buffer holds only its frames (handshake, pongs,
/// close).
pub(super) const WRITE_BATCH: usize = 64 * 1024;

/// Largest message a Pusher client may send (a client event with its data, a subscription with
/// its `channel_data`); a larger one closes the connection with 1009.
pub const MAX_CLIENT_MESSAGE: usize = 128 * 1024;

/// tungstenite's read buffer, allocated per connection up front: its default (128 KiB) would
/// dwarf everything else a connection holds. With none, it reads a frame's header (at most
/// 14 bytes), then reserves and reads exactly the frame's payload: one more read per client
/// message (they are rare: subscriptions, pings, client events), and an idle connection holds
/// only what its last message needed. Measured with `herald-bench idle`: 9.0 KB per connection
/// with a 4 KiB buffer, 5.7 KB with 1 KiB, see docs/performance.md for none.
const READ_CHUNK: usize = 0;

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

fn refusal(status: StatusCode, reason: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(reason));
    *response.status_mut() = status;
    response
}

/// The connection once hyper has switched protocols (`None` if the switch failed).
pub type Upgrading = Pin<Box<dyn Future<Output = Option<WebSocket>> + Send + 'static>>;

/// The 101 answer, and the connection once hyper has switched protocols.
pub type Accepted = (Response<Body>, Upgrading);

/// Accepts `request` as a WebSocket whose client messages are at most `max_message` bytes
/// (a larger one closes it with 1009): the 101 answer to send, and the connection once hyper
/// has switched protocols. A request that is not a WebSocket upgrade gets a 400 (426 for
/// another WebSocket version) saying why.
pub fn upgrade(
    request: &mut Request<Body>,
    max_message: usize,
) -> Result<Accepted, Box<Response<Body>>> {
    let headers = request.headers();
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(Box::new(refusal(
            StatusCode::BAD_REQUEST,
            "this path serves WebSocket connections only (Upgrade: websocket)",
        )));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
        let mut response = refusal(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket version 13 is required",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(Box::new(response));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err(Box::new(refusal(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key is missing",
        )));
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(request);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    let connection = async move {
        let upgraded = on_upgrade.await.ok()?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_CHUNK)
            // Frames go to the socket once a batch is gathered: tungstenite's 128 KiB default
            // would let a burst leave that much buffer behind on a connection that then idles.
            .write_buffer_size(WRITE_BATCH)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        Some(
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await,
        )
    };
    Ok((response, Box::pin(connection)))
}
