//! What crosses the cluster bus: one publication, with the node that sent it (a node ignores
//! its own), as JSON. The event's data travels as the exact JSON text it came in as.

use crate::hub::{Member, Message, Publication, SocketId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// A publication on the bus. Sending borrows everything from the publication (it is encoded on
/// the publish path: no copy, no second parse of the data); receiving owns what it read.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Relayed<'a> {
    /// The node that published it.
    pub(super) node: Cow<'a, str>,
    /// Its Hub key.
    channel: Cow<'a, str>,
    /// The sender's socket id, excluded on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    except: Option<Cow<'a, str>>,
    /// Whether a cache channel keeps it (an app's event, not a client event).
    #[serde(default)]
    pub(super) cacheable: bool,
    /// What it carries.
    message: WireMessage<'a>,
}

/// A [`Message`] on the wire (externally tagged, so the data stays raw JSON).
#[derive(Debug, Serialize, Deserialize)]
enum WireMessage<'a> {
    /// An event.
    Event {
        name: Cow<'a, str>,
        data: Cow<'a, RawValue>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<Cow<'a, str>>,
    },
    /// A presence member joined.
    MemberAdded(Cow<'a, Member>),
    /// A presence member left.
    MemberRemoved(Cow<'a, Member>),
    /// Close the connections that receive it.
    Terminate,
    /// The channel's subscription count, summed over every node.
    SubscriptionCount(usize),
    /// A watched user came online or went offline (on the cluster as a whole).
    Watchlist { user_id: Cow<'a, str>, online: bool },
}

impl<'a> Relayed<'a> {
    /// `publication` as node `node` sends it.
    pub(super) fn of(node: &'a str, publication: &'a Publication, cacheable: bool) -> Relayed<'a> {
        let message = match &publication.message {
            Message::Event {
                name,
                data,
                user_id,
            } => WireMessage::Event {
                name: Cow::Borrowed(name),
                data: Cow::Borrowed(data),
                user_id: user_id.as_deref().map(Cow::Borrowed),
            },
            Message::MemberAdded(member) => WireMessage::MemberAdded(Cow::Borrowed(member)),
            Message::MemberRemoved(member) => WireMessage::MemberRemoved(Cow::Borrowed(member)),
            Message::Terminate => WireMessage::Terminate,
            Message::SubscriptionCount(count) => WireMessage::SubscriptionCount(*count),
            Message::Watchlist { user_id, online } => WireMessage::Watchlist {
                user_id: Cow::Borrowed(user_id),
                online: *online,
            },
        };
        Relayed {
            node: Cow::Borrowed(node),
            channel: Cow::Borrowed(&publication.channel),
            except: publication
                .except
                .as_ref()
                .map(|id| Cow::Borrowed(id.as_str())),
            cacheable,
            message,
        }
    }

    /// The publication to deliver on this node.
    pub(super) fn into_publication(self) -> Publication {
        let except = self.except.as_deref().map(SocketId::new);
        let channel = &self.channel;
        match self.message {
            WireMessage::Event {
                name,
                data,
                user_id,
            } => Publication::new(channel, &name, data.into_owned(), except)
                .from_member(user_id.as_deref().map(Arc::from)),
            WireMessage::MemberAdded(member) => Publication::with(
                channel,
                Message::MemberAdded(Arc::new(member.into_owned())),
                except,
            ),
            WireMessage::MemberRemoved(member) => Publication::with(
                channel,
                Message::MemberRemoved(Arc::new(member.into_owned())),
                except,
            ),
            WireMessage::Terminate => Publication::with(channel, Message::Terminate, except),
            WireMessage::SubscriptionCount(count) => {
                Publication::with(channel, Message::SubscriptionCount(count), except)
            }
            WireMessage::Watchlist { user_id, online } => Publication::with(
                channel,
                Message::Watchlist {
                    user_id: Arc::from(user_id.as_ref()),
                    online,
                },
                except,
            ),
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
        let relayed = Relayed::of("n1", &publication, false);
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
    fn cluster_counts_and_watchlists_cross() {
        let count = Publication::with("c", Message::SubscriptionCount(3), None);
        let text = serde_json::to_string(&Relayed::of("n", &count, false)).expect("json");
        let back: Relayed = serde_json::from_str(&text).expect("parses");
        assert!(matches!(
            back.into_publication().message,
            Message::SubscriptionCount(3)
        ));
        let watchlist = Publication::with(
            "#watchlist-1",
            Message::Watchlist {
                user_id: Arc::from("2"),
                online: true,
            },
            None,
        );
        let text = serde_json::to_string(&Relayed::of("n", &watchlist, false)).expect("json");
        let back: Relayed = serde_json::from_str(&text).expect("parses");
        match back.into_publication().message {
            Message::Watchlist { user_id, online } => assert_eq!((&*user_id, online), ("2", true)),
            other => panic!("{other:?}"),
        }
    }
}
