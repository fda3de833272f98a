//! The `socketio` object: Socket.IO server and Engine.IO options.

use super::reader::Reader;
use serde_json::Value;
use std::time::Duration;

/// An Engine.IO transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    Websocket,
}

/// The `io` cookie set on handshakes (engine.io 3 semantics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieOptions {
    /// Cookie name, `io` by default.
    pub name: String,
    /// `Path` attribute.
    pub path: String,
    /// Add `HttpOnly`.
    pub http_only: bool,
}

/// Options read from `socketio`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketIoOptions {
    /// Mount path, `/socket.io` by default (no trailing slash).
    pub path: String,
    /// How often the server (EIO4) pings, or expects the client's ping (EIO3).
    pub ping_interval: Duration,
    /// How long to wait for the answering ping/pong.
    pub ping_timeout: Duration,
    /// How long a polling-to-websocket upgrade may take.
    pub upgrade_timeout: Duration,
    /// Largest packet a client may send, in bytes.
    pub max_http_buffer_size: u64,
    /// Allowed transports.
    pub transports: Vec<Transport>,
    /// The handshake cookie, or `None` when `cookie` is `false`.
    pub cookie: Option<CookieOptions>,
    /// Serve `<path>/socket.io.js`.
    pub serve_client: bool,
    /// A socket.io client bundle to serve there, instead of looking in `node_modules`.
    pub client_path: Option<String>,
    /// Allowed browser origins as `host:port` patterns; `None` allows all (`*:*`).
    pub origins: Option<Vec<String>>,
    /// Connection state recovery (socket.io-client ≥ 4.6): how long a dropped Engine.IO 4
    /// session is kept for its client to come back to; zero turns recovery off.
    pub recovery_window: Duration,
}

/// Options of socket.io 2.x that Herald accepts and does not need.
const IGNORED_OPTIONS: &[&str] = &[
    "adapter",
    "parser",
    "wsEngine",
    "allowRequest",
    "perMessageDeflate",
    "httpCompression",
    "allowUpgrades",
];

/// Options Herald knows.
const KNOWN_OPTIONS: &[&str] = &[
    "path",
    "pingInterval",
    "pingTimeout",
    "upgradeTimeout",
    "maxHttpBufferSize",
    "transports",
    "cookie",
    "cookiePath",
    "cookieHttpOnly",
    "serveClient",
    "clientPath",
    "origins",
    "connectionStateRecovery",
];

impl SocketIoOptions {
    /// Reads `socketio.*`, adding a warning for each option Herald ignores.
    pub(super) fn read(r: &mut Reader<'_>, warnings: &mut Vec<String>) -> SocketIoOptions {
        if let Some(Value::Object(map)) = r.get("socketio") {
            for key in map.keys() {
                if IGNORED_OPTIONS.contains(&key.as_str()) {
                    warnings.push(format!(
                        "config key `socketio.{key}` is a Node socket.io option with no meaning in Herald; it is ignored"
                    ));
                } else if !KNOWN_OPTIONS.contains(&key.as_str()) {
                    warnings.push(format!("unknown config key `socketio.{key}` is ignored"));
                }
            }
        }
        let path = read_path(r);
        let ms = |r: &mut Reader<'_>, key: &str, default: u64| {
            Duration::from_millis(r.u64(
                &format!("socketio.{key}"),
                default,
                "a number of milliseconds",
            ))
        };
        let ping_interval = ms(r, "pingInterval", 25_000);
        let ping_timeout = ms(r, "pingTimeout", 5_000);
        let upgrade_timeout = ms(r, "upgradeTimeout", 10_000);
        let max_http_buffer_size =
            r.u64("socketio.maxHttpBufferSize", 1_000_000, "a number of bytes");
        SocketIoOptions {
            path,
            ping_interval,
            ping_timeout,
            upgrade_timeout,
            max_http_buffer_size,
            transports: read_transports(r),
            cookie: read_cookie(r),
            serve_client: r.bool("socketio.serveClient", true),
            client_path: r
                .opt_string("socketio.clientPath")
                .filter(|p| !p.is_empty()),
            origins: read_origins(r),
            recovery_window: Duration::from_millis(r.u64(
                "socketio.connectionStateRecovery.maxDisconnectionDuration",
                120_000,
                "a number of milliseconds (0 turns recovery off)",
            )),
        }
    }
}

