//! Connection workers: one thread per core, each running its own single-threaded runtime, each
//! owning the tasks of the connections it was given. A publication reaches a worker once (the
//! Hub's handover) and the worker wakes its own recipients, so the work of a delivery stays on
//! one core: no task migrates, no wake-up crosses threads per socket.
//!
//! The HTTP server, the sources and the API stay on the main runtime; a connection's task is
//! spawned here once its transport is open (after the WebSocket upgrade, or when a polling
//! session opens), on the worker with the fewest connections.

use crate::hub::{Fanout, Handover, Hub, WorkerId, enter_worker};
use futures_util::FutureExt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, watch};

/// Publications one worker may have waiting before the publishing thread delivers for it
/// (`herald_worker_queue_full_total`): at 100,000 publications a second, over half a second
/// behind. Each waiting one holds a reference to a shared publication, not a copy.
pub const WORKER_QUEUE: usize = 65_536;

/// Most workers Herald starts, whatever the machine.
pub const MAX_WORKERS: usize = 1_024;

/// Why the workers did not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    /// A worker's runtime or thread could not be made.
    #[error(
        "cannot start connection worker {worker}: {source}. Lower \"workers\" in the configuration, or raise the process's thread limit (ulimit -u)"
    )]
    Start {
        /// Which worker.
        worker: usize,
        /// What failed.
        source: std::io::Error,
    },
}

/// One worker as the rest of Herald reaches it.
struct Worker {
    runtime: tokio::runtime::Handle,
    inbox: mpsc::Sender<Arc<Fanout>>,
    /// Connection tasks it runs now.
    load: Arc<AtomicUsize>,
}

/// The running workers.
pub struct Workers {
    workers: Box<[Worker]>,
    stop: watch::Sender<bool>,
}

