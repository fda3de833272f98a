//! What Echo sends over Socket.IO, parsed without trusting it.

use serde_json::Value;

/// Event names Socket.IO clients treat as their own lifecycle events. A Laravel event with one
/// of these names would be mistaken for a connection event by the browser, so Herald never
/// sends it (laravel-echo-server 1.6.3 swallowed them too, as local emits) and warns instead.
const RESERVED_EVENT_NAMES: &[&str] = &[
    "connect",
    "connect_error",
    "connection",
    "disconnect",
    "disconnecting",
    "error",
    "newListener",
    "removeListener",
];

/// Whether Socket.IO reserves `name`, so it cannot be delivered as an event.
pub fn is_reserved_event_name(name: &str) -> bool {
    RESERVED_EVENT_NAMES.contains(&name)
}

/// The `subscribe` / `unsubscribe` payload: `{channel, auth: {headers}}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ChannelRequest {
    /// The channel asked for.
    pub channel: String,
    /// Headers Echo sends for the auth request (`auth.headers`), as given.
    pub auth_headers: Vec<(String, String)>,
}

/// Why a client payload was ignored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum PayloadError {
    /// Not an object (or JSON text of one).
    #[error("payload is not an object")]
    NotAnObject,
    /// `channel` missing or not a string.
    #[error("payload has no \"channel\" string")]
    NoChannel,
    /// `event` missing or not a string.
    #[error("payload has no \"event\" string")]
    NoEvent,
}

/// A `client event` (whisper): `{channel, event, data}`.
#[derive(Debug)]
pub(super) struct WhisperRequest {
    /// Target channel.
    pub channel: String,
    /// `client-…` event name.
    pub event: String,
    /// The payload as JSON text.
    pub data: Box<serde_json::value::RawValue>,
}

/// Parses a `client event` payload (an object, or JSON text of one).
pub(super) fn parse_whisper(payload: Value) -> Result<WhisperRequest, PayloadError> {
    let mut map = as_object(payload)?;
    let channel = match map.remove("channel") {
        Some(Value::String(channel)) => channel,
        _ => return Err(PayloadError::NoChannel),
    };
    let event = match map.remove("event") {
        Some(Value::String(event)) if !event.is_empty() => event,
        _ => return Err(PayloadError::NoEvent),
    };
    let data = map.remove("data").unwrap_or(Value::Null);
    let data = serde_json::value::to_raw_value(&data).map_err(|_| PayloadError::NotAnObject)?;
    Ok(WhisperRequest {
        channel,
        event,
        data,
    })
}

/// Accepts the object Echo sends, or JSON text of it (some clients stringify).
fn as_object(payload: Value) -> Result<serde_json::Map<String, Value>, PayloadError> {
    match payload {
        Value::Object(map) => Ok(map),
        Value::String(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(PayloadError::NotAnObject),
        },
        _ => Err(PayloadError::NotAnObject),
    }
}

/// Parses a `subscribe` or `unsubscribe` payload.
pub(super) fn parse_channel_request(payload: Value) -> Result<ChannelRequest, PayloadError> {
    let map = as_object(payload)?;
    let channel = match map.get("channel") {
        Some(Value::String(channel)) => channel.clone(),
        _ => return Err(PayloadError::NoChannel),
    };
    let auth_headers = map
        .get("auth")
        .and_then(|auth| auth.get("headers"))
        .and_then(Value::as_object)
        .map(|headers| {
            headers
                .iter()
                .filter_map(|(name, value)| match value {
                    Value::String(v) => Some((name.clone(), v.clone())),
                    Value::Number(n) => Some((name.clone(), n.to_string())),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ChannelRequest {
        channel,
        auth_headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echo_subscribe_payload() {
        let request = parse_channel_request(json!({
            "channel": "orders",
            "auth": {"headers": {"X-CSRF-TOKEN": "t", "X-Id": 5, "Bad": null}}
        }))
        .expect("valid");
        assert_eq!(request.channel, "orders");
        assert_eq!(
            request.auth_headers,
            vec![
                ("X-CSRF-TOKEN".to_owned(), "t".to_owned()),
                ("X-Id".to_owned(), "5".to_owned())
            ]
        );
    }

    #[test]
    fn stringified_payloads_are_accepted() {
        let request = parse_channel_request(json!("{\"channel\":\"news\"}")).expect("valid");
        assert_eq!(request.channel, "news");
        assert!(request.auth_headers.is_empty());
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        assert_eq!(
            parse_channel_request(json!(null)),
            Err(PayloadError::NotAnObject)
        );
        assert_eq!(
            parse_channel_request(json!([1, 2])),
            Err(PayloadError::NotAnObject)
        );
        assert_eq!(
            parse_channel_request(json!({"channel": 5})),
            Err(PayloadError::NoChannel)
        );
        assert_eq!(
            parse_channel_request(json!("not json")),
            Err(PayloadError::NotAnObject)
        );
    }

    #[test]
    fn whispers_as_object_or_string() {
        let w = parse_whisper(
            json!({"channel": "private-a", "event": "client-typing", "data": {"x": 1}}),
        )
        .expect("valid");
        assert_eq!(
            (w.channel.as_str(), w.event.as_str()),
            ("private-a", "client-typing")
        );
        assert_eq!(w.data.get(), r#"{"x":1}"#);
        let w = parse_whisper(json!("{\"channel\":\"private-a\",\"event\":\"client-x\"}"))
            .expect("valid");
        assert_eq!(w.data.get(), "null");
        assert_eq!(
            parse_whisper(json!({"channel": "a"})).expect_err("no event"),
            PayloadError::NoEvent
        );
        assert_eq!(
            parse_whisper(json!(null)).expect_err("null"),
            PayloadError::NotAnObject
        );
    }

    proptest::proptest! {
        /// Neither parser panics on any JSON a client can send.
        #[test]
        fn fuzz_client_payloads(payload in crate::test_support::arb_json()) {
            let _ = parse_channel_request(payload.clone());
            if let Ok(w) = parse_whisper(payload) {
                proptest::prop_assert!(!w.event.is_empty());
            }
        }
    }

    #[test]
    fn reserved_names() {
        assert!(is_reserved_event_name("disconnect"));
        assert!(!is_reserved_event_name("App\\Events\\OrderShipped"));
    }
}
