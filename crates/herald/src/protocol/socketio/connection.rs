//! One Socket.IO connection: Echo's `subscribe` / `unsubscribe`, and leaving on disconnect.

use super::events::{ChannelRequest, parse_channel_request};
use super::in_order::InOrder;
use super::subscriber::SocketIoSubscriber;
use crate::console;
use crate::hub::{ChannelKind, Hub, SocketId, validate_channel_name};
use serde_json::{Value, json};
use socketioxide::extract::SocketRef;
use socketioxide::socket::DisconnectReason;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// What one connection holds while it is open.
struct Connection {
    id: SocketId,
    hub: Arc<Hub>,
    subscriber: Arc<SocketIoSubscriber>,
    /// Joined channels; `None` once the socket is gone, so a subscribe that finishes after
    /// the disconnect cannot leave a dangling subscriber in the Hub.
    channels: Mutex<Option<BTreeSet<String>>>,
}

/// Registers a new socket with the Hub and wires its handlers.
pub(super) fn on_connect(socket: SocketRef, hub: Arc<Hub>) {
    let id = SocketId::new(socket.id.as_str());
    hub.connection_opened();
    let connection = Arc::new(Connection {
        subscriber: Arc::new(SocketIoSubscriber::new(id.clone(), socket.clone())),
        id,
        hub,
        channels: Mutex::new(Some(BTreeSet::new())),
    });

    let c = connection.clone();
    socket.on(
        "subscribe",
        InOrder(move |socket: &SocketRef, payload| c.subscribe(socket, payload)),
    );
    let c = connection.clone();
    socket.on(
        "unsubscribe",
        InOrder(
            move |_: &SocketRef, payload| match parse_channel_request(payload) {
                Ok(request) => c.leave(&request.channel, "unsubscribed"),
                Err(e) => console::dev(&format!("{} sent an unusable unsubscribe: {e}", c.id)),
            },
        ),
    );
    let c = connection;
    socket.on_disconnect(async move |reason: DisconnectReason| {
        c.leave_all(leave_reason(reason));
        c.hub.connection_closed();
    });
}

impl Connection {
    fn subscribe(&self, socket: &SocketRef, payload: Value) {
        let request = match parse_channel_request(payload) {
            Ok(request) => request,
            Err(e) => {
                console::dev(&format!("{} sent an unusable subscribe: {e}", self.id));
                return;
            }
        };
        if let Err(e) = validate_channel_name(&request.channel) {
            let reason = format!("invalid channel name: {e}");
            console::dev(&format!(
                "{} could not join {:?}: {reason}",
                self.id, request.channel
            ));
            refuse(socket, &request.channel, 400, &reason);
            return;
        }
        match ChannelKind::of(&request.channel) {
            ChannelKind::Public => self.join(request),
            ChannelKind::Private | ChannelKind::Presence => {
                let reason = "private and presence channels need channel authorization, which this Herald build does not provide yet";
                console::dev(&format!(
                    "{} could not join {}: {reason}",
                    self.id, request.channel
                ));
                refuse(socket, &request.channel, 0, reason);
            }
        }
    }

    fn join(&self, request: ChannelRequest) {
        let channel = request.channel;
        let mut channels = self.channels_lock();
        let Some(joined) = channels.as_mut() else {
            return;
        };
        self.hub.subscribe(&channel, self.subscriber.clone());
        console::dev(&format!("{} joined channel: {channel}", self.id));
        joined.insert(channel);
    }

    fn leave(&self, channel: &str, reason: &str) {
        let mut channels = self.channels_lock();
        if let Some(joined) = channels.as_mut() {
            joined.remove(channel);
        }
        if self.hub.unsubscribe(channel, &self.id) {
            console::dev(&format!("{} left channel: {channel} ({reason})", self.id));
        }
    }

    fn leave_all(&self, reason: &str) {
        let joined = self.channels_lock().take().unwrap_or_default();
        for channel in joined {
            if self.hub.unsubscribe(&channel, &self.id) {
                console::dev(&format!("{} left channel: {channel} ({reason})", self.id));
            }
        }
    }

    fn channels_lock(&self) -> std::sync::MutexGuard<'_, Option<BTreeSet<String>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `subscription_error(channel, status, {status, reason})`: laravel-echo-server's two
/// arguments, plus a third that says why (existing listeners ignore it).
fn refuse(socket: &SocketRef, channel: &str, status: u16, reason: &str) {
    let detail = json!({ "status": status, "reason": reason });
    let _ = socket.emit("subscription_error", &(channel, status, detail));
}

/// The reason strings laravel-echo-server logs on leave (socket.io 2.x's names).
fn leave_reason(reason: DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::TransportClose => "transport close",
        DisconnectReason::TransportError
        | DisconnectReason::MultipleHttpPollingError
        | DisconnectReason::PacketParsingError => "transport error",
        DisconnectReason::HeartbeatTimeout => "ping timeout",
        DisconnectReason::ClientNSDisconnect => "client namespace disconnect",
        DisconnectReason::ServerNSDisconnect => "server namespace disconnect",
        DisconnectReason::ClosingServer => "server shutting down",
    }
}
