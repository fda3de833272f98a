//! `clients`: the apps. laravel-echo-server's `{appId, key}` for its HTTP API; with a `secret`,
//! also a Pusher app. Per-app options take soketi's names, so a soketi app array carries over.

use super::reader::Reader;
use super::webhooks::{WebhookTarget, read_webhooks};
use crate::hub::MAX_CHANNEL_NAME_BYTES;
use serde_json::Value;

/// An app: HTTP API credentials, and with a secret a Pusher app.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiClient {
    /// The `{appId}` in `/apps/{appId}/…`.
    pub app_id: String,
    /// The secret passed as `auth_key` or `Authorization: Bearer`; with a `secret`, the Pusher
    /// app key that browsers connect to `/app/{key}` with.
    pub key: String,
    /// The Pusher app secret: signs channel authorizations and HTTP API requests. Apps without
    /// one serve only laravel-echo-server's protocol and API.
    pub secret: Option<String>,
    /// Whether the app's Pusher connections may send client events (`enableClientMessages`,
    /// soketi's name; default true, like laravel-echo-server's whispers).
    pub client_messages: bool,
    /// Whether the app's Pusher connections must sign in (`pusher:signin`) within
    /// `signin_timeout` (`enableUserAuthentication`; default false).
    pub user_authentication: bool,
    /// How long a connection has to sign in when it must (`userAuthenticationTimeout`, ms;
    /// soketi's name and default, 30 s).
    pub signin_timeout: std::time::Duration,
    /// Whether the app's Pusher subscribers are told channel subscription counts
    /// (`enableSubscriptionCount`; default false).
    pub subscription_count: bool,
    /// Whether the app's channels are its own (`isolated`; default false: one channel space
    /// for every app and protocol).
    pub isolated: bool,
    /// The app's own bounds; unset ones fall back to the server-wide limits.
    pub limits: AppLimits,
    /// Where the app is told what happens to its channels (`webhooks`).
    pub webhooks: Vec<WebhookTarget>,
}

/// Per-app bounds (soketi's names). `None` where the config leaves one unset (or sets -1):
/// then the server-wide limit applies, see each accessor.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AppLimits {
    /// Most Pusher connections the app may hold at once on this node (`maxConnections`).
    pub max_connections: Option<usize>,
    /// Client events one Pusher connection may send per second (`maxClientEventsPerSecond`).
    pub max_client_events_per_second: Option<u32>,
    /// Most users in one presence channel (`maxPresenceMembersPerChannel`).
    pub max_presence_members_per_channel: Option<usize>,
    /// Largest `user_info` of a presence member, in bytes (`maxPresenceMemberSizeInKb`).
    pub max_presence_member_bytes: Option<usize>,
    /// Longest channel name (`maxChannelNameLength`), at most 200.
    pub max_channel_name_length: Option<usize>,
    /// Most channels one API event may name (`maxEventChannelsAtOnce`).
    pub max_event_channels_at_once: Option<usize>,
    /// Longest event name, API or client event (`maxEventNameLength`).
    pub max_event_name_length: Option<usize>,
    /// Largest event `data`, API or client event, in bytes (`maxEventPayloadInKb`).
    pub max_event_payload_bytes: Option<usize>,
    /// Most events in one `batch_events` request (`maxEventBatchSize`).
    pub max_event_batch_size: Option<usize>,
}

/// How long a connection has to sign in when its app requires it (soketi's default).
pub(super) const DEFAULT_SIGNIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Most channels per API event when the app sets none (Pusher's limit).
pub const DEFAULT_EVENT_CHANNELS_AT_ONCE: usize = 100;
/// Most events per batch when the app sets none (Pusher's limit).
pub const DEFAULT_EVENT_BATCH_SIZE: usize = 10;
/// Longest event name when the app sets none (Pusher's limit).
pub const DEFAULT_EVENT_NAME_LENGTH: usize = 200;

impl ApiClient {
    /// The channel space the app's connections and API requests live in.
    pub fn space(&self) -> crate::hub::Space {
        match self.isolated {
            true => crate::hub::Space::isolated(&self.app_id),
            false => crate::hub::Space::shared(),
        }
    }
}

impl AppLimits {
    /// `maxEventChannelsAtOnce`, else 100.
    pub fn event_channels_at_once(&self) -> usize {
        self.max_event_channels_at_once
            .unwrap_or(DEFAULT_EVENT_CHANNELS_AT_ONCE)
    }

    /// `maxEventBatchSize`, else 10.
    pub fn event_batch_size(&self) -> usize {
        self.max_event_batch_size
            .unwrap_or(DEFAULT_EVENT_BATCH_SIZE)
    }

    /// `maxEventNameLength`, else 200.
    pub fn event_name_length(&self) -> usize {
        self.max_event_name_length
            .unwrap_or(DEFAULT_EVENT_NAME_LENGTH)
    }

    /// `maxChannelNameLength`, else the Hub's 200.
    pub fn channel_name_length(&self) -> usize {
        self.max_channel_name_length
            .unwrap_or(MAX_CHANNEL_NAME_BYTES)
    }
}

/// The keys a `clients` entry may have.
const CLIENT_KEYS: &[&str] = &[
    "appId",
    "key",
    "secret",
    "enableClientMessages",
    "isolated",
    "enableUserAuthentication",
    "userAuthenticationTimeout",
    "enableSubscriptionCount",
    "webhooks",
    "maxConnections",
    "maxClientEventsPerSecond",
    "maxPresenceMembersPerChannel",
    "maxPresenceMemberSizeInKb",
    "maxChannelNameLength",
    "maxEventChannelsAtOnce",
    "maxEventNameLength",
    "maxEventPayloadInKb",
    "maxEventBatchSize",
];

/// A warning per key of a `clients` entry Herald does not read (a misspelt limit would
/// otherwise be no limit at all, in silence).
pub(super) fn unknown_client_keys(options: &Value) -> Vec<String> {
    let Some(Value::Array(items)) = options.get("clients") else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| Some((i, item.as_object()?)))
        .flat_map(|(i, item)| {
            item.keys()
                .filter(|key| !CLIENT_KEYS.contains(&key.as_str()))
                .map(move |key| format!("unknown config key `clients[{i}].{key}` is ignored"))
        })
        .collect()
}

