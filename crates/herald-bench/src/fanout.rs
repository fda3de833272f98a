//! `fanout`: N subscribers on one channel, constant-arrival publishes through Redis or the
//! HTTP API, latency from the intended publish time to receipt (so a late publisher cannot
//! hide latency). With `--channels` > 1 it is the `many-channels` scenario: each connection
//! subscribes `--channels-per-connection` channels and publishes go round-robin over all.

use crate::eio::{Subscriber, stamp};
use crate::publisher::{PublishArgs, Publisher, Via};
use crate::target::Target;
use anyhow::bail;
use clap::Args;
use futures_util::StreamExt;
use futures_util::stream;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};
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
    /// Channels (`bench-0` … `bench-<n-1>`, or just `bench` when 1).
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Channels each connection subscribes: connection j takes channels j·k … j·k+k-1 (mod
    /// `--channels`), so each channel gets subscribers·k/channels subscribers.
    #[arg(long, default_value_t = 1)]
    channels_per_connection: usize,
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
    /// Another node of the same cluster (repeat for each): subscribers are spread round-robin
    /// over `--url` and these, and `--via http` publishes go round-robin through each node's
    /// API, so every event crosses the cluster bus to the other nodes.
    #[arg(long = "node")]
    more_nodes: Vec<String>,
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

    /// Every node's base URL, `--url` first.
    fn nodes(&self) -> Vec<String> {
        std::iter::once(self.target.url.clone())
            .chain(self.more_nodes.iter().cloned())
            .collect()
    }
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub(crate) struct FanoutReport {
    scenario: &'static str,
    label: String,
    /// Nodes the subscribers (and HTTP publishes) were spread over.
    nodes: usize,
    eio: u8,
    via: Via,
    subscribers: usize,
    channels: usize,
    channels_per_connection: usize,
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
    /// The user-space part of it (the server's own work; the rest is mostly the kernel's TCP).
    server_user_cpu_s_per_1k_deliveries: Option<f64>,
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
    let layout = Layout::new(
        args.subscribers,
        args.channels,
        args.channels_per_connection,
    )?;
    let publications = args.rate * args.duration;
    let start = Instant::now();
    let ready = Arc::new(AtomicUsize::new(0));
    let nodes = args.nodes();
    let tallies: Vec<Arc<Mutex<Tally>>> = (0..args.subscribers)
        .map(|_| Tally::new(publications).map(|t| Arc::new(Mutex::new(t))))
        .collect::<anyhow::Result<_>>()?;

    // Connect with bounded concurrency, so a big N does not look like a SYN flood.
    let connected: Vec<anyhow::Result<Subscriber>> = stream::iter(0..args.subscribers)
        .map(|j| {
            let channels: Vec<String> = layout
                .channels_of(j)
                .map(|c| layout.channel_name(c))
                .collect();
            let url = nodes[j % nodes.len()].clone();
            let wire = args.target.wire();
            let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (j % 8) as u8));
            async move { Subscriber::connect_from(&url, &wire, &channels, Some(source)).await }
        })
        .buffered(64)
        .collect()
        .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for (subscriber, tally) in connected.into_iter().zip(&tallies) {
        let subscriber = subscriber?;
        let tally = tally.clone();
        let ready = ready.clone();
        // Warm-up events seen, one bit per channel of this connection.
        let mut warmed: Vec<u32> = Vec::with_capacity(layout.per_connection);
        tasks.push(tokio::spawn(subscriber.run(
            stopped.clone(),
            move |frame| {
                let Some(stamp) = stamp(frame) else {
                    return true;
                };
                if stamp.seq == 0 {
                    let channel = warm_up_channel(frame);
                    if warmed.len() < layout.per_connection && !warmed.contains(&channel) {
                        warmed.push(channel);
                        if warmed.len() == layout.per_connection {
                            ready.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    return true;
                }
                let now_us = start.elapsed().as_micros() as u64;
                let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
                tally.record(stamp.seq, now_us.saturating_sub(stamp.sent_us));
                true
            },
        )));
    }

    // Through Redis every node receives each event itself; through the API, each node takes
    // its turn, and the others get the event over the cluster bus.
    let mut publishers = Vec::new();
    for node in match args.publish.via {
        Via::Http => &nodes[..],
        Via::Redis => &nodes[..1],
    } {
        publishers.push(Publisher::connect(&args.publish, node).await?);
    }
    let pad = "x".repeat(args.payload);
    let data = |seq: u64, t: u64| format!("{{\"seq\":{seq},\"t\":{t},\"pad\":\"{pad}\"}}");
    let warm_up = |channel: usize| format!("{{\"seq\":0,\"t\":0,\"c\":{channel}}}");
    let event = "App\\Events\\Bench";

    // Warm up until every subscriber has seen an event on each of its channels:
    // subscriptions have no acknowledgement.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ready.load(Ordering::Relaxed) < args.subscribers {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} subscribers received the warm-up events in 60 s",
                ready.load(Ordering::Relaxed),
                args.subscribers
            );
        }
        for channel in 0..layout.channels {
            for publisher in &mut publishers {
                publisher
                    .publish(&layout.channel_name(channel), event, &warm_up(channel))
                    .await?;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let cpu_before = args.pid.map(crate::idle::cpu_ticks_split).transpose()?;
    let publish_start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    for seq in 1..=publications {
        let scheduled = publish_start + interval * (seq as u32 - 1);
        tokio::time::sleep_until(scheduled.into()).await;
        let sent_us = scheduled.duration_since(start).as_micros() as u64;
        let channel = layout.channel_of_publication(seq);
        let turn = seq as usize % publishers.len();
        publishers[turn]
            .publish(&layout.channel_name(channel), event, &data(seq, sent_us))
            .await?;
    }
    let expected: u64 = layout
        .subscriber_counts()
        .iter()
        .enumerate()
        .map(|(c, &n)| n as u64 * publications_on(c, publications, layout.channels))
        .sum();
    let drain_deadline = Instant::now() + Duration::from_secs(10);
    while total(&tallies, |t| t.received) < expected && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_after = args.pid.map(crate::idle::cpu_ticks_split).transpose()?;
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
        scenario: if args.channels > 1 {
            "many-channels"
        } else {
            "fanout"
        },
        label: args.target.label.clone(),
        nodes: nodes.len(),
        eio: args.target.eio,
        via: args.publish.via,
        subscribers: args.subscribers,
        channels: args.channels,
        channels_per_connection: args.channels_per_connection,
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
            let ticks = (after.0 + after.1) - (before.0 + before.1);
            ticks as f64 / 100.0 / (received.max(1) as f64 / 1000.0)
        }),
        server_user_cpu_s_per_1k_deliveries: cpu_before.zip(cpu_after).map(|(before, after)| {
            (after.0 - before.0) as f64 / 100.0 / (received.max(1) as f64 / 1000.0)
        }),
    };
    args.target.save(&report)?;
    Ok(report)
}

