//! Message handlers that run in the order packets arrive.
//!
//! socketioxide spawns one task per incoming event for its closure handlers. On a
//! multi-threaded runtime, tasks spawned back to back do not run in spawn order (the newest
//! one takes the worker's LIFO slot), so Echo's `subscribe` then `unsubscribe` could be applied
//! in reverse and leave the client subscribed. Echo's events are cheap and never wait, so Herald
//! handles them synchronously, in order, on the connection's receive path.

use serde_json::Value;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::{FromMessage, MessageHandler};
use socketioxide::socket::Socket;
use std::sync::Arc;

/// Wraps `Fn(&SocketRef, payload)`; the payload is the first argument, or `null`.
pub(super) struct InOrder<F>(pub(super) F);

/// Marker type distinguishing this handler from socketioxide's closure handlers.
pub(super) enum Synchronous {}

impl<F> MessageHandler<LocalAdapter, Synchronous> for InOrder<F>
where
    F: Fn(&SocketRef, Value) + Send + Sync + 'static,
{
    fn call(
        &self,
        socket: Arc<Socket<LocalAdapter>>,
        value: socketioxide::handler::Value,
        ack_id: Option<i64>,
    ) {
        crate::metrics::metrics()
            .ws_messages_received
            .get_or_create(&crate::metrics::SOCKETIO)
            .inc();
        let socket_ref = SocketRef::from(socket.clone());
        let payload = match TryData::<Value>::from_message(socket, value, ack_id) {
            Ok(TryData(Ok(payload))) => payload,
            _ => Value::Null,
        };
        (self.0)(&socket_ref, payload);
    }
}