pub(super) fn read_clients(r: &mut Reader<'_>) -> Vec<ApiClient> {
    let Some(value) = r.get("clients") else {
        return Vec::new();
    };
    let Value::Array(items) = value else {
        r.fail("clients", value, "an array of {\"appId\": …, \"key\": …}");
        return Vec::new();
    };
    let mut clients = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let app_id = item.get("appId").and_then(Value::as_str);
        let key = item.get("key").and_then(Value::as_str);
        let secret = match item.get("secret") {
            None | Some(Value::Null) => None,
            Some(Value::String(secret)) if !secret.is_empty() => Some(secret.clone()),
            Some(other) => {
                r.fail(
                    &format!("clients[{i}].secret"),
                    other,
                    "a non-empty string (the Pusher app secret)",
                );
                None
            }
        };
        let client_messages = read_flag(r, i, item, "enableClientMessages", true);
        let isolated = match item.get("isolated") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) if secret.is_some() => true,
            Some(other) => {
                r.fail(
                    &format!("clients[{i}].isolated"),
                    other,
                    "true or false; true only with a \"secret\" (only a Pusher app has connections of its own to isolate)",
                );
                false
            }
        };
        let user_authentication = read_flag(r, i, item, "enableUserAuthentication", false);
        let subscription_count = read_flag(r, i, item, "enableSubscriptionCount", false);
        let signin_timeout =
            read_limit(r, i, item, "userAuthenticationTimeout", "milliseconds", 1.0)
                .filter(|ms| *ms > 0)
                .map_or(DEFAULT_SIGNIN_TIMEOUT, std::time::Duration::from_millis);
        let limits = read_limits(r, i, item);
        let webhooks = read_webhooks(r, i, item, secret.is_some());
        match (app_id, key) {
            (Some(app_id), Some(key)) => clients.push(ApiClient {
                app_id: app_id.to_owned(),
                key: key.to_owned(),
                secret,
                client_messages,
                user_authentication,
                signin_timeout,
                subscription_count,
                isolated,
                limits,
                webhooks,
            }),
            _ => r.fail(
                &format!("clients[{i}]"),
                item,
                "an object with string \"appId\" and \"key\"",
            ),
        }
    }
    clients
}

fn read_limits(r: &mut Reader<'_>, i: usize, item: &Value) -> AppLimits {
    let mut count =
        |name: &str, what: &str| read_limit(r, i, item, name, what, 1.0).map(|n| n as usize);
    let max_connections = count("maxConnections", "a number of connections");
    let max_presence_members_per_channel =
        count("maxPresenceMembersPerChannel", "a number of members");
    let max_event_channels_at_once = count("maxEventChannelsAtOnce", "a number of channels");
    let max_event_name_length = count("maxEventNameLength", "a number of bytes");
    let max_event_batch_size = count("maxEventBatchSize", "a number of events");
    let max_client_events_per_second = count("maxClientEventsPerSecond", "events per second")
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let max_channel_name_length = count("maxChannelNameLength", "a number of bytes");
    let max_channel_name_length = match max_channel_name_length {
        Some(n) if n == 0 || n > MAX_CHANNEL_NAME_BYTES => {
            r.fail(
                &format!("clients[{i}].maxChannelNameLength"),
                &Value::from(n),
                &format!("1 to {MAX_CHANNEL_NAME_BYTES} (Herald's longest channel name)"),
            );
            None
        }
        other => other,
    };
    let kib = |r: &mut Reader<'_>, name: &str| {
        read_limit(r, i, item, name, "a size in KiB", 1024.0).map(|n| n as usize)
    };
    let max_presence_member_bytes = kib(r, "maxPresenceMemberSizeInKb");
    let max_event_payload_bytes = kib(r, "maxEventPayloadInKb");
    AppLimits {
        max_connections,
        max_client_events_per_second,
        max_presence_members_per_channel,
        max_presence_member_bytes,
        max_channel_name_length,
        max_event_channels_at_once,
        max_event_name_length,
        max_event_payload_bytes,
        max_event_batch_size,
    }
}

