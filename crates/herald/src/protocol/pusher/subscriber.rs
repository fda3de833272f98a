//! A Pusher connection as a Hub subscriber: each publication is encoded once per publish (the
//! Hub's `Frames`) and the same bytes are queued for every Pusher recipient.

use super::frames;
use crate::connection::{Outbox, Refused};
use crate::hub::{Delivery, Frames, Message, Publication, SocketId, Subscriber};
use std::sync::Arc;

/// The Pusher wire format's key in `Frames`.
const PUSHER: &str = "pusher";

/// One Pusher connection in the Hub: its id and its queue, nothing that points back at the
/// connection's task.
pub(super) struct PusherSubscriber {
    pub(super) id: SocketId,
    pub(super) outbox: Arc<Outbox>,
}

impl Subscriber for PusherSubscriber {
    fn socket_id(&self) -> &SocketId {
        &self.id
    }

    fn deliver(&self, publication: &Publication, encoded: &mut Frames<'_>) -> Delivery {
        if let Message::Terminate = publication.message {
            self.outbox.terminate();
            return Delivery::Queued;
        }
        let Some(frame) = encoded.get_or_encode(PUSHER, || frames::publication(publication)) else {
            return Delivery::Skipped;
        };
        match self.outbox.push(frame) {
            Ok(()) => Delivery::Queued,
            Err(Refused::Overflow) => Delivery::Overflow,
            Err(Refused::Closed) => Delivery::Closed,
        }
    }
}
