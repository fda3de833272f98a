//! Engine.IO packets, as text: one packet per websocket frame, or several in a polling payload
//! (`payload.rs`). Herald's clients (Laravel Echo over socket.io-client 2.x and 3.x/4.x) send
//! text only; a binary packet is refused with an error, never a panic.

use thiserror::Error;

/// One Engine.IO packet, borrowing its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0` + the handshake JSON (server → client).
    Open(&'a str),
    /// `1`: close the session.
    Close,
    /// `2` (+ optional text, `probe` during an upgrade).
    Ping(&'a str),
    /// `3` (+ the ping's text).
    Pong(&'a str),
    /// `4` + a Socket.IO packet.
    Message(&'a str),
    /// `5`: the transport upgrade is complete.
    Upgrade,
    /// `6`: nothing (ends a pending poll during an upgrade).
    Noop,
}

/// Why a packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    /// The text is empty.
    #[error("an empty Engine.IO packet")]
    Empty,
    /// The first character is no packet type.
    #[error("an unknown Engine.IO packet type {0:?}")]
    UnknownType(char),
    /// A packet that carries nothing carried something.
    #[error("Engine.IO packet type {0} carries no data")]
    UnexpectedData(char),
    /// `b`-prefixed (base64) binary: Laravel Echo never sends it.
    #[error("binary Engine.IO packets are not supported")]
    Binary,
}

impl<'a> Packet<'a> {
    /// Reads one packet from its text.
    pub fn parse(text: &'a str) -> Result<Packet<'a>, PacketError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(PacketError::Empty)?;
        let rest = chars.as_str();
        let nothing_after = |packet: Packet<'a>| {
            if rest.is_empty() {
                Ok(packet)
            } else {
                Err(PacketError::UnexpectedData(kind))
            }
        };
        match kind {
            '0' => Ok(Packet::Open(rest)),
            '1' => nothing_after(Packet::Close),
            '2' => Ok(Packet::Ping(rest)),
            '3' => Ok(Packet::Pong(rest)),
            '4' => Ok(Packet::Message(rest)),
            '5' => nothing_after(Packet::Upgrade),
            '6' => nothing_after(Packet::Noop),
            'b' => Err(PacketError::Binary),
            other => Err(PacketError::UnknownType(other)),
        }
    }

    /// Appends the packet's text to `out`.
    pub fn encode_into(&self, out: &mut String) {
        let (kind, data) = match self {
            Packet::Open(data) => ('0', *data),
            Packet::Close => ('1', ""),
            Packet::Ping(data) => ('2', *data),
            Packet::Pong(data) => ('3', *data),
            Packet::Message(data) => ('4', *data),
            Packet::Upgrade => ('5', ""),
            Packet::Noop => ('6', ""),
        };
        out.push(kind);
        out.push_str(data);
    }

    /// The packet's text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_packets_echo_sends_and_receives() {
        assert_eq!(Packet::parse("2"), Ok(Packet::Ping("")));
        assert_eq!(Packet::parse("2probe"), Ok(Packet::Ping("probe")));
        assert_eq!(Packet::parse("3probe"), Ok(Packet::Pong("probe")));
        assert_eq!(
            Packet::parse(r#"42["subscribe",{"channel":"news"}]"#),
            Ok(Packet::Message(r#"2["subscribe",{"channel":"news"}]"#))
        );
        assert_eq!(Packet::parse("5"), Ok(Packet::Upgrade));
        assert_eq!(Packet::parse("6"), Ok(Packet::Noop));
        assert_eq!(Packet::parse("1"), Ok(Packet::Close));
        assert_eq!(Packet::parse(""), Err(PacketError::Empty));
        assert_eq!(Packet::parse("1x"), Err(PacketError::UnexpectedData('1')));
        assert_eq!(Packet::parse("bAAAA"), Err(PacketError::Binary));
        assert_eq!(Packet::parse("9"), Err(PacketError::UnknownType('9')));
        assert_eq!(Packet::parse("é"), Err(PacketError::UnknownType('é')));
    }

    fn packet() -> impl Strategy<Value = (u8, String)> {
        (0u8..7, ".*")
    }

    /// A packet of type `kind` (0–6) with `data` where its type carries any (shared with the
    /// payload tests).
    pub(in crate::protocol::engineio) fn build(kind: u8, data: &str) -> Packet<'_> {
        match kind {
            0 => Packet::Open(data),
            1 => Packet::Close,
            2 => Packet::Ping(data),
            3 => Packet::Pong(data),
            4 => Packet::Message(data),
            5 => Packet::Upgrade,
            _ => Packet::Noop,
        }
    }

    proptest! {
        #[test]
        fn any_text_is_read_or_refused_without_a_panic(text in ".*") {
            let _ = Packet::parse(&text);
        }

        #[test]
        fn every_packet_reads_back_as_written((kind, data) in packet()) {
            let packet = build(kind, &data);
            let text = packet.encode();
            prop_assert_eq!(Packet::parse(&text), Ok(packet));
        }
    }
}