/// `clients[i].<name>`, true or false, `default` when absent or null.
fn read_flag(r: &mut Reader<'_>, i: usize, item: &Value, name: &str, default: bool) -> bool {
    match item.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(enabled)) => *enabled,
        Some(other) => {
            r.fail(&format!("clients[{i}].{name}"), other, "true or false");
            default
        }
    }
}

/// `clients[i].<name>` times `unit`: `None` when absent, null or -1 (soketi's "no limit").
fn read_limit(
    r: &mut Reader<'_>,
    i: usize,
    item: &Value,
    name: &str,
    what: &str,
    unit: f64,
) -> Option<u64> {
    let value = item.get(name)?;
    if value.is_null() || value.as_i64() == Some(-1) {
        return None;
    }
    match value.as_f64() {
        Some(n) if n >= 0.0 && n.is_finite() => Some((n * unit).round() as u64),
        _ => {
            r.fail(
                &format!("clients[{i}].{name}"),
                value,
                &format!("{what} (or -1 for no limit)"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{AppLimits, Config, Value, deep_merge, default_options};
    use serde_json::json;

    fn from_value(file: &Value) -> Result<Config, Vec<crate::config::ConfigError>> {
        let mut options = default_options();
        deep_merge(&mut options, file.clone());
        Config::from_merged(&options).map(|(config, _)| config)
    }

    #[test]
    fn soketi_limit_names_with_minus_one_for_none() {
        let c = from_value(&json!({"clients": [{
            "appId": "1", "key": "k", "secret": "s",
            "maxConnections": -1,
            "maxClientEventsPerSecond": 5,
            "maxPresenceMembersPerChannel": 50,
            "maxPresenceMemberSizeInKb": 2,
            "maxChannelNameLength": 100,
            "maxEventChannelsAtOnce": 20,
            "maxEventNameLength": 64,
            "maxEventPayloadInKb": 0.5,
            "maxEventBatchSize": 4
        }]}))
        .expect("valid");
        assert_eq!(
            c.clients[0].limits,
            AppLimits {
                max_connections: None,
                max_client_events_per_second: Some(5),
                max_presence_members_per_channel: Some(50),
                max_presence_member_bytes: Some(2048),
                max_channel_name_length: Some(100),
                max_event_channels_at_once: Some(20),
                max_event_name_length: Some(64),
                max_event_payload_bytes: Some(512),
                max_event_batch_size: Some(4),
            }
        );
        let unset = from_value(&json!({"clients": [{"appId": "1", "key": "k"}]})).expect("valid");
        let mut options = default_options();
        deep_merge(
            &mut options,
            json!({"clients": [{"appId": "1", "key": "k", "maxConection": 1}]}),
        );
        let (_, warnings) = Config::from_merged(&options).expect("valid");
        assert_eq!(
            warnings,
            vec!["unknown config key `clients[0].maxConection` is ignored"]
        );
        assert_eq!(unset.clients[0].limits, AppLimits::default());
        assert_eq!(unset.clients[0].limits.event_batch_size(), 10);
        assert_eq!(unset.clients[0].limits.event_channels_at_once(), 100);
        assert_eq!(unset.clients[0].limits.channel_name_length(), 200);
    }

    #[test]
    fn a_bad_limit_is_named_with_what_is_expected() {
        let bad = json!({"clients": [{"appId": "1", "key": "k",
            "maxEventBatchSize": "ten", "maxChannelNameLength": 500, "maxEventPayloadInKb": -3}]});
        let errors = from_value(&bad).expect_err("invalid");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "clients[0].maxEventBatchSize",
                "clients[0].maxChannelNameLength",
                "clients[0].maxEventPayloadInKb"
            ]
        );
        assert!(errors[1].to_string().contains("1 to 200"), "{}", errors[1]);
        let unsigned = json!({"clients": [{"appId": "1", "key": "k", "isolated": true}]});
        let errors = from_value(&unsigned).expect_err("isolated without a secret");
        assert_eq!(errors[0].key, "clients[0].isolated");
        let signed =
            json!({"clients": [{"appId": "1", "key": "k", "secret": "s", "isolated": true}]});
        assert!(from_value(&signed).expect("valid").clients[0].isolated);
    }
}
