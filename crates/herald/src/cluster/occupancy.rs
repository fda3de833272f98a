//! Cluster-wide channel occupancy: how many connections each node has in each channel, kept in
//! Redis as one hash per channel, `<keyPrefix><prefix>:channel:<channel>` (node id →
//! connections). From it come the HTTP APIs' cluster-wide counts and channel lists, the
//! `channel_occupied` / `channel_vacated` webhooks once per cluster, and cluster-wide
//! subscription counts.
//!
//! Nothing waits on the subscribe path: the Hub only says a count changed; one task writes the
//! changed counts every [`WRITE_EVERY`] with a Lua script that also says which channels the
//! cluster as a whole has just occupied or vacated (`occupancy_write.lua`: atomic, so of two
//! nodes exactly one hears it). A vacancy is told after [`LEAVE_DELAY`] only if nobody came
//! back on any node meanwhile (a page reload that lands on another node tells nothing either):
//! `<…>:vacating:<channel>` marks it, a come-back takes the mark, and the node that set it
//! confirms (`occupancy_confirm.lua`). Counts of nodes that stop running are swept
//! (`occupancy_sweep.lua`) by the nodes that notice.

use crate::config::RedisOptions;
use crate::hub::{ChannelChange, ChannelInfo, ChannelWatcher, Hub};
use crate::node::NodeId;
use crate::webhooks::LEAVE_DELAY;
use redis::Script;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Changes written together: the counts are read and written this long after a change.
const WRITE_EVERY: Duration = Duration::from_millis(100);
/// This node's counts are rewritten whole this often, healing what a full queue dropped or a
/// Redis that restarted empty lost.
const REWRITE_EVERY: Duration = Duration::from_secs(60);
/// Tasks waiting for the writer; beyond, a change is dropped (the next rewrite heals it).
const QUEUE: usize = 10_000;
/// Channels per script call.
const CHUNK: usize = 200;
/// How long a vacancy's mark lasts: the delay, and room for a slow confirmation.
const VACATING_MARK: Duration = Duration::from_secs(30);
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// What the writer is asked to do.
enum Task {
    /// A channel's count changed on this node.
    Changed(String),
    /// Remove the counts of nodes not in this set (they stopped or died).
    Sweep(HashSet<String>),
    /// Rewrite every count of this node (Redis lost them).
    Rewrite,
    /// Write nothing more: the node is stopping, and the others sweep its counts.
    Stop,
}

/// This node's share of the cluster's channel occupancy, and the cluster-wide view.
pub struct Occupancy {
    client: redis::Client,
    /// `<keyPrefix><prefix>:`.
    namespace: String,
    node: NodeId,
    queue: mpsc::Sender<Task>,
    write_script: Script,
    sweep_script: Script,
    confirm_script: Script,
}

/// A script's word for "the cluster's first connection came" (the scripts say what else).
const OCCUPIED: i64 = 1;
/// A script's word for "the cluster's last connection left".
const VACATED: i64 = 2;

impl Occupancy {
    /// Starts writing this node's counts. First, it removes what an earlier run under the
    /// same node id left.
    pub fn start(
        options: &RedisOptions,
        deployment: &str,
        node: NodeId,
        hub: Weak<Hub>,
    ) -> anyhow::Result<Arc<Occupancy>> {
        let client = crate::redis_client::client(options)?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let occupancy = Arc::new(Occupancy {
            client,
            namespace: format!("{}{deployment}:", options.key_prefix),
            node,
            queue,
            write_script: Script::new(include_str!("occupancy_write.lua")),
            sweep_script: Script::new(include_str!("occupancy_sweep.lua")),
            confirm_script: Script::new(include_str!("occupancy_confirm.lua")),
        });
        tokio::spawn(write(rx, Arc::downgrade(&occupancy), hub));
        Ok(occupancy)
    }

    fn counts_prefix(&self) -> String {
        format!("{}channel:", self.namespace)
    }

    fn keys(&self, channel: &str) -> [String; 2] {
        [
            format!("{}channel:{channel}", self.namespace),
            format!("{}vacating:{channel}", self.namespace),
        ]
    }

