//! The one way a source hands an event to the Hub. It knows no protocol: what one protocol
//! cannot carry is said by that protocol's adapter (e.g. Socket.IO's reserved event names).

use crate::hub::{Hub, Publication};

/// Publishes to the Hub, with the counters every source shares (`source` is `redis`, `http`
/// or `whisper`). Returns how many connections it was queued for.
pub fn dispatch(hub: &Hub, publication: &Publication, source: &'static str) -> usize {
    crate::metrics::metrics().publication(source);
    hub.publish(publication)
}
