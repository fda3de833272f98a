//! The default options, in laravel-echo-server's key order (the order `init` writes them).

use serde_json::{Value, json};

/// The options a config file starts from, exactly as laravel-echo-server 1.6.3 writes them.
pub fn default_options() -> Value {
    json!({
        "authHost": "http://localhost",
        "authEndpoint": "/broadcasting/auth",
        "clients": [],
        "database": "redis",
        "databaseConfig": {
            "redis": {},
            "sqlite": { "databasePath": "/database/laravel-echo-server.sqlite" }
        },
        "devMode": false,
        "host": null,
        "port": "6001",
        "protocol": "http",
        "socketio": {},
        "secureOptions": 67108864,
        "sslCertPath": "",
        "sslKeyPath": "",
        "sslCertChainPath": "",
        "sslPassphrase": "",
        "subscribers": { "http": true, "redis": true },
        "apiOriginAllow": {
            "allowCors": false,
            "allowOrigin": "",
            "allowMethods": "",
            "allowHeaders": ""
        }
    })
}

/// Keys Herald reads besides the defaults above: honoured, never warned about, not written by `init`.
pub(super) const EXTRA_TOP_LEVEL_KEYS: &[&str] = &[
    "headers",
    "logFormat",
    "redisSource",
    "authTimeout",
    "authVerifyTls",
    "authStrict",
    "whisperMaxBytes",
    "whisperRateLimit",
    "shutdownTimeout",
    "metricsPort",
    "metricsToken",
    "console",
    "trustedProxies",
    "limits",
    "cluster",
    "workers",
];
