//! `fanout`: N subscribers on one channel, constant-arrival publishes through Redis, latency
//! from the intended publish time to receipt (so a late publisher cannot hide latency).

use crate::eio::{Subscriber, stamp};
use crate::publisher::{PublishArgs, Publisher, Via};
use crate::target::Target;
use anyhow::bail;
use clap::Args;
use futures_util::StreamExt;
use futures_util::stream;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `fanout`.
#[derive(Args, Debug, Clone)]
pub(crate) struct FanoutArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    publish: PublishArgs,
    /// Subscribed connections.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Publishes per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Padding in each event's data, in bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Process id of the server, to report its CPU time per 1,000 deliveries.
    #[arg(long)]
    pid: Option<u32>,
}

impl FanoutArgs {
    /// The same run at another rate and duration, without a JSON file.
    pub(crate) fn at_rate(&self, rate: u64, duration: u64) -> FanoutArgs {
        FanoutArgs {
            rate,
            duration,
            target: Target {
                json: None,
                ..self.target.clone()
            },
            ..self.clone()
        }
    }

    /// Subscribers per run.
    pub(crate) fn subscribers(&self) -> usize {
        self.subscribers
    }

    /// The server under test and the report's destination.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct FanoutReport {
    scenario: &'static str,
    label: String,
    eio: u8,
    via: Via,
    subscribers: usize,
    rate: u64,
    duration_s: u64,
    payload_bytes: usize,
    published: u64,
    expected: u64,
    received: u64,
    duplicates: u64,
    pub(crate) delivery_ratio: f64,
    pub(crate) deliveries_per_s: f64,
    pub(crate) latency_us: Percentiles,
    /// Server CPU seconds (user + system) per 1,000 deliveries, when `--pid` is given.
    server_cpu_s_per_1k_deliveries: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Percentiles {
    p50: u64,
    p90: u64,
    pub(crate) p99: u64,
    p999: u64,
    max: u64,
}

/// One subscriber's tally, updated in place so a run that times out still reports it.
struct Tally {
    latency: Histogram<u64>,
    received: u64,
    duplicates: u64,
    seen: Vec<u64>,
}

impl Tally {
    fn new(publications: u64) -> anyhow::Result<Tally> {
        Ok(Tally {
            latency: Histogram::new_with_bounds(1, 120_000_000, 3)?,
            received: 0,
            duplicates: 0,
            seen: vec![0; (publications as usize).div_ceil(64) + 1],
        })
    }

