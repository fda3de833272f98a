//! The lock file `<config>.lock` holding `{"process": pid}`, as laravel-echo-server writes it,
//! but robust: a lock naming this process, a dead process or an unrelated program is stale.
//! Herald adds `"node"`, its node id, so the next start in the same place knows which node
//! stopped (presence entries of a crashed node are removed at once, not after its heartbeat
//! lapses).

use crate::node::NodeId;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `laravel-echo-server.json` → `laravel-echo-server.lock`, in the same directory.
pub(super) fn lock_path(config_path: &Path) -> PathBuf {
    let name = config_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".json").unwrap_or(&name);
    config_path.with_file_name(format!("{stem}.lock"))
}

/// The pid recorded in a lock file, or why it could not be read.
pub(super) fn read_pid(path: &Path) -> Result<Option<i32>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    value
        .get("process")
        .and_then(serde_json::Value::as_i64)
        .and_then(|pid| i32::try_from(pid).ok())
        .filter(|pid| *pid > 0)
        .map(Some)
        .ok_or_else(|| "no \"process\" number in it".to_owned())
}

/// Whether `pid` is a live Herald or laravel-echo-server other than this process.
pub(super) fn is_running_server(pid: i32) -> bool {
    if pid == std::process::id() as i32 {
        return false; // a container restarted with the same PID: the lock is ours, stale
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    // PIDs are reused after a reboot or in a new container: check what the process is.
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => {
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("herald") || cmdline.contains("laravel-echo-server")
        }
        Err(_) => true, // no /proc: trust kill(0)
    }
}

/// Sends SIGTERM and waits up to `wait` for the process to exit.
pub(super) fn terminate(pid: i32, wait: Duration) -> Result<bool, Errno> {
    kill(Pid::from_raw(pid), Signal::SIGTERM)?;
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if kill(Pid::from_raw(pid), None).is_err() || is_zombie(pid) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(false)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Writes `{"process": <this pid>, "node": <node id>}`, tab-indented like the original.
pub(super) fn write_own(path: &Path, node: &NodeId) -> std::io::Result<()> {
    crate::config::write_file_object(
        path,
        &json!({"process": std::process::id(), "node": node.as_str()}),
    )
}

/// The node id a lock file names, if it names one.
pub(super) fn read_node(path: &Path) -> Option<NodeId> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    NodeId::parse(value.get("node")?.as_str()?)
}

/// Removes the lock if it still names this process.
pub(super) fn release(path: &Path) {
    if read_pid(path) == Ok(Some(std::process::id() as i32)) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_sits_next_to_the_config() {
        assert_eq!(
            lock_path(Path::new("/srv/app/laravel-echo-server.json")),
            PathBuf::from("/srv/app/laravel-echo-server.lock")
        );
        assert_eq!(
            lock_path(Path::new("/srv/echo.conf")),
            PathBuf::from("/srv/echo.conf.lock")
        );
    }

    #[test]
    fn own_pid_and_dead_pids_are_stale() {
        assert!(!is_running_server(std::process::id() as i32));
        assert!(!is_running_server(i32::MAX - 1));
    }

    #[test]
    fn lock_round_trip() {
        let path = std::env::temp_dir().join(format!("herald-lock-{}.lock", std::process::id()));
        let node = NodeId::random();
        write_own(&path, &node).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\t\"process\""), "{text}");
        assert_eq!(read_pid(&path), Ok(Some(std::process::id() as i32)));
        assert_eq!(read_node(&path), Some(node));
        release(&path);
        assert!(!path.exists());
        std::fs::write(&path, "garbage").expect("write");
        assert!(read_pid(&path).is_err());
        assert_eq!(read_node(&path), None);
        let _ = std::fs::remove_file(&path);
    }
}
