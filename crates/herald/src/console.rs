//! Log output: laravel-echo-server's lines for people (text) or `tracing` JSON for machines.
//!
//! Text mode prints exactly the lines laravel-echo-server prints (people grep them), on stdout,
//! coloured only on a terminal. JSON mode sends the same messages through `tracing` as one JSON
//! object per line, with a `kind` field.
//!
//! Once [`init`] ran (the server), lines go to stdout from a dedicated thread through a bounded
//! queue (tracing-appender's non-blocking writer): a slow terminal or pipe never stalls the
//! runtime's workers, and past 128k queued lines new ones are dropped. [`flush`] writes what
//! is queued before the process exits. Before `init` (the CLI's other commands), output is
//! synchronous, so it interleaves correctly with prompts.

use crate::config::LogFormat;
use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::EnvFilter;

struct Console {
    format: LogFormat,
    color: bool,
    dev_mode: bool,
    /// The non-blocking stdout, once [`init`] ran.
    out: Option<NonBlocking>,
}

static CONSOLE: OnceLock<Console> = OnceLock::new();

/// Keeps the writer thread; dropping it (in [`flush`]) writes what is queued.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Sets up output once; later calls are ignored. `RUST_LOG` tunes library logs.
pub fn init(format: LogFormat, dev_mode: bool) {
    if CONSOLE.get().is_some() {
        return;
    }
    let (out, guard) = tracing_appender::non_blocking(std::io::stdout());
    let console = Console {
        format,
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        dev_mode,
        out: Some(out.clone()),
    };
    if CONSOLE.set(console).is_err() {
        return;
    }
    *WRITER.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(match format {
            LogFormat::Json => "info",
            LogFormat::Text => "warn,herald=off",
        })
    });
    let _ = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .with_writer(out)
            .try_init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

/// Writes every queued line, then returns; call before the process exits.
pub fn flush() {
    let guard = WRITER.lock().unwrap_or_else(|p| p.into_inner()).take();
    drop(guard);
}

fn console() -> &'static Console {
    CONSOLE.get_or_init(|| Console {
        format: LogFormat::Text,
        color: false,
        dev_mode: false,
        out: None,
    })
}

/// Whether devMode lines are printed.
pub fn dev_mode() -> bool {
    console().dev_mode
}

#[derive(Clone, Copy)]
enum Kind {
    Title,
    Info,
    Success,
    Warning,
    Error,
}

/// A message as one safe line: the leading and trailing newlines a few start-up lines use for
/// spacing stay (as blank lines around it), and every control or bidi character inside,
/// newlines included, is written as an escape. Log lines quote client text (channel and
/// event names, reasons), which must never start a forged line or drive the terminal.
fn one_line(message: &str) -> (usize, Cow<'_, str>, usize) {
    let body = message.trim_matches('\n');
    let before = message.len() - message.trim_start_matches('\n').len();
    let after = if body.is_empty() {
        0
    } else {
        message.len() - message.trim_end_matches('\n').len()
    };
    (before, escape(body), after)
}

/// Client text made safe for a log line: control and bidi characters become escapes.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn emit(kind: Kind, message: &str) {
    let c = console();
    let (blank_before, message, blank_after) = one_line(message);
    let message = message.as_ref();
    match c.format {
        LogFormat::Json => {
            let message = message.trim();
            if message.is_empty() {
                return;
            }
            match kind {
                Kind::Error => tracing::error!(target: "herald", "{message}"),
                Kind::Warning => tracing::warn!(target: "herald", "{message}"),
                _ => tracing::info!(target: "herald", "{message}"),
            }
        }
        LogFormat::Text => {
            let (prefix, color) = match kind {
                Kind::Title => ("", "\x1b[1m"),
                Kind::Info => ("", "\x1b[36m"),
                Kind::Success => ("✔  ", "\x1b[32m"),
                Kind::Warning => ("⚠ ", "\x1b[33m"),
                Kind::Error => ("", "\x1b[31m"),
            };
            let blank_before = "\n".repeat(blank_before);
            let blank_after = "\n".repeat(blank_after);
            let line = if c.color {
                format!("{blank_before}{color}{prefix}{message}\x1b[0m{blank_after}\n")
            } else {
                format!("{blank_before}{prefix}{message}{blank_after}\n")
            };
            // One write per line: the writer thread never splits it.
            let _ = match &c.out {
                Some(out) => out.clone().write_all(line.as_bytes()),
                None => std::io::stdout().lock().write_all(line.as_bytes()),
            };
        }
    }
}

/// A bold line (the banner).
pub fn title(message: &str) {
    emit(Kind::Title, message);
}

/// A cyan line.
pub fn info(message: &str) {
    emit(Kind::Info, message);
}

/// `✔  message`, green.
pub fn success(message: &str) {
    emit(Kind::Success, message);
}

/// `⚠ message`, yellow.
pub fn warning(message: &str) {
    emit(Kind::Warning, message);
}

/// A red line.
pub fn error(message: &str) {
    emit(Kind::Error, message);
}

/// A devMode line `[ISO] - message` (cyan), printed only in devMode.
pub fn dev(message: &str) {
    if dev_mode() {
        emit(Kind::Info, &format!("[{}] - {message}", now_iso()));
    }
}

/// A devMode line about one connection: as [`dev`] in text; in JSON the connection's id is
/// also a `socket_id` field, so log pipelines can follow one client.
pub fn dev_for(socket_id: &str, message: &str) {
    if !dev_mode() {
        return;
    }
    match console().format {
        LogFormat::Json => {
            let message = escape(message.trim_matches('\n'));
            tracing::info!(target: "herald", socket_id, "[{}] - {message}", now_iso())
        }
        LogFormat::Text => emit(Kind::Info, &format!("[{}] - {message}", now_iso())),
    }
}

/// A devMode line without the timestamp (e.g. `Channel: …`).
pub fn dev_plain(message: &str) {
    if dev_mode() {
        emit(Kind::Info, message);
    }
}

/// A devMode warning line `⚠ [ISO] - message`.
pub fn dev_warning(message: &str) {
    if dev_mode() {
        emit(Kind::Warning, &format!("[{}] - {message}", now_iso()));
    }
}

/// A devMode error line.
pub fn dev_error(message: &str) {
    if dev_mode() {
        emit(Kind::Error, message);
    }
}

/// `2026-11-25T22:44:03.123Z`, as JavaScript's `toISOString()`.
pub fn now_iso() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_cannot_forge_lines_or_drive_the_terminal() {
        let (before, line, after) =
            one_line("left channel: a\n[2026-01-01T00:00:00.000Z] - forged\x1b[31m\u{202e}");
        assert_eq!((before, after), (0, 0));
        assert_eq!(
            line,
            "left channel: a\\n[2026-01-01T00:00:00.000Z] - forged\\u{1b}[31m\\u{202e}"
        );
        assert!(!line.chars().any(needs_escape));
    }

    #[test]
    fn spacing_newlines_around_a_line_stay() {
        let (before, line, after) = one_line("\nServer ready!\n");
        assert_eq!((before, line.as_ref(), after), (1, "Server ready!", 1));
        assert_eq!(escape("plain"), Cow::Borrowed("plain"));
    }

    proptest::proptest! {
        #[test]
        fn fuzz_log_lines(text in ".{0,80}") {
            let (_, line, _) = one_line(&text);
            proptest::prop_assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\x1b'));
        }
    }
}
