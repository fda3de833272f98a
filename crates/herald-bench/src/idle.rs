//! `idle`: N subscribed connections doing nothing; the server's resident memory per connection
//! and its CPU use while idle (heartbeats only), read from `/proc/<pid>`.

use crate::eio::connect_many;
use crate::target::Target;
use anyhow::Context;
use clap::Args;
use serde::Serialize;
use std::time::Duration;

/// Options of `idle`.
#[derive(Args, Debug, Clone)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    target: Target,
    /// Process id of the server, for its memory and CPU figures.
    #[arg(long)]
    pid: u32,
    /// Connections to open (each subscribes to one of 100 channels).
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds to hold them idle while measuring CPU.
    #[arg(long, default_value_t = 10)]
    hold: u64,
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct IdleReport {
    scenario: &'static str,
    label: String,
    eio: u8,
    connections: usize,
    rss_before_bytes: u64,
    rss_after_bytes: u64,
    rss_per_connection_bytes: u64,
    idle_cpu_percent: f64,
}

/// Resident memory of `pid`, in bytes.
pub(crate) fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (is --pid right?)"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}

/// User + system CPU time of `pid`, in clock ticks (1/100 s on Linux).
pub(crate) fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let (user, system) = cpu_ticks_split(pid)?;
    Ok(user + system)
}

/// User and system CPU time of `pid`, in clock ticks: the system part is mostly the kernel's
/// TCP work, the same for every server; the user part is the server's own.
pub(crate) fn cpu_ticks_split(pid: u32) -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("bad stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the name.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok((utime, stime))
}

/// Opens the connections, measures, closes them.
pub(crate) async fn run(args: IdleArgs) -> anyhow::Result<IdleReport> {
    let rss_before = rss(args.pid)?;
    let connected = connect_many(
        &args.target.url,
        &args.target.wire(),
        args.connections,
        0,
        |i| format!("idle-{}", i % 100),
    )
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for subscriber in connected {
        tasks.push(tokio::spawn(subscriber?.run(stopped.clone(), |_| true)));
    }
    // Let the subscribes land and allocations settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ticks_before = cpu_ticks(args.pid)?;
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    let ticks_after = cpu_ticks(args.pid)?;
    let rss_after = rss(args.pid)?;
    let _ = stop.send(true);
    for task in &tasks {
        task.abort();
    }
    let report = IdleReport {
        scenario: "idle",
        label: args.target.label.clone(),
        eio: args.target.eio,
        connections: args.connections,
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        rss_per_connection_bytes: rss_after.saturating_sub(rss_before)
            / args.connections.max(1) as u64,
        idle_cpu_percent: (ticks_after - ticks_before) as f64 / args.hold.max(1) as f64,
    };
    args.target.save(&report)?;
    Ok(report)
}
