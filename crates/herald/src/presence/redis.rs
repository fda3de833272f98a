//! Presence members in Redis, in two hashes per channel edited by Lua scripts, so every join
//! and leave is one atomic step however many Herald processes share the Redis (the original
//! rewrote a whole JSON array per join, and two processes lost each other's updates):
//!
//! - `<keyPrefix>herald:presence:<channel>`: socket id → the entry's JSON
//!   (laravel-echo-server's `{user_id, user_info, socketId}` plus `node` and `user`);
//! - `<keyPrefix>herald:presence-users:<channel>`: user key → how many entries it has, so a
//!   leave knows whether it was the user's last without reading the channel.
//!
//! `publishPresence` still publishes the whole list to `PresenceChannelUpdated` on each change.

use super::leave_marks::LeaveMarks;
use super::nodes::{Beat, NODE_TTL, NodeDirectory};
use super::{MemberEntry, PresenceStore, Removed, StoreError};
use crate::config::RedisOptions;
use crate::redis_client;
use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Where entry hashes start, after the key prefix.
const ENTRIES: &str = "presence:";

/// How long a lapsed node's tombstone says "its members were removed", for it to find if it
/// comes back (a partition).
const TOMBSTONE: Duration = Duration::from_secs(24 * 3600);

/// Longest a store command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Member lists in Redis.
pub struct RedisStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    /// Every key starts with it: Laravel's `keyPrefix`, the deployment's name (`cluster.prefix`,
    /// `herald` by default) and `:`.
    namespace: String,
    publish_updates: bool,
    /// How long a user's last leave is marked (presence/leave_marks.rs), if marks are kept.
    leave_marks: Option<Duration>,
    add_script: Script,
    remove_script: Script,
    heartbeat_script: Script,
    running_script: Script,
    withdraw_script: Script,
}

impl RedisStore {
    /// A store on `options` (connects on first use, reconnects by itself) for the deployment
    /// `deployment` (`cluster.prefix`, `herald` by default): two deployments on one Redis keep
    /// their members and heartbeats apart.
    pub fn new(
        options: &RedisOptions,
        publish_updates: bool,
        deployment: &str,
    ) -> anyhow::Result<RedisStore> {
        Ok(RedisStore {
            client: redis_client::client(options)?,
            connection: OnceCell::new(),
            namespace: format!("{}{deployment}:", options.key_prefix),
            publish_updates,
            leave_marks: None,
            add_script: Script::new(include_str!("redis_add.lua")),
            remove_script: Script::new(include_str!("redis_remove.lua")),
            heartbeat_script: Script::new(include_str!("redis_heartbeat.lua")),
            running_script: Script::new(include_str!("redis_running.lua")),
            withdraw_script: Script::new(include_str!("redis_withdraw.lua")),
        })
    }

    /// Keeps leave marks (for `member_removed` webhooks) for `mark` after each user's last leave.
    pub fn with_leave_marks(mut self, mark: Duration) -> RedisStore {
        self.leave_marks = Some(mark);
        self
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.connection
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(COMMAND_TIMEOUT))
                    .set_response_timeout(Some(COMMAND_TIMEOUT))
                    .set_number_of_retries(2);
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
            .map_err(|e| StoreError(e.to_string()))
    }

    /// The channel's entry hash.
    fn entries_key(&self, channel: &str) -> String {
        format!("{}{ENTRIES}{channel}", self.namespace)
    }

    /// The channel's user-count hash.
    fn users_key(&self, channel: &str) -> String {
        format!("{}presence-users:{channel}", self.namespace)
    }

    /// The channel's leave marks.
    fn marks_key(&self, channel: &str) -> String {
        format!("{}presence-leaving:{channel}", self.namespace)
    }

    /// The running nodes' heartbeats.
    fn nodes_key(&self) -> String {
        format!("{}nodes", self.namespace)
    }

    /// The `PresenceChannelUpdated` channel field as JSON, or empty when updates are off.
    fn update_channel(&self, channel: &str) -> String {
        if !self.publish_updates {
            return String::new();
        }
        serde_json::Value::String(format!("{channel}:members")).to_string()
    }
}

