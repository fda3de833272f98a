//! `herald-bench`: measures a Socket.IO broadcast server (Herald or laravel-echo-server) from
//! the outside, speaking the wire protocol itself. See docs/performance.md.

mod churn;
mod eio;
mod fanout;
mod floor;
mod idle;
mod knee;
mod plot;
mod publisher;
mod storm;
mod target;
mod ws;

use clap::{Parser, Subcommand};

/// Load generator for Herald and laravel-echo-server.
#[derive(Parser, Debug)]
#[command(name = "herald-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N subscribers on one channel (or, with --channels, many channels), constant-rate
    /// publishes through Redis or the HTTP API; latency and delivery.
    Fanout(fanout::FanoutArgs),
    /// N clients connect and subscribe at once (and, optionally, again after a restart).
    Storm(storm::StormArgs),
    /// N subscribed idle connections: server RSS per connection and idle CPU.
    Idle(idle::IdleArgs),
    /// N clients connect, subscribe and drop, for R rounds: server RSS growth per cycle.
    Churn(churn::ChurnArgs),
    /// Fan-out at rising rates until p99 > 100 ms or deliveries are lost: the last stable rate.
    Knee(knee::KneeArgs),
    /// Renders the side-by-side charts (SVG) from `scripts/bench`'s plot data.
    Plot(plot::PlotArgs),
    /// A minimal fan-out server (encode once, one queue per socket) to measure the floor.
    Floor(floor::FloorArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built without a TLS provider (the workspace shares Herald's features).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Every subscriber is a socket: allow as many as the hard limit does.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match Cli::parse().scenario {
        Scenario::Fanout(args) => {
            let report = fanout::run(args).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Scenario::Floor(args) => floor::run(args).await?,
        Scenario::Plot(args) => {
            for file in plot::run(args)? {
                println!("{}", file.display());
            }
        }
        Scenario::Storm(args) => {
            let report = storm::run(args).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Scenario::Knee(args) => {
            let report = knee::run(args).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Scenario::Churn(args) => {
            let report = churn::run(args).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        Scenario::Idle(args) => {
            let report = idle::run(args).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}
