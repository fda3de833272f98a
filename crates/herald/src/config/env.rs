//! The `LARAVEL_ECHO_SERVER_*` environment overrides, `HERALD_CONSOLE_TOKEN` and
//! `HERALD_WORKERS`.

use serde_json::{Map, Value};

/// Each override: the variable and the dotted path of the option it sets.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("LARAVEL_ECHO_SERVER_AUTH_HOST", "authHost"),
    ("LARAVEL_ECHO_SERVER_DEBUG", "devMode"),
    ("LARAVEL_ECHO_SERVER_HOST", "host"),
    ("LARAVEL_ECHO_SERVER_PORT", "port"),
    (
        "LARAVEL_ECHO_SERVER_REDIS_HOST",
        "databaseConfig.redis.host",
    ),
    (
        "LARAVEL_ECHO_SERVER_REDIS_PORT",
        "databaseConfig.redis.port",
    ),
    (
        "LARAVEL_ECHO_SERVER_REDIS_PASSWORD",
        "databaseConfig.redis.password",
    ),
    ("LARAVEL_ECHO_SERVER_PROTO", "protocol"),
    ("LARAVEL_ECHO_SERVER_SSL_CERT", "sslCertPath"),
    ("LARAVEL_ECHO_SERVER_SSL_KEY", "sslKeyPath"),
    ("LARAVEL_ECHO_SERVER_SSL_CHAIN", "sslCertChainPath"),
    ("LARAVEL_ECHO_SERVER_SSL_PASS", "sslPassphrase"),
    ("HERALD_CONSOLE_TOKEN", "console.token"),
    ("HERALD_WORKERS", "workers"),
];

/// Resolves `${NAME}` indirection the way laravel-echo-server does: if the value contains
/// `${NAME}`, the whole value becomes the variable `NAME` (or empty). Not interpolation.
pub fn resolve_indirection(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let Some(start) = value.find("${") else {
        return value.to_owned();
    };
    let rest = &value[start + 2..];
    match rest.find('}') {
        Some(end) if end > 0 => lookup(&rest[..end]).unwrap_or_default(),
        _ => value.to_owned(),
    }
}

/// Applies every non-empty override to the raw file object, creating nested objects as needed.
///
/// Returns the dotted paths that were overridden, so they can be logged. Values stay strings,
/// as in the original; validation later parses them.
pub fn apply_env_overrides(
    file: &mut Value,
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<&'static str> {
    let mut applied = Vec::new();
    for (var, path) in ENV_OVERRIDES {
        let Some(raw) = lookup(var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let value = resolve_indirection(&raw, &lookup);
        set_path(file, path, Value::String(value));
        applied.push(*path);
    }
    applied
}

/// Where a Pusher app can come from in the environment, first match wins: Herald's own
/// variables, then Reverb's, so a Laravel `.env` works as it is.
pub(super) const APP_ENV_PREFIXES: &[&str] = &["HERALD_APP_", "REVERB_APP_"];

/// Adds the Pusher app of `<prefix>ID`, `<prefix>KEY` and `<prefix>SECRET` (all three set and
/// non-empty) to `clients`, unless the file already has a client with that `appId` (the file
/// wins). Returns which variables were used, for the start-up log.
pub(super) fn apply_app_env(
    file: &mut Value,
    lookup: impl Fn(&str) -> Option<String>,
) -> Option<&'static str> {
    for prefix in APP_ENV_PREFIXES {
        let var = |name: &str| lookup(&format!("{prefix}{name}")).filter(|v| !v.is_empty());
        let (Some(id), Some(key), Some(secret)) = (var("ID"), var("KEY"), var("SECRET")) else {
            continue;
        };
        if !file.is_object() {
            *file = Value::Object(Map::new());
        }
        let Value::Object(root) = file else {
            return None;
        };
        let clients = root
            .entry("clients")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !clients.is_array() {
            return None; // validation reports the bad `clients`
        }
        let Value::Array(clients) = clients else {
            return None;
        };
        if clients
            .iter()
            .any(|c| c.get("appId").and_then(Value::as_str) == Some(id.as_str()))
        {
            return None;
        }
        let mut app = Map::new();
        app.insert("appId".to_owned(), Value::String(id));
        app.insert("key".to_owned(), Value::String(key));
        app.insert("secret".to_owned(), Value::String(secret));
        clients.push(Value::Object(app));
        return Some(if *prefix == "HERALD_APP_" {
            "clients (HERALD_APP_ID/KEY/SECRET)"
        } else {
            "clients (REVERB_APP_ID/KEY/SECRET)"
        });
    }
    None
}

