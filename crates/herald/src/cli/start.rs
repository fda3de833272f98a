//! `herald start`.

use super::{ConfigLocation, lock};
use crate::config::{self, LoadError};
use crate::console;
use crate::node::NodeId;
use clap::Args;
use std::process::ExitCode;
use std::time::Duration;

/// Options of `start`.
#[derive(Args, Debug)]
pub(super) struct StartArgs {
    #[command(flatten)]
    location: ConfigLocation,
    /// Stop a server that is already running from this config, then start.
    #[arg(long)]
    force: bool,
    /// Run in development mode (verbose devMode lines).
    #[arg(long)]
    dev: bool,
}

/// Loads the config, takes the lock and serves until SIGINT or SIGTERM.
pub(super) fn run(args: StartArgs) -> anyhow::Result<ExitCode> {
    let path = args.location.path();
    let mut loaded = match config::load(path, args.location.explicit()) {
        Ok(loaded) => loaded,
        Err(e @ LoadError::Values(_)) => {
            console::error(&e.to_string());
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            console::error(&format!("Error: {e}"));
            return Ok(ExitCode::FAILURE);
        }
    };
    loaded.config.dev_mode |= args.dev;
    console::init(loaded.config.log_format, loaded.config.dev_mode);

    let lock_path = lock::lock_path(loaded.source.path());
    match lock::read_pid(&lock_path) {
        Ok(Some(pid)) if lock::is_running_server(pid) => {
            if !args.force {
                console::error(
                    "Error: There is already a server running! Use the option '--force' to stop it and start another one.",
                );
                return Ok(ExitCode::FAILURE);
            }
            console::warning(&format!(
                "Warning: Closing process {pid} because you used the '--force' option."
            ));
            if let Ok(false) = lock::terminate(pid, Duration::from_secs(15)) {
                console::error(&format!("Error: process {pid} did not stop within 15 s."));
                return Ok(ExitCode::FAILURE);
            }
        }
        Ok(_) => {}
        Err(e) => console::warning(&format!(
            "There was a problem reading the existing lock file {} ({e}); replacing it.",
            lock_path.display()
        )),
    }
    // The node that last held this lock has stopped (or was stopped above).
    let stopped_node = lock::read_node(&lock_path);
    // Random per start, unless the cluster config names this node.
    let node = loaded
        .config
        .cluster
        .as_ref()
        .and_then(|cluster| cluster.node_id.clone())
        .unwrap_or_else(NodeId::random);
    let wrote_lock = match lock::write_own(&lock_path, &node) {
        Ok(()) => true,
        Err(e) => {
            console::warning(&format!(
                "Cannot write lock file {} ({e}); starting anyway, but `herald stop` will not find this server.",
                lock_path.display()
            ));
            false
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(crate::server::run(loaded, node, stopped_node));
    if wrote_lock {
        lock::release(&lock_path);
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            console::error(&format!("Error: {e:#}"));
            Ok(ExitCode::FAILURE)
        }
    }
}
