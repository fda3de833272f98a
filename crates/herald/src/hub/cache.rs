//! Cache channels (`cache-…`, `private-cache-…`, `presence-cache-…`,
//! `private-encrypted-cache-…`): the last event an app published on each is kept for
//! [`CACHE_TTL`] and handed to every new subscriber right after it subscribes (Pusher's cache
//! channels). Client events are never kept.

use super::Publication;
use super::space::visible_name;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a channel's last event is kept (Pusher: "up to 30 minutes").
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

/// Channels whose last event is kept at most; beyond, the expired go, then the oldest.
pub const MAX_CACHED_CHANNELS: usize = 10_000;

/// Whether `name` is a cache channel: an anchored prefix, never "contains".
pub fn is_cache_channel(name: &str) -> bool {
    [
        "cache-",
        "private-cache-",
        "presence-cache-",
        "private-encrypted-cache-",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// The last event of each cache channel, by Hub key.
#[derive(Default)]
pub(super) struct ChannelCache {
    entries: Mutex<HashMap<Arc<str>, (Publication, Instant)>>,
}

impl ChannelCache {
    /// Keeps `publication` if its channel is a cache channel.
    pub(super) fn remember(&self, publication: &Publication) {
        if !is_cache_channel(visible_name(&publication.channel)) {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_CACHED_CHANNELS && !entries.contains_key(&publication.channel) {
            entries.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
            if entries.len() >= MAX_CACHED_CHANNELS {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(channel, _)| channel.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(publication.channel.clone(), (publication.clone(), now));
    }

    /// The last event of `channel` and how long it is still kept, if one is.
    pub(super) fn last(&self, channel: &str) -> Option<(Publication, Duration)> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (publication, at) = entries.get(channel)?;
        let age = at.elapsed();
        if age >= CACHE_TTL {
            entries.remove(channel);
            return None;
        }
        Some((publication.clone(), CACHE_TTL - age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn event(channel: &str, n: u32) -> Publication {
        let data = RawValue::from_string(n.to_string()).expect("json");
        Publication::new(channel, "E", data, None)
    }

    #[test]
    fn only_cache_channels_by_anchored_prefix() {
        for name in [
            "cache-a",
            "private-cache-a",
            "presence-cache-a",
            "private-encrypted-cache-a",
        ] {
            assert!(is_cache_channel(name), "{name}");
        }
        for name in ["a-cache-b", "private-a", "cachex", "presence-a"] {
            assert!(!is_cache_channel(name), "{name}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_event_is_kept_for_the_ttl() {
        let cache = ChannelCache::default();
        cache.remember(&event("news", 1));
        assert!(cache.last("news").is_none(), "not a cache channel");
        cache.remember(&event("cache-news", 1));
        cache.remember(&event("cache-news", 2));
        let (last, ttl) = cache.last("cache-news").expect("kept");
        assert_eq!(last.payload_bytes(), 1);
        assert_eq!(ttl, CACHE_TTL);
        tokio::time::advance(CACHE_TTL).await;
        assert!(cache.last("cache-news").is_none(), "expired");
    }
}
