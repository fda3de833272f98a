//! Polling a future only after something woke it.
//!
//! A session's task wakes for every frame queued for it, and `select!` then polls each of its
//! branches — the websocket's read side too: a trip through tungstenite, hyper's upgraded
//! stream and tokio's readiness check that finds nothing, once per delivery. [`WokenOnly`]
//! gives the read side a waker of its own that notes when it is woken; until it is, polling it
//! is skipped, since nothing it waits on has changed since it answered `Pending`.

use futures_util::task::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// The read side's own waker: notes the wake-up, then wakes the task.
struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Polls what it guards only when that was woken since it last answered `Pending`.
pub struct WokenOnly {
    flag: Arc<Flag>,
    /// `flag` as a waker, made once.
    waker: Waker,
}

impl Default for WokenOnly {
    fn default() -> Self {
        WokenOnly::new()
    }
}

impl WokenOnly {
    /// Polls at its first use.
    pub fn new() -> WokenOnly {
        let flag = Arc::new(Flag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        let waker = Waker::from(flag.clone());
        WokenOnly { flag, waker }
    }

    /// Makes the next [`WokenOnly::poll`] poll: what it guards was polled with another waker
    /// meanwhile, which a wake-up would reach instead of this guard's.
    pub fn rearm(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// `poll`, with this guard's waker, if it was woken since it last answered `Pending`;
    /// otherwise `Pending` at once. What `poll` waits on must wake the waker it was given (a
    /// future that reads from a socket does).
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // The task first: a wake-up from now on reaches it, so none is lost between the check
        // and the poll below.
        self.flag.task.register(cx.waker());
        if !self.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        match poll(&mut Context::from_waker(&self.waker)) {
            Poll::Pending => Poll::Pending,
            ready => {
                // Ready once is no promise of nothing more: what was read may hold another
                // message, which no wake-up will announce.
                self.flag.woken.store(true, Ordering::Release);
                ready
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A task waker that counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn it_polls_only_after_a_wake_up_and_passes_the_wake_up_on() {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let task = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&task);
        let gate = WokenOnly::new();
        let polls = std::cell::Cell::new(0);
        let kept: std::cell::RefCell<Option<Waker>> = Default::default();
        let pending = |cx: &mut Context<'_>| {
            polls.set(polls.get() + 1);
            *kept.borrow_mut() = Some(cx.waker().clone());
            Poll::<()>::Pending
        };
        assert!(gate.poll(&mut cx, pending).is_pending());
        assert!(gate.poll(&mut cx, pending).is_pending());
        assert_eq!(polls.get(), 1, "not polled again without a wake-up");
        let handed_over = kept.borrow_mut().take();
        handed_over.expect("a waker was handed over").wake();
        assert_eq!(counter.0.load(Ordering::Relaxed), 1, "the task is woken");
        assert!(gate.poll(&mut cx, pending).is_pending());
        assert_eq!(polls.get(), 2, "polled after the wake-up");
    }

    #[test]
    fn after_ready_it_polls_again() {
        let task = Waker::from(Arc::new(Counter(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&task);
        let gate = WokenOnly::new();
        let mut polls = 0;
        assert!(
            gate.poll(&mut cx, |_| {
                polls += 1;
                Poll::Ready(())
            })
            .is_ready()
        );
        assert!(
            gate.poll(&mut cx, |_| {
                polls += 1;
                Poll::<()>::Pending
            })
            .is_pending()
        );
        assert_eq!(polls, 2);
    }
}
