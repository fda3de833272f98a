//! Socket.IO packets, carried in Engine.IO `message` packets:
//! `<type>[<namespace>,][<ack id>][<JSON>]`, e.g. `2["subscribe",{"channel":"news"}]`,
//! `0{"token":"…"}` (CONNECT with auth), `2/admin,12["x"]`. Binary packets (types 5 and 6,
//! with attachments) are refused: Laravel Echo never sends them.

use serde_json::value::RawValue;
use thiserror::Error;

/// A Socket.IO packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `0`: join a namespace (optionally with auth data).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event, `["name", args…]`.
    Event,
    /// `3`: the answer to an event that asked for one.
    Ack,
    /// `4`: a refused CONNECT.
    ConnectError,
}

/// One Socket.IO packet, borrowing its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketPacket<'a> {
    /// Its type.
    pub kind: Kind,
    /// Its namespace, `/` when none is written.
    pub namespace: &'a str,
    /// The id an acknowledgement answers with, if one was asked for.
    pub ack: Option<u64>,
    /// Its JSON text (checked to be JSON), if any.
    pub data: Option<&'a str>,
}

/// An event's name and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// The event's name (the array's first element).
    pub name: String,
    /// The rest of the array, each as its JSON text.
    pub args: Vec<&'a str>,
}

/// Why a Socket.IO packet could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SocketPacketError {
    /// Empty text.
    #[error("an empty Socket.IO packet")]
    Empty,
    /// An unknown type, or a binary one.
    #[error("an unsupported Socket.IO packet type {0:?}")]
    UnsupportedType(char),
    /// The ack id is not a number that fits.
    #[error("a Socket.IO packet with a bad ack id")]
    BadAck,
    /// The data is not JSON.
    #[error("a Socket.IO packet whose data is not JSON")]
    BadJson,
    /// An event is not `["name", …]`.
    #[error("a Socket.IO event that is not [\"name\", …]")]
    NotAnEvent,
}

/// Most digits an ack id may have (it must fit a u64).
const MAX_ACK_DIGITS: usize = 20;

