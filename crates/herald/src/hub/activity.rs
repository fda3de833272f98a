//! The activity tap: what happens on this node (connections, subscriptions, events,
//! authorizations, presence), as the debug console shows it live.
//!
//! Free when nobody watches: [`ActivityTap::record`] reads one relaxed atomic and returns; the
//! sighting is not even built. While a console watches, each sighting is serialized once, as one
//! JSON line, and put on a bounded broadcast queue; a watcher that falls behind loses the oldest
//! lines and is told how many (never the publisher waits). Protocol-free: adapters, sources and
//! the Hub describe what happened in these terms.

use super::space::{app_of, visible_name};
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

/// Sightings kept for a watcher that has not read them yet; beyond, its oldest are dropped.
pub const FEED_CAPACITY: usize = 4_096;

/// Bytes of an event's payload a sighting carries; the console says when it was cut.
pub const SHOWN_DATA_BYTES: usize = 16 * 1024;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    /// Laravel's Redis broadcaster.
    Redis,
    /// laravel-echo-server's HTTP API (an app key).
    EchoApi,
    /// Pusher's HTTP API (a signed request).
    PusherApi,
    /// A Socket.IO client's whisper.
    Whisper,
    /// A Pusher client's `client-` event.
    ClientEvent,
    /// The debug console's test form.
    Console,
    /// Another node of the cluster.
    Cluster,
}