    /// Every node's occupied channels whose key starts with `prefix`, with their summed
    /// counts, sorted by key.
    pub async fn channels(&self, prefix: &str) -> anyhow::Result<Vec<ChannelInfo>> {
        let counts_prefix = self.counts_prefix();
        let read = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            let pattern = format!(
                "{}*",
                crate::redis_client::escape_glob(&format!("{counts_prefix}{prefix}"))
            );
            let mut keys = crate::redis_client::scan_keys(&mut connection, &pattern).await?;
            keys.sort();
            keys.dedup();
            let mut channels = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(500) {
                let mut pipe = redis::pipe();
                for key in chunk {
                    pipe.cmd("HVALS").arg(key);
                }
                let counts: Vec<Vec<usize>> = pipe.query_async(&mut connection).await?;
                for (key, counts) in chunk.iter().zip(counts) {
                    let subscription_count: usize = counts.iter().sum();
                    if let Some(name) = key.strip_prefix(&counts_prefix)
                        && subscription_count > 0
                    {
                        channels.push(ChannelInfo {
                            name: name.to_owned(),
                            subscription_count,
                        });
                    }
                }
            }
            Ok::<_, redis::RedisError>(channels)
        };
        tokio::time::timeout(REDIS_TIMEOUT, read)
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer within 5 s"))?
            .map_err(Into::into)
    }

    /// Every node's connections subscribed to `channel`.
    pub async fn count(&self, channel: &str) -> anyhow::Result<usize> {
        let [key, _] = self.keys(channel);
        let read = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            let counts: Vec<usize> = redis::cmd("HVALS")
                .arg(key)
                .query_async(&mut connection)
                .await?;
            Ok::<_, redis::RedisError>(counts.iter().sum())
        };
        tokio::time::timeout(REDIS_TIMEOUT, read)
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer within 5 s"))?
            .map_err(Into::into)
    }

    /// Removes the counts of every node not in `running` (this one is always kept).
    pub fn sweep(&self, mut running: HashSet<String>) {
        running.insert(self.node.to_string());
        let _ = self.queue.try_send(Task::Sweep(running));
    }

    /// Rewrites this node's counts whole (the store lost them).
    pub fn rewrite(&self) {
        let _ = self.queue.try_send(Task::Rewrite);
    }

    /// Removes this node's counts now, at the end of a shutdown when no other node runs to
    /// sweep them (nothing is told: nobody is left to tell).
    pub async fn forget_own(&self) {
        let forget = async {
            let mut connection = self.client.get_multiplexed_async_connection().await?;
            let own = vec![self.node.to_string()];
            let mut ignored = Backlog::default();
            self.sweep_with(
                &mut connection,
                None,
                &mut ignored,
                false,
                &own,
                Instant::now(),
            )
            .await
        };
        if let Ok(Err(e)) = tokio::time::timeout(REDIS_TIMEOUT, forget).await {
            tracing::warn!(error = %e, "could not remove this node's channel counts");
        }
    }

    /// Stops writing, before the node's connections close at shutdown: its counts stay as
    /// they were until the other nodes see its heartbeat gone and sweep them, telling each
    /// vacancy after the leave delay as usual (a node that stops cannot wait for it).
    pub async fn stop(&self) {
        let _ = self.queue.send(Task::Stop).await;
    }
}

impl ChannelWatcher for Occupancy {
    fn observe(&self, change: ChannelChange<'_>) {
        if let ChannelChange::Counted(channel) = change {
            // Full: this change waits for the next rewrite.
            let _ = self.queue.try_send(Task::Changed(channel.to_owned()));
        }
    }
}

/// What the writer still has to do; kept across failed rounds, so a Redis that is away for a
/// while gets everything once it is back.
#[derive(Default)]
struct Backlog {
    /// Forget what an earlier run of this node id left (at start).
    forget_earlier_run: bool,
    /// The latest running set to sweep with.
    sweep: Option<HashSet<String>>,
    rewrite: bool,
    changed: HashSet<String>,
    /// Vacancies told to Redis, and when to confirm them.
    vacating: HashMap<String, Instant>,
}

