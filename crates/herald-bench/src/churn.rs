//! `churn`: N clients connect, subscribe and drop (TCP closed without a goodbye), for R rounds;
//! the server's resident memory growth per connection cycle after a warm-up, from
//! `/proc/<pid>`. A server that leaks what a closed connection held grows linearly; one that
//! does not stays flat once its allocator has warmed up.

use crate::eio::connect_many;
use crate::idle::rss;
use crate::target::Target;
use clap::Args;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Options of `churn`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ChurnArgs {
    #[command(flatten)]
    target: Target,
    /// Process id of the server, for its memory figures.
    #[arg(long)]
    pid: u32,
    /// Clients per round (each subscribes to one of 100 channels).
    #[arg(long, default_value_t = 500)]
    connections: usize,
    /// Rounds measured, after the warm-up.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Rounds run before the first measurement, to warm the server's allocator up.
    #[arg(long, default_value_t = 4)]
    warmup: usize,
    /// Milliseconds to wait after each round's drop, for the server to notice.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct ChurnReport {
    scenario: &'static str,
    label: String,
    eio: u8,
    connections_per_round: usize,
    cycles_measured: usize,
    rss_after_warmup_bytes: u64,
    rss_after_bytes: u64,
    /// RSS after each measured round, minus RSS after the warm-up.
    growth_per_round_bytes: Vec<i64>,
    growth_per_cycle_bytes: f64,
    seconds: f64,
}

/// One round: connect and subscribe `n` clients, then drop them all at once.
async fn round(args: &ChurnArgs, round: usize) -> anyhow::Result<()> {
    let connected = connect_many(
        &args.target.url,
        &args.target.wire(),
        args.connections,
        round,
        |i| format!("churn-{}", i % 100),
    )
    .await;
    let subscribers = connected.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    // Let the subscribes land before the sockets go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(subscribers);
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    Ok(())
}

/// Runs the rounds and reports the growth.
pub(crate) async fn run(args: ChurnArgs) -> anyhow::Result<ChurnReport> {
    let started = Instant::now();
    for i in 0..args.warmup {
        round(&args, i).await?;
    }
    let base = rss(args.pid)?;
    let mut growth = Vec::with_capacity(args.rounds);
    for i in 0..args.rounds {
        round(&args, args.warmup + i).await?;
        growth.push(rss(args.pid)? as i64 - base as i64);
    }
    let after = rss(args.pid)?;
    let cycles = args.connections * args.rounds;
    let report = ChurnReport {
        scenario: "churn",
        label: args.target.label.clone(),
        eio: args.target.eio,
        connections_per_round: args.connections,
        cycles_measured: cycles,
        rss_after_warmup_bytes: base,
        rss_after_bytes: after,
        growth_per_round_bytes: growth,
        growth_per_cycle_bytes: (after as f64 - base as f64) / cycles.max(1) as f64,
        seconds: started.elapsed().as_secs_f64(),
    };
    args.target.save(&report)?;
    Ok(report)
}
