//! The Hub: which connection listens to which channel, and fan-out of publications.
//!
//! It knows no wire protocol, no HTTP and no Redis. Protocol adapters register
//! [`Subscriber`]s; sources call [`Hub::publish`].

mod channel_name;
mod publication;
mod registry;

pub use channel_name::{
    ChannelKind, ChannelNameError, MAX_CHANNEL_NAME_BYTES, validate_channel_name,
};
pub use publication::{Publication, PublicationKind, SocketId};
pub use registry::{ChannelInfo, Hub};

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
    /// Queues `publication` for this connection.
    fn deliver(&self, publication: &Publication) -> Delivery;
}