impl Backlog {
    fn is_idle(&self, now: Instant) -> bool {
        !self.forget_earlier_run
            && self.sweep.is_none()
            && !self.rewrite
            && self.changed.is_empty()
            && !self.vacating.values().any(|at| *at <= now)
    }
}

async fn write(mut queue: mpsc::Receiver<Task>, occupancy: Weak<Occupancy>, hub: Weak<Hub>) {
    let mut backlog = Backlog {
        forget_earlier_run: true,
        ..Backlog::default()
    };
    let mut flush = tokio::time::interval(WRITE_EVERY);
    let mut rewrite = tokio::time::interval(REWRITE_EVERY);
    rewrite.tick().await;
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut failing_since: Option<Instant> = None;
    loop {
        tokio::select! {
            task = queue.recv() => {
                match task {
                    Some(Task::Changed(channel)) => {
                        backlog.changed.insert(channel);
                    }
                    Some(Task::Sweep(running)) => backlog.sweep = Some(running),
                    Some(Task::Rewrite) => backlog.rewrite = true,
                    Some(Task::Stop) | None => return,
                }
                continue;
            }
            _ = flush.tick() => {}
            _ = rewrite.tick() => backlog.rewrite = true,
        }
        let now = Instant::now();
        if backlog.is_idle(now) {
            continue;
        }
        let (Some(occupancy), Some(hub)) = (occupancy.upgrade(), hub.upgrade()) else {
            return;
        };
        if connection.is_none() {
            let attempt = occupancy.client.get_multiplexed_async_connection();
            connection = tokio::time::timeout(REDIS_TIMEOUT, attempt)
                .await
                .ok()
                .and_then(Result::ok);
        }
        let done = match connection.as_mut() {
            Some(connection) => {
                let round = occupancy.round(connection, &hub, &mut backlog, now);
                tokio::time::timeout(REDIS_TIMEOUT * 2, round)
                    .await
                    .map_err(|_| "no answer in time".to_owned())
                    .and_then(|done| done.map_err(|e| e.to_string()))
            }
            None => Err("cannot connect".to_owned()),
        };
        match done {
            Ok(()) => {
                if failing_since.take().is_some() {
                    crate::console::success("Cluster: writing channel counts to Redis again.");
                }
            }
            Err(e) => {
                connection = None;
                if failing_since.is_none_or(|since| since.elapsed() > Duration::from_secs(60)) {
                    failing_since = Some(now);
                    crate::console::warning(&format!(
                        "Cluster: could not write this node's channel counts to Redis ({e}); the cluster-wide counts and channel webhooks lag until it is back."
                    ));
                }
            }
        }
    }
}

/// One script call's results for its channels: what changed in each.
type Outcomes = Vec<i64>;

