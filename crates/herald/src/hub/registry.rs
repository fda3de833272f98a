//! The sharded channel registry and the fan-out loop.

use super::activity::{Activity, ActivityTap, channel_of};
use super::admission::Admission;
use super::cache::ChannelCache;
use super::handover::{Fanout, Handover, SharedFrames, WorkerId, current_worker};
use super::{
    ChannelChange, ChannelWatcher, Delivery, Frames, Publication, Relay, SocketId, Subscriber,
};
use crate::metrics::metrics;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Number of shards; a publish locks one, so unrelated channels never contend.
const SHARDS: usize = 64;

type Subscribers = HashMap<SocketId, Arc<dyn Subscriber>>;

/// A channel's subscribers whose tasks run on one worker (`None`: on no worker).
struct Group {
    worker: Option<WorkerId>,
    subscribers: Subscribers,
}

/// One channel's subscribers, grouped by the worker that runs their connections' tasks: a
/// publication is handed to each worker once, and the worker delivers to its own group. Only
/// workers that have subscribers here have a group, so a channel with one subscriber holds
/// one.
#[derive(Default)]
struct Members {
    groups: Vec<Group>,
}

impl Members {
    fn len(&self) -> usize {
        self.groups.iter().map(|g| g.subscribers.len()).sum()
    }

    fn contains(&self, id: &SocketId) -> bool {
        self.groups.iter().any(|g| g.subscribers.contains_key(id))
    }

    fn group(&self, worker: Option<WorkerId>) -> Option<&Subscribers> {
        self.groups
            .iter()
            .find(|g| g.worker == worker)
            .map(|g| &g.subscribers)
    }

    fn insert(&mut self, worker: Option<WorkerId>, id: SocketId, subscriber: Arc<dyn Subscriber>) {
        let index = match self.groups.iter().position(|g| g.worker == worker) {
            Some(index) => index,
            None => {
                self.groups.push(Group {
                    worker,
                    subscribers: HashMap::default(),
                });
                self.groups.len() - 1
            }
        };
        self.groups[index].subscribers.insert(id, subscriber);
    }

    /// Removes `id`, from whichever group holds it.
    fn remove(&mut self, id: &SocketId) -> bool {
        let Some(index) = self
            .groups
            .iter()
            .position(|g| g.subscribers.contains_key(id))
        else {
            return false;
        };
        self.groups[index].subscribers.remove(id);
        if self.groups[index].subscribers.is_empty() {
            self.groups.swap_remove(index);
        }
        true
    }

    fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// What one thread's deliveries of a publication came to.
#[derive(Default)]
struct Tally {
    queued: usize,
    overflowed: u64,
}

impl Tally {
    /// Delivers `publication` to each of `subscribers` but its sender.
    fn deliver(
        &mut self,
        subscribers: &Subscribers,
        publication: &Publication,
        frames: &mut Frames<'_>,
    ) {
        for (id, subscriber) in subscribers {
            if publication.except.as_ref() == Some(id) {
                continue;
            }
            match subscriber.deliver(publication, frames) {
                Delivery::Queued => self.queued += 1,
                Delivery::Overflow => self.overflowed += 1,
                Delivery::Closed | Delivery::Skipped => {}
            }
        }
    }

    /// Counts the deliveries once per publication and thread, not per recipient: shared
    /// counters touched N times per fan-out would bounce their cache line between cores.
    fn count(self, publication: &Publication) {
        let metrics = metrics();
        metrics.ws_messages_sent.inc_by(self.queued as u64);
        if self.overflowed > 0 {
            metrics.queue_drops.inc_by(self.overflowed);
        }
        metrics
            .socket_transmitted_bytes
            .inc_by((self.queued * publication.payload_bytes()) as u64);
    }
}

/// One shard: channel name → its subscribers. Counts derive from the maps, under one lock.
#[derive(Default)]
struct Shard {
    channels: HashMap<Arc<str>, Members>,
}

/// A channel and how many connections listen to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Channel name.
    pub name: String,
    /// Subscribed connections on this node.
    pub subscription_count: usize,
}

