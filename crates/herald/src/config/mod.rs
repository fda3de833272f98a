//! `laravel-echo-server.json`, its environment overrides and `.env`, turned into typed options.

mod clients;
mod defaults;
mod env;
mod load;
mod merge;
mod port;
mod reader;
mod socketio;
mod webhooks;

pub use clients::{
    ApiClient, AppLimits, DEFAULT_EVENT_BATCH_SIZE, DEFAULT_EVENT_CHANNELS_AT_ONCE,
    DEFAULT_EVENT_NAME_LENGTH,
};
pub use defaults::default_options;
pub use env::{ENV_OVERRIDES, apply_env_overrides, resolve_indirection};
pub use load::{
    ConfigSource, LoadError, LoadedConfig, load, read_file_object, resolve_config_path,
    write_file_object,
};
pub use merge::deep_merge;
pub use port::parse_port;
pub use reader::ConfigError;
pub use socketio::{CookieOptions, SocketIoOptions, Transport};
pub use webhooks::{WebhookKind, WebhookTarget};

use reader::Reader;
use serde_json::Value;
use std::time::Duration;

/// Every option Herald runs with, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URLs of the Laravel app for channel authorization; empty means "use `host`".
    pub auth_hosts: Vec<String>,
    /// Path appended to the auth host, `/broadcasting/auth` by default.
    pub auth_endpoint: String,
    /// HTTP API credentials.
    pub clients: Vec<ApiClient>,
    /// Where presence members are kept.
    pub database: PresenceDriver,
    /// Connection to Redis (source and presence store).
    pub redis: RedisOptions,
    /// SQLite presence file, relative to the working directory as in the original.
    pub sqlite_path: String,
    /// Publish presence member changes on the `PresenceChannelUpdated` Redis channel.
    pub publish_presence: bool,
    /// Verbose logging in laravel-echo-server's devMode format.
    pub dev_mode: bool,
    /// Bind address; `None` binds every interface.
    pub host: Option<String>,
    /// Listening port.
    pub port: u16,
    /// `http` or `https`.
    pub protocol: ListenProtocol,
    /// Socket.IO / Engine.IO transport options.
    pub socketio: SocketIoOptions,
    /// TLS files, used when `protocol` is `https`.
    pub tls: TlsFiles,
    /// Which broadcast sources run.
    pub subscribers: Subscribers,
    /// CORS headers for the HTTP API.
    pub api_cors: ApiCors,
    /// Extra headers added to every HTTP API response.
    pub headers: Vec<(String, String)>,
    /// Log line format.
    pub log_format: LogFormat,
    /// In devMode, how the Redis source reports messages its prefix would never match.
    pub redis_source: RedisSourceOptions,
    /// How channel authorization requests are made and judged.
    pub auth: AuthOptions,
    /// Limits on client events (whispers).
    pub whispers: WhisperOptions,
    /// Longest a graceful shutdown may take (`shutdownTimeout`, ms).
    pub shutdown_timeout: Duration,
    /// Serve `/metrics`, `/health` and `/ready` on this port instead of the main one.
    pub metrics_port: Option<u16>,
    /// Bearer token `/metrics` requires when set (`metricsToken`).
    pub metrics_token: Option<String>,
    /// The debug console's token (`console.token`, `HERALD_CONSOLE_TOKEN`): without one,
    /// nothing is served under `/console`.
    pub console_token: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (`trustedProxies`).
    pub trusted_proxies: crate::peer::TrustedProxies,
    /// Resource limits.
    pub limits: Limits,
    /// Several nodes as one (`cluster`), if on.
    pub cluster: Option<ClusterOptions>,
    /// Connection worker threads (`workers`, `HERALD_WORKERS`); 0: one per core.
    pub workers: usize,
}

/// `cluster`: this node is one of several sharing one Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Namespaces the bus channel (`<prefix>:bus`), so two deployments on one Redis never see
    /// each other (`cluster.prefix`, default `herald`).
    pub prefix: String,
    /// This node's id (`cluster.nodeId`); a random one per start when absent.
    pub node_id: Option<crate::node::NodeId>,
    /// Where the cluster lives (`cluster.redis`): the bus, node heartbeats, presence members
    /// and channel counts; `databaseConfig.redis` when absent, which stays Laravel's (the event
    /// source).
    pub redis: Option<RedisOptions>,
}

