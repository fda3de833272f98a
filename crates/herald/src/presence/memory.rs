//! Presence members in this process only.

use super::{MemberEntry, PresenceStore, StoreError};
use futures_util::future::{BoxFuture, FutureExt};
use std::collections::HashMap;
use std::sync::Mutex;

/// Member lists in a map; lost at exit, which is what a single node without Redis wants.
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
    fn get<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<MemberEntry>, StoreError>> {
        let members = self.map().get(channel).cloned().unwrap_or_default();
        async move { Ok(members) }.boxed()
    }

    fn set<'a>(
        &'a self,
        channel: &'a str,
        members: &'a [MemberEntry],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut map = self.map();
        if members.is_empty() {
            map.remove(channel);
        } else {
            map.insert(channel.to_owned(), members.to_vec());
        }
        async { Ok(()) }.boxed()
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let channels = self.map().keys().cloned().collect();
        async move { Ok(channels) }.boxed()
    }
}
