//! A connection's outgoing queue: frames shared with every other recipient (`FrameText`), bounded
//! in frames and in bytes. The publisher pushes without waiting; the connection's own task
//! drains it. Over either bound the connection is marked too slow, and its task closes it: the
//! client that does not read is found by its own queue, with no traffic to anyone else.

use crate::hub::FrameText;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::Poll;
use tokio::sync::Notify;

/// Frames one connection may have waiting.
pub const MAX_QUEUED_FRAMES: usize = 1_024;

/// Why a push was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The connection is closing or closed.
    Closed,
    /// The queue was over a bound: the connection is now closing as too slow.
    Overflow,
}

/// What the connection's task gets next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A frame to write.
    Frame(FrameText),
    /// Nothing more will be queued: the queue overflowed.
    TooSlow,
    /// The connection is to be closed at the app's request ([`Outbox::terminate`]).
    Terminated,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<FrameText>,
    bytes: usize,
    overflowed: bool,
    terminated: bool,
    closed: bool,
}

/// One connection's queue.
pub struct Outbox {
    queue: Mutex<Queue>,
    /// The connection's task, waiting for a frame. One consumer, so one waker: cheaper than a
    /// `Notify`'s list of waiters, which cost a lock and a list update per delivery.
    ready: AtomicWaker,
    overflow: Notify,
    max_bytes: usize,
}

