//! Presence members in this process only.

use super::{MemberEntry, PresenceStore, Removed, StoreError};
use futures_util::future::{BoxFuture, FutureExt};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries in a map; lost at exit, which is what a single node without Redis wants.
#[derive(Default)]
pub struct MemoryStore {
    channels: Mutex<HashMap<String, Vec<MemberEntry>>>,
}

impl MemoryStore {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<MemberEntry>>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PresenceStore for MemoryStore {
    fn add<'a>(
        &'a self,
        channel: &'a str,
        entry: &'a MemberEntry,
    ) -> BoxFuture<'a, Result<Option<Vec<MemberEntry>>, StoreError>> {
        let added = add_to_list(self.map().entry(channel.to_owned()).or_default(), entry);
        async move { Ok(added) }.boxed()
    }

    fn remove<'a>(
        &'a self,
        channel: &'a str,
        socket_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Removed>, StoreError>> {
        let mut map = self.map();
        let removed = map
            .get_mut(channel)
            .and_then(|entries| remove_from_list(entries, socket_id));
        if map.get(channel).is_some_and(Vec::is_empty) {
            map.remove(channel);
        }
        async move { Ok(removed) }.boxed()
    }

    fn list<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<MemberEntry>, StoreError>> {
        let entries = self.map().get(channel).cloned().unwrap_or_default();
        async move { Ok(entries) }.boxed()
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let channels = self.map().keys().cloned().collect();
        async move { Ok(channels) }.boxed()
    }
}

/// [`PresenceStore::add`] on a list held under the caller's lock.
pub(super) fn add_to_list(
    entries: &mut Vec<MemberEntry>,
    entry: &MemberEntry,
) -> Option<Vec<MemberEntry>> {
    if entries.iter().any(|e| e.socket_id == entry.socket_id) {
        return None;
    }
    entries.push(entry.clone());
    Some(entries.clone())
}

/// [`PresenceStore::remove`] on a list held under the caller's lock.
pub(super) fn remove_from_list(entries: &mut Vec<MemberEntry>, socket_id: &str) -> Option<Removed> {
    let at = entries.iter().position(|e| e.socket_id == socket_id)?;
    let entry = entries.remove(at);
    let user = entry.user_key();
    let others_of_user = entries.iter().filter(|e| e.user_key() == user).count() as u64;
    Some(Removed {
        entry,
        others_of_user,
    })
}
