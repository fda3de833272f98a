//! SIGTERM/SIGINT stop the server; SIGHUP reloads the TLS certificate.

use crate::console;
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;

/// The process's signal handlers.
pub(super) struct Signals {
    terminate: Signal,
    interrupt: Signal,
    /// Notified on every SIGHUP.
    pub(super) hangup: Arc<Notify>,
}

impl Signals {
    /// Installs the handlers (before this, SIGHUP would kill the process).
    pub(super) fn install() -> anyhow::Result<Signals> {
        let mut hup = signal(SignalKind::hangup())?;
        let hangup = Arc::new(Notify::new());
        let notify = hangup.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                console::info("SIGHUP received: reloading the TLS certificate (if any).");
                notify.notify_one();
            }
        });
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup,
        })
    }

    /// Resolves on SIGTERM or SIGINT.
    pub(super) async fn terminated(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