/// The number of workers `configured` asks for: 0 means one per core this process may use.
pub fn count(configured: usize) -> usize {
    let wanted = match configured {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    wanted.clamp(1, MAX_WORKERS)
}

impl Workers {
    /// Starts `count` workers delivering `hub`'s publications (the Hub holds no reference to
    /// them beyond its handover; they hold the Hub until [`Workers::stop`]).
    pub fn start(count: usize, hub: &Arc<Hub>) -> Result<Arc<Workers>, WorkersError> {
        let (stop, stopped) = watch::channel(false);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count.clamp(1, MAX_WORKERS) {
            let fail = |source| WorkersError::Start {
                worker: index,
                source,
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(fail)?;
            let (inbox, queued) = mpsc::channel(WORKER_QUEUE);
            let worker = Worker {
                runtime: runtime.handle().clone(),
                inbox,
                load: Arc::default(),
            };
            let id = WorkerId::try_from(index).unwrap_or(WorkerId::MAX);
            let hub = hub.clone();
            let mut stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("herald-worker-{index}"))
                .spawn(move || {
                    enter_worker(id);
                    runtime.block_on(async move {
                        tokio::select! {
                            () = deliver_handed(hub, id, queued) => {}
                            _ = stopped.wait_for(|stop| *stop) => {}
                        }
                    });
                    // Dropping the runtime here drops the tasks still on it: by then the
                    // server has closed its connections or given up waiting.
                })
                .map_err(fail)?;
            workers.push(worker);
        }
        Ok(Arc::new(Workers {
            workers: workers.into(),
            stop,
        }))
    }

    /// Runs `task` (a connection's) on the worker with the fewest connections.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .unwrap_or_else(|| unreachable!("Workers::start makes at least one"));
        worker.load.fetch_add(1, Ordering::Relaxed);
        worker.runtime.spawn(counted(task, worker.load.clone()));
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether none run (never: there is always one).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Stops every worker; tasks still on them are dropped.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Handover for Workers {
    fn hand_over(&self, worker: WorkerId, fanout: Arc<Fanout>) -> bool {
        match self.workers.get(usize::from(worker)) {
            Some(worker) => worker.inbox.try_send(fanout).is_ok(),
            None => false,
        }
    }
}

/// `task`, taken off its worker's count (`load`) when it ends, however it ends.
///
/// `map`, not an `async` block around the task: a block holds the task twice (as what it
/// captured and as what it awaits), and made every idle connection 1.7 KB larger
/// (`herald-bench idle`: 5,290 B against 3,547). The guard lives in the closure, so it is
/// dropped with the task even if the task never completes.
fn counted<F>(task: F, load: Arc<AtomicUsize>) -> impl Future<Output = ()> + Send + 'static
where
    F: Future<Output = ()> + Send + 'static,
{
    let counted = Counted(load);
    task.map(move |()| drop(counted))
}

/// Takes a connection off its worker's count when dropped.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A worker's own loop: delivers each publication handed to it to its connections.
async fn deliver_handed(hub: Arc<Hub>, worker: WorkerId, mut queued: mpsc::Receiver<Arc<Fanout>>) {
    while let Some(fanout) = queued.recv().await {
        hub.deliver_handed(&fanout, worker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Delivery, Frames, Publication, SocketId, Subscriber};
    use serde_json::value::RawValue;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Records which thread each delivery ran on.
    struct Recorder {
        id: SocketId,
        threads: Mutex<Vec<Option<String>>>,
    }

    impl Subscriber for Recorder {
        fn socket_id(&self) -> &SocketId {
            &self.id
        }
        fn deliver(&self, _: &Publication, _: &mut Frames<'_>) -> Delivery {
            let name = std::thread::current().name().map(str::to_owned);
            self.threads.lock().expect("lock").push(name);
            Delivery::Queued
        }
    }

    fn publication(channel: &str) -> Publication {
        let data = RawValue::from_string("{}".into()).expect("json");
        Publication::new(channel, "E", data, None)
    }

    #[test]
    fn counting_a_task_costs_its_future_a_few_bytes_and_ends_with_it() {
        async fn session() {
            let state = [7u8; 1024];
            tokio::task::yield_now().await;
            std::hint::black_box(state);
        }
        let load = Arc::new(AtomicUsize::new(1));
        let task = session();
        let bare = std::mem::size_of_val(&task);
        let wrapped = counted(task, load.clone());
        assert!(
            std::mem::size_of_val(&wrapped) <= bare + 16,
            "{} bytes around a {bare}-byte task",
            std::mem::size_of_val(&wrapped) - bare
        );
        drop(wrapped);
        assert_eq!(
            load.load(Ordering::Relaxed),
            0,
            "a dropped task is uncounted"
        );
    }

    #[test]
    fn count_zero_means_one_per_core() {
        assert!(count(0) >= 1);
        assert_eq!(count(3), 3);
        assert_eq!(count(1_000_000), MAX_WORKERS);
    }

    #[tokio::test]
    async fn a_worker_delivers_to_what_its_tasks_subscribed() {
        let hub = Arc::new(Hub::new());
        let workers = Workers::start(2, &hub).expect("workers");
        hub.hand_over_through(workers.clone());
        let recorders: Vec<Arc<Recorder>> = (0..4)
            .map(|i| {
                Arc::new(Recorder {
                    id: SocketId::new(&format!("s{i}")),
                    threads: Mutex::default(),
                })
            })
            .collect();
        let (subscribed, mut all_subscribed) = mpsc::channel(4);
        for recorder in &recorders {
            let (hub, recorder, subscribed) = (hub.clone(), recorder.clone(), subscribed.clone());
            workers.spawn(async move {
                hub.subscribe("orders", recorder);
                let _ = subscribed.send(()).await;
                std::future::pending::<()>().await;
            });
        }
        for _ in 0..4 {
            all_subscribed.recv().await.expect("subscribed");
        }
        // Also one subscriber on no worker: the publishing thread delivers to it.
        let inline = Arc::new(Recorder {
            id: SocketId::new("inline"),
            threads: Mutex::default(),
        });
        hub.subscribe("orders", inline.clone());
        assert_eq!(hub.publish(&publication("orders")), 5);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while recorders
            .iter()
            .any(|r| r.threads.lock().expect("lock").is_empty())
        {
            assert!(tokio::time::Instant::now() < deadline, "not delivered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for recorder in &recorders {
            let threads = recorder.threads.lock().expect("lock").clone();
            assert_eq!(threads.len(), 1);
            assert!(
                threads[0]
                    .as_deref()
                    .is_some_and(|t| t.starts_with("herald-worker-")),
                "delivered on {threads:?}"
            );
        }
        assert_eq!(inline.threads.lock().expect("lock").len(), 1);
        // Two workers, four connections: two each.
        assert!(
            workers
                .workers
                .iter()
                .all(|w| w.load.load(Ordering::Relaxed) == 2)
        );
        workers.stop();
    }
}
