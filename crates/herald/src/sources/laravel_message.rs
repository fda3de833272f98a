//! Laravel's broadcast payload `{"event": …, "data": …, "socket": …}`.

use crate::hub::{Publication, SocketId};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// A parsed payload, before it is bound to a channel.
#[derive(Debug)]
pub struct LaravelMessage {
    /// Event name.
    pub event: String,
    /// Payload, as the exact JSON text Laravel sent (`null` if absent).
    pub data: Box<RawValue>,
    /// Sender socket to exclude (`toOthers`), if any.
    pub socket: Option<SocketId>,
}

impl LaravelMessage {
    /// The publication of this message on `channel`.
    pub fn into_publication(self, channel: &str) -> Publication {
        Publication::new(channel, &self.event, self.data, self.socket)
    }
}

/// Why a Redis message was dropped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// Not JSON at all.
    #[error("No JSON message ({0})")]
    NotJson(String),
    /// JSON without a string `event`.
    #[error("message has no \"event\" string")]
    NoEvent,
}

#[derive(Deserialize)]
struct Wire<'a> {
    event: Option<Value>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    socket: Option<Value>,
}

/// Parses a payload; `data` is kept byte for byte.
pub fn parse_laravel_message(payload: &[u8]) -> Result<LaravelMessage, MessageError> {
    let wire: Wire<'_> =
        serde_json::from_slice(payload).map_err(|e| MessageError::NotJson(e.to_string()))?;
    let event = match wire.event {
        Some(Value::String(event)) if !event.is_empty() => event,
        _ => return Err(MessageError::NoEvent),
    };
    let data = match wire.data {
        Some(raw) => raw.to_owned(),
        None => Box::<RawValue>::default(), // `null`
    };
    let socket = match wire.socket {
        Some(Value::String(id)) if !id.is_empty() => Some(SocketId::new(&id)),
        _ => None,
    };
    Ok(LaravelMessage {
        event,
        data,
        socket,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laravel_payload_with_socket_inside_data() {
        let payload = br#"{"event":"App\\Events\\X","data":{"order":{"id":1},"socket":"abc"},"socket":"abc"}"#;
        let m = parse_laravel_message(payload).expect("valid");
        assert_eq!(m.event, "App\\Events\\X");
        assert_eq!(m.data.get(), r#"{"order":{"id":1},"socket":"abc"}"#);
        assert_eq!(m.socket, Some(SocketId::new("abc")));
    }

    #[test]
    fn data_passes_through_byte_for_byte() {
        let payload = br#"{"event":"E","data":{"path":"C:\\dir","big":12345678901234567890,"u":"\u00e9","k":[]},"socket":null}"#;
        let m = parse_laravel_message(payload).expect("valid");
        assert_eq!(
            m.data.get(),
            r#"{"path":"C:\\dir","big":12345678901234567890,"u":"\u00e9","k":[]}"#
        );
        assert_eq!(m.socket, None);
    }

    #[test]
    fn empty_php_array_data_and_missing_data() {
        let m = parse_laravel_message(br#"{"event":"E","data":[]}"#).expect("valid");
        assert_eq!(m.data.get(), "[]");
        let m = parse_laravel_message(br#"{"event":"E"}"#).expect("valid");
        assert_eq!(m.data.get(), "null");
    }

    proptest::proptest! {
        /// Never panics; whatever it accepts has a non-empty event and valid JSON data.
        #[test]
        fn fuzz_laravel_message(payload in crate::test_support::arb_payload()) {
            if let Ok(m) = parse_laravel_message(&payload) {
                proptest::prop_assert!(!m.event.is_empty());
                proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(m.data.get()).is_ok());
            }
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            parse_laravel_message(b"hello"),
            Err(MessageError::NotJson(_))
        ));
        assert_eq!(
            parse_laravel_message(br#"{"data":1}"#).expect_err("no event"),
            MessageError::NoEvent
        );
        assert_eq!(
            parse_laravel_message(br#"{"event":5}"#).expect_err("no event"),
            MessageError::NoEvent
        );
        assert!(parse_laravel_message(br#"[1,2]"#).is_err());
    }
}