/// Herald's `limits` object: every bound in one place, with safe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open client connections per process (`limits.maxConnections`).
    pub max_connections: usize,
    /// Channels one connection may be subscribed to (`limits.maxChannelsPerConnection`).
    pub max_channels_per_connection: usize,
    /// Largest event: HTTP API body, Redis message (`limits.maxEventBytes`).
    pub max_event_bytes: usize,
    /// Authorization requests in flight for one connection
    /// (`limits.maxAuthRequestsPerConnection`).
    pub max_auth_requests_per_connection: usize,
    /// Authorization requests in flight in total (`limits.maxAuthRequests`).
    pub max_auth_requests: usize,
    /// Authorization requests waiting for a slot; beyond, refused with 429
    /// (`limits.maxAuthRequestsQueued`).
    pub max_auth_requests_queued: usize,
    /// Bytes queued for one connection of Herald's own core before it is disconnected as too
    /// slow (`limits.maxQueueBytes`).
    pub max_queue_bytes: usize,
}

/// Herald's channel authorization options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthOptions {
    /// Longest wait for the auth endpoint (`authTimeout`, ms).
    pub timeout: Duration,
    /// Verify the auth endpoint's TLS certificate (`authVerifyTls`).
    pub verify_tls: bool,
    /// Also require the body Laravel sends, not only status 200 (`authStrict`).
    pub strict: bool,
}

/// Herald's whisper limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperOptions {
    /// Largest whisper `data`, in bytes of JSON (`whisperMaxBytes`).
    pub max_bytes: usize,
    /// Whispers one connection may send per second (`whisperRateLimit`).
    pub rate_per_second: u32,
}

/// The presence store named by `database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceDriver {
    /// Members in Redis hashes `<keyPrefix><cluster.prefix or herald>:presence:<channel>`.
    Redis,
    /// Members in a SQLite file.
    Sqlite,
    /// Members in this process only.
    Memory,
}

/// Whether the listener speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenProtocol {
    /// Plain HTTP and WebSocket.
    Http,
    /// HTTPS and secure WebSocket.
    Https,
}

/// `json` for production log pipelines, `text` for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human lines, as laravel-echo-server prints them.
    Text,
    /// One JSON object per line.
    Json,
}

/// `databaseConfig.redis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Host name or IP.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// AUTH user (Redis 6 ACL).
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<String>,
    /// Database number for keys (pub/sub ignores it).
    pub db: u64,
    /// Laravel's Redis prefix, stripped from channel names.
    pub key_prefix: String,
    /// Connect with TLS (`rediss://`), when set.
    pub tls: Option<RedisTls>,
}

/// `databaseConfig.redis.tls`: `true`, or ioredis-style `{ca, rejectUnauthorized}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTls {
    /// PEM of the CA that signed Redis's certificate; the system roots when `None`.
    pub ca_pem: Option<String>,
    /// Verify the certificate (ioredis `rejectUnauthorized`, true by default).
    pub verify: bool,
}

/// `sslCertPath` and friends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate.
    pub cert_path: String,
    /// PEM private key.
    pub key_path: String,
    /// PEM chain appended to the certificate.
    pub chain_path: String,
    /// Passphrase of an encrypted key.
    pub passphrase: String,
}

/// `subscribers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribers {
    /// `POST /apps/{appId}/events`.
    pub http: bool,
    /// Redis `PSUBSCRIBE`.
    pub redis: bool,
}

/// `apiOriginAllow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCors {
    /// Send the CORS headers at all.
    pub allow_cors: bool,
    /// `Access-Control-Allow-Origin`.
    pub allow_origin: String,
    /// `Access-Control-Allow-Methods`.
    pub allow_methods: String,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: String,
}

/// Herald's `redisSource` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisSourceOptions {
    /// In devMode, subscribe to every channel and say when one does not match `keyPrefix`.
    pub warn_unmatched_prefix: bool,
    /// How often an idle subscription is checked with PING (`redisSource.keepalive`, ms).
    pub keepalive: Duration,
}

/// Legacy keys of laravel-echo-server 1.0–1.2 that 1.6.3 ignores too.
const LEGACY_KEYS: &[&str] = &["appKey", "referrers", "verifyAuthPath", "verifyAuthServer"];

impl Config {
    /// The Redis the nodes of a cluster share (`cluster.redis`, else `databaseConfig.redis`):
    /// presence members, heartbeats, the bus and channel counts live there.
    pub fn shared_redis(&self) -> &RedisOptions {
        self.cluster
            .as_ref()
            .and_then(|cluster| cluster.redis.as_ref())
            .unwrap_or(&self.redis)
    }