fn read_path(r: &mut Reader<'_>) -> String {
    let raw = r.string("socketio.path", "/socket.io");
    let trimmed = raw.trim_end_matches('/');
    if !trimmed.starts_with('/') || trimmed.contains(['?', '#', ' ']) {
        r.fail(
            "socketio.path",
            &Value::String(raw.clone()),
            "a URL path starting with / such as \"/socket.io\"",
        );
        return "/socket.io".to_owned();
    }
    trimmed.to_owned()
}

fn read_transports(r: &mut Reader<'_>) -> Vec<Transport> {
    let expected = "an array of \"polling\" and/or \"websocket\"";
    let Some(value) = r.get("socketio.transports") else {
        return vec![Transport::Polling, Transport::Websocket];
    };
    let Value::Array(items) = value else {
        r.fail("socketio.transports", value, expected);
        return vec![Transport::Polling, Transport::Websocket];
    };
    let mut transports = Vec::new();
    for item in items {
        match item.as_str() {
            Some("polling") => transports.push(Transport::Polling),
            Some("websocket") => transports.push(Transport::Websocket),
            _ => r.fail("socketio.transports", value, expected),
        }
    }
    if transports.is_empty() {
        r.fail("socketio.transports", value, expected);
        return vec![Transport::Polling, Transport::Websocket];
    }
    transports
}

fn read_cookie(r: &mut Reader<'_>) -> Option<CookieOptions> {
    let name = match r.get("socketio.cookie") {
        None => "io".to_owned(),
        Some(Value::Bool(false)) => return None,
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(other) => {
            r.fail(
                "socketio.cookie",
                other,
                "a cookie name, or false to set no cookie",
            );
            "io".to_owned()
        }
    };
    Some(CookieOptions {
        name,
        path: r.string("socketio.cookiePath", "/"),
        http_only: r.bool("socketio.cookieHttpOnly", true),
    })
}

fn read_origins(r: &mut Reader<'_>) -> Option<Vec<String>> {
    let value = r.get("socketio.origins")?;
    let patterns: Vec<String> = match value {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        other => {
            r.fail(
                "socketio.origins",
                other,
                "\"*:*\" or a list of host:port patterns",
            );
            return None;
        }
    };
    if patterns.is_empty() || patterns.iter().any(|p| p == "*:*" || p == "*") {
        None
    } else {
        Some(patterns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(socketio: Value) -> (Result<SocketIoOptions, String>, Vec<String>) {
        let root = json!({ "socketio": socketio });
        let mut reader = Reader::new(&root);
        let mut warnings = Vec::new();
        let options = SocketIoOptions::read(&mut reader, &mut warnings);
        let errors = reader.into_errors();
        let result = match errors.first() {
            Some(e) => Err(e.to_string()),
            None => Ok(options),
        };
        (result, warnings)
    }

    #[test]
    fn defaults_match_engine_io() {
        let (options, warnings) = read(json!({}));
        let options = options.expect("valid");
        assert!(warnings.is_empty());
        assert_eq!(options.path, "/socket.io");
        assert_eq!(options.ping_interval, Duration::from_secs(25));
        assert_eq!(options.ping_timeout, Duration::from_secs(5));
        assert_eq!(options.cookie.expect("cookie").name, "io");
        assert_eq!(options.origins, None);
    }

    #[test]
    fn options_are_read_and_node_only_ones_warned() {
        let (options, warnings) = read(json!({
            "path": "/ws/", "pingInterval": 1000, "transports": ["websocket"],
            "cookie": false, "wsEngine": "uws", "origins": "app.test:* *:8080"
        }));
        let options = options.expect("valid");
        assert_eq!(options.path, "/ws");
        assert_eq!(options.transports, vec![Transport::Websocket]);
        assert_eq!(options.cookie, None);
        assert_eq!(
            options.origins,
            Some(vec!["app.test:*".into(), "*:8080".into()])
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("socketio.wsEngine"));
    }

    #[test]
    fn bad_transports_are_errors() {
        let (options, _) = read(json!({"transports": ["flashsocket"]}));
        assert!(
            options
                .expect_err("invalid")
                .contains("socketio.transports")
        );
    }
}
