//! An event on its way to a channel's subscribers.

use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;
use std::sync::Arc;

/// A connection id as clients see it: cheap to clone, compared by value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(Arc<str>);

impl SocketId {
    /// Wraps an id string.
    pub fn new(id: &str) -> SocketId {
        SocketId(Arc::from(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for SocketId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A presence member as every protocol shows it to the others in the channel: the app's user
/// id and what the channel callback returned about the user, never a socket id.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    /// The app's user id, a JSON string or number as the app sent it (Socket.IO clients see
    /// it as sent; the Pusher protocol turns it into text).
    pub user_id: Value,
    /// `user_info` from the channel data, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_info: Option<Value>,
}

impl Member {
    /// The user id as text: `7` and `"7"` are the same user.
    pub fn user_id_text(&self) -> String {
        user_id_text(&self.user_id)
    }
}

/// A user id (string or number) as text.
pub fn user_id_text(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// What a publication carries; each protocol names and shapes it its own way.
#[derive(Debug, Clone)]
pub enum Message {
    /// An app event, a whisper or a client event, delivered under its own name.
    Event {
        /// Event name, e.g. `App\Events\OrderShipped`.
        name: Arc<str>,
        /// Payload as the exact JSON text received, so it reaches clients untouched (key
        /// order, number precision, escapes).
        data: Arc<RawValue>,
        /// The sending member's user id, for a client event on a presence channel.
        user_id: Option<Arc<str>>,
    },
    /// A user joined a presence channel (their first connection in it).
    MemberAdded(Arc<Member>),
    /// A user left a presence channel (their last connection in it).
    MemberRemoved(Arc<Member>),
    /// A watched user came online (their first signed-in connection) or went offline (their
    /// last one closed).
    Watchlist {
        /// The watched user.
        user_id: Arc<str>,
        /// Online, or offline.
        online: bool,
    },
    /// The connections that receive it are to be closed: the app terminated a user's
    /// connections.
    Terminate,
    /// The channel's subscription count (`enableSubscriptionCount`).
    SubscriptionCount(usize),
}

/// Something for one channel's subscribers.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Channel name, without any Redis prefix.
    pub channel: Arc<str>,
    /// The sender's socket id (`toOthers`): that connection does not receive it.
    pub except: Option<SocketId>,
    /// The event or presence change.
    pub message: Message,
}

impl Publication {
    /// An event; `data` must already be valid JSON text.
    pub fn new(
        channel: &str,
        event: &str,
        data: Box<RawValue>,
        except: Option<SocketId>,
    ) -> Publication {
        Publication {
            channel: Arc::from(channel),
            except,
            message: Message::Event {
                name: Arc::from(event),
                data: Arc::from(data),
                user_id: None,
            },
        }
    }

    /// A client event from a presence member: receivers learn who sent it.
    pub fn from_member(mut self, user_id: Option<Arc<str>>) -> Publication {
        if let Message::Event {
            user_id: sender, ..
        } = &mut self.message
        {
            *sender = user_id;
        }
        self
    }

    /// Any message (a presence change, a watchlist change…) on `channel`, for everyone but
    /// `except`.
    pub fn with(channel: &str, message: Message, except: Option<SocketId>) -> Publication {
        Publication {
            channel: Arc::from(channel),
            except,
            message,
        }
    }

    /// The event's name, or the presence change's, for logs and counters.
    pub fn name(&self) -> &str {
        match &self.message {
            Message::Event { name, .. } => name,
            Message::MemberAdded(_) => "member_added",
            Message::MemberRemoved(_) => "member_removed",
            Message::Watchlist { .. } => "watchlist",
            Message::Terminate => "terminate",
            Message::SubscriptionCount(_) => "subscription_count",
        }
    }

    /// Bytes of the payload as received (0 for a presence change), for the byte counters.
    pub fn payload_bytes(&self) -> usize {
        match &self.message {
            Message::Event { data, .. } => data.get().len(),
            _ => 0,
        }
    }
}

/// Event data as the Pusher protocol, its API and webhooks carry it, a string: a JSON string as
/// its text, anything else (Laravel's Redis broadcaster and laravel-echo-server's API send
/// objects) as its JSON text. Only a JSON string is decoded: an object is not parsed into a tree
/// just to learn it is not a string.
pub fn data_as_text(data: &RawValue) -> String {
    let text = data.get();
    if text.starts_with('"')
        && let Ok(decoded) = serde_json::from_str::<String>(text)
    {
        return decoded;
    }
    text.to_owned()
}