/// What [`Hub::subscribe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscribed {
    /// Nothing: the connection was subscribed already.
    Already,
    /// Subscribed; the channel had subscribers before.
    Joined,
    /// Subscribed, as the channel's first subscriber on this node.
    First,
}

/// What [`Hub::unsubscribe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsubscribed {
    /// Nothing: the connection was not subscribed.
    NotThere,
    /// Unsubscribed; others remain.
    Left,
    /// Unsubscribed, as the channel's last subscriber on this node.
    Last,
}

/// The channel changes the debug console shows, as it shows them.
fn describe_change(change: ChannelChange<'_>) -> Option<Activity> {
    Some(match change {
        ChannelChange::Occupied(key) => {
            let (channel, app) = channel_of(key);
            Activity::Occupied { channel, app }
        }
        ChannelChange::Vacated(key) => {
            let (channel, app) = channel_of(key);
            Activity::Vacated { channel, app }
        }
        ChannelChange::MemberAdded(key, member) => {
            let (channel, app) = channel_of(key);
            Activity::MemberAdded {
                channel,
                app,
                user_id: member.user_id.clone(),
                user_info: member.user_info.clone(),
            }
        }
        ChannelChange::MemberRemoved(key, member) => {
            let (channel, app) = channel_of(key);
            Activity::MemberRemoved {
                channel,
                app,
                user_id: member.user_id.clone(),
            }
        }
        // Not shown: the rest is bookkeeping, or shown where it happens (client events).
        _ => return None,
    })
}

