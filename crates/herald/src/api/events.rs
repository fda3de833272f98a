//! `POST /apps/{appId}/events`: the HTTP broadcast source.

use super::app_auth::AuthorizedApp;
use super::{ApiError, ApiState};
use crate::config::AppLimits;
use crate::console;
use crate::hub::{EventSource, Hub, Publication, SocketId, Space, validate_channel_name};
use crate::sources::dispatch;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// laravel-echo-server's message when a field is missing or falsy.
const MISSING_FIELDS: &str = "Event must include channel, event name and data";

/// A validated event request.
#[derive(Debug, PartialEq)]
struct EventRequest {
    channels: Vec<String>,
    name: String,
    data: String,
    socket_id: Option<String>,
}

/// Publishes `{name, data, channel|channels, socket_id?}` to each channel.
pub(super) async fn publish(
    app: AuthorizedApp,
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = signed_body(&app, &state, body)?;
    let request = parse_event_request(&body, &app.limits)?;
    publish_request(&state.hub, &app.space, request, app.source())?;
    Ok(Json(json!({"message": "ok"})))
}

/// The request body, within `limits.maxEventBytes` and, for a Pusher app, the one it signed.
fn signed_body(
    app: &AuthorizedApp,
    state: &ApiState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => ApiError::TooLarge(state.max_event_bytes),
        other => ApiError::BadRequest(other.body_text()),
    })?;
    app.check_body(&body)?;
    Ok(body)
}

/// `POST /apps/{appId}/batch_events`: `{"batch": [{name, data, channel, socket_id?}, …]}`, each
/// event checked before any is published.
pub(super) async fn publish_batch(
    app: AuthorizedApp,
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = signed_body(&app, &state, body)?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("Request body is not valid JSON: {e}")))?;
    let Some(Value::Array(batch)) = value.get("batch") else {
        return Err(ApiError::BadRequest(
            "Request body must be {\"batch\": [{name, data, channel}, …]}".into(),
        ));
    };
    let most = app.limits.event_batch_size();
    if batch.len() > most {
        return Err(ApiError::BadRequest(format!(
            "A batch may carry at most {most} events (the app's maxEventBatchSize)"
        )));
    }
    let requests = batch
        .iter()
        .enumerate()
        .map(|(i, event)| {
            parse_event_value(event.clone(), &app.limits).map_err(|e| match e {
                ApiError::BadRequest(reason) => {
                    ApiError::BadRequest(format!("batch[{i}]: {reason}"))
                }
                other => other,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for request in requests {
        publish_request(&state.hub, &app.space, request, app.source())?;
    }
    Ok(Json(json!({})))
}

/// Publishes an event request body as `POST /apps/{appId}/events` does (the same rules and
/// path), into `space` within `limits`, from `source`. Returns how many connections of this
/// node it was queued for.
pub fn publish_body(
    hub: &Hub,
    space: &Space,
    limits: &AppLimits,
    body: &[u8],
    source: EventSource,
) -> Result<usize, ApiError> {
    let request = parse_event_request(body, limits)?;
    publish_request(hub, space, request, source)
}

fn publish_request(
    hub: &Hub,
    space: &Space,
    request: EventRequest,
    source: EventSource,
) -> Result<usize, ApiError> {
    console::dev_plain(&format!("Channel: {}", request.channels.join(", ")));
    console::dev_plain(&format!("Event: {}", request.name));
    let data = RawValue::from_string(request.data)
        .map_err(|e| ApiError::BadRequest(format!("data is not valid JSON: {e}")))?;
    let socket = request.socket_id.as_deref().map(SocketId::new);
    let mut queued = 0;
    for channel in &request.channels {
        let key = space.key(channel);
        let publication = Publication::new(&key, &request.name, data.clone(), socket.clone());
        queued += dispatch(hub, &publication, source);
    }
    Ok(queued)
}

/// Applies laravel-echo-server's rules, minus its crashes: invalid JSON and wrong types are
/// 400s with a reason; `data` given as a string is JSON-decoded when it is JSON (Pusher style).
fn parse_event_request(body: &[u8], limits: &AppLimits) -> Result<EventRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(format!(
            "Request body is empty. {MISSING_FIELDS}"
        )));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("Request body is not valid JSON: {e}")))?;
    parse_event_value(value, limits)
}

/// [`parse_event_request`] on parsed JSON, within the app's `limits`.
fn parse_event_value(value: Value, limits: &AppLimits) -> Result<EventRequest, ApiError> {
    let Value::Object(object) = value else {
        return Err(ApiError::BadRequest(format!(
            "Request body must be a JSON object. {MISSING_FIELDS}"
        )));
    };
    let field = |name: &str| object.get(name).filter(|v| is_truthy(v));
    let (Some(channels), Some(name), Some(data)) = (
        field("channels").or_else(|| field("channel")),
        field("name"),
        field("data"),
    ) else {
        return Err(ApiError::BadRequest(MISSING_FIELDS.to_owned()));
    };
    let channels = match channels {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|c| c.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::BadRequest("channels must be an array of strings".into()))?,
        _ => {
            return Err(ApiError::BadRequest(
                "channels must be an array of strings, or channel a string".into(),
            ));
        }
    };
    let most = limits.event_channels_at_once();
    if channels.len() > most {
        return Err(ApiError::BadRequest(format!(
            "An event may name at most {most} channels (the app's maxEventChannelsAtOnce)"
        )));
    }
    let longest = limits.channel_name_length();
    for channel in &channels {
        validate_channel_name(channel)
            .map_err(|e| ApiError::BadRequest(format!("channel {channel:?}: {e}")))?;
        if channel.len() > longest {
            return Err(ApiError::BadRequest(format!(
                "channel {channel:?}: longer than {longest} bytes (the app's maxChannelNameLength)"
            )));
        }
    }
    let Value::String(name) = name else {
        return Err(ApiError::BadRequest("name must be a string".into()));
    };
    let longest = limits.event_name_length();
    if name.len() > longest {
        return Err(ApiError::BadRequest(format!(
            "name is longer than {longest} bytes (the app's maxEventNameLength)"
        )));
    }
    let data = match data {
        Value::String(text) if serde_json::from_str::<&RawValue>(text).is_ok() => text.clone(),
        other => other.to_string(),
    };
    if let Some(largest) = limits.max_event_payload_bytes
        && data.len() > largest
    {
        return Err(ApiError::DataTooLarge(largest));
    }
    let socket_id = object
        .get("socket_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(EventRequest {
        channels,
        name: name.clone(),
        data,
        socket_id,
    })
}

