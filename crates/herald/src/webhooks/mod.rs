//! Webhooks: an app's URLs are told what happens to its channels — occupied and vacated, presence
//! members added and removed, client events — as Pusher tells them (soketi's configuration
//! shape, Pusher's body and signature), for subscribers of every protocol.
//!
//! Never on the publish path: the Hub and presence hand each change to [`Webhooks::observe`],
//! which only puts it on a bounded queue. One task takes it from there (`dispatcher.rs`: the
//! delays of `channel_vacated` and `member_removed`, batching, routing to apps), and each batch
//! is sent, retried and finally given up on by a task of its own (`delivery.rs`).

mod delivery;
mod dispatcher;
mod event;

pub use event::WebhookEvent;

use crate::config::{ApiClient, WebhookKind, WebhookTarget};
use crate::hub::{ChannelChange, ChannelWatcher, Message, Space, data_as_text, visible_name};
use crate::presence::LeaveMarks;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Changes waiting for the dispatcher; beyond, a change is dropped (and counted).
const QUEUE: usize = 10_000;

/// How long a vacated channel or a removed member waits to be told, in case it comes back
/// (Pusher: "up to 3 seconds").
pub const LEAVE_DELAY: Duration = Duration::from_secs(3);

/// An app with webhooks.
#[derive(Debug)]
pub(crate) struct WebhookApp {
    /// Sent as `X-Pusher-Key`.
    key: String,
    /// Signs each body.
    secret: String,
    /// Its channels.
    space: Space,
    /// Its webhooks.
    targets: Vec<WebhookTarget>,
}

/// A change on its way to the dispatcher: the Hub key of its channel, and what happened.
#[derive(Debug)]
pub(crate) struct Noted {
    channel: String,
    event: WebhookEvent,
    /// Already past the leave delay (a cluster's vacancy, confirmed): told without waiting.
    settled: bool,
}

/// The webhooks of every app: a [`ChannelWatcher`] for the Hub.
pub struct Webhooks {
    queue: mpsc::Sender<Noted>,
    /// The kinds at least one webhook wants: the rest are not even queued.
    wanted: HashSet<WebhookKind>,
    /// In a cluster, channels are occupied and vacated for the whole cluster
    /// ([`ChannelChange::ClusterOccupied`]), not per node.
    cluster: bool,
}

impl Webhooks {
    /// Starts the dispatcher for the apps with webhooks; `None` when no app has one (then
    /// nothing watches the Hub, and nothing is spent). `cluster`: this node is one of several.
    /// `marks`: presence's leave marks, which held `member_removed` events wait on.
    pub fn start(
        clients: &[ApiClient],
        cluster: bool,
        marks: Option<Arc<dyn LeaveMarks>>,
    ) -> anyhow::Result<Option<Arc<Webhooks>>> {
        let apps: Vec<WebhookApp> = clients
            .iter()
            .filter(|client| !client.webhooks.is_empty())
            .filter_map(|client| {
                Some(WebhookApp {
                    key: client.key.clone(),
                    secret: client.secret.clone()?,
                    space: client.space(),
                    targets: client.webhooks.clone(),
                })
            })
            .collect();
        if apps.is_empty() {
            return Ok(None);
        }
        let wanted = apps
            .iter()
            .flat_map(|app| app.targets.iter().flat_map(|t| t.kinds.iter().copied()))
            .collect();
        let sender = delivery::Sender::new()?;
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(dispatcher::run(rx, apps, sender, marks));
        Ok(Some(Arc::new(Webhooks {
            queue,
            wanted,
            cluster,
        })))
    }

    fn note(&self, channel: &str, event: WebhookEvent) {
        self.note_as(channel, event, false);
    }

    fn note_as(&self, channel: &str, event: WebhookEvent, settled: bool) {
        // `#`-channels are the server's own (users, watchlists): nothing an app is told of.
        if !self.wanted.contains(&event.kind()) || visible_name(channel).starts_with('#') {
            return;
        }
        let noted = Noted {
            channel: channel.to_owned(),
            event,
            settled,
        };
        if self.queue.try_send(noted).is_err() {
            crate::metrics::metrics().webhook_events_dropped.inc();
            tracing::warn!(channel = %channel, "webhook queue full: an event was dropped");
        }
    }
}

impl ChannelWatcher for Webhooks {
    fn observe(&self, change: ChannelChange<'_>) {
        match change {
            // In a cluster, told for the whole cluster instead (below).
            ChannelChange::Occupied(_) | ChannelChange::Vacated(_) if self.cluster => {}
            ChannelChange::ClusterOccupied(channel) => self.note(channel, WebhookEvent::Occupied),
            ChannelChange::ClusterVacated(channel) => {
                self.note_as(channel, WebhookEvent::Vacated, true)
            }
            ChannelChange::ClusterCounted(_) => {}
            ChannelChange::Occupied(channel) => self.note(channel, WebhookEvent::Occupied),
            ChannelChange::CacheMiss(channel) => self.note(channel, WebhookEvent::CacheMiss),
            ChannelChange::SubscriptionCount(channel, count) => {
                self.note(channel, WebhookEvent::SubscriptionCount { count })
            }
            ChannelChange::Counted(_) => {}
            ChannelChange::Vacated(channel) => self.note(channel, WebhookEvent::Vacated),
            ChannelChange::MemberAdded(channel, member) => self.note(
                channel,
                WebhookEvent::MemberAdded {
                    user_id: member.user_id_text(),
                },
            ),
            ChannelChange::MemberRemoved(channel, member) => self.note(
                channel,
                WebhookEvent::MemberRemoved {
                    user_id: member.user_id_text(),
                },
            ),
            ChannelChange::ClientEvent(publication) => {
                let Message::Event {
                    name,
                    data,
                    user_id,
                } = &publication.message
                else {
                    return;
                };
                if !self.wanted.contains(&WebhookKind::ClientEvent) {
                    return;
                }
                let event = WebhookEvent::ClientEvent {
                    event: name.to_string(),
                    data: data_as_text(data),
                    socket_id: publication.except.as_ref().map(|id| id.to_string()),
                    user_id: user_id.as_deref().map(str::to_owned),
                };
                self.note(&publication.channel, event);
            }
        }
    }
}
