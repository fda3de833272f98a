//! The command line: laravel-echo-server's commands, plus `doctor`.

mod client;
mod doctor;
mod doctor_auth;
mod init;
mod lock;
mod start;
mod stop;

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;

/// Herald: a real-time broadcast server for Laravel (a drop-in laravel-echo-server).
#[derive(Parser, Debug)]
#[command(name = "herald", version, about, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the config file is, as laravel-echo-server's `--config` and `--dir`.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigLocation {
    /// The config file (default laravel-echo-server.json).
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,
    /// The directory the config file is in.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<String>,
}

impl ConfigLocation {
    /// Whether the user named a file or directory (then a missing file is an error).
    pub fn explicit(&self) -> bool {
        self.config.is_some() || self.dir.is_some()
    }

    /// The resolved config file path.
    pub fn path(&self) -> std::path::PathBuf {
        crate::config::resolve_config_path(self.config.as_deref(), self.dir.as_deref())
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Starts the server.
    Start(start::StartArgs),
    /// Stops the server.
    Stop(ConfigLocation),
    /// Creates a custom config file.
    #[command(alias = "configure")]
    Init(init::InitArgs),
    /// Register a client that can make api requests.
    #[command(name = "client:add")]
    ClientAdd(client::ClientArgs),
    /// Remove a registered client.
    #[command(name = "client:remove")]
    ClientRemove(client::ClientArgs),
    /// Checks Redis and the key prefix: which channels Laravel publishes on, and whether
    /// keyPrefix matches them.
    Doctor(doctor::DoctorArgs),
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // One TLS implementation for the whole process (Redis TLS today, HTTPS later).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = match cli.command {
        Command::Start(args) => start::run(args),
        Command::Stop(location) => stop::run(&location),
        Command::Init(args) => init::run(args),
        Command::ClientAdd(args) => client::add(&args),
        Command::ClientRemove(args) => client::remove(&args),
        Command::Doctor(args) => doctor::run(args),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            crate::console::error(&format!("Error: {e:#}"));
            ExitCode::FAILURE
        }
    };
    crate::console::flush();
    code
}
