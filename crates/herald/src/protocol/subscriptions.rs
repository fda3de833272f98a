//! One connection's channels, whatever its protocol: those it joined (with the user it is in a
//! presence channel as), those waiting for an authorization answer under a ticket, and the
//! per-connection channel limit. Each adapter keeps one per connection.

use std::sync::Arc;

/// The channels of one connection.
///
/// Lists, not maps: a connection holds a handful of channels, so a scan is as fast as a hash
/// and an idle connection's one channel costs one small allocation (this is per connection
/// memory, which docs/performance.md measures).
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// Joined channels, with the user id of this connection's member in presence ones (set
    /// once the presence store took it): client events there carry it.
    joined: Vec<(Box<str>, Option<Arc<str>>)>,
    /// Channels waiting for the auth endpoint, with the ticket of the latest request: an
    /// unsubscribe or a newer subscribe makes an older answer moot.
    pending: Vec<(Box<str>, u64)>,
    next_ticket: u64,
}

fn position<T>(list: &[(Box<str>, T)], channel: &str) -> Option<usize> {
    list.iter().position(|(name, _)| &**name == channel)
}

impl Subscriptions {
    /// `Err` with the reason when joining `channel` would take this connection over `limit`
    /// (`limits.maxChannelsPerConnection`), counting channels joined and being authorized.
    pub(crate) fn room_for(&self, channel: &str, limit: usize) -> Result<(), String> {
        let held = self.joined.len() + self.pending.len();
        let already =
            position(&self.joined, channel).is_some() || position(&self.pending, channel).is_some();
        if already || held < limit {
            return Ok(());
        }
        Err(format!(
            "this connection is subscribed to {held} channels, the limit (limits.maxChannelsPerConnection)"
        ))
    }

    /// A ticket for an authorization request for `channel`; older ones for it lapse.
    pub(crate) fn ticket(&mut self, channel: &str) -> u64 {
        self.next_ticket += 1;
        match position(&self.pending, channel) {
            Some(i) => self.pending[i].1 = self.next_ticket,
            None => self.pending.push((Box::from(channel), self.next_ticket)),
        }
        self.next_ticket
    }

    /// Whether `ticket` is still the latest request for `channel`.
    pub(crate) fn is_pending(&self, channel: &str, ticket: u64) -> bool {
        position(&self.pending, channel).is_some_and(|i| self.pending[i].1 == ticket)
    }

    /// Ends the wait for `channel` if `ticket` is the latest request; false if it lapsed.
    pub(crate) fn settle(&mut self, channel: &str, ticket: u64) -> bool {
        if !self.is_pending(channel, ticket) {
            return false;
        }
        self.pending.retain(|(name, _)| &**name != channel);
        true
    }

    /// Records `channel` as joined (not yet as a presence member).
    pub(crate) fn join(&mut self, channel: &str) {
        match position(&self.joined, channel) {
            Some(i) => self.joined[i].1 = None,
            None => self.joined.push((Box::from(channel), None)),
        }
    }

    /// Whether `channel` is joined.
    pub(crate) fn is_joined(&self, channel: &str) -> bool {
        position(&self.joined, channel).is_some()
    }

    /// Records the user this connection is in presence `channel` as; false if the channel is
    /// no longer joined.
    pub(crate) fn set_member(&mut self, channel: &str, user_id: Arc<str>) -> bool {
        match position(&self.joined, channel) {
            Some(i) => {
                self.joined[i].1 = Some(user_id);
                true
            }
            None => false,
        }
    }

    /// The user id of this connection's member in `channel`, if it is a presence member there.
    pub(crate) fn member_of(&self, channel: &str) -> Option<Arc<str>> {
        self.joined[position(&self.joined, channel)?].1.clone()
    }

    /// Forgets `channel`, joined or waiting; true if it was joined.
    pub(crate) fn leave(&mut self, channel: &str) -> bool {
        self.pending.retain(|(name, _)| &**name != channel);
        match position(&self.joined, channel) {
            Some(i) => {
                self.joined.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// The joined channels `which` picks, forgetting them (and every authorization still
    /// waiting: its answer would come to a client that is not there).
    pub(crate) fn take_joined_if(&mut self, which: impl Fn(&str) -> bool) -> Vec<String> {
        self.pending = Vec::new();
        let (taken, kept) = std::mem::take(&mut self.joined)
            .into_iter()
            .partition(|(name, _)| which(name));
        self.joined = kept;
        taken.into_iter().map(|(name, _)| name.into()).collect()
    }

    /// Every joined channel, forgetting them all.
    pub(crate) fn take_joined(&mut self) -> Vec<String> {
        self.pending = Vec::new();
        std::mem::take(&mut self.joined)
            .into_iter()
            .map(|(name, _)| name.into())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_joined_and_pending_but_not_a_channel_held_already() {
        let mut s = Subscriptions::default();
        s.join("a");
        s.ticket("private-b");
        assert!(s.room_for("c", 2).is_err());
        assert!(s.room_for("a", 2).is_ok());
        assert!(s.room_for("private-b", 2).is_ok());
        assert!(s.room_for("c", 3).is_ok());
    }

    #[test]
    fn only_the_latest_ticket_settles() {
        let mut s = Subscriptions::default();
        let old = s.ticket("private-a");
        let new = s.ticket("private-a");
        assert!(!s.settle("private-a", old));
        assert!(s.settle("private-a", new));
        assert!(!s.settle("private-a", new), "settled once");
        let lapsed = s.ticket("private-b");
        assert!(!s.leave("private-b"), "never joined");
        assert!(!s.is_pending("private-b", lapsed));
    }

    #[test]
    fn members_only_in_joined_channels() {
        let mut s = Subscriptions::default();
        assert!(!s.set_member("presence-a", Arc::from("7")));
        s.join("presence-a");
        assert_eq!(s.member_of("presence-a"), None);
        assert!(s.set_member("presence-a", Arc::from("7")));
        assert_eq!(s.member_of("presence-a").as_deref(), Some("7"));
        assert_eq!(s.take_joined(), vec!["presence-a".to_owned()]);
        assert!(!s.is_joined("presence-a"));
    }
}
