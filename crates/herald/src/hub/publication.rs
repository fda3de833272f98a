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
        }
    }
}