/// JavaScript truthiness, which laravel-echo-server's validation uses.
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<EventRequest, ApiError> {
        parse_event_request(body.as_bytes(), &AppLimits::default())
    }

    fn bad_request(body: &str) -> String {
        match parse(body) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    proptest::proptest! {
        /// Never panics; accepted requests name 1–100 valid channels and JSON data.
        #[test]
        fn fuzz_event_request(body in crate::test_support::arb_payload()) {
            if let Ok(r) = parse_event_request(&body, &AppLimits::default()) {
                proptest::prop_assert!(r.channels.len() <= crate::config::DEFAULT_EVENT_CHANNELS_AT_ONCE);
                proptest::prop_assert!(r.channels.iter().all(|c| validate_channel_name(c).is_ok()));
                proptest::prop_assert!(serde_json::from_str::<Value>(&r.data).is_ok());
            }
        }
    }

    #[test]
    fn echo_server_shape() {
        let r = parse(r#"{"channel":"orders","name":"Shipped","data":{"id":1},"socket_id":"s1"}"#)
            .expect("valid");
        assert_eq!(r.channels, vec!["orders"]);
        assert_eq!(r.name, "Shipped");
        assert_eq!(r.data, r#"{"id":1}"#);
        assert_eq!(r.socket_id.as_deref(), Some("s1"));
    }

    #[test]
    fn pusher_shape_with_string_data() {
        let r =
            parse(r#"{"channels":["a","b"],"name":"E","data":"{\"x\":[1,2]}"}"#).expect("valid");
        assert_eq!(r.channels, vec!["a", "b"]);
        assert_eq!(r.data, r#"{"x":[1,2]}"#);
        let r = parse(r#"{"channel":"a","name":"E","data":"plain text"}"#).expect("valid");
        assert_eq!(r.data, r#""plain text""#);
    }

    #[test]
    fn a_single_channel_may_come_as_channels_string() {
        let r = parse(r#"{"channels":"a","name":"E","data":1}"#).expect("valid");
        assert_eq!(r.channels, vec!["a"]);
    }

    #[test]
    fn falsy_fields_get_the_original_message() {
        for body in [
            r#"{"channel":"a","name":"E"}"#,
            r#"{"channel":"a","name":"E","data":0}"#,
            r#"{"channel":"a","name":"E","data":""}"#,
            r#"{"channel":"a","name":"","data":1}"#,
            r#"{"name":"E","data":1}"#,
        ] {
            assert_eq!(bad_request(body), MISSING_FIELDS, "{body}");
        }
    }

    #[test]
    fn what_crashed_the_original_is_a_400_with_a_reason() {
        assert!(bad_request("").contains("empty"));
        assert!(bad_request("{not json").contains("not valid JSON"));
        assert!(bad_request("[1]").contains("JSON object"));
        assert!(bad_request(r#"{"channels":{"x":1},"name":"E","data":1}"#).contains("array"));
        assert!(bad_request(r#"{"channels":[1],"name":"E","data":1}"#).contains("array"));
        assert!(bad_request(r#"{"channel":"a b","name":"E","data":1}"#).contains("whitespace"));
        assert!(bad_request(r#"{"channel":"a","name":5,"data":1}"#).contains("name"));
    }

    #[test]
    fn an_apps_limits_bound_channels_names_and_data() {
        let limits = AppLimits {
            max_event_channels_at_once: Some(2),
            max_channel_name_length: Some(5),
            max_event_name_length: Some(3),
            max_event_payload_bytes: Some(8),
            ..AppLimits::default()
        };
        let parse = |body: &str| parse_event_request(body.as_bytes(), &limits);
        let reason = |body: &str| match parse(body) {
            Err(ApiError::BadRequest(reason)) => reason,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert!(parse(r#"{"channels":["a","b"],"name":"E","data":"{}"}"#).is_ok());
        assert!(
            reason(r#"{"channels":["a","b","c"],"name":"E","data":1}"#)
                .contains("maxEventChannelsAtOnce")
        );
        assert!(
            reason(r#"{"channel":"abcdef","name":"E","data":1}"#).contains("maxChannelNameLength")
        );
        assert!(reason(r#"{"channel":"a","name":"Long","data":1}"#).contains("maxEventNameLength"));
        assert_eq!(
            parse(r#"{"channel":"a","name":"E","data":"123456789"}"#),
            Err(ApiError::DataTooLarge(8))
        );
    }
}