    /// Validates the merged options. Warnings (unknown keys) come back beside the config.
    pub fn from_merged(options: &Value) -> Result<(Config, Vec<String>), Vec<ConfigError>> {
        let mut warnings = unknown_key_warnings(options);
        warnings.extend(clients::unknown_client_keys(options));
        let mut r = Reader::new(options);
        let auth_hosts = read_auth_hosts(&mut r);
        let auth_endpoint = r.string("authEndpoint", "/broadcasting/auth");
        let clients = clients::read_clients(&mut r);
        let database = match r
            .one_of("database", &["redis", "sqlite", "memory"], "redis")
            .as_str()
        {
            "sqlite" => PresenceDriver::Sqlite,
            "memory" => PresenceDriver::Memory,
            _ => PresenceDriver::Redis,
        };
        let redis = read_redis(&mut r, "databaseConfig.redis", &mut warnings);
        let sqlite_path = r.string(
            "databaseConfig.sqlite.databasePath",
            "/database/laravel-echo-server.sqlite",
        );
        let publish_presence = r.bool("databaseConfig.publishPresence", false);
        let dev_mode = r.bool("devMode", false);
        let host = r.opt_string("host").filter(|h| !h.is_empty());
        let port = read_port(&mut r);
        let protocol = match r.opt_string("protocol").as_deref() {
            Some("https") => ListenProtocol::Https,
            _ => ListenProtocol::Http,
        };
        let socketio = SocketIoOptions::read(&mut r, &mut warnings);
        let tls = TlsFiles {
            cert_path: r.string("sslCertPath", ""),
            key_path: r.string("sslKeyPath", ""),
            chain_path: r.string("sslCertChainPath", ""),
            passphrase: r.string("sslPassphrase", ""),
        };
        let subscribers = Subscribers {
            http: r.bool("subscribers.http", true),
            redis: r.bool("subscribers.redis", true),
        };
        let api_cors = ApiCors {
            allow_cors: r.bool("apiOriginAllow.allowCors", false),
            allow_origin: r.string("apiOriginAllow.allowOrigin", ""),
            allow_methods: r.string("apiOriginAllow.allowMethods", ""),
            allow_headers: r.string("apiOriginAllow.allowHeaders", ""),
        };
        let headers = read_headers(&mut r);
        let log_format = match r.one_of("logFormat", &["text", "json"], "text").as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let redis_source = RedisSourceOptions {
            warn_unmatched_prefix: r.bool("redisSource.warnUnmatchedPrefix", true),
            keepalive: Duration::from_millis(
                r.u64("redisSource.keepalive", 30_000, "a number of milliseconds")
                    .max(100),
            ),
        };
        let auth = AuthOptions {
            timeout: Duration::from_millis(r.u64("authTimeout", 5_000, "a number of milliseconds")),
            verify_tls: r.bool("authVerifyTls", true),
            strict: r.bool("authStrict", false),
        };
        let whispers = WhisperOptions {
            max_bytes: r.u64("whisperMaxBytes", 10_240, "a number of bytes") as usize,
            rate_per_second: u32::try_from(r.u64("whisperRateLimit", 10, "whispers per second"))
                .unwrap_or(u32::MAX),
        };
        let shutdown_timeout =
            Duration::from_millis(r.u64("shutdownTimeout", 10_000, "a number of milliseconds"));
        let metrics_port = match r.get("metricsPort") {
            None => None,
            Some(value) => {
                let text = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                let port = parse_port(&text);
                if port.is_none() {
                    r.fail(
                        "metricsPort",
                        value,
                        "a port number, or null to use the main port",
                    );
                }
                port
            }
        };
        let metrics_token = r.opt_string("metricsToken").filter(|t| !t.is_empty());
        let console_token = r.opt_string("console.token").filter(|t| !t.is_empty());
        if let Some(token) = &console_token
            && token.len() < 16
        {
            warnings.push(format!(
                "console.token is {} characters long: anyone who guesses it sees every event and can publish; use 16 or more random characters (openssl rand -hex 16)",
                token.len()
            ));
        }
        let trusted_proxies = read_trusted_proxies(&mut r);
        let limits = Limits {
            max_connections: r.u64("limits.maxConnections", 100_000, "a number of connections")
                as usize,
            max_channels_per_connection: r.u64(
                "limits.maxChannelsPerConnection",
                1_000,
                "a number of channels",
            ) as usize,
            max_event_bytes: r.u64("limits.maxEventBytes", 1_048_576, "a number of bytes") as usize,
            max_auth_requests_per_connection: r.u64(
                "limits.maxAuthRequestsPerConnection",
                16,
                "a number of requests",
            ) as usize,
            max_auth_requests: r.u64("limits.maxAuthRequests", 1_024, "a number of requests")
                as usize,
            max_auth_requests_queued: r.u64(
                "limits.maxAuthRequestsQueued",
                4_096,
                "a number of requests",
            ) as usize,
            max_queue_bytes: r.u64("limits.maxQueueBytes", 1_048_576, "a number of bytes") as usize,
        };
        let cluster = read_cluster(&mut r, database, &mut warnings);
        let workers = r.u64("workers", 0, "a number of threads (0: one per core)") as usize;
        let errors = r.into_errors();
        if !errors.is_empty() {
            return Err(errors);
        }
        let config = Config {
            auth_hosts,
            auth_endpoint,
            clients,
            database,
            redis,
            sqlite_path,
            publish_presence,
            dev_mode,
            host,
            port,
            protocol,
            socketio,
            tls,
            subscribers,
            api_cors,
            headers,
            log_format,
            redis_source,
            auth,
            whispers,
            shutdown_timeout,
            metrics_port,
            metrics_token,
            console_token,
            trusted_proxies,
            limits,
            cluster,
            workers,
        };
        Ok((config, warnings))
    }

