//! Pusher frames: what the server sends (JSON text; `data` double-encoded as a string where
//! the protocol says so) and what it accepts from clients.

use crate::hub::{FrameText, Message, Publication, data_as_text, visible_name};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// A frame from a client: `{"event", "channel"?, "data"?}`.
#[derive(Debug, Deserialize)]
pub(super) struct ClientFrame {
    /// `pusher:subscribe`, `pusher:ping`, `client-…`.
    pub(super) event: String,
    /// The channel of a client event.
    #[serde(default)]
    pub(super) channel: Option<String>,
    /// Any JSON; an object for `pusher:subscribe`, an object or a string for client events.
    #[serde(default)]
    pub(super) data: Option<Box<RawValue>>,
}

/// The `data` of `pusher:subscribe` and `pusher:unsubscribe`.
#[derive(Debug, Deserialize)]
pub(super) struct SubscribeData {
    /// The channel name.
    pub(super) channel: String,
    /// `<key>:<signature>` for private and presence channels.
    #[serde(default)]
    pub(super) auth: Option<String>,
    /// The exact JSON text the app signed, for presence channels.
    #[serde(default)]
    pub(super) channel_data: Option<String>,
}

fn text(value: &Value) -> FrameText {
    FrameText::from(value.to_string())
}

/// `pusher:connection_established`.
pub(super) fn connection_established(socket_id: &str, activity_timeout_s: u64) -> FrameText {
    let data = json!({"socket_id": socket_id, "activity_timeout": activity_timeout_s});
    text(&json!({"event": "pusher:connection_established", "data": data.to_string()}))
}

/// `pusher:error` with `code` (null for a frame Herald could not use) and a message.
pub(super) fn error(code: Option<u16>, message: &str) -> FrameText {
    text(&json!({"event": "pusher:error", "data": {"code": code, "message": message}}))
}

