//! The start-up banner and the remarks about how the configuration was loaded.

use crate::config::{ConfigSource, LoadedConfig};
use crate::console;

/// Prints the banner, the config source, warnings and the mode line.
pub(super) fn print(loaded: &LoadedConfig) {
    console::title("\nH E R A L D\n");
    console::info(&format!(
        "version {} (laravel-echo-server compatible)\n",
        env!("CARGO_PKG_VERSION")
    ));
    match &loaded.source {
        ConfigSource::File(path) => console::info(&format!("Config: {}", path.display())),
        ConfigSource::Embedded(path) => console::info(&format!(
            "No config file at {}: running on embedded defaults (port 6001, HTTP API on, Redis source optional, presence in memory). Run `herald init` to write one.",
            path.display()
        )),
    }
    for path in &loaded.env_overrides {
        console::info(&format!("Config: {path} set from the environment"));
    }
    for warning in &loaded.warnings {
        console::warning(warning);
    }
    if loaded.config.dev_mode {
        console::warning("Starting server in DEV mode...\n");
    } else {
        console::info("Starting server...\n");
    }
}