    /// The embedded defaults, as `herald start` uses them with no config file.
    pub fn embedded_defaults() -> Config {
        match Config::from_merged(&default_options()) {
            Ok((config, _)) => config,
            // The defaults are a constant validated by a unit test.
            Err(errors) => unreachable!("embedded defaults are invalid: {errors:?}"),
        }
    }
}

fn unknown_key_warnings(options: &Value) -> Vec<String> {
    let Value::Object(map) = options else {
        return Vec::new();
    };
    let known = default_options();
    let names: Vec<&str> = known
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys().map(String::as_str))
        .chain(defaults::EXTRA_TOP_LEVEL_KEYS.iter().copied())
        .collect();
    map.keys()
        .filter(|k| !names.contains(&k.as_str()))
        .map(|k| {
            if LEGACY_KEYS.contains(&k.as_str()) {
                format!("config key `{k}` is from laravel-echo-server 1.2 and earlier; it is ignored (use `clients`)")
            } else if let Some(near) = nearest_key(k, &names) {
                format!("unknown config key `{k}` is ignored: did you mean `{near}`?")
            } else {
                format!("unknown config key `{k}` is ignored")
            }
        })
        .collect()
}

/// The known key `key` was probably meant to be: the same but for case, or at most two edits
/// away (the closest).
fn nearest_key<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    if let Some(same) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return Some(same);
    }
    known
        .iter()
        .map(|k| {
            (
                strsim::damerau_levenshtein(&key.to_lowercase(), &k.to_lowercase()),
                *k,
            )
        })
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// `cluster`: `{"driver": "redis", "prefix"?, "nodeId"?, "redis"?}`; a cluster needs the
/// shared Redis presence store.
fn read_cluster(
    r: &mut Reader<'_>,
    database: PresenceDriver,
    warnings: &mut Vec<String>,
) -> Option<ClusterOptions> {
    match r.get("cluster") {
        None | Some(Value::Null) => return None,
        Some(Value::Object(_)) => {}
        Some(other) => {
            r.fail(
                "cluster",
                other,
                "an object such as {\"driver\": \"redis\"}",
            );
            return None;
        }
    }
    match r.get("cluster.driver") {
        Some(Value::String(driver)) if driver == "redis" => {}
        other => {
            let value = other.cloned().unwrap_or(Value::Null);
            r.fail("cluster.driver", &value, "\"redis\" (the only driver)");
            return None;
        }
    }
    let prefix = r.string("cluster.prefix", "herald");
    if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        r.fail(
            "cluster.prefix",
            &Value::String(prefix),
            "a non-empty name without spaces, e.g. \"herald\"",
        );
        return None;
    }
    if database != PresenceDriver::Redis {
        let value = r.get("database").cloned().unwrap_or(Value::Null);
        r.fail(
            "database",
            &value,
            "\"redis\" when \"cluster\" is on: the nodes share presence members in Redis",
        );
        return None;
    }
    let node_id = match r.get("cluster.nodeId") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_str().and_then(crate::node::NodeId::parse) {
            Some(id) => Some(id),
            None => {
                r.fail(
                    "cluster.nodeId",
                    value,
                    "1 to 64 letters, digits, - or _ (e.g. \"web-1\"), unique per node",
                );
                return None;
            }
        },
    };
    let redis = match r.get("cluster.redis") {
        None | Some(Value::Null) => None,
        Some(Value::Object(_)) => Some(read_redis(r, "cluster.redis", warnings)),
        Some(other) => {
            r.fail(
                "cluster.redis",
                other,
                "an object like databaseConfig.redis: {\"host\": …, \"port\": …}",
            );
            return None;
        }
    };
    Some(ClusterOptions {
        prefix,
        node_id,
        redis,
    })
}

