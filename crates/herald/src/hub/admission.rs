//! Counting connections against `limits.maxConnections` from the moment a session opens.
//!
//! A transport session exists before its protocol says "connected" (an Engine.IO handshake
//! comes before Socket.IO's CONNECT, up to the 10 s connect timeout later), and it
//! holds memory all that time. So a session takes a *reservation* when it opens; a connection
//! that completes turns one reservation into a counted connection, and a reservation that is
//! never completed lapses after [`RESERVATION_LIFETIME`], by which time the transport has
//! closed the session.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long an opened session counts without completing: longer than the Engine.IO connect
/// timeout (10 s), after which it closes such a session itself.
pub(super) const RESERVATION_LIFETIME: Duration = Duration::from_secs(15);

/// Open connections, and sessions opened but not yet connected.
#[derive(Default)]
pub(super) struct Admission {
    connected: AtomicUsize,
    /// When each outstanding reservation lapses, oldest first.
    reserved: Mutex<VecDeque<Instant>>,
}

impl Admission {
    fn reservations(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        let mut reserved = self.reserved.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while reserved.front().is_some_and(|lapses| *lapses <= now) {
            reserved.pop_front();
        }
        reserved
    }

    /// Reserves room for a session that opens now, unless connections and reservations
    /// already reach `limit`.
    pub(super) fn reserve(&self, limit: usize) -> bool {
        let mut reserved = self.reservations();
        if self.connected.load(Ordering::Relaxed) + reserved.len() >= limit {
            return false;
        }
        reserved.push_back(Instant::now() + RESERVATION_LIFETIME);
        true
    }

    /// Gives back a reservation whose session did not open after all.
    pub(super) fn release(&self) {
        self.reservations().pop_back();
    }

    /// A connection completed: it takes over the oldest reservation, if any is left.
    pub(super) fn opened(&self) {
        let mut reserved = self.reservations();
        reserved.pop_front();
        self.connected.fetch_add(1, Ordering::Relaxed);
    }

    /// A counted connection closed.
    pub(super) fn closed(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// Connections counted now (not reservations).
    pub(super) fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }

    /// Connections and live reservations.
    #[cfg(test)]
    fn occupied(&self) -> usize {
        self.connected() + self.reservations().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_count_from_the_moment_they_open() {
        let admission = Admission::default();
        assert!(admission.reserve(2));
        assert!(admission.reserve(2));
        assert!(
            !admission.reserve(2),
            "two sessions opened, none connected yet"
        );
        admission.opened();
        assert_eq!(admission.occupied(), 2);
        assert!(!admission.reserve(2));
        admission.release();
        assert!(admission.reserve(2));
        admission.closed();
        assert_eq!(admission.connected(), 0);
    }

    #[test]
    fn reservations_lapse() {
        let admission = Admission::default();
        admission
            .reserved
            .lock()
            .expect("lock")
            .push_back(Instant::now());
        assert_eq!(admission.occupied(), 0);
        assert!(admission.reserve(1));
    }
}
