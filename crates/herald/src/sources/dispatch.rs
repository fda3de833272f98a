//! The one way a source hands an event to the Hub. It knows no protocol: what one protocol
//! cannot carry is said by that protocol's adapter (e.g. Socket.IO's reserved event names).

use crate::hub::activity::{Activity, channel_of, shown_data};
use crate::hub::{ChannelChange, EventSource, Hub, Message, Publication};

/// The `source` label of `herald_publications_total`: both HTTP APIs (and the console's form,
/// which takes their path) count as `http`, whispers and client events as `whisper`.
fn metric_label(source: EventSource) -> &'static str {
    match source {
        EventSource::Redis => "redis",
        EventSource::EchoApi | EventSource::PusherApi | EventSource::Console => "http",
        EventSource::Whisper | EventSource::ClientEvent => "whisper",
        EventSource::Cluster => "cluster",
    }
}

/// Publishes an app's event to the Hub, with the counters every source shares; keeps it as a
/// cache channel's last event, and sends it to the cluster's other nodes unless they receive
/// it themselves (Redis). Returns how many connections of this node it was queued for.
pub fn dispatch(hub: &Hub, publication: &Publication, source: EventSource) -> usize {
    crate::metrics::metrics().publication(metric_label(source));
    hub.remember(publication);
    let delivered = match source {
        EventSource::Redis => hub.publish(publication),
        _ => hub.broadcast(publication, true),
    };
    record_event(hub, publication, source, delivered);
    delivered
}

/// Publishes a client event (a whisper), whichever protocol its sender speaks: counted as
/// `whisper`, told to the Hub's watchers (the `client_event` webhook) first, sent to the other
/// nodes, and never kept as a cache channel's last event.
pub fn dispatch_client_event(hub: &Hub, publication: &Publication, source: EventSource) -> usize {
    crate::metrics::metrics().publication(metric_label(source));
    hub.observe(ChannelChange::ClientEvent(publication));
    let delivered = hub.broadcast(publication, false);
    record_event(hub, publication, source, delivered);
    delivered
}

/// Delivers a publication another node of the cluster sent to this node's subscribers (never
/// relayed again).
pub fn deliver_from_cluster(hub: &Hub, publication: &Publication) -> usize {
    let delivered = hub.publish(publication);
    record_event(hub, publication, EventSource::Cluster, delivered);
    delivered
}

/// Shows an event on the debug console, if one watches.
fn record_event(hub: &Hub, publication: &Publication, source: EventSource, delivered: usize) {
    let Message::Event { name, data, .. } = &publication.message else {
        return;
    };
    hub.activity().record(|| {
        let (channel, app) = channel_of(&publication.channel);
        Activity::Event {
            source,
            channel,
            app,
            name: name.to_string(),
            data: shown_data(data.get()),
            data_bytes: data.get().len(),
            except: publication.except.as_ref().map(|s| s.as_str().to_owned()),
            delivered,
        }
    });
}