/// `authHost`: one URL, or several (a page's Referer picks among them). The first is where auth
/// requests go when no Referer matches, so it must be an `http(s)://` URL; later entries may
/// also be `host[:port]` or `.domain` patterns matched against the Referer.
fn read_auth_hosts(r: &mut Reader<'_>) -> Vec<String> {
    let hosts = read_auth_host_entries(r);
    if let Some(first) = hosts.first()
        && !is_http_url(first)
    {
        let key = if hosts.len() > 1 {
            "authHost[0]"
        } else {
            "authHost"
        };
        let hint = match first.contains("://") {
            true => "an http:// or https:// URL such as \"http://localhost\"".to_owned(),
            false => format!(
                "a URL with its scheme: \"http://{first}\" or \"https://{first}\" (auth requests go to authHost + authEndpoint)"
            ),
        };
        r.fail(key, &Value::String(first.clone()), &hint);
    }
    hosts
}

/// Whether `text` is an `http`/`https` URL with a host.
fn is_http_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

fn read_auth_host_entries(r: &mut Reader<'_>) -> Vec<String> {
    match r.get("authHost") {
        None => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => {
            let mut hosts = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) if !s.is_empty() => hosts.push(s.clone()),
                    other => r.fail(&format!("authHost[{i}]"), other, "a URL string"),
                }
            }
            hosts
        }
        Some(other) => {
            r.fail("authHost", other, "a URL string or an array of URL strings");
            Vec::new()
        }
    }
}

fn read_trusted_proxies(r: &mut Reader<'_>) -> crate::peer::TrustedProxies {
    let expected = "an IP address or CIDR range such as \"10.0.0.0/8\"";
    let items: Vec<&Value> = match r.get("trustedProxies") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => {
            r.fail(
                "trustedProxies",
                other,
                "an array of IP addresses or CIDR ranges",
            );
            Vec::new()
        }
    };
    let mut ranges = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match item.as_str().and_then(crate::peer::parse_range) {
            Some(range) => ranges.push(range),
            None => r.fail(&format!("trustedProxies[{i}]"), item, expected),
        }
    }
    crate::peer::TrustedProxies::new(ranges)
}

fn read_port(r: &mut Reader<'_>) -> u16 {
    let Some(value) = r.get("port") else {
        return 6001;
    };
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    match parse_port(&text) {
        Some(port) => port,
        None => {
            r.fail(
                "port",
                value,
                "a port number from 10 to 65535 (e.g. 6001, \"6001\" or \"http://host:6001\")",
            );
            6001
        }
    }
}

/// The Redis connection under `base` (`databaseConfig.redis`, or `cluster.redis`).
fn read_redis(r: &mut Reader<'_>, base: &str, warnings: &mut Vec<String>) -> RedisOptions {
    for unsupported in ["sentinels", "name", "sentinelPassword", "path"] {
        if r.get(&format!("{base}.{unsupported}")).is_some() {
            warnings.push(format!(
                "config key `{base}.{unsupported}` is not supported by Herald yet and is ignored; connect to host and port directly"
            ));
        }
    }
    let port = r.u64(&format!("{base}.port"), 6379, "a TCP port number");
    let port = u16::try_from(port).unwrap_or_else(|_| {
        r.fail(
            &format!("{base}.port"),
            &Value::from(port),
            "a TCP port number",
        );
        6379
    });
    let tls = read_redis_tls(r, &format!("{base}.tls"), warnings);
    RedisOptions {
        host: r.string(&format!("{base}.host"), "127.0.0.1"),
        port,
        username: r
            .opt_string(&format!("{base}.username"))
            .filter(|s| !s.is_empty()),
        password: r
            .opt_string(&format!("{base}.password"))
            .filter(|s| !s.is_empty()),
        db: r.u64(&format!("{base}.db"), 0, "a database number"),
        key_prefix: r.string(&format!("{base}.keyPrefix"), ""),
        tls,
    }
}

