//! What crosses the cluster bus: one publication, with the node that sent it (a node ignores
//! its own), as JSON. The event's data travels as the exact JSON text it came in as.

use crate::hub::{Member, Message, Publication, SocketId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;

/// A publication on the bus.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Relayed {
    /// The node that published it.
    pub(super) node: String,
    /// Its Hub key.
    pub(super) channel: String,
    /// The sender's socket id, excluded on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) except: Option<String>,
    /// Whether a cache channel keeps it (an app's event, not a client event).
    #[serde(default)]
    pub(super) cacheable: bool,
    /// What it carries.
    pub(super) message: WireMessage,
}

/// A [`Message`] on the wire (externally tagged, so the data stays raw JSON).
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum WireMessage {
    /// An event.
    Event {
        name: String,
        data: Box<RawValue>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// A presence member joined.
    MemberAdded {
        user_id: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_info: Option<Value>,
    },
    /// A presence member left.
    MemberRemoved {
        user_id: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_info: Option<Value>,
    },
    /// Close the connections that receive it.
    Terminate,
}

impl Relayed {
    /// `publication` as node `node` sends it; `None` for what does not cross nodes (watchlist
    /// and count changes are each node's own).
    pub(super) fn of(node: &str, publication: &Publication, cacheable: bool) -> Option<Relayed> {
        let message = match &publication.message {
            Message::Event {
                name,
                data,
                user_id,
            } => WireMessage::Event {
                name: name.to_string(),
                data: RawValue::from_string(data.get().to_owned()).ok()?,
                user_id: user_id.as_deref().map(str::to_owned),
            },
            Message::MemberAdded(member) => WireMessage::MemberAdded {
                user_id: member.user_id.clone(),
                user_info: member.user_info.clone(),
            },
            Message::MemberRemoved(member) => WireMessage::MemberRemoved {
                user_id: member.user_id.clone(),
                user_info: member.user_info.clone(),
            },
            Message::Terminate => WireMessage::Terminate,
            Message::Watchlist { .. } | Message::SubscriptionCount(_) => return None,
        };
        Some(Relayed {
            node: node.to_owned(),
            channel: publication.channel.to_string(),
            except: publication.except.as_ref().map(|id| id.to_string()),
            cacheable,
            message,
        })
    }

    /// The publication to deliver on this node.
    pub(super) fn into_publication(self) -> Publication {
        let except = self.except.as_deref().map(SocketId::new);
        let member = |user_id, user_info| Arc::new(Member { user_id, user_info });
        match self.message {
            WireMessage::Event {
                name,
                data,
                user_id,
            } => Publication::new(&self.channel, &name, data, except)
                .from_member(user_id.map(Arc::from)),
            WireMessage::MemberAdded { user_id, user_info } => Publication::with(
                &self.channel,
                Message::MemberAdded(member(user_id, user_info)),
                except,
            ),
            WireMessage::MemberRemoved { user_id, user_info } => Publication::with(
                &self.channel,
                Message::MemberRemoved(member(user_id, user_info)),
                except,
            ),
            WireMessage::Terminate => Publication::with(&self.channel, Message::Terminate, except),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_crosses_with_its_exact_data_sender_and_member() {
        let data = RawValue::from_string(r#"{"b":1,"a":1.50}"#.to_owned()).expect("json");
        let publication =
            Publication::new("private-c", "client-x", data, Some(SocketId::new("1.2")))
                .from_member(Some(Arc::from("7")));
        let relayed = Relayed::of("n1", &publication, false).expect("crosses");
        let text = serde_json::to_string(&relayed).expect("json");
        let back: Relayed = serde_json::from_str(&text).expect("parses");
        assert_eq!(back.node, "n1");
        assert!(!back.cacheable);
        let delivered = back.into_publication();
        assert_eq!(&*delivered.channel, "private-c");
        assert_eq!(delivered.except, Some(SocketId::new("1.2")));
        match delivered.message {
            Message::Event {
                name,
                data,
                user_id,
            } => {
                assert_eq!(&*name, "client-x");
                assert_eq!(data.get(), r#"{"b":1,"a":1.50}"#);
                assert_eq!(user_id.as_deref(), Some("7"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_and_watchlists_stay_on_their_node() {
        let count = Publication::with("c", Message::SubscriptionCount(3), None);
        assert!(Relayed::of("n", &count, false).is_none());
    }
}
