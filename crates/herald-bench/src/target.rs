//! The options every scenario shares: which server, which protocol, where the report goes.

use clap::Args;
use serde::Serialize;

/// The server under test and the report's destination.
#[derive(Args, Debug, Clone)]
pub(crate) struct Target {
    /// Server base URL.
    #[arg(long, default_value = "ws://127.0.0.1:6001")]
    pub(crate) url: String,
    /// Engine.IO version: 3 (socket.io-client 2.x) or 4 (3.x/4.x).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=4))]
    pub(crate) eio: u8,
    /// Speak the Pusher protocol to `/app/{key}` with this app key, instead of Socket.IO.
    #[arg(long)]
    pub(crate) pusher_key: Option<String>,
    /// Name of the server under test, for the report.
    #[arg(long, default_value = "server")]
    pub(crate) label: String,
    /// Write the report as JSON to this file too.
    #[arg(long)]
    pub(crate) json: Option<std::path::PathBuf>,
}

impl Target {
    /// The protocol the subscribers speak.
    pub(crate) fn wire(&self) -> crate::eio::Wire {
        match &self.pusher_key {
            Some(key) => crate::eio::Wire::Pusher(key.clone()),
            None => crate::eio::Wire::EngineIo(self.eio),
        }
    }

    /// Writes `report` to `--json`, if given.
    pub(crate) fn save(&self, report: &impl Serialize) -> anyhow::Result<()> {
        if let Some(path) = &self.json {
            std::fs::write(path, serde_json::to_vec_pretty(report)?)?;
        }
        Ok(())
    }
}