fn read_redis_tls(r: &mut Reader<'_>, key: &str, warnings: &mut Vec<String>) -> Option<RedisTls> {
    match r.get(key) {
        None | Some(Value::Bool(false)) => None,
        Some(Value::Bool(true)) => Some(RedisTls {
            ca_pem: None,
            verify: true,
        }),
        Some(Value::Object(map)) => {
            for key in map.keys() {
                if !matches!(key.as_str(), "ca" | "rejectUnauthorized" | "servername") {
                    warnings.push(format!(
                        "config key `{key}.{key}` is not supported by Herald and is ignored"
                    ));
                }
            }
            let ca_pem = match map.get("ca") {
                None | Some(Value::Null) => None,
                Some(Value::String(ca)) if ca.contains("-----BEGIN") => Some(ca.clone()),
                Some(Value::String(path)) => match std::fs::read_to_string(path) {
                    Ok(pem) => Some(pem),
                    Err(e) => {
                        r.fail(
                            &format!("{key}.ca"),
                            &Value::String(path.clone()),
                            &format!("PEM text or a readable PEM file ({e})"),
                        );
                        None
                    }
                },
                Some(other) => {
                    r.fail(&format!("{key}.ca"), other, "PEM text or a PEM file path");
                    None
                }
            };
            let verify = r.bool(&format!("{key}.rejectUnauthorized"), true);
            Some(RedisTls { ca_pem, verify })
        }
        Some(other) => {
            r.fail(
                key,
                other,
                "true, false or {\"ca\": …, \"rejectUnauthorized\": …}",
            );
            None
        }
    }
}

