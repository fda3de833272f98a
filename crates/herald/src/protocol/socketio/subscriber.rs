//! Socket.IO connections as Hub subscribers, reached through one fan-out per publication.
//!
//! Each subscribed channel is also a socketioxide room. A publication is encoded once and
//! handed to socketioxide's room broadcast, which queues the same frame for every member;
//! emitting per connection encoded it (twice) per recipient, the largest user-space cost of a
//! fan-out (docs/performance.md).

use super::events::is_reserved_event_name;
use crate::hub::{Delivery, Fanout, Frames, Member, Message, Publication, SocketId, Subscriber};
use futures_util::FutureExt;
use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;
use socketioxide::{BroadcastError, SendError, SocketError, SocketIo};
use std::str::FromStr;
use std::sync::Arc;

/// Event emitted to a channel's members to find which of them has a full queue, after a
/// broadcast reported some (socketioxide does not say which). Echo never listens to it.
const QUEUE_CHECK_EVENT: &str = "herald:queue-check";

/// One Socket.IO connection in the Hub.
///
/// It holds the socket's id, not the socket: the socket owns its event handlers, which own the
/// connection, which owns this subscriber; a reference back to the socket would be a cycle that
/// keeps every closed connection in memory (docs/architecture.md).
pub(super) struct SocketIoSubscriber {
    id: SocketId,
    sid: Sid,
    io: SocketIo,
    fanout: Arc<dyn Fanout>,
}

impl SocketIoSubscriber {
    pub(super) fn new(socket: &SocketRef, io: SocketIo, fanout: Arc<dyn Fanout>) -> Self {
        SocketIoSubscriber {
            id: SocketId::new(socket.id.as_str()),
            sid: socket.id,
            io,
            fanout,
        }
    }
}

impl Subscriber for SocketIoSubscriber {
    fn socket_id(&self) -> &SocketId {
        &self.id
    }

    /// One connection alone: only used if a Hub ever bypasses [`Subscriber::fanout`].
    fn deliver(&self, publication: &Publication, _: &mut Frames) -> Delivery {
        let Some(event) = event_name(publication) else {
            return Delivery::Skipped;
        };
        let Some(socket) = self.io.get_socket(self.sid) else {
            return Delivery::Closed;
        };
        match socket.emit(event, &socketio_args(publication)) {
            Ok(()) => Delivery::Queued,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                // Not under the Hub's lock: the disconnect handler unsubscribes.
                tokio::spawn(async move { disconnect_if_full(socket) });
                Delivery::Overflow
            }
            Err(SendError::Socket(SocketError::Closed)) => Delivery::Closed,
            Err(SendError::Serialize(_)) => Delivery::Skipped,
        }
    }

    fn fanout(&self) -> Option<&Arc<dyn Fanout>> {
        Some(&self.fanout)
    }
}

/// Publishes to a channel's room: `emit(<event>, channel, data)`, encoded once.
pub(super) struct SocketIoFanout {
    io: SocketIo,
}

impl SocketIoFanout {
    pub(super) fn new(io: SocketIo) -> SocketIoFanout {
        SocketIoFanout { io }
    }
}

impl Fanout for SocketIoFanout {
    fn fan_out(&self, publication: &Publication, members: usize) -> usize {
        let Some(event) = event_name(publication) else {
            return 0;
        };
        let args = socketio_args(publication);
        let room = publication.channel.to_string();
        // `toOthers`: a broadcast from the sender's own socket skips it.
        let sender = publication
            .except
            .as_ref()
            .and_then(|id| Sid::from_str(id.as_str()).ok())
            .and_then(|sid| self.io.get_socket(sid));
        // The local adapter's broadcast is synchronous: its future is ready at once.
        let sent = match &sender {
            Some(sender) => sender
                .broadcast()
                .to(room)
                .emit(event, &args)
                .now_or_never(),
            None => self.io.to(room).emit(event, &args).now_or_never(),
        };
        let failures = match sent {
            Some(Ok(())) => return members,
            Some(Err(BroadcastError::Socket(errors))) => errors,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "could not broadcast to socket.io clients");
                return 0;
            }
            None => return members,
        };
        let full = failures
            .iter()
            .filter(|e| matches!(e, SocketError::InternalChannelFull))
            .count();
        if full > 0 {
            crate::metrics::metrics().queue_drops.inc_by(full as u64);
            self.find_full_queues(&publication.channel);
        }
        members.saturating_sub(failures.len())
    }
}

impl SocketIoFanout {
    /// Off the publish path: disconnects the members of `channel` whose queue is full.
    fn find_full_queues(&self, channel: &str) {
        let io = self.io.clone();
        let channel = channel.to_owned();
        tokio::spawn(async move {
            for socket in io.to(channel).sockets() {
                disconnect_if_full(socket);
            }
        });
    }
}

/// Disconnects `socket` if its send queue is full (it cannot take even a tiny event).
fn disconnect_if_full(socket: SocketRef) {
    let full = matches!(
        socket.emit(QUEUE_CHECK_EVENT, &()),
        Err(SendError::Socket(SocketError::InternalChannelFull))
    );
    if !full {
        return;
    }
    crate::metrics::metrics().slow_disconnections.inc();
    let id = socket.id.to_string();
    tracing::warn!(socket_id = %id, "send queue full: disconnecting slow client");
    crate::console::dev(&format!("{id} disconnected: too slow to read its events"));
    let _ = socket.disconnect();
}

/// The Socket.IO event name of a publication, or `None` if Socket.IO cannot carry it.
pub(super) fn event_name(publication: &Publication) -> Option<&str> {
    match &publication.message {
        Message::Event { name, .. } if is_reserved_event_name(name) => {
            // Said here, where it is skipped: Pusher clients on the channel do receive it.
            crate::console::warning(&format!(
                "Event {name:?} on channel {} is a name Socket.IO reserves for its own use; Socket.IO clients will not receive it. Rename it with broadcastAs().",
                publication.channel
            ));
            None
        }
        Message::Event { name, .. } => Some(name),
        Message::MemberAdded(_) => Some("presence:joining"),
        Message::MemberRemoved(_) => Some("presence:leaving"),
        // Only Pusher connections sign in as users; Socket.IO never joins those channels.
        Message::Watchlist { .. } | Message::Terminate | Message::SubscriptionCount(_) => None,
    }
}

/// The second argument of a Socket.IO emit: the event's data as received, or the member.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub(super) enum Payload<'a> {
    Data(&'a RawValue),
    Member(&'a Member),
    /// For what Socket.IO never emits ([`event_name`] is `None` for it): `null`.
    Nothing,
}

/// `(channel, payload)`, the arguments Echo's listeners receive.
pub(super) fn socketio_args(publication: &Publication) -> (&str, Payload<'_>) {
    let payload = match &publication.message {
        Message::Event { data, .. } => Payload::Data(data),
        Message::MemberAdded(member) | Message::MemberRemoved(member) => Payload::Member(member),
        Message::Watchlist { .. } | Message::Terminate | Message::SubscriptionCount(_) => {
            Payload::Nothing
        }
    };
    (&publication.channel, payload)
}
