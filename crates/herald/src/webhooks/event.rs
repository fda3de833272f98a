//! One thing a webhook is told of, and its JSON in the webhook body (Pusher's shapes).

use crate::config::WebhookKind;
use serde_json::{Value, json};

/// Something that happened to a channel (named by its Hub key until it is sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// The channel got its first subscriber.
    Occupied,
    /// The channel lost its last subscriber.
    Vacated,
    /// A connection subscribed to a cache channel with no event kept.
    CacheMiss,
    /// The channel's subscription count changed (coalesced).
    SubscriptionCount {
        /// Connections subscribed now.
        count: usize,
    },
    /// A user joined the presence channel.
    MemberAdded {
        /// The user id as text.
        user_id: String,
    },
    /// A user left the presence channel.
    MemberRemoved {
        /// The user id as text.
        user_id: String,
    },
    /// A client sent an event on the channel.
    ClientEvent {
        /// `client-…`.
        event: String,
        /// The event's data as a string: a string as it is, anything else as its JSON text.
        data: String,
        /// The sender's socket id.
        socket_id: Option<String>,
        /// The sender's user id, on a presence channel.
        user_id: Option<String>,
    },
}

impl WebhookEvent {
    /// The kind a webhook subscribes to in `event_types`.
    pub fn kind(&self) -> WebhookKind {
        match self {
            WebhookEvent::Occupied => WebhookKind::ChannelOccupied,
            WebhookEvent::Vacated => WebhookKind::ChannelVacated,
            WebhookEvent::CacheMiss => WebhookKind::CacheMiss,
            WebhookEvent::SubscriptionCount { .. } => WebhookKind::SubscriptionCount,
            WebhookEvent::MemberAdded { .. } => WebhookKind::MemberAdded,
            WebhookEvent::MemberRemoved { .. } => WebhookKind::MemberRemoved,
            WebhookEvent::ClientEvent { .. } => WebhookKind::ClientEvent,
        }
    }

    /// The event as it appears in a webhook body's `events`, for `channel` (the name the app
    /// knows it by).
    pub fn to_json(&self, channel: &str) -> Value {
        let name = self.kind().name();
        match self {
            WebhookEvent::Occupied | WebhookEvent::Vacated | WebhookEvent::CacheMiss => {
                json!({"name": name, "channel": channel})
            }
            WebhookEvent::SubscriptionCount { count } => {
                json!({"name": name, "channel": channel, "subscription_count": count})
            }
            WebhookEvent::MemberAdded { user_id } | WebhookEvent::MemberRemoved { user_id } => {
                json!({"name": name, "channel": channel, "user_id": user_id})
            }
            WebhookEvent::ClientEvent {
                event,
                data,
                socket_id,
                user_id,
            } => {
                let mut body =
                    json!({"name": name, "channel": channel, "event": event, "data": data});
                if let Some(socket_id) = socket_id {
                    body["socket_id"] = json!(socket_id);
                }
                if let Some(user_id) = user_id {
                    body["user_id"] = json!(user_id);
                }
                body
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushers_shapes() {
        assert_eq!(
            WebhookEvent::Vacated.to_json("c"),
            json!({"name": "channel_vacated", "channel": "c"})
        );
        assert_eq!(
            WebhookEvent::MemberAdded {
                user_id: "7".into()
            }
            .to_json("presence-r"),
            json!({"name": "member_added", "channel": "presence-r", "user_id": "7"})
        );
        let client = WebhookEvent::ClientEvent {
            event: "client-typing".into(),
            data: "{\"x\":1}".into(),
            socket_id: Some("1.2".into()),
            user_id: None,
        };
        assert_eq!(
            client.to_json("private-c"),
            json!({"name": "client_event", "channel": "private-c", "event": "client-typing", "data": "{\"x\":1}", "socket_id": "1.2"})
        );
    }
}
