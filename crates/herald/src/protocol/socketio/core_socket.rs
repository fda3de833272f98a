//! A Socket.IO socket on Herald's own connection core: its id and its queue, shared by the
//! Hub (as the subscriber it delivers to) and by Echo's handlers (as the socket they emit to).
//! Nothing in it points back at the connection's task.
//!
//! A publication is encoded once per publish as the Engine.IO message packet
//! `42["<event>","<channel>",<data>]` — the same text for Engine.IO 3 and 4 — and the same
//! bytes are queued for every Socket.IO recipient on the core.

use super::connection::EchoSocket;
use super::events::is_reserved_event_name;
use crate::connection::{Outbox, Refused};
use crate::hub::{
    Delivery, FrameText, Frames, Member, Message, Publication, SocketId, Subscriber, WireFormat,
};
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Socket.IO's key in the Hub's `Frames`.
const SOCKETIO: WireFormat = "socket.io";

/// Socket.IO with an offset as the last argument, for sockets that can recover their state.
const SOCKETIO_WITH_OFFSET: WireFormat = "socket.io+offset";

/// One socket: the id Laravel and other clients know it by, and its queue of packets.
pub(super) struct CoreSocket {
    pub(super) id: SocketId,
    pub(super) outbox: Arc<Outbox>,
    /// Its publications carry offsets (an Engine.IO 4 socket, with recovery on).
    pub(super) offsets: bool,
}

impl Subscriber for CoreSocket {
    fn socket_id(&self) -> &SocketId {
        &self.id
    }

    fn deliver(&self, publication: &Publication, frames: &mut Frames<'_>) -> Delivery {
        let format = if self.offsets {
            SOCKETIO_WITH_OFFSET
        } else {
            SOCKETIO
        };
        let encode = || publication_packet(publication, self.offsets);
        let Some(frame) = frames.get_or_encode(format, encode) else {
            return Delivery::Skipped;
        };
        match self.outbox.push(frame) {
            Ok(()) => Delivery::Queued,
            Err(Refused::Overflow) => Delivery::Overflow,
            Err(Refused::Closed) => Delivery::Closed,
        }
    }
}

impl EchoSocket for Arc<CoreSocket> {
    fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T) {
        if let Some(packet) = event_packet(event, args) {
            // A refusal means the socket is already closing (gone, or too slow).
            let _ = self.outbox.push(packet);
        }
    }
}

/// The packet that carries `publication` to Echo, or `None` if Socket.IO cannot carry it.
fn publication_packet(publication: &Publication, with_offset: bool) -> Option<FrameText> {
    let event = event_name(publication)?;
    let (channel, payload) = socketio_args(publication);
    if with_offset {
        let offset = super::recovery::next_offset().to_string();
        event_packet(event, &(channel, payload, offset))
    } else {
        event_packet(event, &(channel, payload))
    }
}

/// `42["<event>",<args>…]`: an Engine.IO message carrying a Socket.IO event in the default
/// namespace. `args` is a tuple (each element one argument) or a single argument.
pub(super) fn event_packet<T: Serialize + ?Sized>(event: &str, args: &T) -> Option<FrameText> {
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(b"42[");
    serde_json::to_writer(&mut packet, event).ok()?;
    let args = serde_json::to_vec(args).ok()?;
    match args.as_slice() {
        b"[]" => {}
        [b'[', inner @ .., b']'] => {
            packet.push(b',');
            packet.extend_from_slice(inner);
        }
        single => {
            packet.push(b',');
            packet.extend_from_slice(single);
        }
    }
    packet.push(b']');
    // serde_json writes UTF-8: checked here, once per packet, not per recipient.
    String::from_utf8(packet).ok().map(FrameText::from)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::engineio::{Packet, SocketPacket};

    #[test]
    fn tuples_become_arguments() {
        let packet = event_packet("presence:subscribed", &("presence-a", [1, 2])).expect("packet");
        assert_eq!(
            packet.as_str(),
            r#"42["presence:subscribed","presence-a",[1,2]]"#
        );
        assert_eq!(
            event_packet("ping", &()).expect("packet").as_str(),
            r#"42["ping",null]"#
        );
        assert_eq!(
            event_packet("one", &"x").expect("packet").as_str(),
            r#"42["one","x"]"#
        );
        assert_eq!(
            event_packet("none", &[0u8; 0]).expect("packet").as_str(),
            r#"42["none"]"#
        );
    }

    #[test]
    fn publications_read_back_as_echo_reads_them() {
        let data = serde_json::value::to_raw_value(&serde_json::json!({"id": 7})).expect("raw");
        let publication = Publication::new("orders", "App\\Events\\Shipped", data, None);
        let packet = publication_packet(&publication, false).expect("packet");
        let text = packet.as_str();
        let Ok(Packet::Message(message)) = Packet::parse(text) else {
            panic!("a message packet: {text}");
        };
        let event = SocketPacket::parse(message)
            .and_then(|p| p.event())
            .expect("an event");
        assert_eq!(event.name, "App\\Events\\Shipped");
        assert_eq!(event.args, [r#""orders""#, r#"{"id":7}"#]);
    }
}