/// `pusher:pong`, the answer to `pusher:ping`.
pub(super) fn pong() -> FrameText {
    FrameText::from_static(r#"{"event":"pusher:pong","data":{}}"#)
}

/// `pusher:ping`, sent after `activity_timeout` of silence.
pub(super) fn ping() -> FrameText {
    FrameText::from_static(r#"{"event":"pusher:ping","data":{}}"#)
}

/// `pusher_internal:subscription_succeeded` with `data` (`{}`, or the presence members).
pub(super) fn subscription_succeeded(channel: &str, data: &Value) -> FrameText {
    text(&json!({
        "event": "pusher_internal:subscription_succeeded",
        "channel": channel,
        "data": data.to_string(),
    }))
}

/// `pusher:subscription_error`: the channel was refused, with a status and why (pusher-js
/// hands it to the channel's error callbacks, Echo's `.error()`).
pub(super) fn subscription_error(
    channel: &str,
    kind: &str,
    status: u16,
    reason: &str,
) -> FrameText {
    text(&json!({
        "event": "pusher:subscription_error",
        "channel": channel,
        "data": {"type": kind, "error": reason, "status": status},
    }))
}

/// A publication as a Pusher frame (`None` for a `Terminate`, which is no frame: the
/// subscriber closes the connection).
pub(super) fn publication(publication: &Publication) -> Option<FrameText> {
    let channel = visible_name(&publication.channel);
    let frame = match &publication.message {
        Message::Event {
            name,
            data,
            user_id: None,
        } => json!({"event": &**name, "channel": channel, "data": data_string(data)}),
        // A client event on a presence channel says which member sent it.
        Message::Event {
            name,
            data,
            user_id: Some(user_id),
        } => json!({
            "event": &**name,
            "channel": channel,
            "data": data_string(data),
            "user_id": &**user_id,
        }),
        Message::MemberAdded(member) => {
            let mut data = json!({ "user_id": member.user_id_text() });
            if let Some(info) = &member.user_info {
                data["user_info"] = info.clone();
            }
            json!({
                "event": "pusher_internal:member_added",
                "channel": channel,
                "data": data.to_string(),
            })
        }
        Message::MemberRemoved(member) => json!({
            "event": "pusher_internal:member_removed",
            "channel": channel,
            "data": json!({ "user_id": member.user_id_text() }).to_string(),
        }),
        Message::Watchlist { user_id, online } => {
            return Some(watchlist_events(*online, &[&**user_id]));
        }
        Message::Terminate => return None,
        Message::SubscriptionCount(count) => json!({
            "event": "pusher_internal:subscription_count",
            "channel": channel,
            "data": json!({ "subscription_count": count }).to_string(),
        }),
    };
    Some(text(&frame))
}

/// `pusher_internal:watchlist_events` (no channel: it is the connection's), the frame pusher-js
/// reads for a watchlist: `{"events": [{"name": "online"|"offline", "user_ids": […]}]}`.
pub(super) fn watchlist_events(online: bool, user_ids: &[&str]) -> FrameText {
    let name = if online { "online" } else { "offline" };
    let data = json!({"events": [{"name": name, "user_ids": user_ids}]});
    text(&json!({"event": "pusher_internal:watchlist_events", "data": data.to_string()}))
}

/// `pusher:signin_success` with the `user_data` the client signed in with.
pub(super) fn signin_success(user_data: &str) -> FrameText {
    text(&json!({"event": "pusher:signin_success", "data": {"user_data": user_data}}))
}

/// Channel event data travels as a string ([`data_as_text`]).
fn data_string(data: &RawValue) -> Value {
    Value::String(data_as_text(data))
}

/// `pusher:cache_miss`: a cache channel with no event kept.
pub(super) fn cache_miss(channel: &str) -> FrameText {
    text(&json!({"event": "pusher:cache_miss", "channel": channel}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Member, SocketId};
    use std::sync::Arc;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).expect("json")
    }

    fn parsed(frame: FrameText) -> Value {
        serde_json::from_str(&frame).expect("json frame")
    }

    #[test]
    fn connection_established_double_encodes_its_data() {
        let frame = parsed(connection_established("1.2", 120));
        assert_eq!(frame["event"], "pusher:connection_established");
        assert_eq!(
            frame["data"],
            r#"{"socket_id":"1.2","activity_timeout":120}"#
        );
    }

    #[test]
    fn event_data_is_a_string_whatever_the_source_sent() {
        let object = Publication::new("orders", "Shipped", raw(r#"{"id": 1}"#), None);
        assert_eq!(
            parsed(publication(&object).expect("frame")),
            json!({"event": "Shipped", "channel": "orders", "data": r#"{"id": 1}"#})
        );
        let string = Publication::new("orders", "Shipped", raw(r#""{\"id\":1}""#), None);
        assert_eq!(
            parsed(publication(&string).expect("frame"))["data"],
            r#"{"id":1}"#
        );
    }

    #[test]
    fn a_presence_members_client_event_names_its_sender() {
        let event = Publication::new("presence-r", "client-typing", raw("{}"), None)
            .from_member(Some(Arc::from("7")));
        assert_eq!(
            parsed(publication(&event).expect("frame")),
            json!({"event": "client-typing", "channel": "presence-r", "data": "{}", "user_id": "7"})
        );
    }

    #[test]
    fn presence_changes_carry_string_user_ids() {
        let member = Arc::new(Member {
            user_id: json!(7),
            user_info: Some(json!({"name": "A"})),
        });
        let added = Publication::with("presence-r", Message::MemberAdded(member.clone()), None);
        let frame = parsed(publication(&added).expect("frame"));
        assert_eq!(frame["event"], "pusher_internal:member_added");
        assert_eq!(frame["data"], r#"{"user_id":"7","user_info":{"name":"A"}}"#);
        let removed = Publication::with(
            "presence-r",
            Message::MemberRemoved(member),
            Some(SocketId::new("x")),
        );
        let frame = parsed(publication(&removed).expect("frame"));
        assert_eq!(frame["event"], "pusher_internal:member_removed");
        assert_eq!(frame["data"], r#"{"user_id":"7"}"#);
    }
}