fn read_headers(r: &mut Reader<'_>) -> Vec<(String, String)> {
    let Some(value) = r.get("headers") else {
        return Vec::new();
    };
    let Value::Object(map) = value else {
        r.fail("headers", value, "an object of header names to values");
        return Vec::new();
    };
    let mut headers = Vec::new();
    for (name, value) in map {
        let valid_name = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
        match value {
            Value::String(v) if valid_name && http::HeaderValue::from_str(v).is_ok() => {
                headers.push((name.clone(), v.clone()))
            }
            Value::Number(n) if valid_name => headers.push((name.clone(), n.to_string())),
            other => r.fail(
                &format!("headers.{name}"),
                other,
                "a valid HTTP header name with a string value",
            ),
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(file: Value) -> Value {
        let mut options = default_options();
        deep_merge(&mut options, file);
        options
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let (config, warnings) = Config::from_merged(&default_options()).expect("valid");
        assert!(warnings.is_empty());
        assert_eq!(config.port, 6001);
        assert_eq!(config.auth_hosts, vec!["http://localhost".to_owned()]);
        assert_eq!(config.redis.host, "127.0.0.1");
        assert!(config.subscribers.http && config.subscribers.redis);
        assert_eq!(config.socketio.path, "/socket.io");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        let options = merged(json!({"port": "abc", "database": "mysql", "devMode": 3}));
        let errors = Config::from_merged(&options).expect_err("invalid");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, vec!["database", "devMode", "port"]);
        assert!(errors[1].to_string().contains("expected true or false"));
    }

    #[test]
    fn unknown_and_legacy_keys_are_warnings() {
        let options = merged(json!({"prot": 1, "referrers": [], "headers": {}}));
        let (_, warnings) = Config::from_merged(&options).expect("valid");
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("unknown config key `prot`"))
        );
        assert!(warnings.iter().any(|w| w.contains("`referrers`")));
    }

    #[test]
    fn an_unknown_key_suggests_the_nearest_known_one() {
        let options = merged(json!({"devmode": true, "authHots": "x", "zzz": 1}));
        let (_, warnings) = Config::from_merged(&options).expect("valid");
        let said = warnings.join("\n");
        assert!(
            said.contains("`devmode` is ignored: did you mean `devMode`?"),
            "{said}"
        );
        assert!(
            said.contains("`authHots` is ignored: did you mean `authHost`?"),
            "{said}"
        );
        assert!(
            said.contains("unknown config key `zzz` is ignored\n")
                || said.ends_with("`zzz` is ignored"),
            "{said}"
        );
    }

    #[test]
    fn the_console_token_comes_from_the_file_or_the_environment_and_a_short_one_is_warned_of() {
        let options = merged(json!({"console": {"token": "short"}}));
        let (config, warnings) = Config::from_merged(&options).expect("valid");
        assert_eq!(config.console_token.as_deref(), Some("short"));
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("console.token is 5 characters long"))
        );
        let mut file = json!({});
        let applied = env::apply_env_overrides(&mut file, |name| {
            (name == "HERALD_CONSOLE_TOKEN").then(|| "0123456789abcdef".to_owned())
        });
        assert_eq!(applied, vec!["console.token"]);
        let (config, warnings) = Config::from_merged(&merged(file)).expect("valid");
        assert_eq!(config.console_token.as_deref(), Some("0123456789abcdef"));
        assert!(warnings.is_empty(), "{warnings:?}");
        let (config, _) = Config::from_merged(&default_options()).expect("valid");
        assert_eq!(config.console_token, None);
    }

    #[test]
    fn clients_with_a_secret_are_pusher_apps_with_their_options() {
        let clients = json!({"clients": [
            {"appId": "1", "key": "k1"},
            {"appId": "2", "key": "k2", "secret": "s2", "enableClientMessages": false},
        ]});
        let (c, _) = Config::from_merged(&merged(clients)).expect("valid");
        assert_eq!(c.clients[0].secret, None);
        assert!(
            c.clients[0].client_messages,
            "client events are on by default"
        );
        assert_eq!(c.clients[1].secret.as_deref(), Some("s2"));
        assert!(!c.clients[1].client_messages);
        assert_eq!(c.clients[0].limits.max_connections, None);
        let limited = json!({"clients": [{"appId": "1", "key": "k", "secret": "s", "maxConnections": 2}, {"appId": "2", "key": "j", "maxConnections": -1}]});
        let (c, _) = Config::from_merged(&merged(limited)).expect("valid");
        assert_eq!(c.clients[0].limits.max_connections, Some(2));
        assert_eq!(c.clients[1].limits.max_connections, None);
        let bad = json!({"clients": [{"appId": "1", "key": "k", "secret": 5, "enableClientMessages": "no"}]});
        let errors = Config::from_merged(&merged(bad)).expect_err("invalid");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec!["clients[0].secret", "clients[0].enableClientMessages"]
        );
    }

    #[test]
    fn auth_host_as_string_array_or_empty() {
        let (c, _) = Config::from_merged(&merged(json!({"authHost": ["http://a", "http://b"]})))
            .expect("valid");
        assert_eq!(c.auth_hosts, vec!["http://a", "http://b"]);
        let (c, _) = Config::from_merged(&merged(json!({"authHost": ""}))).expect("valid");
        assert!(c.auth_hosts.is_empty());
        let errors = Config::from_merged(&merged(json!({"authHost": "app.test"}))).expect_err("x");
        assert_eq!(errors[0].key, "authHost");
        assert!(
            errors[0].to_string().contains("\"http://app.test\""),
            "{}",
            errors[0]
        );
        let errors = Config::from_merged(&merged(json!({"authHost": ["ftp://a", "http://b"]})))
            .expect_err("x");
        assert_eq!(errors[0].key, "authHost[0]");
        let (c, _) = Config::from_merged(&merged(json!({"authHost": ["http://a", ".shop.test"]})))
            .expect("later entries may be Referer patterns");
        assert_eq!(c.auth_hosts, vec!["http://a", ".shop.test"]);
    }

    #[test]
    fn redis_port_and_db_may_be_strings() {
        let options = merged(json!({"databaseConfig": {"redis": {
            "port": "6380", "db": "2", "keyPrefix": "laravel_database_", "password": ""
        }}}));
        let (c, _) = Config::from_merged(&options).expect("valid");
        assert_eq!(c.redis.port, 6380);
        assert_eq!(c.redis.db, 2);
        assert_eq!(c.redis.password, None);
        assert_eq!(c.redis.key_prefix, "laravel_database_");
        assert_eq!(c.sqlite_path, "/database/laravel-echo-server.sqlite");
    }

    #[test]
    fn herald_auth_and_whisper_options() {
        let (c, warnings) = Config::from_merged(&default_options()).expect("valid");
        assert!(warnings.is_empty());
        assert_eq!(c.auth.timeout, Duration::from_secs(5));
        assert!(c.auth.verify_tls && !c.auth.strict);
        assert_eq!(
            (c.whispers.max_bytes, c.whispers.rate_per_second),
            (10_240, 10)
        );
        let options = merged(
            json!({"authTimeout": "1500", "authStrict": true, "authVerifyTls": false,
            "whisperMaxBytes": 100, "whisperRateLimit": 2}),
        );
        let (c, warnings) = Config::from_merged(&options).expect("valid");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.auth.timeout, Duration::from_millis(1500));
        assert!(c.auth.strict && !c.auth.verify_tls);
        assert_eq!((c.whispers.max_bytes, c.whispers.rate_per_second), (100, 2));
        let errors = Config::from_merged(&merged(json!({"authTimeout": "soon"}))).expect_err("bad");
        assert_eq!(errors[0].key, "authTimeout");
    }

    #[test]
    fn cluster_needs_the_redis_driver_and_the_redis_presence_store() {
        let (c, _) =
            Config::from_merged(&merged(json!({"cluster": {"driver": "redis"}}))).expect("valid");
        assert_eq!(
            c.cluster,
            Some(ClusterOptions {
                prefix: "herald".into(),
                node_id: None,
                redis: None,
            })
        );
        let (c, _) = Config::from_merged(&merged(
            json!({"cluster": {"driver": "redis", "nodeId": "web-1"}}),
        ))
        .expect("valid");
        assert_eq!(
            c.cluster.and_then(|c| c.node_id).map(|id| id.to_string()),
            Some("web-1".into())
        );
        let (c, _) = Config::from_merged(&merged(json!({}))).expect("valid");
        assert_eq!(c.cluster, None);
        let keys = |file: Value| -> Vec<String> {
            Config::from_merged(&merged(file))
                .expect_err("invalid")
                .into_iter()
                .map(|e| e.key)
                .collect()
        };
        assert_eq!(
            keys(json!({"cluster": {"driver": "nats"}})),
            vec!["cluster.driver"]
        );
        assert_eq!(
            keys(json!({"cluster": {"driver": "redis", "prefix": "a b"}})),
            vec!["cluster.prefix"]
        );
        assert_eq!(
            keys(json!({"cluster": {"driver": "redis", "nodeId": "a/b"}})),
            vec!["cluster.nodeId"]
        );
        assert_eq!(
            keys(json!({"cluster": {"driver": "redis"}, "database": "sqlite"})),
            vec!["database"]
        );
        assert_eq!(
            keys(json!({"cluster": {"driver": "redis", "redis": "10.0.0.5"}})),
            vec!["cluster.redis"]
        );
        assert_eq!(
            keys(json!({"cluster": {"driver": "redis", "redis": {"port": 70000}}})),
            vec!["cluster.redis.port"]
        );
    }

    #[test]
    fn cluster_redis_overrides_where_the_nodes_meet_not_where_laravel_publishes() {
        let (c, _) =
            Config::from_merged(&merged(json!({"cluster": {"driver": "redis"}}))).expect("valid");
        assert_eq!(c.shared_redis(), &c.redis);
        let (c, _) = Config::from_merged(&merged(json!({
            "databaseConfig": {"redis": {"port": 6379, "keyPrefix": "laravel_"}},
            "cluster": {"driver": "redis", "redis": {"host": "10.0.0.5", "port": 6380, "db": 2}}
        })))
        .expect("valid");
        let shared = c.shared_redis();
        assert_eq!(
            (
                shared.host.as_str(),
                shared.port,
                shared.db,
                shared.key_prefix.as_str()
            ),
            ("10.0.0.5", 6380, 2, "")
        );
        assert_eq!(
            (c.redis.port, c.redis.key_prefix.as_str()),
            (6379, "laravel_")
        );
    }

    #[test]
    fn redis_tls_forms() {
        let (c, _) =
            Config::from_merged(&merged(json!({"databaseConfig": {"redis": {"tls": true}}})))
                .expect("valid");
        assert_eq!(
            c.redis.tls,
            Some(RedisTls {
                ca_pem: None,
                verify: true
            })
        );
        let options = merged(json!({"databaseConfig": {"redis": {"tls": {
            "ca": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----", "rejectUnauthorized": false
        }}}}));
        let (c, _) = Config::from_merged(&options).expect("valid");
        let tls = c.redis.tls.expect("tls");
        assert!(!tls.verify && tls.ca_pem.is_some_and(|p| p.contains("BEGIN")));
        let options =
            merged(json!({"databaseConfig": {"redis": {"tls": {"ca": "/no/such/ca.pem"}}}}));
        let errors = Config::from_merged(&options).expect_err("unreadable");
        assert_eq!(errors[0].key, "databaseConfig.redis.tls.ca");
    }

    proptest::proptest! {
        /// Any JSON object as a config file is either valid or a list of errors, never a panic.
        #[test]
        fn fuzz_config(file in crate::test_support::arb_json()) {
            let _ = Config::from_merged(&merged(file));
        }
    }

    #[test]
    fn clients_need_string_ids_and_keys() {
        let options = merged(json!({"clients": [{"appId": 1, "key": "k"}]}));
        let errors = Config::from_merged(&options).expect_err("invalid");
        assert_eq!(errors[0].key, "clients[0]");
    }
}