/// The registry of channels and connections on this node, and the fan-out.
pub struct Hub {
    shards: Box<[RwLock<Shard>]>,
    hasher: BuildHasherDefault<DefaultHasher>,
    admission: Admission,
    /// Told of channel changes, if anyone watches (webhooks, subscription counts); unset
    /// costs nothing.
    watchers: OnceLock<Box<[Arc<dyn ChannelWatcher>]>>,
    /// The last event of each cache channel.
    cache: ChannelCache,
    /// The other nodes of a cluster, if this node is one of several.
    relay: OnceLock<Arc<dyn Relay>>,
    /// What happens here, for the debug console; free while nobody watches.
    activity: ActivityTap,
    /// The worker threads, once they run: publications for their subscribers are handed to
    /// them (see [`super::handover`]).
    handover: OnceLock<Arc<dyn Handover>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        Hub {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: BuildHasherDefault::default(),
            admission: Admission::default(),
            watchers: OnceLock::new(),
            cache: ChannelCache::default(),
            relay: OnceLock::new(),
            activity: ActivityTap::default(),
            handover: OnceLock::new(),
        }
    }

    /// Hands later publications for subscribers on worker threads to those threads (set once,
    /// at start).
    pub fn hand_over_through(&self, handover: Arc<dyn Handover>) {
        let _ = self.handover.set(handover);
    }

    /// Sends later [`Hub::broadcast`]s to the cluster's other nodes too (set once, at start).
    pub fn relay_to(&self, relay: Arc<dyn Relay>) {
        let _ = self.relay.set(relay);
    }

    /// Delivers `publication` to this node's subscribers and, in a cluster, hands it to the
    /// other nodes for theirs. `cacheable`: other nodes may keep it as a cache channel's last
    /// event. Returns how many connections of this node it was queued for.
    pub fn broadcast(&self, publication: &Publication, cacheable: bool) -> usize {
        let queued = self.publish(publication);
        if let Some(relay) = self.relay.get() {
            relay.relay(publication, cacheable);
        }
        queued
    }

    /// Keeps `publication` as its channel's last event, if it is a cache channel.
    pub fn remember(&self, publication: &Publication) {
        self.cache.remember(publication);
    }

    /// The last event kept for cache channel `channel`, and how long it is still kept.
    pub fn cached(&self, channel: &str) -> Option<(Publication, std::time::Duration)> {
        self.cache.last(channel)
    }

    /// Tells `watchers` of every later channel change (set once, at start; a later call is
    /// ignored).
    pub fn watch(&self, watchers: Vec<Arc<dyn ChannelWatcher>>) {
        if !watchers.is_empty() {
            let _ = self.watchers.set(watchers.into());
        }
    }

    /// Whether anyone watches channel changes.
    pub fn is_watched(&self) -> bool {
        self.watchers.get().is_some()
    }

    /// Tells the watchers, if any, of `change` (and the activity tap of those it shows).
    pub fn observe(&self, change: ChannelChange<'_>) {
        for watcher in self.watchers.get().into_iter().flatten() {
            watcher.observe(change);
        }
        if self.activity.is_watched()
            && let Some(activity) = describe_change(change)
        {
            self.activity.record(|| activity);
        }
    }

    /// Where what happens on this node is recorded for the debug console.
    pub fn activity(&self) -> &ActivityTap {
        &self.activity
    }

    fn shard_index(&self, channel: &str) -> usize {
        (self.hasher.hash_one(channel) as usize) % SHARDS
    }

    fn read(&self, channel: &str) -> RwLockReadGuard<'_, Shard> {
        // A poisoned lock only means a panic elsewhere; the maps themselves stay consistent
        // because every mutation is a single insert or remove.
        self.shards[self.shard_index(channel)]
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self, channel: &str) -> RwLockWriteGuard<'_, Shard> {
        self.shards[self.shard_index(channel)]
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves room for a transport session opening now, unless open connections and
    /// sessions already reach `limit` (`limits.maxConnections`). See [`super::admission`].
    pub fn reserve_connection(&self, limit: usize) -> bool {
        self.admission.reserve(limit)
    }

    /// Gives back a reservation whose session did not open after all.
    pub fn release_reservation(&self) {
        self.admission.release();
    }

    /// Counts a new connection (for `/status`); it takes over its session's reservation.
    pub fn connection_opened(&self) {
        self.admission.opened();
    }

    /// Counts a closed connection.
    pub fn connection_closed(&self) {
        self.admission.closed();
    }

    /// Connections open on this node, subscribed or not.
    pub fn connection_count(&self) -> usize {
        self.admission.connected()
    }

    /// Adds `subscriber` to `channel` (idempotent). Whether it was the first is decided under
    /// the channel's lock: of two connections subscribing at once, exactly one is first.
    pub fn subscribe(&self, channel: &str, subscriber: Arc<dyn Subscriber>) -> Subscribed {
        let mut shard = self.write(channel);
        let (members, new) = match shard.channels.get_mut(channel) {
            Some(members) => (members, false),
            None => (shard.channels.entry(Arc::from(channel)).or_default(), true),
        };
        let id = subscriber.socket_id().clone();
        if members.contains(&id) {
            return Subscribed::Already;
        }
        self.activity.record(|| {
            let (channel, app) = channel_of(channel);
            Activity::Subscribed {
                socket: id.as_str().to_owned(),
                channel,
                app,
            }
        });
        members.insert(current_worker(), id, subscriber);
        metrics().subscriptions.inc();
        self.observe(ChannelChange::Counted(channel));
        if !new {
            return Subscribed::Joined;
        }
        self.observe(ChannelChange::Occupied(channel));
        Subscribed::First
    }

    /// Removes a connection from `channel`; whether it was the last is decided under the
    /// channel's lock.
    pub fn unsubscribe(&self, channel: &str, socket_id: &SocketId) -> Unsubscribed {
        let mut shard = self.write(channel);
        let Some(members) = shard.channels.get_mut(channel) else {
            return Unsubscribed::NotThere;
        };
        if !members.remove(socket_id) {
            return Unsubscribed::NotThere;
        }
        self.activity.record(|| {
            let (channel, app) = channel_of(channel);
            Activity::Unsubscribed {
                socket: socket_id.as_str().to_owned(),
                channel,
                app,
            }
        });
        metrics().subscriptions.dec();
        self.observe(ChannelChange::Counted(channel));
        if !members.is_empty() {
            return Unsubscribed::Left;
        }
        shard.channels.remove(channel);
        self.observe(ChannelChange::Vacated(channel));
        Unsubscribed::Last
    }

    /// Drops every subscription (at shutdown, once connections are closed).
    pub fn unsubscribe_all(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|p| p.into_inner());
            let removed: usize = shard.channels.values().map(Members::len).sum();
            shard.channels.clear();
            metrics().subscriptions.dec_by(removed as i64);
        }
    }

    /// Whether a connection is subscribed to `channel`.
    pub fn is_subscribed(&self, channel: &str, socket_id: &SocketId) -> bool {
        self.read(channel)
            .channels
            .get(channel)
            .is_some_and(|members| members.contains(socket_id))
    }

    /// Delivers `publication` to every subscriber of its channel except its sender: to those on
    /// no worker thread at once, and to each worker's in one handover. Returns the number of
    /// connections it was queued or handed over for.
    pub fn publish(&self, publication: &Publication) -> usize {
        let shard = self.read(&publication.channel);
        let Some(members) = shard.channels.get(&*publication.channel) else {
            return 0;
        };
        let handover = self.handover.get();
        // Delivery happens under the read lock: `deliver` and `hand_over` only enqueue, so the
        // lock is held for non-blocking pushes, and no per-publish Vec of handles is built.
        let mut inline = Tally::default();
        let mut frames = Frames::default();
        for group in &members.groups {
            if group.worker.is_none() || handover.is_none() {
                inline.deliver(&group.subscribers, publication, &mut frames);
            }
        }
        let mut handed = 0;
        if let Some(handover) = handover
            && members.groups.iter().any(|g| g.worker.is_some())
        {
            let fanout = Arc::new(Fanout {
                publication: publication.clone(),
                frames: SharedFrames::seeded(frames),
            });
            for group in &members.groups {
                let Some(worker) = group.worker else {
                    continue;
                };
                if handover.hand_over(worker, fanout.clone()) {
                    let sender = publication
                        .except
                        .as_ref()
                        .is_some_and(|id| group.subscribers.contains_key(id));
                    handed += group.subscribers.len() - usize::from(sender);
                } else {
                    // That worker is far behind: delivered from here rather than lost. Its
                    // connections may then see this one before older ones still queued.
                    metrics().worker_queue_full.inc();
                    let mut frames = Frames::backed_by(&fanout.frames);
                    inline.deliver(&group.subscribers, publication, &mut frames);
                }
            }
        }
        drop(shard);
        let queued = inline.queued;
        inline.count(publication);
        queued + handed
    }

    /// Delivers a publication handed to worker `worker` to that worker's subscribers of its
    /// channel (those subscribed since it was published included). Called on that worker's
    /// thread, so every wake-up is of a task on the same thread.
    pub fn deliver_handed(&self, fanout: &Fanout, worker: WorkerId) {
        let publication = &fanout.publication;
        let shard = self.read(&publication.channel);
        let Some(subscribers) = shard
            .channels
            .get(&*publication.channel)
            .and_then(|members| members.group(Some(worker)))
        else {
            return;
        };
        let mut tally = Tally::default();
        tally.deliver(
            subscribers,
            publication,
            &mut Frames::backed_by(&fanout.frames),
        );
        drop(shard);
        tally.count(publication);
    }

    /// Connections subscribed to `channel` on this node.
    pub fn subscription_count(&self, channel: &str) -> usize {
        self.read(channel)
            .channels
            .get(channel)
            .map_or(0, Members::len)
    }

    /// Occupied channels whose name starts with `prefix`, sorted by name.
    pub fn channels(&self, prefix: &str) -> Vec<ChannelInfo> {
        let mut list: Vec<ChannelInfo> = self
            .shards
            .iter()
            .flat_map(|shard| {
                let shard = shard.read().unwrap_or_else(|p| p.into_inner());
                shard
                    .channels
                    .iter()
                    .filter(|(name, _)| name.starts_with(prefix))
                    .map(|(name, members)| ChannelInfo {
                        name: name.to_string(),
                        subscription_count: members.len(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;
    use std::sync::Mutex;

    struct Recorder {
        id: SocketId,
        received: Mutex<Vec<String>>,
        answer: Delivery,
    }

    impl Recorder {
        fn new(id: &str) -> Arc<Recorder> {
            Arc::new(Recorder {
                id: SocketId::new(id),
                received: Mutex::default(),
                answer: Delivery::Queued,
            })
        }
        fn events(&self) -> Vec<String> {
            self.received.lock().expect("lock").clone()
        }
    }

    impl Subscriber for Recorder {
        fn socket_id(&self) -> &SocketId {
            &self.id
        }
        fn deliver(&self, publication: &Publication, _: &mut Frames<'_>) -> Delivery {
            self.received
                .lock()
                .expect("lock")
                .push(publication.name().to_string());
            self.answer
        }
    }

    fn publication(channel: &str, event: &str, except: Option<&str>) -> Publication {
        let data = RawValue::from_string("{}".into()).expect("json");
        Publication::new(channel, event, data, except.map(SocketId::new))
    }

    #[test]
    fn publish_reaches_subscribers_of_that_channel_only() {
        let hub = Hub::new();
        let (a, b) = (Recorder::new("a"), Recorder::new("b"));
        assert_eq!(hub.subscribe("orders", a.clone()), Subscribed::First);
        assert_eq!(hub.subscribe("news", b.clone()), Subscribed::First);
        assert_eq!(hub.publish(&publication("orders", "Shipped", None)), 1);
        assert_eq!(a.events(), vec!["Shipped"]);
        assert!(b.events().is_empty());
    }

    #[test]
    fn first_and_last_are_told() {
        let hub = Hub::new();
        let (a, b) = (Recorder::new("a"), Recorder::new("b"));
        assert_eq!(hub.subscribe("c", a.clone()), Subscribed::First);
        assert_eq!(hub.subscribe("c", b.clone()), Subscribed::Joined);
        assert_eq!(
            hub.unsubscribe("c", &SocketId::new("a")),
            Unsubscribed::Left
        );
        assert_eq!(
            hub.unsubscribe("c", &SocketId::new("b")),
            Unsubscribed::Last
        );
    }

    #[test]
    fn except_skips_exactly_the_sender() {
        let hub = Hub::new();
        let (a, b) = (Recorder::new("a"), Recorder::new("b"));
        hub.subscribe("orders", a.clone());
        hub.subscribe("orders", b.clone());
        assert_eq!(hub.publish(&publication("orders", "E", Some("a"))), 1);
        assert!(a.events().is_empty());
        assert_eq!(b.events(), vec!["E"]);
    }

    #[test]
    fn subscribe_is_idempotent_and_unsubscribe_empties_channels() {
        let hub = Hub::new();
        let a = Recorder::new("a");
        assert_eq!(hub.subscribe("orders", a.clone()), Subscribed::First);
        assert_eq!(hub.subscribe("orders", a.clone()), Subscribed::Already);
        assert_eq!(hub.subscription_count("orders"), 1);
        assert!(hub.is_subscribed("orders", &SocketId::new("a")));
        assert_eq!(
            hub.unsubscribe("orders", &SocketId::new("a")),
            Unsubscribed::Last
        );
        assert_eq!(
            hub.unsubscribe("orders", &SocketId::new("a")),
            Unsubscribed::NotThere
        );
        assert!(hub.channels("").is_empty());
        assert_eq!(hub.publish(&publication("orders", "E", None)), 0);
    }

    #[test]
    fn channels_filter_by_prefix_and_count() {
        let hub = Hub::new();
        hub.subscribe("private-a", Recorder::new("1"));
        hub.subscribe("private-a", Recorder::new("2"));
        hub.subscribe("public-b", Recorder::new("1"));
        assert_eq!(
            hub.channels("private-"),
            vec![ChannelInfo {
                name: "private-a".into(),
                subscription_count: 2
            }]
        );
        assert_eq!(hub.channels("").len(), 2);
    }

    /// A handover that keeps what it is handed, or refuses it (a full worker queue).
    struct Keeper {
        accepts: bool,
        handed: Mutex<Vec<(WorkerId, Arc<Fanout>)>>,
    }

    impl Handover for Keeper {
        fn hand_over(&self, worker: WorkerId, fanout: Arc<Fanout>) -> bool {
            if self.accepts {
                self.handed.lock().expect("lock").push((worker, fanout));
            }
            self.accepts
        }
    }

    /// Subscribes `recorder` to `channel` from a thread that is worker `worker`.
    fn subscribe_on(
        hub: &Arc<Hub>,
        worker: WorkerId,
        channel: &'static str,
        recorder: Arc<Recorder>,
    ) {
        let hub = hub.clone();
        std::thread::spawn(move || {
            super::super::handover::enter_worker(worker);
            hub.subscribe(channel, recorder);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_publication_is_handed_to_each_worker_once_and_delivered_there() {
        let hub = Arc::new(Hub::new());
        let keeper = Arc::new(Keeper {
            accepts: true,
            handed: Mutex::default(),
        });
        hub.hand_over_through(keeper.clone());
        let (a, b, c) = (Recorder::new("a"), Recorder::new("b"), Recorder::new("c"));
        subscribe_on(&hub, 0, "orders", a.clone());
        subscribe_on(&hub, 0, "orders", b.clone());
        subscribe_on(&hub, 1, "orders", c.clone());
        assert_eq!(hub.subscription_count("orders"), 3);
        // Counted as handed over, delivered by nobody yet.
        assert_eq!(hub.publish(&publication("orders", "E", Some("b"))), 2);
        assert!(a.events().is_empty() && c.events().is_empty());
        let handed = std::mem::take(&mut *keeper.handed.lock().expect("lock"));
        let mut workers: Vec<WorkerId> = handed.iter().map(|(w, _)| *w).collect();
        workers.sort_unstable();
        assert_eq!(workers, vec![0, 1], "one handover per worker");
        for (worker, fanout) in &handed {
            hub.deliver_handed(fanout, *worker);
        }
        assert_eq!(a.events(), vec!["E"]);
        assert!(
            b.events().is_empty(),
            "the sender is skipped on its worker too"
        );
        assert_eq!(c.events(), vec!["E"]);
        // Unsubscribing from another thread finds the subscriber in its worker's group.
        assert_eq!(
            hub.unsubscribe("orders", &SocketId::new("c")),
            Unsubscribed::Left
        );
        assert!(!hub.is_subscribed("orders", &SocketId::new("c")));
        assert_eq!(hub.subscription_count("orders"), 2);
    }

    #[test]
    fn a_full_worker_queue_is_delivered_by_the_publishing_thread() {
        let hub = Arc::new(Hub::new());
        hub.hand_over_through(Arc::new(Keeper {
            accepts: false,
            handed: Mutex::default(),
        }));
        let a = Recorder::new("a");
        subscribe_on(&hub, 3, "orders", a.clone());
        assert_eq!(hub.publish(&publication("orders", "E", None)), 1);
        assert_eq!(a.events(), vec!["E"], "delivered, not lost");
    }

    #[test]
    fn only_queued_deliveries_count() {
        let hub = Hub::new();
        let slow = Arc::new(Recorder {
            id: SocketId::new("slow"),
            received: Mutex::default(),
            answer: Delivery::Overflow,
        });
        hub.subscribe("c", slow);
        hub.subscribe("c", Recorder::new("ok"));
        assert_eq!(hub.publish(&publication("c", "E", None)), 1);
    }
}
