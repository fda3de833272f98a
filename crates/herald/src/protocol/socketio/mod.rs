//! laravel-echo-server's protocol: Echo events over Socket.IO (socket.io-client 2.x on
//! Engine.IO v3, and 3.x/4.x on Engine.IO v4, on the same path). Sessions that open on a
//! websocket run on Herald's own connection core (`websocket_session.rs`); HTTP long-polling
//! sessions and their upgrade still run on socketioxide, with the same Echo handlers.

mod connection;
mod core_socket;
mod events;
mod http_layer;
mod in_order;
mod session;
mod subscriber;
mod websocket_session;

pub use events::is_reserved_event_name;
pub use http_layer::{SessionGuard, SocketIoHttpLayer, client_bundle_path};

use crate::auth::HttpAuthorizer;
use crate::config::{Limits, SocketIoOptions, Transport, WhisperOptions};
use crate::hub::{Fanout, Hub};
use crate::presence::Presence;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, TransportType};
use std::sync::Arc;

/// Initial read buffer of each websocket. Echo's client messages are tiny (a subscribe is
/// ~60 bytes); tungstenite grows the buffer for larger frames. socketioxide's default is 4 KiB.
const WS_READ_BUFFER_BYTES: usize = 1024;

/// Packets queued per connection before it counts as too slow and is disconnected.
pub const SEND_QUEUE_PACKETS: usize = 1024;

/// What every Socket.IO connection shares.
pub struct SocketIoContext {
    /// Channel registry and fan-out.
    pub hub: Arc<Hub>,
    /// Asks the Laravel app about private and presence channels.
    pub authorizer: HttpAuthorizer,
    /// Presence members.
    pub presence: Arc<Presence>,
    /// Whisper limits.
    pub whispers: WhisperOptions,
    /// Connection and subscription limits.
    pub limits: Limits,
    /// Whose `X-Forwarded-For` is believed when telling Laravel who the client is.
    pub trusted_proxies: crate::peer::TrustedProxies,
    /// The `socketio` options (heartbeats, payload size) of sessions on the core.
    pub options: SocketIoOptions,
    /// Turns true when the server shuts down: sessions on the core close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Sessions open on the core now (the shutdown waits for them to close).
    pub open: std::sync::atomic::AtomicUsize,
}

/// Builds the socketioxide layer from `socketio` options and attaches Echo's event handlers.
pub fn build(options: &SocketIoOptions, ctx: Arc<SocketIoContext>) -> (SocketIoLayer, SocketIo) {
    let builder = SocketIo::builder()
        .req_path(format!("{}/", options.path))
        .ping_interval(options.ping_interval)
        .ping_timeout(options.ping_timeout)
        .upgrade_timeout(options.upgrade_timeout)
        .max_payload(options.max_http_buffer_size)
        .max_buffer_size(SEND_QUEUE_PACKETS)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        // A handshake that never sends CONNECT holds a session: bound how long.
        .connect_timeout(std::time::Duration::from_secs(10));
    let builder = match options.transports.as_slice() {
        [Transport::Polling] => builder.transports([TransportType::Polling]),
        [Transport::Websocket] => builder.transports([TransportType::Websocket]),
        _ => builder.transports([TransportType::Polling, TransportType::Websocket]),
    };
    let (layer, io) = builder.build_layer();
    let fanout: Arc<dyn Fanout> = Arc::new(subscriber::SocketIoFanout::new(io.clone()));
    // Echo's handlers are registered in a connect *middleware*: socketioxide awaits it before
    // it acknowledges CONNECT, whereas the connect handler runs in a spawned task after the
    // acknowledgement, when a fast client may already have sent `subscribe`.
    let handle = io.clone();
    let register = async move |socket: SocketRef| {
        connection::on_connect(socket, ctx.clone(), handle.clone(), fanout.clone());
        Ok::<(), std::convert::Infallible>(())
    };
    io.ns("/", { async || () }.with(register));
    (layer, io)
}
