//! Presence members in Redis, under laravel-echo-server's key `<keyPrefix><channel>:members`
//! with its JSON array, so existing tooling and `publishPresence` consumers keep working.

use super::{MemberEntry, PresenceStore, StoreError, decode_members};
use crate::config::RedisOptions;
use crate::redis_client;
use futures_util::future::{BoxFuture, FutureExt};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::json;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Longest a store command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Member lists in Redis.
pub struct RedisStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    key_prefix: String,
    publish_updates: bool,
}

impl RedisStore {
    /// A store on `options` (connects on first use, reconnects by itself).
    pub fn new(options: &RedisOptions, publish_updates: bool) -> anyhow::Result<RedisStore> {
        Ok(RedisStore {
            client: redis_client::client(options)?,
            connection: OnceCell::new(),
            key_prefix: options.key_prefix.clone(),
            publish_updates,
        })
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

    fn key(&self, channel: &str) -> String {
        format!("{}{channel}:members", self.key_prefix)
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
    /// again when the connection broke under it. Every command here is idempotent (GET, SET,
    /// DEL, SCAN) except PUBLISH, which may then be delivered twice: presence updates are
    /// full member lists, so a repeat is harmless.
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
    fn get<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<MemberEntry>, StoreError>> {
        async move {
            let key = self.key(channel);
            let stored: Option<String> = self
                .command(|mut c| {
                    let key = key.clone();
                    async move { c.get(key).await }
                })
                .await?;
            Ok(decode_members(stored))
        }
        .boxed()
    }

    fn set<'a>(
        &'a self,
        channel: &'a str,
        members: &'a [MemberEntry],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let key = self.key(channel);
            // An empty channel leaves no key behind: clients can make up channel names, and
            // every key left would stay forever and be scanned at each start.
            if members.is_empty() {
                self.command(|mut c| {
                    let key = key.clone();
                    async move { c.del::<_, ()>(key).await }
                })
                .await?;
            } else {
                let text = serde_json::to_string(members).map_err(store_error)?;
                self.command(|mut c| {
                    let (key, text) = (key.clone(), text.clone());
                    async move { c.set::<_, _, ()>(key, text).await }
                })
                .await?;
            }
            if self.publish_updates {
                let update =
                    json!({"event": {"channel": format!("{channel}:members"), "members": members}})
                        .to_string();
                self.command(|mut c| {
                    let update = update.clone();
                    async move {
                        c.publish::<_, _, ()>("PresenceChannelUpdated", update)
                            .await
                    }
                })
                .await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            let pattern = format!(
                "{}presence-*:members",
                redis_client::escape_glob(&self.key_prefix)
            );
            let mut channels = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .command(|mut c| {
                        let pattern = pattern.clone();
                        async move {
                            redis::cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(pattern)
                                .arg("COUNT")
                                .arg(200)
                                .query_async(&mut c)
                                .await
                        }
                    })
                    .await?;
                channels.extend(keys.iter().filter_map(|key| {
                    key.strip_prefix(self.key_prefix.as_str())?
                        .strip_suffix(":members")
                        .map(str::to_owned)
                }));
                if next == 0 {
                    return Ok(channels);
                }
                cursor = next;
            }
        }
        .boxed()
    }
}
