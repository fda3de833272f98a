//! `storm`: N clients connect and subscribe at once; how long until every one of them receives
//! events. With `--await-restart` it then waits for the server to go away and come back (the
//! driver restarts it) and measures how long until every client has reconnected, resubscribed
//! and receives events again, as Echo's clients do after a deploy.

use crate::eio::Subscriber;
use crate::publisher::{PublishArgs, Publisher};
use crate::target::Target;
use anyhow::bail;
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Options of `storm`.
#[derive(Args, Debug, Clone)]
pub(crate) struct StormArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    publish: PublishArgs,
    /// Clients that connect at once.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// After everyone is subscribed, print `storm: ready for restart` on stderr, wait for the
    /// server to restart, and measure the reconnection.
    #[arg(long)]
    await_restart: bool,
    /// Give up after this many seconds per phase.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// What one storm measured.
#[derive(Debug, Serialize)]
pub(crate) struct StormReport {
    scenario: &'static str,
    label: String,
    eio: u8,
    clients: usize,
    /// Handshake attempts that failed and were retried.
    failed_attempts: u64,
    /// From the start until every client completed its handshake and sent `subscribe`.
    all_connected_ms: f64,
    /// From the start until every client received an event.
    all_subscribed_ms: f64,
    /// Per client, start to first event: p50/p99/max in milliseconds.
    subscribed_ms: Spread,
    /// From the first client losing its connection until every client received an event again.
    restart_all_resubscribed_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Spread {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Progress shared by the clients.
#[derive(Default)]
struct Progress {
    connected: AtomicUsize,
    subscribed: AtomicUsize,
    resubscribed: AtomicUsize,
    failed_attempts: AtomicU64,
    /// Microseconds since the start when the first client lost its connection (0: not yet).
    first_loss_us: AtomicU64,
    time_to_first_event_us: Mutex<Vec<u64>>,
}

/// Runs the scenario.
pub(crate) async fn run(args: StormArgs) -> anyhow::Result<StormReport> {
    let start = Instant::now();
    let progress = Arc::new(Progress::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut clients = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8));
        let (url, wire) = (args.target.url.clone(), args.target.wire());
        let (progress, stopped) = (progress.clone(), stopped.clone());
        clients.push(tokio::spawn(async move {
            let channels = ["storm".to_owned()];
            let mut generation = 0u32;
            while !*stopped.borrow() {
                let subscriber =
                    match Subscriber::connect_from(&url, &wire, &channels, Some(source)).await {
                        Ok(subscriber) => subscriber,
                        Err(_) => {
                            progress.failed_attempts.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    };
                if generation == 0 {
                    progress.connected.fetch_add(1, Ordering::Relaxed);
                }
                let mut first = true;
                let progress_in = progress.clone();
                let _ = subscriber
                    .run(stopped.clone(), |_| {
                        if first {
                            first = false;
                            if generation == 0 {
                                let us = start.elapsed().as_micros() as u64;
                                progress_in.subscribed.fetch_add(1, Ordering::Relaxed);
                                if let Ok(mut times) = progress_in.time_to_first_event_us.lock() {
                                    times.push(us);
                                }
                            } else {
                                progress_in.resubscribed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        true
                    })
                    .await;
                if *stopped.borrow() {
                    break;
                }
                // Lost the connection: note when the first loss happened, then reconnect as
                // socket.io-client does (after a short delay).
                let now = start.elapsed().as_micros() as u64;
                let _ = progress.first_loss_us.compare_exchange(
                    0,
                    now.max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                generation += 1;
                tokio::time::sleep(Duration::from_millis(100 + (i % 200) as u64)).await;
            }
        }));
    }

    let mut publisher = Publisher::connect(&args.publish, &args.target.url).await?;
    // A steady trickle of events tells each client it is subscribed (there is no ack).
    let probe = "{\"seq\":0,\"t\":0}";
    let event = "App\\Events\\Storm";
    let phase_timeout = Duration::from_secs(args.timeout);
    let mut all_connected_ms = None;
    loop {
        if all_connected_ms.is_none() && progress.connected.load(Ordering::Relaxed) == args.clients
        {
            all_connected_ms = Some(millis(start.elapsed()));
        }
        if progress.subscribed.load(Ordering::Relaxed) == args.clients {
            break;
        }
        if start.elapsed() > phase_timeout {
            bail!(
                "after {} s only {} of {} clients connected and {} received events",
                args.timeout,
                progress.connected.load(Ordering::Relaxed),
                args.clients,
                progress.subscribed.load(Ordering::Relaxed)
            );
        }
        let _ = publisher.publish("storm", event, probe).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_subscribed_ms = millis(start.elapsed());

    let mut restart_all_resubscribed_ms = None;
    if args.await_restart {
        eprintln!("storm: ready for restart");
        let phase_start = Instant::now();
        loop {
            if progress.resubscribed.load(Ordering::Relaxed) == args.clients {
                let first_loss =
                    Duration::from_micros(progress.first_loss_us.load(Ordering::Relaxed));
                restart_all_resubscribed_ms =
                    Some(millis(start.elapsed().saturating_sub(first_loss)));
                break;
            }
            if phase_start.elapsed() > phase_timeout * 2 {
                bail!(
                    "after the restart only {} of {} clients received events again",
                    progress.resubscribed.load(Ordering::Relaxed),
                    args.clients
                );
            }
            // Publishing fails while an HTTP-API server is down: keep trying.
            if publisher.publish("storm", event, probe).await.is_err() {
                publisher = match Publisher::connect(&args.publish, &args.target.url).await {
                    Ok(publisher) => publisher,
                    Err(_) => publisher,
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = stop.send(true);
    for client in &clients {
        client.abort();
    }

    let mut histogram = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    if let Ok(times) = progress.time_to_first_event_us.lock() {
        for &us in times.iter() {
            let _ = histogram.record(us.max(1));
        }
    }
    let report = StormReport {
        scenario: "storm",
        label: args.target.label.clone(),
        eio: args.target.eio,
        clients: args.clients,
        failed_attempts: progress.failed_attempts.load(Ordering::Relaxed),
        all_connected_ms: all_connected_ms.unwrap_or(all_subscribed_ms),
        all_subscribed_ms,
        subscribed_ms: Spread {
            p50: histogram.value_at_quantile(0.5) as f64 / 1000.0,
            p99: histogram.value_at_quantile(0.99) as f64 / 1000.0,
            max: histogram.max() as f64 / 1000.0,
        },
        restart_all_resubscribed_ms,
    };
    args.target.save(&report)?;
    Ok(report)
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