impl Occupancy {
    /// Does what the backlog holds, in order; what is done leaves it (a failure keeps the rest
    /// for the next round).
    async fn round(
        &self,
        connection: &mut redis::aio::MultiplexedConnection,
        hub: &Hub,
        backlog: &mut Backlog,
        now: Instant,
    ) -> redis::RedisResult<()> {
        if backlog.forget_earlier_run {
            let own = vec![self.node.to_string()];
            self.sweep_with(connection, Some(hub), backlog, false, &own, now)
                .await?;
            backlog.forget_earlier_run = false;
        }
        if let Some(running) = backlog.sweep.take() {
            let running: Vec<String> = running.into_iter().collect();
            if let Err(e) = self
                .sweep_with(connection, Some(hub), backlog, true, &running, now)
                .await
            {
                backlog.sweep.get_or_insert(running.into_iter().collect());
                return Err(e);
            }
        }
        if backlog.rewrite {
            let channels: Vec<(String, usize)> = hub
                .channels("")
                .into_iter()
                .map(|c| (c.name, c.subscription_count))
                .collect();
            self.write_counts(connection, hub, backlog, &channels, false, now)
                .await?;
            backlog.rewrite = false;
        }
        if !backlog.changed.is_empty() {
            let channels: Vec<(String, usize)> = backlog
                .changed
                .iter()
                .map(|channel| (channel.clone(), hub.subscription_count(channel)))
                .collect();
            self.write_counts(connection, hub, backlog, &channels, true, now)
                .await?;
            backlog.changed.clear();
        }
        let due: Vec<String> = backlog
            .vacating
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(channel, _)| channel.clone())
            .collect();
        for chunk in due.chunks(CHUNK) {
            let mut invocation = self.confirm_script.prepare_invoke();
            for channel in chunk {
                let [counts, vacating] = self.keys(channel);
                invocation.key(counts).key(vacating);
            }
            let confirmed: Vec<i64> = invocation.invoke_async(connection).await?;
            for (channel, confirmed) in chunk.iter().zip(confirmed) {
                backlog.vacating.remove(channel);
                if confirmed == 1 {
                    hub.observe(ChannelChange::ClusterVacated(channel));
                }
            }
        }
        Ok(())
    }

    /// Writes `channels`' counts on this node; `tell_counts`: say that each one's count changed.
    async fn write_counts(
        &self,
        connection: &mut redis::aio::MultiplexedConnection,
        hub: &Hub,
        backlog: &mut Backlog,
        channels: &[(String, usize)],
        tell_counts: bool,
        now: Instant,
    ) -> redis::RedisResult<()> {
        for chunk in channels.chunks(CHUNK) {
            let mut invocation = self.write_script.prepare_invoke();
            invocation
                .arg(self.node.as_str())
                .arg(VACATING_MARK.as_millis() as u64);
            for (channel, count) in chunk {
                let [counts, vacating] = self.keys(channel);
                invocation.key(counts).key(vacating).arg(*count);
            }
            let outcomes: Outcomes = invocation.invoke_async(connection).await?;
            for ((channel, _), change) in chunk.iter().zip(outcomes) {
                self.tell(hub, backlog, channel, change, now);
                if tell_counts {
                    hub.observe(ChannelChange::ClusterCounted(channel));
                }
            }
        }
        Ok(())
    }

    /// Sweeps every channel: `keep_listed` keeps only the `nodes` listed (the running ones),
    /// otherwise only they are removed. What changed is told to `hub`'s watchers, if any.
    async fn sweep_with(
        &self,
        connection: &mut redis::aio::MultiplexedConnection,
        hub: Option<&Hub>,
        backlog: &mut Backlog,
        keep_listed: bool,
        nodes: &[String],
        now: Instant,
    ) -> redis::RedisResult<()> {
        let counts_prefix = self.counts_prefix();
        let pattern = format!("{}*", crate::redis_client::escape_glob(&counts_prefix));
        let mut channels: Vec<String> = crate::redis_client::scan_keys(connection, &pattern)
            .await?
            .into_iter()
            .filter_map(|key| key.strip_prefix(&counts_prefix).map(str::to_owned))
            .collect();
        channels.sort();
        channels.dedup();
        for chunk in channels.chunks(CHUNK) {
            // Vacancies are confirmed only where they are told.
            let mark = if hub.is_some() {
                VACATING_MARK
            } else {
                Duration::ZERO
            };
            let mut invocation = self.sweep_script.prepare_invoke();
            invocation
                .arg(mark.as_millis() as u64)
                .arg(if keep_listed { "1" } else { "0" });
            for node in nodes {
                invocation.arg(node);
            }
            for channel in chunk {
                let [counts, vacating] = self.keys(channel);
                invocation.key(counts).key(vacating);
            }
            let outcomes: Outcomes = invocation.invoke_async(connection).await?;
            let Some(hub) = hub else {
                continue;
            };
            for (channel, change) in chunk.iter().zip(outcomes) {
                self.tell(hub, backlog, channel, change, now);
                if change != 0 {
                    hub.observe(ChannelChange::ClusterCounted(channel));
                }
            }
        }
        Ok(())
    }

    fn tell(&self, hub: &Hub, backlog: &mut Backlog, channel: &str, change: i64, now: Instant) {
        match change {
            OCCUPIED => hub.observe(ChannelChange::ClusterOccupied(channel)),
            VACATED => {
                backlog
                    .vacating
                    .insert(channel.to_owned(), now + LEAVE_DELAY);
            }
            _ => {}
        }
    }
}
