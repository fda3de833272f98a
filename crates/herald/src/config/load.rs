//! Finding, reading and validating the config file.

use super::{Config, ConfigError, apply_env_overrides, deep_merge, default_options};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The file name laravel-echo-server looks for.
pub(super) const DEFAULT_FILE: &str = "laravel-echo-server.json";

/// Where the options came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A config file at this path.
    File(PathBuf),
    /// No file: the embedded defaults (the file that would have been read is kept for the lock).
    Embedded(PathBuf),
}

impl ConfigSource {
    /// The config file path, whether or not it exists.
    pub fn path(&self) -> &Path {
        match self {
            ConfigSource::File(p) | ConfigSource::Embedded(p) => p,
        }
    }
}

/// A validated configuration and what was noticed while loading it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The options to run with.
    pub config: Config,
    /// The file read, or the embedded defaults.
    pub source: ConfigSource,
    /// Keys that were ignored, and other remarks worth a log line.
    pub warnings: Vec<String>,
    /// Dotted paths set from `LARAVEL_ECHO_SERVER_*` variables.
    pub env_overrides: Vec<&'static str>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `--config` or `--dir` named a file that is not there.
    #[error(
        "The config file could not be found: {0}. Run `herald init` to create one, or start without --config to use the defaults."
    )]
    NotFound(PathBuf),
    /// The file exists and could not be read.
    #[error("There was a problem reading the config file {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON, or not a JSON object.
    #[error("There was a problem reading the config file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said, with line and column.
        reason: String,
    },
    /// One or more values are wrong.
    #[error("{}", render_errors(.0))]
    Values(Vec<ConfigError>),
}

fn render_errors(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
    format!("Invalid configuration:\n{}", lines.join("\n"))
}

/// `<dir>/<file>`, resolved against the working directory, as laravel-echo-server does.
pub fn resolve_config_path(config: Option<&str>, dir: Option<&str>) -> PathBuf {
    let file = config.unwrap_or(DEFAULT_FILE);
    let joined = Path::new(dir.unwrap_or("")).join(file);
    if joined.is_absolute() {
        joined
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&joined))
            .unwrap_or(joined)
    }
}

/// Reads the raw JSON object of a config file, without defaults or env overrides.
pub fn read_file_object(path: &Path) -> Result<Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Unreadable {
        path: path.to_owned(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| LoadError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(LoadError::Invalid {
            path: path.to_owned(),
            reason: "the top level must be a JSON object { … }".to_owned(),
        });
    }
    Ok(value)
}

/// Writes a config object as tab-indented JSON, the way laravel-echo-server saves it.
pub fn write_file_object(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut text = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut text, formatter);
    serde::Serialize::serialize(value, &mut serializer).map_err(std::io::Error::other)?;
    text.push(b'\n');
    std::fs::write(path, text)
}

/// Loads `.env` from the working directory, the config file (or the defaults when `explicit`
/// is false and there is none), applies env overrides, merges and validates.
pub fn load(path: PathBuf, explicit: bool) -> Result<LoadedConfig, LoadError> {
    // As dotenv does for laravel-echo-server: never overrides variables already set.
    let _ = dotenvy::dotenv();
    let (mut file, source) = if path.exists() {
        (read_file_object(&path)?, ConfigSource::File(path))
    } else if explicit {
        return Err(LoadError::NotFound(path));
    } else {
        (
            Value::Object(Default::default()),
            ConfigSource::Embedded(path),
        )
    };
    let mut env_overrides = apply_env_overrides(&mut file, |name| std::env::var(name).ok());
    env_overrides.extend(super::env::apply_app_env(&mut file, |name| {
        std::env::var(name).ok()
    }));
    let mut options = default_options();
    deep_merge(&mut options, file);
    let (mut config, warnings) = Config::from_merged(&options).map_err(LoadError::Values)?;
    if matches!(source, ConfigSource::Embedded(_)) {
        // With no file there is no Redis promise to keep: presence stays in this process.
        config.database = super::PresenceDriver::Memory;
    }
    Ok(LoadedConfig {
        config,
        source,
        warnings,
        env_overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_and_file_join_like_the_original() {
        let p = resolve_config_path(Some("echo.json"), Some("/etc/herald"));
        assert_eq!(p, PathBuf::from("/etc/herald/echo.json"));
        let p = resolve_config_path(None, None);
        assert!(p.is_absolute());
        assert!(p.ends_with(DEFAULT_FILE));
    }

    #[test]
    fn json_errors_carry_line_and_column() {
        let dir = std::env::temp_dir().join(format!("herald-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("bad.json");
        std::fs::write(&path, "{\n  \"port\": 6001,\n}").expect("write");
        let err = read_file_object(&path).expect_err("invalid");
        assert!(err.to_string().contains("line 3"), "{err}");
        std::fs::write(&path, "[1]").expect("write");
        let err = read_file_object(&path).expect_err("invalid");
        assert!(err.to_string().contains("JSON object"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
