//! laravel-echo-server's protocol: Echo events over Socket.IO (socket.io-client 2.x on
//! Engine.IO v3, and 3.x/4.x on Engine.IO v4, on the same path, over websocket and HTTP
//! long-polling), on Herald's own connection core: `http_layer.rs` takes the HTTP requests,
//! `engine_session.rs` runs each session in one task, `connection.rs` is Echo's side of a
//! socket, `core_socket.rs` its queue in the Hub.

mod connection;
mod core_socket;
mod engine_session;
mod events;
mod http_layer;
mod recovery;
mod session;

pub use events::is_reserved_event_name;
pub use http_layer::{SessionGuard, SocketIoHttpLayer, client_bundle_path};
pub use recovery::Recovery;
pub use session::Sessions;

use crate::auth::HttpAuthorizer;
use crate::config::{Limits, SocketIoOptions, WhisperOptions};
use crate::hub::Hub;
use crate::presence::Presence;
use std::sync::Arc;

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
    /// Sessions open now (the shutdown waits for them to close).
    pub open: std::sync::atomic::AtomicUsize,
    /// Polling sessions, by the id their requests carry.
    pub sessions: Sessions,
    /// Dropped sessions waiting for their client to come back.
    pub recovery: Arc<Recovery>,
    /// The threads that run the sessions' tasks.
    pub workers: Arc<crate::workers::Workers>,
}
