//! `herald stop`.

use super::{ConfigLocation, lock};
use crate::console;
use std::process::ExitCode;
use std::time::Duration;

/// Stops the server named by the lock file and waits for it to exit.
pub(super) fn run(location: &ConfigLocation) -> anyhow::Result<ExitCode> {
    let lock_path = lock::lock_path(&location.path());
    let pid = match lock::read_pid(&lock_path) {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            console::error(&format!(
                "Error: Could not find any lock file ({}).",
                lock_path.display()
            ));
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => {
            console::error(&format!(
                "Error: There was a problem reading the lock file {} ({e}).",
                lock_path.display()
            ));
            return Ok(ExitCode::FAILURE);
        }
    };
    if !lock::is_running_server(pid) {
        let _ = std::fs::remove_file(&lock_path);
        console::info(&format!(
            "No running servers to close (process {pid} is gone); removed the stale lock file."
        ));
        return Ok(ExitCode::SUCCESS);
    }
    match lock::terminate(pid, Duration::from_secs(30)) {
        Ok(true) => {
            let _ = std::fs::remove_file(&lock_path);
            console::info("Closed the running server.");
            Ok(ExitCode::SUCCESS)
        }
        Ok(false) => {
            console::error(&format!(
                "Error: sent SIGTERM to process {pid} but it is still running after 30 s."
            ));
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            console::error(&format!("Error: cannot signal process {pid}: {e}"));
            console::info("No running servers to close.");
            Ok(ExitCode::FAILURE)
        }
    }
}
