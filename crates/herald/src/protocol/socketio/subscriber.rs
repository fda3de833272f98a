//! A Socket.IO connection as a Hub subscriber.

use super::events::is_reserved_event_name;
use crate::hub::{Delivery, Publication, PublicationKind, SocketId, Subscriber};
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};
use std::sync::atomic::{AtomicBool, Ordering};

/// Delivers publications as `emit(<event>, channel, data)`.
pub(super) struct SocketIoSubscriber {
    id: SocketId,
    socket: SocketRef,
    closing: AtomicBool,
}

impl SocketIoSubscriber {
    pub(super) fn new(id: SocketId, socket: SocketRef) -> SocketIoSubscriber {
        SocketIoSubscriber {
            id,
            socket,
            closing: AtomicBool::new(false),
        }
    }

    /// Disconnects a client whose queue is full, once, off the publish path: the disconnect
    /// handler unsubscribes, which needs the shard lock the publisher is holding.
    fn disconnect_slow_client(&self) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        crate::metrics::metrics().slow_disconnections.inc();
        let socket = self.socket.clone();
        let id = self.id.clone();
        tokio::spawn(async move {
            tracing::warn!(socket_id = %id, "send queue full: disconnecting slow client");
            crate::console::dev(&format!("{id} disconnected: too slow to read its events"));
            let _ = socket.disconnect();
        });
    }
}

impl Subscriber for SocketIoSubscriber {
    fn socket_id(&self) -> &SocketId {
        &self.id
    }

    fn deliver(&self, publication: &Publication) -> Delivery {
        let event = match publication.kind {
            PublicationKind::Event if is_reserved_event_name(&publication.event) => {
                return Delivery::Skipped;
            }
            PublicationKind::Event => &*publication.event,
            PublicationKind::MemberAdded => "presence:joining",
            PublicationKind::MemberRemoved => "presence:leaving",
        };
        let args = (&*publication.channel, &*publication.data);
        match self.socket.emit(event, &args) {
            Ok(()) => Delivery::Queued,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                crate::metrics::metrics().queue_drops.inc();
                self.disconnect_slow_client();
                Delivery::Overflow
            }
            Err(SendError::Socket(SocketError::Closed)) => Delivery::Closed,
            Err(SendError::Serialize(e)) => {
                tracing::warn!(error = ?e, "could not encode event for socket.io");
                Delivery::Skipped
            }
        }
    }
}