impl Outbox {
    /// An empty queue (no allocation until the first frame) holding at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Outbox {
        Outbox {
            queue: Mutex::default(),
            ready: AtomicWaker::new(),
            overflow: Notify::new(),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `frame`, never waiting.
    pub fn push(&self, frame: FrameText) -> Result<(), Refused> {
        let mut queue = self.lock();
        if queue.closed || queue.overflowed || queue.terminated {
            return Err(Refused::Closed);
        }
        if queue.frames.len() >= MAX_QUEUED_FRAMES || queue.bytes + frame.len() > self.max_bytes {
            queue.overflowed = true;
            queue.frames = VecDeque::new();
            queue.bytes = 0;
            drop(queue);
            self.ready.wake();
            self.overflow.notify_waiters();
            return Err(Refused::Overflow);
        }
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        // Only the first frame of a batch wakes the task: it drains everything queued before
        // it waits again, and it looks under this lock, so no frame is left unseen.
        let first = queue.frames.len() == 1;
        drop(queue);
        if first {
            self.ready.wake();
        }
        Ok(())
    }

    /// Asks the connection's task to close the connection; frames still queued are dropped.
    pub fn terminate(&self) {
        let mut queue = self.lock();
        queue.terminated = true;
        queue.frames = VecDeque::new();
        queue.bytes = 0;
        drop(queue);
        self.ready.wake();
    }

    /// Refuses every later push (the connection ends).
    pub fn close(&self) {
        let mut queue = self.lock();
        queue.closed = true;
        queue.frames = VecDeque::new();
        queue.bytes = 0;
        drop(queue);
        self.unwatch();
    }

    /// The task that waited on this queue has ended: its waker is let go, so a queue that is
    /// kept (a session parked for recovery) does not keep that task's memory.
    pub fn unwatch(&self) {
        drop(self.ready.take());
    }

    /// The next frame, waiting for one. Only the connection's own task waits here.
    pub fn next(&self) -> impl Future<Output = Next> + '_ {
        std::future::poll_fn(|cx| {
            // Registered before looking, so a push between the look and the wait wakes us.
            self.ready.register(cx.waker());
            match self.try_next() {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        })
    }

    /// The next frame if one is waiting (none once the queue overflowed), without waiting.
    pub fn pop(&self) -> Option<FrameText> {
        match self.try_next()? {
            Next::Frame(frame) => Some(frame),
            Next::TooSlow | Next::Terminated => None,
        }
    }

    /// Whether the queue overflowed (the connection is too slow, nothing more is queued).
    pub fn has_overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Resolves once the queue has overflowed: a task blocked writing to a client that does
    /// not read learns it at once, not when its write times out.
    pub async fn overflowed(&self) {
        loop {
            let notified = self.overflow.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.lock().overflowed {
                return;
            }
            notified.await;
        }
    }

    fn try_next(&self) -> Option<Next> {
        let mut queue = self.lock();
        if queue.overflowed {
            return Some(Next::TooSlow);
        }
        if queue.terminated {
            return Some(Next::Terminated);
        }
        let frame = queue.frames.pop_front()?;
        queue.bytes -= frame.len();
        // A burst leaves a large ring behind: give it back once drained, so an idle
        // connection holds no buffer.
        if queue.frames.is_empty() && queue.frames.capacity() > 16 {
            queue.frames = VecDeque::new();
        }
        Some(Next::Frame(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_come_out_in_order() {
        let outbox = Outbox::new(1024);
        outbox.push(FrameText::from_static("a")).expect("queued");
        outbox.push(FrameText::from_static("b")).expect("queued");
        assert_eq!(
            outbox.next().await,
            Next::Frame(FrameText::from_static("a"))
        );
        assert_eq!(
            outbox.next().await,
            Next::Frame(FrameText::from_static("b"))
        );
    }

    #[tokio::test]
    async fn over_the_byte_bound_the_connection_is_too_slow() {
        let outbox = Outbox::new(10);
        outbox
            .push(FrameText::from_static("12345"))
            .expect("queued");
        outbox
            .push(FrameText::from_static("12345"))
            .expect("queued");
        assert_eq!(
            outbox.push(FrameText::from_static("1")),
            Err(Refused::Overflow)
        );
        assert_eq!(
            outbox.push(FrameText::from_static("1")),
            Err(Refused::Closed)
        );
        assert_eq!(outbox.next().await, Next::TooSlow);
    }

    #[tokio::test]
    async fn over_the_frame_bound_the_connection_is_too_slow() {
        let outbox = Outbox::new(usize::MAX);
        for _ in 0..MAX_QUEUED_FRAMES {
            outbox.push(FrameText::from_static("x")).expect("queued");
        }
        assert_eq!(
            outbox.push(FrameText::from_static("x")),
            Err(Refused::Overflow)
        );
        assert_eq!(outbox.next().await, Next::TooSlow);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_push_and_closed_queues_refuse() {
        let outbox = std::sync::Arc::new(Outbox::new(100));
        let reader = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.next().await }
        });
        tokio::task::yield_now().await;
        outbox.push(FrameText::from_static("late")).expect("queued");
        assert_eq!(
            reader.await.expect("task"),
            Next::Frame(FrameText::from_static("late"))
        );
        outbox.close();
        assert_eq!(
            outbox.push(FrameText::from_static("x")),
            Err(Refused::Closed)
        );
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    /// Only a push onto an empty queue wakes the reader: one drained in a batch must still
    /// wake on the next push.
    #[tokio::test]
    async fn a_reader_that_drained_a_batch_wakes_on_the_next_push() {
        let outbox = std::sync::Arc::new(Outbox::new(100));
        outbox.push(FrameText::from_static("a")).expect("queued");
        outbox.push(FrameText::from_static("b")).expect("queued");
        assert_eq!(
            outbox.next().await,
            Next::Frame(FrameText::from_static("a"))
        );
        assert_eq!(outbox.pop(), Some(FrameText::from_static("b")));
        assert_eq!(outbox.pop(), None);
        for frame in ["c", "d"] {
            let reader = tokio::spawn({
                let outbox = outbox.clone();
                async move { outbox.next().await }
            });
            tokio::task::yield_now().await;
            outbox.push(FrameText::from(frame)).expect("queued");
            let next = tokio::time::timeout(std::time::Duration::from_secs(1), reader)
                .await
                .expect("woken")
                .expect("task");
            assert_eq!(next, Next::Frame(FrameText::from(frame)));
        }
    }
}

#[cfg(test)]
mod overflow_tests {
    use super::*;

    #[tokio::test]
    async fn a_blocked_writer_learns_of_the_overflow() {
        let outbox = std::sync::Arc::new(Outbox::new(4));
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.overflowed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let _ = outbox.push(FrameText::from_static("12345"));
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("task");
    }
}