    /// Records `seq` (1-based); returns false for a duplicate.
    fn record(&mut self, seq: u64, latency_us: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let Some(slot) = self.seen.get_mut(word) else {
            return;
        };
        if *slot & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        *slot |= 1 << bit;
        self.received += 1;
        let _ = self.latency.record(latency_us.max(1));
    }
}

/// Runs the scenario and prints the report.
pub(crate) async fn run(args: FanoutArgs) -> anyhow::Result<FanoutReport> {
    let channel = "bench";
    let publications = args.rate * args.duration;
    let start = Instant::now();
    let ready = Arc::new(AtomicUsize::new(0));
    let tallies: Vec<Arc<Mutex<Tally>>> = (0..args.subscribers)
        .map(|_| Tally::new(publications).map(|t| Arc::new(Mutex::new(t))))
        .collect::<anyhow::Result<_>>()?;

    // Connect with bounded concurrency, so a big N does not look like a SYN flood.
    let channels = [channel.to_owned()];
    let connected: Vec<anyhow::Result<Subscriber>> = stream::iter(0..args.subscribers)
        .map(|_| Subscriber::connect(&args.target.url, args.target.eio, &channels))
        .buffered(64)
        .collect()
        .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (subscriber, tally) in connected.into_iter().zip(&tallies) {
        let subscriber = subscriber?;
        let tally = tally.clone();
        let ready = ready.clone();
        let mut warmed = false;
        tasks.push(tokio::spawn(subscriber.run(
            stopped.clone(),
            move |frame| {
                let Some(stamp) = stamp(frame) else {
                    return true;
                };
                if stamp.seq == 0 {
                    if !warmed {
                        warmed = true;
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                    return true;
                }
                let now_us = start.elapsed().as_micros() as u64;
                let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
                tally.record(stamp.seq, now_us.saturating_sub(stamp.sent_us));
                tally.received < publications
            },
        )));
    }

    let mut publisher = Publisher::connect(&args.publish, &args.target.url).await?;
    let pad = "x".repeat(args.payload);
    let data = |seq: u64, t: u64| format!("{{\"seq\":{seq},\"t\":{t},\"pad\":\"{pad}\"}}");
    let event = "App\\Events\\Bench";

    // Warm up until every subscriber has seen an event: subscriptions have no ack.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.load(Ordering::Relaxed) < args.subscribers {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} subscribers received the warm-up event in 30 s",
                ready.load(Ordering::Relaxed),
                args.subscribers
            );
        }
        publisher.publish(channel, event, &data(0, 0)).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let cpu_before = args.pid.map(crate::idle::cpu_ticks).transpose()?;
    let publish_start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    for seq in 1..=publications {
        let scheduled = publish_start + interval * (seq as u32 - 1);
        tokio::time::sleep_until(scheduled.into()).await;
        let sent_us = scheduled.duration_since(start).as_micros() as u64;
        publisher
            .publish(channel, event, &data(seq, sent_us))
            .await?;
    }
    let expected = publications * args.subscribers as u64;
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while total(&tallies, |t| t.received) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after = args.pid.map(crate::idle::cpu_ticks).transpose()?;
    let _ = stop.send(true);
    for task in &tasks {
        task.abort();
    }

    let mut latency = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)?;
    for tally in &tallies {
        let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
        latency.add(&tally.latency)?;
    }
    if std::env::var_os("HERALD_BENCH_DEBUG").is_some() {
        for (i, tally) in tallies.iter().enumerate().take(5) {
            let tally = tally.lock().unwrap_or_else(|p| p.into_inner());
            let missing: Vec<u64> = (1..=publications)
                .filter(|seq| tally.seen[(seq / 64) as usize] & (1 << (seq % 64)) == 0)
                .take(20)
                .collect();
            eprintln!(
                "subscriber {i}: received {} missing {:?}",
                tally.received, missing
            );
        }
    }
    let received = total(&tallies, |t| t.received);
    let report = FanoutReport {
        scenario: "fanout",
        label: args.target.label.clone(),
        eio: args.target.eio,
        via: args.publish.via,
        subscribers: args.subscribers,
        rate: args.rate,
        duration_s: args.duration,
        payload_bytes: args.payload,
        published: publications,
        expected,
        received,
        duplicates: total(&tallies, |t| t.duplicates),
        delivery_ratio: if expected == 0 {
            1.0
        } else {
            received as f64 / expected as f64
        },
        deliveries_per_s: received as f64 / args.duration.max(1) as f64,
        latency_us: Percentiles {
            p50: latency.value_at_quantile(0.50),
            p90: latency.value_at_quantile(0.90),
            p99: latency.value_at_quantile(0.99),
            p999: latency.value_at_quantile(0.999),
            max: latency.max(),
        },
        // Clock ticks are 1/100 s on Linux.
        server_cpu_s_per_1k_deliveries: cpu_before.zip(cpu_after).map(|(before, after)| {
            (after - before) as f64 / 100.0 / (received.max(1) as f64 / 1000.0)
        }),
    };
    args.target.save(&report)?;
    Ok(report)
}

fn total(tallies: &[Arc<Mutex<Tally>>], field: impl Fn(&Tally) -> u64) -> u64 {
    tallies
        .iter()
        .map(|t| field(&t.lock().unwrap_or_else(|p| p.into_inner())))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_duplicates_once() {
        let mut tally = Tally::new(100).expect("tally");
        tally.record(1, 10);
        tally.record(1, 10);
        tally.record(100, 20);
        assert_eq!((tally.received, tally.duplicates), (2, 1));
        assert_eq!(tally.latency.len(), 2);
    }
}