/// Sets `a.b.c` in `root`, replacing any non-object on the way by an object.
fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut node = root;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else {
            return;
        };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        node = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_pusher_app_comes_from_herald_or_reverb_variables() {
        let mut file = json!({});
        let used = apply_app_env(
            &mut file,
            env(&[
                ("REVERB_APP_ID", "r"),
                ("REVERB_APP_KEY", "rk"),
                ("REVERB_APP_SECRET", "rs"),
            ]),
        );
        assert_eq!(used, Some("clients (REVERB_APP_ID/KEY/SECRET)"));
        assert_eq!(
            file,
            json!({"clients": [{"appId": "r", "key": "rk", "secret": "rs"}]})
        );

        let mut file = json!({"clients": [{"appId": "a", "key": "k"}]});
        let both = env(&[
            ("HERALD_APP_ID", "h"),
            ("HERALD_APP_KEY", "hk"),
            ("HERALD_APP_SECRET", "hs"),
            ("REVERB_APP_ID", "r"),
            ("REVERB_APP_KEY", "rk"),
            ("REVERB_APP_SECRET", "rs"),
        ]);
        assert_eq!(
            apply_app_env(&mut file, both),
            Some("clients (HERALD_APP_ID/KEY/SECRET)")
        );
        assert_eq!(
            file["clients"][1],
            json!({"appId": "h", "key": "hk", "secret": "hs"})
        );

        let mut file = json!({"clients": [{"appId": "h", "key": "file"}]});
        let same_id = env(&[
            ("HERALD_APP_ID", "h"),
            ("HERALD_APP_KEY", "x"),
            ("HERALD_APP_SECRET", "y"),
        ]);
        assert_eq!(apply_app_env(&mut file, same_id), None, "the file wins");
        let partial = env(&[("HERALD_APP_ID", "h"), ("HERALD_APP_KEY", "x")]);
        let mut file = json!({});
        assert_eq!(
            apply_app_env(&mut file, partial),
            None,
            "a secret is required"
        );
        assert_eq!(file, json!({}));
    }

    #[test]
    fn indirection_replaces_the_whole_value() {
        let lookup = env(&[("APP_URL", "https://shop.test")]);
        assert_eq!(
            resolve_indirection("${APP_URL}", &lookup),
            "https://shop.test"
        );
        assert_eq!(
            resolve_indirection("x${APP_URL}/y", &lookup),
            "https://shop.test"
        );
        assert_eq!(resolve_indirection("${MISSING}", &lookup), "");
        assert_eq!(resolve_indirection("plain", &lookup), "plain");
        assert_eq!(resolve_indirection("${unclosed", &lookup), "${unclosed");
    }

    #[test]
    fn nested_overrides_create_missing_objects_instead_of_crashing() {
        let mut file = json!({"port": 6001});
        let lookup = env(&[
            ("LARAVEL_ECHO_SERVER_REDIS_HOST", "redis.internal"),
            ("LARAVEL_ECHO_SERVER_PORT", "7001"),
            ("LARAVEL_ECHO_SERVER_DEBUG", ""),
        ]);
        let applied = apply_env_overrides(&mut file, lookup);
        assert_eq!(applied, vec!["port", "databaseConfig.redis.host"]);
        assert_eq!(
            file,
            json!({"port": "7001", "databaseConfig": {"redis": {"host": "redis.internal"}}})
        );
    }

    #[test]
    fn override_values_follow_indirection() {
        let mut file = json!({});
        let lookup = env(&[
            ("LARAVEL_ECHO_SERVER_AUTH_HOST", "${APP_URL}"),
            ("APP_URL", "http://app.test"),
        ]);
        apply_env_overrides(&mut file, lookup);
        assert_eq!(file, json!({"authHost": "http://app.test"}));
    }
}
