//! `knee`: raises the publish rate until p99 exceeds 100 ms or the delivery ratio drops below
//! 0.999, and reports the last stable deliveries per second.

use crate::fanout::{self, FanoutArgs, FanoutReport};
use clap::Args;
use serde::Serialize;

/// Options of `knee`.
#[derive(Args, Debug, Clone)]
pub(crate) struct KneeArgs {
    #[command(flatten)]
    fanout: FanoutArgs,
    /// First publish rate.
    #[arg(long, default_value_t = 50)]
    start_rate: u64,
    /// Each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Seconds per step.
    #[arg(long, default_value_t = 5)]
    step_duration: u64,
    /// Highest p99 latency that counts as stable, in milliseconds.
    #[arg(long, default_value_t = 100)]
    max_p99_ms: u64,
    /// Lowest delivery ratio that counts as stable.
    #[arg(long, default_value_t = 0.999)]
    min_ratio: f64,
    /// Stop after this many steps.
    #[arg(long, default_value_t = 20)]
    max_steps: usize,
}

/// The ramp and its result.
#[derive(Debug, Serialize)]
pub(crate) struct KneeReport {
    scenario: &'static str,
    subscribers: usize,
    /// The highest stable rate, in publishes per second.
    stable_rate: Option<u64>,
    /// The highest stable rate, in deliveries per second.
    stable_deliveries_per_s: Option<f64>,
    steps: Vec<FanoutReport>,
}

/// Runs steps until one is unstable.
pub(crate) async fn run(args: KneeArgs) -> anyhow::Result<KneeReport> {
    let mut rate = args.start_rate.max(1);
    let mut steps = Vec::new();
    let mut stable: Option<(u64, f64)> = None;
    for _ in 0..args.max_steps {
        let report = fanout::run(args.fanout.at_rate(rate, args.step_duration)).await?;
        let ok = report.delivery_ratio >= args.min_ratio
            && report.latency_us.p99 <= args.max_p99_ms * 1000;
        eprintln!(
            "rate {rate}/s: p99 {} us, ratio {:.4} -> {}",
            report.latency_us.p99,
            report.delivery_ratio,
            if ok { "stable" } else { "past the knee" }
        );
        if ok {
            stable = Some((rate, report.deliveries_per_s));
        }
        steps.push(report);
        if !ok {
            break;
        }
        rate = ((rate as f64 * args.factor).ceil() as u64).max(rate + 1);
    }
    let report = KneeReport {
        scenario: "knee",
        subscribers: args.fanout.subscribers(),
        stable_rate: stable.map(|(r, _)| r),
        stable_deliveries_per_s: stable.map(|(_, d)| d),
        steps,
    };
    args.fanout.target().save(&report)?;
    Ok(report)
}
