//! Presence channels: who is in a channel, with joining/leaving decided per user (not per
//! socket), over a small key-value store (memory, Redis or SQLite).
//!
//! Protocol-free: it returns what happened, and adapters tell their clients.

mod member;
mod memory;
mod redis;
mod sqlite;
mod store;

pub use member::{MemberEntry, decode_members, dedupe_by_user, same_user};
pub use memory::MemoryStore;
pub use redis::RedisStore;
pub use sqlite::SqliteStore;
pub use store::{PresenceStore, StoreError};

use crate::config::{Config, PresenceDriver};
use crate::hub::{Hub, SocketId};
use serde_json::Value;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Channel locks; joins and leaves of one channel are serialised so no update is lost.
const LOCKS: usize = 64;

/// A socket joined: the channel's members (one per user, newest socket first) and whether
/// this socket is its user's first in the channel (then the others hear `joining`).
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    /// The joining socket's entry.
    pub member: MemberEntry,
    /// Everyone present, deduplicated by `user_id`.
    pub members: Vec<MemberEntry>,
    /// No other live socket of this user was in the channel.
    pub first_for_user: bool,
}

/// A socket left: its entry, and whether it was its user's last (then the rest hear `leaving`).
#[derive(Debug, Clone, PartialEq)]
pub struct Left {
    /// The leaving socket's entry.
    pub member: MemberEntry,
    /// No other live socket of this user remains in the channel.
    pub last_for_user: bool,
}

/// Why a member could not be added.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// `channel_data` has no `user_id`.
    #[error("channel_data has no user_id")]
    NoUserId,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Presence bookkeeping over a store; the Hub says which sockets are still alive.
pub struct Presence {
    store: Arc<dyn PresenceStore>,
    hub: Arc<Hub>,
    locks: Box<[Mutex<()>]>,
    hasher: BuildHasherDefault<DefaultHasher>,
}

impl Presence {
    /// Presence over `store`; liveness of stored sockets comes from `hub`.
    pub fn new(store: Arc<dyn PresenceStore>, hub: Arc<Hub>) -> Presence {
        Presence {
            store,
            hub,
            locks: (0..LOCKS).map(|_| Mutex::new(())).collect(),
            hasher: BuildHasherDefault::default(),
        }
    }

    /// The store the config names (`database`).
    pub fn store_for(config: &Config) -> anyhow::Result<Arc<dyn PresenceStore>> {
        Ok(match config.database {
            PresenceDriver::Memory => Arc::new(MemoryStore::default()),
            PresenceDriver::Redis => {
                Arc::new(RedisStore::new(&config.redis, config.publish_presence)?)
            }
            PresenceDriver::Sqlite => Arc::new(SqliteStore::open(&config.sqlite_path)?),
        })
    }

    fn lock(&self, channel: &str) -> &Mutex<()> {
        &self.locks[(self.hasher.hash_one(channel) as usize) % LOCKS]
    }

    /// Entries whose socket is still subscribed here; everything else is a ghost.
    fn alive(&self, channel: &str, entry: &MemberEntry) -> bool {
        self.hub
            .is_subscribed(channel, &SocketId::new(&entry.socket_id))
    }

    /// Adds `socket_id` with the app's `channel_data`. The socket must already be subscribed
    /// in the Hub. A re-subscribe replaces the socket's previous entry.
    pub async fn join(
        &self,
        channel: &str,
        socket_id: &SocketId,
        channel_data: &Value,
    ) -> Result<Joined, JoinError> {
        let member = MemberEntry::from_channel_data(channel_data, socket_id.as_str())
            .ok_or(JoinError::NoUserId)?;
        let _guard = self.lock(channel).lock().await;
        let mut entries = self.store.get(channel).await?;
        entries.retain(|e| e.socket_id != member.socket_id && self.alive(channel, e));
        let first_for_user = !entries
            .iter()
            .any(|e| same_user(&e.user_id, &member.user_id));
        entries.push(member.clone());
        self.store.set(channel, &entries).await?;
        Ok(Joined {
            member,
            members: dedupe_by_user(entries.iter().rev()),
            first_for_user,
        })
    }

    /// Removes `socket_id`'s entry. `None` if it had none (never joined, or already left).
    pub async fn leave(
        &self,
        channel: &str,
        socket_id: &SocketId,
    ) -> Result<Option<Left>, StoreError> {
        let _guard = self.lock(channel).lock().await;
        let mut entries = self.store.get(channel).await?;
        let Some(member) = entries
            .iter()
            .find(|e| e.socket_id == socket_id.as_str())
            .cloned()
        else {
            return Ok(None);
        };
        entries.retain(|e| e.socket_id != member.socket_id && self.alive(channel, e));
        let last_for_user = !entries
            .iter()
            .any(|e| same_user(&e.user_id, &member.user_id));
        self.store.set(channel, &entries).await?;
        Ok(Some(Left {
            member,
            last_for_user,
        }))
    }

    /// Live members of `channel`, one per user.
    pub async fn members(&self, channel: &str) -> Result<Vec<MemberEntry>, StoreError> {
        let entries = self.store.get(channel).await?;
        let live: Vec<&MemberEntry> = entries.iter().filter(|e| self.alive(channel, e)).collect();
        Ok(dedupe_by_user(live.into_iter().rev()))
    }

    /// Empties every stored presence channel: at start no socket is connected, so anything
    /// stored belongs to a Herald that stopped without cleaning up. Returns how many channels
    /// held members.
    pub async fn remove_ghosts(&self) -> Result<usize, StoreError> {
        let mut cleaned = 0;
        for channel in self.store.channels().await? {
            let _guard = self.lock(&channel).lock().await;
            let entries = self.store.get(&channel).await?;
            let live: Vec<MemberEntry> = entries
                .iter()
                .filter(|e| self.alive(&channel, e))
                .cloned()
                .collect();
            if live.len() != entries.len() {
                self.store.set(&channel, &live).await?;
                cleaned += 1;
            }
        }
        Ok(cleaned)
    }
}