impl<'a> SocketPacket<'a> {
    /// Reads a packet from the text of an Engine.IO message.
    pub fn parse(text: &'a str) -> Result<SocketPacket<'a>, SocketPacketError> {
        let mut chars = text.chars();
        let kind = match chars.next().ok_or(SocketPacketError::Empty)? {
            '0' => Kind::Connect,
            '1' => Kind::Disconnect,
            '2' => Kind::Event,
            '3' => Kind::Ack,
            '4' => Kind::ConnectError,
            other => return Err(SocketPacketError::UnsupportedType(other)),
        };
        let mut rest = chars.as_str();
        let mut namespace = "/";
        if rest.starts_with('/') {
            match rest.find(',') {
                Some(comma) => {
                    namespace = &rest[..comma];
                    rest = &rest[comma + 1..];
                }
                None => {
                    namespace = rest;
                    rest = "";
                }
            }
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ack = match digits {
            0 => None,
            n if n > MAX_ACK_DIGITS => return Err(SocketPacketError::BadAck),
            n => Some(rest[..n].parse().map_err(|_| SocketPacketError::BadAck)?),
        };
        rest = &rest[digits..];
        let data = if rest.is_empty() {
            None
        } else {
            let json: &'a RawValue =
                serde_json::from_str(rest).map_err(|_| SocketPacketError::BadJson)?;
            Some(json.get())
        };
        Ok(SocketPacket {
            kind,
            namespace,
            ack,
            data,
        })
    }

    /// The event this packet carries: its name and arguments.
    pub fn event(&self) -> Result<Event<'a>, SocketPacketError> {
        let data = self.data.ok_or(SocketPacketError::NotAnEvent)?;
        let items: Vec<&'a RawValue> =
            serde_json::from_str(data).map_err(|_| SocketPacketError::NotAnEvent)?;
        let (first, args) = items.split_first().ok_or(SocketPacketError::NotAnEvent)?;
        let name: String =
            serde_json::from_str(first.get()).map_err(|_| SocketPacketError::NotAnEvent)?;
        Ok(Event {
            name,
            args: args.iter().map(|arg| arg.get()).collect(),
        })
    }

    /// Appends the packet's text to `out`.
    pub fn encode_into(&self, out: &mut String) {
        out.push(match self.kind {
            Kind::Connect => '0',
            Kind::Disconnect => '1',
            Kind::Event => '2',
            Kind::Ack => '3',
            Kind::ConnectError => '4',
        });
        if self.namespace != "/" {
            out.push_str(self.namespace);
            out.push(',');
        }
        if let Some(ack) = self.ack {
            out.push_str(&ack.to_string());
        }
        if let Some(data) = self.data {
            out.push_str(data);
        }
    }

    /// The packet's text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_packets_laravel_echo_sends() {
        let subscribe = SocketPacket::parse(
            r#"2["subscribe",{"channel":"private-orders","auth":{"headers":{}}}]"#,
        )
        .expect("an event");
        assert_eq!(
            (subscribe.kind, subscribe.namespace, subscribe.ack),
            (Kind::Event, "/", None)
        );
        let event = subscribe.event().expect("named");
        assert_eq!(event.name, "subscribe");
        assert_eq!(
            event.args,
            [r#"{"channel":"private-orders","auth":{"headers":{}}}"#]
        );
        let whisper = SocketPacket::parse(
            r#"2["client event",{"event":"client-typing","channel":"private-chat","data":{"id":1}}]"#,
        )
        .expect("an event");
        assert_eq!(whisper.event().expect("named").name, "client event");

        let connect = SocketPacket::parse("0").expect("connect");
        assert_eq!(
            (connect.kind, connect.namespace, connect.data),
            (Kind::Connect, "/", None)
        );
        let with_auth = SocketPacket::parse(r#"0{"token":"t"}"#).expect("connect");
        assert_eq!(with_auth.data, Some(r#"{"token":"t"}"#));
        let admin = SocketPacket::parse(r#"2/admin,12["x"]"#).expect("event");
        assert_eq!((admin.namespace, admin.ack), ("/admin", Some(12)));
        assert_eq!(
            SocketPacket::parse("1/admin").expect("leave").namespace,
            "/admin"
        );
    }

    #[test]
    fn bad_packets_are_refused() {
        assert_eq!(SocketPacket::parse(""), Err(SocketPacketError::Empty));
        assert_eq!(
            SocketPacket::parse("51-[]"),
            Err(SocketPacketError::UnsupportedType('5'))
        );
        assert_eq!(
            SocketPacket::parse("2[oops"),
            Err(SocketPacketError::BadJson)
        );
        assert_eq!(
            SocketPacket::parse("299999999999999999999[\"x\"]"),
            Err(SocketPacketError::BadAck)
        );
        let not_events = [r#"2{"a":1}"#, "2[]", "2[1]", "2"];
        for text in not_events {
            let packet = SocketPacket::parse(text).expect("JSON or nothing");
            assert_eq!(packet.event(), Err(SocketPacketError::NotAnEvent), "{text}");
        }
    }

    fn json() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(prop_oneof![
                Just("[\"subscribe\",{\"channel\":\"news\"}]".to_owned()),
                Just("{\"token\":\"t\"}".to_owned()),
                ".*".prop_map(
                    |s| serde_json::to_string(&serde_json::json!([s, 1])).unwrap_or_default()
                ),
            ])
    }

    proptest! {
        #[test]
        fn any_text_is_read_or_refused_without_a_panic(text in ".*") {
            if let Ok(packet) = SocketPacket::parse(&text) {
                let _ = packet.event();
            }
        }

        #[test]
        fn packets_read_back_as_written(
            kind in 0usize..5,
            namespace in prop_oneof![Just("/".to_owned()), "/[a-z]{1,8}"],
            ack in proptest::option::of(0u64..u64::MAX),
            data in json(),
        ) {
            let kinds = [Kind::Connect, Kind::Disconnect, Kind::Event, Kind::Ack, Kind::ConnectError];
            let packet = SocketPacket { kind: kinds[kind], namespace: &namespace, ack, data: data.as_deref() };
            let text = packet.encode();
            prop_assert_eq!(SocketPacket::parse(&text), Ok(packet));
        }
    }
}
