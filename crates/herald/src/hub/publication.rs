//! An event on its way to a channel's subscribers.

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

/// What a publication is, so each protocol can name it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationKind {
    /// An app event or a whisper, delivered under its own name.
    Event,
    /// A user joined a presence channel (`data` is the member).
    MemberAdded,
    /// A user left a presence channel (`data` is the member).
    MemberRemoved,
}

/// An event for one channel. `data` is kept as the exact JSON text received, so it reaches
/// clients untouched (key order, number precision, escapes).
#[derive(Debug, Clone)]
pub struct Publication {
    /// Channel name, without any Redis prefix.
    pub channel: Arc<str>,
    /// Event name, e.g. `App\Events\OrderShipped`.
    pub event: Arc<str>,
    /// Event payload as raw JSON.
    pub data: Arc<RawValue>,
    /// The sender's socket id (`toOthers`): that connection does not receive it.
    pub except: Option<SocketId>,
    /// Event, or a presence change.
    pub kind: PublicationKind,
}

impl Publication {
    /// Builds a publication; `data` must already be valid JSON text.
    pub fn new(
        channel: &str,
        event: &str,
        data: Box<RawValue>,
        except: Option<SocketId>,
    ) -> Publication {
        Publication {
            channel: Arc::from(channel),
            event: Arc::from(event),
            data: Arc::from(data),
            except,
            kind: PublicationKind::Event,
        }
    }

    /// A presence change on `channel`, for everyone but `except`.
    pub fn presence(
        channel: &str,
        kind: PublicationKind,
        member: &serde_json::Value,
        except: Option<SocketId>,
    ) -> Publication {
        let data =
            serde_json::value::to_raw_value(member).unwrap_or_else(|_| Box::<RawValue>::default());
        // Adapters name presence changes their own way, by `kind`; this name is for logs.
        let event = match kind {
            PublicationKind::MemberAdded => "member_added",
            PublicationKind::MemberRemoved => "member_removed",
            PublicationKind::Event => "member_updated",
        };
        Publication {
            kind,
            ..Publication::new(channel, event, data, except)
        }
    }
}
