//! How many authorization requests may be in flight: per connection and in total, with a
//! bounded number waiting. Without it, one socket asking for 300 private channels makes 300
//! simultaneous requests to the Laravel app — an amplification anyone can trigger.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bounds (`limits.maxAuthRequestsPerConnection`, `limits.maxAuthRequests`,
/// `limits.maxAuthRequestsQueued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthBounds {
    /// In flight for one connection.
    pub per_connection: usize,
    /// In flight for the whole process.
    pub total: usize,
    /// Waiting for a slot, for the whole process; beyond, a request is refused.
    pub queued: usize,
}

/// Process-wide slots for authorization requests.
pub struct AuthGate {
    bounds: AuthBounds,
    total: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// One connection's slots.
pub struct ConnectionSlots(Arc<Semaphore>);

/// Held while a request is in flight; dropping it frees both slots.
pub struct AuthPermit {
    _connection: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

/// Too many requests are waiting already.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "too many authorization requests are waiting ({0}, limits.maxAuthRequestsQueued); subscribe again later"
)]
pub struct AuthBusy(pub usize);

impl AuthGate {
    /// A gate with these bounds.
    pub fn new(bounds: AuthBounds) -> AuthGate {
        AuthGate {
            bounds,
            total: Arc::new(Semaphore::new(bounds.total.max(1))),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Slots for a new connection.
    pub fn connection_slots(&self) -> ConnectionSlots {
        ConnectionSlots(Arc::new(Semaphore::new(self.bounds.per_connection.max(1))))
    }

    /// Waits for a slot of the connection and one of the process, in that order; refuses at
    /// once when both are taken and the waiting room is full.
    pub async fn admit(&self, slots: &ConnectionSlots) -> Result<AuthPermit, AuthBusy> {
        if let (Ok(connection), Ok(total)) = (
            slots.0.clone().try_acquire_owned(),
            self.total.clone().try_acquire_owned(),
        ) {
            return Ok(AuthPermit {
                _connection: connection,
                _total: total,
            });
        }
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _leave = Waiting(&self.waiting);
        if waiting >= self.bounds.queued {
            return Err(AuthBusy(self.bounds.queued));
        }
        // Neither semaphore is ever closed, so acquiring cannot fail.
        let (Ok(connection), Ok(total)) = (
            slots.0.clone().acquire_owned().await,
            self.total.clone().acquire_owned().await,
        ) else {
            return Err(AuthBusy(self.bounds.queued));
        };
        Ok(AuthPermit {
            _connection: connection,
            _total: total,
        })
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

/// Leaves the waiting room when the wait ends, however it ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_connection: usize, total: usize, queued: usize) -> AuthGate {
        AuthGate::new(AuthBounds {
            per_connection,
            total,
            queued,
        })
    }

    #[tokio::test]
    async fn a_connection_gets_at_most_its_share() {
        let gate = gate(2, 10, 10);
        let slots = gate.connection_slots();
        let a = gate.admit(&slots).await.expect("first");
        let _b = gate.admit(&slots).await.expect("second");
        let third = tokio::time::timeout(std::time::Duration::from_millis(50), gate.admit(&slots));
        assert!(third.await.is_err(), "the third waits");
        drop(a);
        gate.admit(&slots).await.expect("a slot came free");
        // Another connection is not held up by this one.
        gate.admit(&gate.connection_slots()).await.expect("another");
    }

    #[tokio::test]
    async fn beyond_the_waiting_room_requests_are_refused() {
        let gate = Arc::new(gate(1, 1, 1));
        let slots = Arc::new(gate.connection_slots());
        let held = gate.admit(&slots).await.expect("first");
        let (g, s) = (gate.clone(), slots.clone());
        let waiter = tokio::spawn(async move { g.admit(&s).await.map(|_| ()) });
        while gate.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.admit(&slots).await.err(), Some(AuthBusy(1)));
        drop(held);
        assert!(waiter.await.expect("join").is_ok());
        assert_eq!(gate.waiting(), 0);
    }
}
