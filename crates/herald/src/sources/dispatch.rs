//! The one way a source hands an event to the Hub. It knows no protocol: what one protocol
//! cannot carry is said by that protocol's adapter (e.g. Socket.IO's reserved event names).

use crate::hub::{ChannelChange, Hub, Publication};

/// Where a publication came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Laravel's Redis broadcaster: every node of a cluster receives it from Redis itself.
    Redis,
    /// Either HTTP API: it reaches the other nodes of a cluster through the bus.
    Http,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Redis => "redis",
            Source::Http => "http",
        }
    }
}

/// Publishes an app's event to the Hub, with the counters every source shares; keeps it as a
/// cache channel's last event, and sends it to the cluster's other nodes unless they receive
/// it themselves (Redis). Returns how many connections of this node it was queued for.
pub fn dispatch(hub: &Hub, publication: &Publication, source: Source) -> usize {
    crate::metrics::metrics().publication(source.label());
    hub.remember(publication);
    match source {
        Source::Redis => hub.publish(publication),
        Source::Http => hub.broadcast(publication, true),
    }
}

/// Publishes a client event (a whisper), whichever protocol its sender speaks: counted as
/// `whisper`, told to the Hub's watchers (the `client_event` webhook) first, sent to the other
/// nodes, and never kept as a cache channel's last event.
pub fn dispatch_client_event(hub: &Hub, publication: &Publication) -> usize {
    crate::metrics::metrics().publication("whisper");
    hub.observe(ChannelChange::ClientEvent(publication));
    hub.broadcast(publication, false)
}
