//! The `LARAVEL_ECHO_SERVER_*` environment overrides.

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
