//! The Hub: which connection listens to which channel, and fan-out of publications.
//!
//! It knows no wire protocol, no HTTP and no Redis. Protocol adapters register
//! [`Subscriber`]s; sources call [`Hub::publish`].

pub mod activity;
mod admission;
mod cache;
mod channel_name;
pub mod handover;
mod publication;
mod registry;
mod space;

pub use activity::{Activity, ActivityTap, EventSource};
pub use cache::{CACHE_TTL, MAX_CACHED_CHANNELS, is_cache_channel};
pub use channel_name::{
    ChannelKind, ChannelNameError, MAX_CHANNEL_NAME_BYTES, user_channel, user_of_channel,
    validate_channel_name, validate_subscription, watchlist_channel,
};
pub use handover::{Fanout, Handover, WorkerId, enter_worker};
pub use publication::{Member, Message, Publication, SocketId, data_as_text, user_id_text};
pub use registry::{ChannelInfo, Hub, Subscribed, Unsubscribed};
pub use space::{Space, app_of, visible_name};

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for the connection's writer.
    Queued,
    /// The connection is gone; nothing was sent.
    Closed,
    /// The connection's queue is full; the subscriber disconnects itself as too slow.
    Overflow,
    /// The subscriber's protocol cannot carry this publication (e.g. a reserved event name).
    Skipped,
}

/// One connection's presence in channels, as the Hub sees it.
///
/// `deliver` runs on the publish path under a shard's read lock: it must never block or
/// await, only enqueue (or refuse) and return.
pub trait Subscriber: Send + Sync + 'static {
    /// The id clients and Laravel know this connection by (`X-Socket-ID`).
    fn socket_id(&self) -> &SocketId;
    /// Queues `publication` for this connection. `frames` holds what other connections of the
    /// same publish already encoded: a protocol encodes a publication once, not per recipient.
    fn deliver(&self, publication: &Publication, frames: &mut Frames<'_>) -> Delivery;
}

/// A frame's text, shared by every recipient of a publication: UTF-8 checked once, when it is
/// made (from a `String`), then cloned per recipient as a reference count. A websocket text
/// frame needs UTF-8; checking it per recipient cost a full pass over every byte sent.
pub use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes as FrameText;

/// A wire format's name, e.g. `"pusher"`: the key of its frame in [`Frames`].
pub type WireFormat = &'static str;

/// The frames one publish has encoded so far, at most one per wire format. The Hub makes one
/// per publish (and per worker that delivers it) and never looks inside: the bytes are each
/// protocol's own business.
#[derive(Default)]
pub struct Frames<'a> {
    encoded: Vec<(WireFormat, Option<FrameText>)>,
    /// What other threads delivering the same publication encoded (see [`handover`]).
    shared: Option<&'a handover::SharedFrames>,
}

impl<'a> Frames<'a> {
    /// Frames that look in `shared` before encoding, and leave what they encode there.
    fn backed_by(shared: &'a handover::SharedFrames) -> Frames<'a> {
        Frames {
            encoded: Vec::new(),
            shared: Some(shared),
        }
    }

    /// The frame of `format`, encoded by `encode` the first time it is asked for (`None` when
    /// the format cannot carry the publication).
    pub fn get_or_encode(
        &mut self,
        format: WireFormat,
        encode: impl FnOnce() -> Option<FrameText>,
    ) -> Option<FrameText> {
        let shared = self.shared;
        find_or_encode(&mut self.encoded, format, || match shared {
            Some(shared) => shared.get_or_encode(format, encode),
            None => encode(),
        })
    }

    /// What was encoded, to be shared with other threads.
    fn into_encoded(self) -> Vec<(WireFormat, Option<FrameText>)> {
        self.encoded
    }
}

/// The frame of `format` in `encoded`, or the one `encode` makes, kept there for the next asker.
fn find_or_encode(
    encoded: &mut Vec<(WireFormat, Option<FrameText>)>,
    format: WireFormat,
    encode: impl FnOnce() -> Option<FrameText>,
) -> Option<FrameText> {
    if let Some((_, frame)) = encoded.iter().find(|(f, _)| *f == format) {
        return frame.clone();
    }
    let frame = encode();
    encoded.push((format, frame.clone()));
    frame
}

/// Something that happened to a channel (by its Hub key), told to a [`ChannelWatcher`].
#[derive(Debug, Clone, Copy)]
pub enum ChannelChange<'a> {
    /// The channel got its first subscriber on this node.
    Occupied(&'a str),
    /// The channel lost its last subscriber on this node.
    Vacated(&'a str),
    /// A user joined a presence channel (their first connection in it).
    MemberAdded(&'a str, &'a Member),
    /// A user left a presence channel (their last connection in it).
    MemberRemoved(&'a str, &'a Member),
    /// A client event (a whisper) is being published.
    ClientEvent(&'a Publication),
    /// A connection subscribed to a cache channel that has no event kept.
    CacheMiss(&'a str),
    /// The channel's subscription count changed (told under the channel's lock: read the
    /// count later, off the subscribe path).
    Counted(&'a str),
    /// The channel's subscription count, as last told to its subscribers (coalesced).
    SubscriptionCount(&'a str, usize),
    /// In a cluster: the channel got its first subscriber on any node (told by one node).
    ClusterOccupied(&'a str),
    /// In a cluster: the channel lost its last subscriber on every node, and none came back
    /// within the leave delay (told by one node).
    ClusterVacated(&'a str),
    /// In a cluster: the channel's count changed, and this node wrote the change (read the
    /// cluster's count later, off the subscribe path).
    ClusterCounted(&'a str),
}

/// Told of channel changes (webhooks watch this way).
///
/// Called under a shard's lock or on the publish path: it must only enqueue, never block.
pub trait ChannelWatcher: Send + Sync + 'static {
    /// One change.
    fn observe(&self, change: ChannelChange<'_>);
}

/// Carries publications to the other nodes of a cluster, which deliver them to their own
/// subscribers. Like a watcher, it must only enqueue.
pub trait Relay: Send + Sync + 'static {
    /// Sends `publication`; `cacheable` if a cache channel may keep it (an app's event).
    fn relay(&self, publication: &Publication, cacheable: bool);
}