fn store_error(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("Redis: {e}"))
}

/// How often a command is tried again after its connection broke (Redis restarted, a proxy
/// dropped it): the connection manager reconnects in the background, and the next try uses the
/// new connection.
const RETRIES_AFTER_BROKEN_CONNECTION: u32 = 3;

impl RedisStore {
    /// Runs `command` on the shared connection, within `2 × COMMAND_TIMEOUT` in all, trying
    /// again when the connection broke under it. A script that ran before its answer was lost
    /// is harmless to repeat: a second add finds the entry (and `Presence` replaces it), a
    /// second remove finds nothing; a `PresenceChannelUpdated` may then be published twice,
    /// and it is a whole member list.
    async fn command<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let deadline = tokio::time::Instant::now() + COMMAND_TIMEOUT * 2;
        let mut tries = 0;
        loop {
            let connection = self.connection().await?;
            match tokio::time::timeout_at(deadline, command(connection)).await {
                Err(_) => return Err(StoreError("Redis: no answer in time".to_owned())),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e))
                    if tries < RETRIES_AFTER_BROKEN_CONNECTION
                        && (e.is_connection_dropped() || e.is_io_error()) =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(tries))).await;
                }
                Ok(Err(e)) => return Err(store_error(e)),
            }
        }
    }
}

impl PresenceStore for RedisStore {
    fn add<'a>(
        &'a self,
        channel: &'a str,
        entry: &'a MemberEntry,
    ) -> BoxFuture<'a, Result<Option<Vec<MemberEntry>>, StoreError>> {
        async move {
            let keys = [self.entries_key(channel), self.users_key(channel)];
            let user = entry.user_key();
            let stored = stored_json(entry, &user)?;
            let update = self.update_channel(channel);
            let entries: Option<Vec<String>> = self
                .command(|mut c| {
                    let mut invocation = self.add_script.prepare_invoke();
                    invocation.key(&keys[0]).key(&keys[1]);
                    invocation
                        .arg(&entry.socket_id)
                        .arg(&stored)
                        .arg(&user)
                        .arg(&update);
                    async move { invocation.invoke_async(&mut c).await }
                })
                .await?;
            Ok(entries.map(|entries| decode_entries(&entries)))
        }
        .boxed()
    }

    fn remove<'a>(
        &'a self,
        channel: &'a str,
        socket_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Removed>, StoreError>> {
        async move {
            let keys = [
                self.entries_key(channel),
                self.users_key(channel),
                self.marks_key(channel),
            ];
            let update = self.update_channel(channel);
            let mark = self.leave_marks.map_or(0, |mark| mark.as_millis() as u64);
            let removed: Option<(String, u64)> = self
                .command(|mut c| {
                    let mut invocation = self.remove_script.prepare_invoke();
                    invocation.key(&keys[0]).key(&keys[1]).key(&keys[2]);
                    invocation.arg(socket_id).arg(&update).arg(mark);
                    async move { invocation.invoke_async(&mut c).await }
                })
                .await?;
            Ok(removed.and_then(|(entry, others_of_user)| {
                Some(Removed {
                    entry: serde_json::from_str(&entry).ok()?,
                    others_of_user,
                })
            }))
        }
        .boxed()
    }

    fn list<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<MemberEntry>, StoreError>> {
        async move {
            let key = self.entries_key(channel);
            let entries: Vec<String> = self
                .command(|mut c| {
                    let key = key.clone();
                    async move { c.hvals(key).await }
                })
                .await?;
            Ok(decode_entries(&entries))
        }
        .boxed()
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            self.names_after(&format!("{}{ENTRIES}", self.namespace))
                .await
        }
        .boxed()
    }
}

