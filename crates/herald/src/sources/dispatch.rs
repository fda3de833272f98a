//! The one way a source hands an event to the Hub.

use crate::console;
use crate::hub::{Hub, Publication};
use crate::protocol::socketio::is_reserved_event_name;

/// Publishes to the Hub, with the warnings and counters every source shares (`source` is
/// `redis`, `http` or `whisper`). Returns how many connections it was queued for.
pub fn dispatch(hub: &Hub, publication: &Publication, source: &'static str) -> usize {
    crate::metrics::metrics().publication(source);
    if is_reserved_event_name(&publication.event) {
        console::warning(&format!(
            "Event {:?} on channel {} is a name Socket.IO reserves for its own use; Socket.IO clients will not receive it. Rename it with broadcastAs().",
            publication.event, publication.channel
        ));
    }
    hub.publish(publication)
}