/// Who subscribes what, and where each publication goes.
#[derive(Debug, Clone, Copy)]
struct Layout {
    connections: usize,
    channels: usize,
    per_connection: usize,
}

impl Layout {
    fn new(connections: usize, channels: usize, per_connection: usize) -> anyhow::Result<Layout> {
        if channels == 0 || per_connection == 0 || per_connection > channels {
            bail!("--channels-per-connection must be between 1 and --channels");
        }
        Ok(Layout {
            connections,
            channels,
            per_connection,
        })
    }

    fn channel_name(&self, channel: usize) -> String {
        if self.channels == 1 {
            "bench".to_owned()
        } else {
            format!("bench-{channel}")
        }
    }

    fn channels_of(&self, connection: usize) -> impl Iterator<Item = usize> + use<> {
        let (first, channels) = (connection * self.per_connection, self.channels);
        (0..self.per_connection).map(move |i| (first + i) % channels)
    }

    /// Subscribers of each channel.
    fn subscriber_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.channels];
        for connection in 0..self.connections {
            for channel in self.channels_of(connection) {
                counts[channel] += 1;
            }
        }
        counts
    }

    fn channel_of_publication(&self, seq: u64) -> usize {
        ((seq - 1) % self.channels as u64) as usize
    }
}

/// How many of `publications` (round-robin from channel 0) land on `channel`.
fn publications_on(channel: usize, publications: u64, channels: usize) -> u64 {
    let channels = channels as u64;
    publications / channels + u64::from((channel as u64) < publications % channels)
}

/// The channel index carried by a warm-up event (`"c":N`), 0 when absent.
fn warm_up_channel(frame: &str) -> u32 {
    frame
        .find("\"c\":")
        .and_then(|at| {
            let digits = &frame[at + 4..];
            let end = digits
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(digits.len());
            digits[..end].parse().ok()
        })
        .unwrap_or(0)
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
    fn layout_spreads_subscriptions_evenly() {
        let layout = Layout::new(20, 100, 10).expect("layout");
        assert_eq!(
            layout.channels_of(0).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(layout.channels_of(10).next(), Some(0));
        assert!(layout.subscriber_counts().iter().all(|&n| n == 2));
        assert_eq!(publications_on(0, 250, 100), 3);
        assert_eq!(publications_on(50, 250, 100), 2);
        assert_eq!(layout.channel_of_publication(101), 0);
        assert_eq!(
            warm_up_channel(r#"42["E","bench-7",{"seq":0,"t":0,"c":7}]"#),
            7
        );
        let single = Layout::new(5, 1, 1).expect("layout");
        assert_eq!(single.channel_name(0), "bench");
        assert_eq!(single.subscriber_counts(), vec![5]);
    }

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