impl RedisStore {
    /// What follows `prefix` in every key that starts with it (SCAN, never KEYS).
    async fn names_after(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}*", redis_client::escape_glob(prefix));
        let keys: Vec<String> = self
            .command(|mut c| {
                let pattern = pattern.clone();
                async move { redis_client::scan_keys(&mut c, &pattern).await }
            })
            .await?;
        Ok(keys
            .iter()
            .filter_map(|key| Some(key.strip_prefix(prefix)?.to_owned()))
            .collect())
    }
}

/// The entry as stored: its JSON plus `user`, the user key the remove script counts by.
fn stored_json(entry: &MemberEntry, user: &str) -> Result<String, StoreError> {
    let mut value = serde_json::to_value(entry).map_err(store_error)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("user".to_owned(), serde_json::Value::from(user));
    }
    Ok(value.to_string())
}

/// Stored JSON → entries; an entry another program wrote badly is skipped, not an outage.
fn decode_entries(stored: &[String]) -> Vec<MemberEntry> {
    stored
        .iter()
        .filter_map(|text| serde_json::from_str(text).ok())
        .collect()
}

impl LeaveMarks for RedisStore {
    fn take<'a>(
        &'a self,
        channel: &'a str,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let key = self.marks_key(channel);
            let taken: i64 = self
                .command(|mut c| {
                    let key = key.clone();
                    async move { c.hdel(key, user_id).await }
                })
                .await?;
            Ok(taken == 1)
        }
        .boxed()
    }
}

/// Heartbeats in one sorted set, `<keyPrefix><deployment>:nodes`: node id → when its heartbeat
/// lapses, on Redis's clock (`redis_heartbeat.lua`, `redis_running.lua`).
impl NodeDirectory for RedisStore {
    fn announce<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<Beat, StoreError>> {
        async move {
            let key = self.nodes_key();
            let tombstones = format!("{}lapsed:", self.namespace);
            let ttl = NODE_TTL.as_millis() as u64;
            let mut reply: Vec<String> = self
                .command(|mut c| {
                    let mut invocation = self.heartbeat_script.prepare_invoke();
                    invocation.key(&key).key(&tombstones);
                    invocation
                        .arg(node)
                        .arg(ttl)
                        .arg(TOMBSTONE.as_millis() as u64);
                    async move { invocation.invoke_async(&mut c).await }
                })
                .await?;
            let lapsed = reply.split_off(1.min(reply.len()));
            let state = reply.first().map_or("0", String::as_str);
            Ok(Beat {
                missing: state != "0",
                swept: state == "2",
                lapsed,
            })
        }
        .boxed()
    }

    /// Lapses the node's heartbeat at once (`redis_withdraw.lua`): the next heartbeat of
    /// another node then hears that it stopped, and cleans up after it.
    fn withdraw<'a>(&'a self, node: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let key = self.nodes_key();
            self.command(|mut c| {
                let mut invocation = self.withdraw_script.prepare_invoke();
                invocation.key(&key).arg(node);
                async move { invocation.invoke_async::<()>(&mut c).await }
            })
            .await
        }
        .boxed()
    }

    fn running<'a>(
        &'a self,
        nodes: &'a [&'a str],
    ) -> BoxFuture<'a, Result<HashSet<String>, StoreError>> {
        async move {
            let mut running = self.all_running().await?;
            running.retain(|node| nodes.contains(&node.as_str()));
            Ok(running)
        }
        .boxed()
    }

    fn all_running(&self) -> BoxFuture<'_, Result<HashSet<String>, StoreError>> {
        async move {
            let key = self.nodes_key();
            let nodes: Vec<String> = self
                .command(|mut c| {
                    let mut invocation = self.running_script.prepare_invoke();
                    invocation.key(&key);
                    async move { invocation.invoke_async(&mut c).await }
                })
                .await?;
            Ok(nodes.into_iter().collect())
        }
        .boxed()
    }
}