/// One thing that happened. Channels are named as clients name them, with the isolated app
/// they belong to, if any.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    /// A connection opened.
    Connected {
        /// Its socket id.
        socket: String,
        /// `socket.io` or `pusher`.
        protocol: &'static str,
        /// Version and transport, e.g. `Engine.IO 4, websocket`.
        detail: String,
        /// The client's address.
        address: String,
        /// Its `User-Agent`, if it sent one.
        user_agent: String,
    },
    /// A connection closed.
    Disconnected {
        /// Its socket id.
        socket: String,
        /// Why, in a few words.
        reason: String,
    },
    /// A connection joined a channel.
    Subscribed {
        /// Its socket id.
        socket: String,
        /// The channel.
        channel: String,
        /// Its isolated app, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    /// A connection left a channel.
    Unsubscribed {
        /// Its socket id.
        socket: String,
        /// The channel.
        channel: String,
        /// Its isolated app, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    /// A channel got its first subscriber on this node.
    Occupied {
        /// The channel.
        channel: String,
        /// Its isolated app, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    /// A channel lost its last subscriber on this node.
    Vacated {
        /// The channel.
        channel: String,
        /// Its isolated app, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<String>,
    },
    /// An event was published.
    Event {
        /// Where it came from.
        source: EventSource,
        /// The channel.
        channel: String,
        /// Its isolated app, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<String>,
        /// The event's name.
        name: String,
        /// Its payload's JSON text, cut at [`SHOWN_DATA_BYTES`].
        data: String,
        /// The payload's whole size in bytes.
        data_bytes: usize,
        /// The connection it was not sent to (`toOthers`, the whisperer).
        #[serde(skip_serializing_if = "Option::is_none")]
        except: Option<String>,
        /// How many connections of this node it was queued for.
        delivered: usize,
    },
    /// A private or presence subscription was authorized, or refused.
    Authorization {
        /// The socket asking.
        socket: String,
        /// The channel.
        channel: String,
        /// Granted or refused.
        granted: bool,
        /// Why it was refused.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A user joined a presence channel (their first connection in it).
    MemberAdded {
        /// The channel.
        channel: String,
        /// Its isolated app, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<String>,
        /// The user.
        user_id: serde_json::Value,
        /// What the app said about them.
        #[serde(skip_serializing_if = "Option::is_none")]
        user_info: Option<serde_json::Value>,
    },
    /// A user left a presence channel (their last connection in it).
    MemberRemoved {
        /// The channel.
        channel: String,
        /// Its isolated app, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        app: Option<String>,
        /// The user.
        user_id: serde_json::Value,
    },
}

/// A channel's name and app, from its Hub key, as sightings carry them.
pub fn channel_of(key: &str) -> (String, Option<String>) {
    (visible_name(key).to_owned(), app_of(key).map(str::to_owned))
}

/// Characters of a client's `User-Agent` a sighting carries.
pub const SHOWN_USER_AGENT_CHARS: usize = 256;

/// A client's `User-Agent`, as a sighting carries it: at most [`SHOWN_USER_AGENT_CHARS`].
pub fn shown_user_agent(user_agent: &str) -> String {
    user_agent.chars().take(SHOWN_USER_AGENT_CHARS).collect()
}

/// `data` cut at [`SHOWN_DATA_BYTES`] (on a character boundary).
pub fn shown_data(data: &str) -> String {
    if data.len() <= SHOWN_DATA_BYTES {
        return data.to_owned();
    }
    let mut end = SHOWN_DATA_BYTES;
    while !data.is_char_boundary(end) {
        end -= 1;
    }
    data[..end].to_owned()
}

/// A sighting as it goes out: numbered, timed, then what happened.
#[derive(Serialize)]
struct Sighting<'a> {
    seq: u64,
    /// Milliseconds since the Unix epoch.
    at: u64,
    #[serde(flatten)]
    activity: &'a Activity,
}

/// Where activity is recorded, and watched from.
pub struct ActivityTap {
    watchers: Arc<AtomicUsize>,
    seq: AtomicU64,
    lines: broadcast::Sender<Bytes>,
}

impl Default for ActivityTap {
    fn default() -> Self {
        ActivityTap {
            watchers: Arc::default(),
            seq: AtomicU64::new(1),
            lines: broadcast::channel(FEED_CAPACITY).0,
        }
    }
}

impl ActivityTap {
    /// Whether anyone watches; when not, nothing is recorded.
    pub fn is_watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    /// Records what `describe` says happened, if anyone watches (else it is not called).
    /// Never blocks: a watcher that is behind loses its oldest lines.
    pub fn record(&self, describe: impl FnOnce() -> Activity) {
        if !self.is_watched() {
            return;
        }
        let activity = describe();
        let sighting = Sighting {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            activity: &activity,
        };
        let Ok(mut line) = serde_json::to_vec(&sighting) else {
            return;
        };
        line.push(b'\n');
        // No receiver (the last watcher left between the check and now): nothing to do.
        let _ = self.lines.send(Bytes::from(line));
    }

    /// Starts watching: every sighting from now on, one JSON line each.
    pub fn watch(&self) -> ActivityFeed {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        ActivityFeed {
            lines: self.lines.subscribe(),
            watchers: self.watchers.clone(),
        }
    }

    /// How many watch now.
    pub fn watcher_count(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }
}

/// What one watcher receives.
pub enum Seen {
    /// A sighting, as one JSON line.
    Line(Bytes),
    /// This many sightings were dropped because the watcher was behind.
    Dropped(u64),
    /// The tap is gone (the server is stopping).
    End,
}

/// One watcher's view of the tap; dropping it stops the watching.
pub struct ActivityFeed {
    lines: broadcast::Receiver<Bytes>,
    watchers: Arc<AtomicUsize>,
}

impl ActivityFeed {
    /// The next sighting, waiting for one.
    pub async fn next(&mut self) -> Seen {
        match self.lines.recv().await {
            Ok(line) => Seen::Line(line),
            Err(broadcast::error::RecvError::Lagged(n)) => Seen::Dropped(n),
            Err(broadcast::error::RecvError::Closed) => Seen::End,
        }
    }

    /// The next sighting if one is waiting.
    pub fn try_next(&mut self) -> Option<Seen> {
        match self.lines.try_recv() {
            Ok(line) => Some(Seen::Line(line)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Seen::Dropped(n)),
            Err(broadcast::error::TryRecvError::Closed) => Some(Seen::End),
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }
}

impl Drop for ActivityFeed {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscribed(channel: &str) -> Activity {
        Activity::Subscribed {
            socket: "1.2".into(),
            channel: channel.into(),
            app: None,
        }
    }

    #[test]
    fn nothing_is_built_while_nobody_watches() {
        let tap = ActivityTap::default();
        tap.record(|| unreachable!("described with no watcher"));
        assert!(!tap.is_watched());
    }

    #[tokio::test]
    async fn a_watcher_gets_each_sighting_as_one_json_line() {
        let tap = ActivityTap::default();
        let mut feed = tap.watch();
        tap.record(|| subscribed("orders"));
        let Seen::Line(line) = feed.next().await else {
            panic!("no line")
        };
        assert!(line.ends_with(b"\n"));
        let value: serde_json::Value = serde_json::from_slice(&line).expect("a JSON line");
        assert_eq!(value["kind"], "subscribed");
        assert_eq!(value["channel"], "orders");
        assert_eq!(value["socket"], "1.2");
        assert!(value["seq"].as_u64().is_some() && value["at"].as_u64().is_some());
        assert!(value.get("app").is_none());
        drop(feed);
        assert_eq!(tap.watcher_count(), 0);
    }

    #[tokio::test]
    async fn a_watcher_behind_is_told_how_many_it_lost() {
        let tap = ActivityTap::default();
        let mut feed = tap.watch();
        for i in 0..FEED_CAPACITY + 10 {
            tap.record(|| subscribed(&format!("c{i}")));
        }
        let Seen::Dropped(lost) = feed.next().await else {
            panic!("not told of the loss")
        };
        assert_eq!(lost, 10);
        let Seen::Line(line) = feed.next().await else {
            panic!("no line after the loss")
        };
        let value: serde_json::Value = serde_json::from_slice(&line).expect("a JSON line");
        assert_eq!(value["channel"], "c10");
    }

    #[test]
    fn long_payloads_are_cut_on_a_character_boundary() {
        let text = "é".repeat(SHOWN_DATA_BYTES);
        let shown = shown_data(&text);
        assert!(shown.len() <= SHOWN_DATA_BYTES);
        assert!(text.starts_with(&shown));
        assert_eq!(shown_data("{}"), "{}");
    }
}
