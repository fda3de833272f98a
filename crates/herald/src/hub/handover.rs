//! Fan-out by worker: a publication is handed once to each worker thread that has subscribers
//! of its channel, and that worker queues it for its own connections.
//!
//! Why: a connection's task runs on one worker thread (`crate::workers`). Delivered from the
//! publishing thread, every recipient's task was woken across threads and work-stealing moved
//! tasks between cores; handed over once per worker, a publication's recipients are queued and
//! woken on the thread that runs them. On 16 cores this raised the knee on 8 cores from 0.9M to
//! 1.7M deliveries/s; CPU per delivery stayed what the kernel's writes cost
//! (docs/performance.md, "Every core").
//!
//! The Hub knows no runtime: it learns which worker a subscriber lives on from the thread that
//! subscribes it ([`enter_worker`], set once per worker thread), and reaches the workers through
//! a [`Handover`]. A subscriber subscribed from any other thread is delivered to by the
//! publishing thread, as before: always correct, only slower.

use super::{FrameText, Frames, Publication, WireFormat};
use std::cell::Cell;
use std::sync::{Arc, Mutex};

/// A worker thread's number, from 0.
pub type WorkerId = u16;

thread_local! {
    /// The worker this thread is, if it is one.
    static CURRENT_WORKER: Cell<Option<WorkerId>> = const { Cell::new(None) };
}

/// Marks the calling thread as worker `worker`: subscriptions made on it are delivered to by
/// that worker. Called once, when the worker's thread starts.
pub fn enter_worker(worker: WorkerId) {
    CURRENT_WORKER.with(|current| current.set(Some(worker)));
}

/// The worker the calling thread is, if any.
pub(super) fn current_worker() -> Option<WorkerId> {
    CURRENT_WORKER.with(Cell::get)
}

/// One publication on its way to one or more workers.
pub struct Fanout {
    /// What to deliver.
    pub(super) publication: Publication,
    /// The frames encoded for it so far, by whichever thread encoded them first: each wire
    /// format is encoded once per publication, however many workers deliver it.
    pub(super) frames: SharedFrames,
}

/// Hands publications to the workers' own threads.
pub trait Handover: Send + Sync + 'static {
    /// Queues `fanout` for worker `worker`, which then calls [`super::Hub::deliver_handed`]
    /// with it. Never waits; `false` if that worker's queue is full.
    fn hand_over(&self, worker: WorkerId, fanout: Arc<Fanout>) -> bool;
}

/// Frames of one publication, shared between the threads that deliver it.
#[derive(Default)]
pub(super) struct SharedFrames {
    encoded: Mutex<Vec<(WireFormat, Option<FrameText>)>>,
}

impl SharedFrames {
    /// Starts with what one thread already encoded.
    pub(super) fn seeded(frames: Frames<'_>) -> SharedFrames {
        SharedFrames {
            encoded: Mutex::new(frames.into_encoded()),
        }
    }

    /// The frame of `format`, encoded by `encode` if no thread did yet.
    pub(super) fn get_or_encode(
        &self,
        format: WireFormat,
        encode: impl FnOnce() -> Option<FrameText>,
    ) -> Option<FrameText> {
        let mut encoded = self.encoded.lock().unwrap_or_else(|p| p.into_inner());
        super::find_or_encode(&mut encoded, format, encode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_no_worker_until_it_says_so() {
        std::thread::spawn(|| {
            assert_eq!(current_worker(), None);
            enter_worker(3);
            assert_eq!(current_worker(), Some(3));
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn shared_frames_encode_each_format_once() {
        let shared = SharedFrames::default();
        let mut calls = 0;
        for _ in 0..3 {
            let frame = shared.get_or_encode("pusher", || {
                calls += 1;
                Some(FrameText::from("frame"))
            });
            assert_eq!(frame.as_ref().map(FrameText::as_str), Some("frame"));
        }
        assert_eq!(calls, 1);
    }
}
