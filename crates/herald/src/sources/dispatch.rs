//! The one way a source hands an event to the Hub. It knows no protocol: what one protocol
//! cannot carry is said by that protocol's adapter (e.g. Socket.IO's reserved event names).

use crate::hub::{ChannelChange, Hub, Publication};

/// Publishes to the Hub, with the counters every source shares (`source` is `redis`, `http`
/// or `whisper`). Returns how many connections it was queued for.
pub fn dispatch(hub: &Hub, publication: &Publication, source: &'static str) -> usize {
    crate::metrics::metrics().publication(source);
    hub.remember(publication);
    hub.publish(publication)
}

/// Publishes a client event (a whisper), whichever protocol its sender speaks: counted as
/// `whisper`, told to the Hub's watcher (the `client_event` webhook) first, and never kept as a
/// cache channel's last event.
pub fn dispatch_client_event(hub: &Hub, publication: &Publication) -> usize {
    crate::metrics::metrics().publication("whisper");
    hub.observe(ChannelChange::ClientEvent(publication));
    hub.publish(publication)
}
