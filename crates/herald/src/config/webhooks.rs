//! `clients[].webhooks`: where an app is told what happens to its channels, in soketi's shape
//! `[{url, headers?, event_types: [...], filter?: {channel_name_starts_with?,
//! channel_name_ends_with?}}]`.

use super::reader::Reader;
use serde_json::Value;

/// What a webhook can be told of (Pusher's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookKind {
    /// A channel got its first subscriber.
    ChannelOccupied,
    /// A channel lost its last subscriber (told a few seconds later, unless re-occupied).
    ChannelVacated,
    /// A user joined a presence channel (their first connection in it).
    MemberAdded,
    /// A user left a presence channel (their last connection; told a few seconds later,
    /// unless they come back).
    MemberRemoved,
    /// A client sent an event (a whisper) on a channel.
    ClientEvent,
    /// A connection subscribed to a cache channel with no event kept.
    CacheMiss,
    /// A channel's subscription count changed (coalesced; not for presence channels).
    SubscriptionCount,
}

impl WebhookKind {
    /// Every kind, with its name in the config and in the webhook body.
    pub const ALL: [(WebhookKind, &'static str); 7] = [
        (WebhookKind::ChannelOccupied, "channel_occupied"),
        (WebhookKind::ChannelVacated, "channel_vacated"),
        (WebhookKind::MemberAdded, "member_added"),
        (WebhookKind::MemberRemoved, "member_removed"),
        (WebhookKind::ClientEvent, "client_event"),
        (WebhookKind::CacheMiss, "cache_miss"),
        (WebhookKind::SubscriptionCount, "subscription_count"),
    ];

    /// The name in the config and the webhook body.
    pub fn name(self) -> &'static str {
        WebhookKind::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("", |(_, name)| name)
    }

    fn from_name(name: &str) -> Option<WebhookKind> {
        WebhookKind::ALL
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| *kind)
    }
}

/// One webhook of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    /// Where the events are POSTed (http or https).
    pub url: url::Url,
    /// Extra request headers (they cannot replace `X-Pusher-Key` and `X-Pusher-Signature`).
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// The kinds it is told of.
    pub kinds: Vec<WebhookKind>,
    /// Only channels whose name starts with this.
    pub starts_with: Option<String>,
    /// Only channels whose name ends with this.
    pub ends_with: Option<String>,
}

impl WebhookTarget {
    /// Whether this webhook is told of `kind` on `channel`.
    pub fn wants(&self, kind: WebhookKind, channel: &str) -> bool {
        self.kinds.contains(&kind)
            && self
                .starts_with
                .as_deref()
                .is_none_or(|prefix| channel.starts_with(prefix))
            && self
                .ends_with
                .as_deref()
                .is_none_or(|suffix| channel.ends_with(suffix))
    }
}

/// Reads `clients[i].webhooks`; `has_secret` because webhooks are signed with the app secret.
pub(super) fn read_webhooks(
    r: &mut Reader<'_>,
    i: usize,
    item: &Value,
    has_secret: bool,
) -> Vec<WebhookTarget> {
    let path = format!("clients[{i}].webhooks");
    let items = match item.get("webhooks") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) if has_secret => items,
        Some(value @ Value::Array(_)) => {
            r.fail(
                &path,
                value,
                "webhooks only on an app with a \"secret\" (they are signed with it)",
            );
            return Vec::new();
        }
        Some(other) => {
            r.fail(
                &path,
                other,
                "an array of {url, event_types, headers?, filter?}",
            );
            return Vec::new();
        }
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(j, hook)| read_webhook(r, &format!("{path}[{j}]"), hook))
        .collect()
}

fn read_webhook(r: &mut Reader<'_>, path: &str, hook: &Value) -> Option<WebhookTarget> {
    let url = match hook.get("url") {
        Some(Value::String(text)) => match url::Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            _ => {
                r.fail(
                    &format!("{path}.url"),
                    &Value::String(text.clone()),
                    "an http:// or https:// URL",
                );
                None
            }
        },
        other => {
            r.fail(
                &format!("{path}.url"),
                other.unwrap_or(&Value::Null),
                "an http:// or https:// URL",
            );
            None
        }
    };
    let kinds = read_kinds(r, path, hook);
    let headers = read_headers(r, path, hook);
    let filter = hook.get("filter");
    let filter_text = |r: &mut Reader<'_>, name: &str| match filter.and_then(|f| f.get(name)) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => {
            r.fail(&format!("{path}.filter.{name}"), other, "a string");
            None
        }
    };
    let starts_with = filter_text(r, "channel_name_starts_with");
    let ends_with = filter_text(r, "channel_name_ends_with");
    Some(WebhookTarget {
        url: url?,
        headers,
        kinds: kinds?,
        starts_with,
        ends_with,
    })
}

fn read_kinds(r: &mut Reader<'_>, path: &str, hook: &Value) -> Option<Vec<WebhookKind>> {
    let names: Vec<&str> = WebhookKind::ALL.iter().map(|(_, name)| *name).collect();
    let expected = format!("a non-empty array of {}", names.join(", "));
    let Some(Value::Array(items)) = hook.get("event_types") else {
        r.fail(
            &format!("{path}.event_types"),
            hook.get("event_types").unwrap_or(&Value::Null),
            &expected,
        );
        return None;
    };
    let mut kinds = Vec::new();
    for (k, item) in items.iter().enumerate() {
        match item.as_str().and_then(WebhookKind::from_name) {
            Some(kind) => kinds.push(kind),
            None => r.fail(
                &format!("{path}.event_types[{k}]"),
                item,
                &format!("one of {}", names.join(", ")),
            ),
        }
    }
    if kinds.is_empty() {
        r.fail(
            &format!("{path}.event_types"),
            &Value::Array(items.clone()),
            &expected,
        );
        return None;
    }
    Some(kinds)
}

fn read_headers(
    r: &mut Reader<'_>,
    path: &str,
    hook: &Value,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let Some(value) = hook.get("headers") else {
        return Vec::new();
    };
    let Value::Object(map) = value else {
        r.fail(
            &format!("{path}.headers"),
            value,
            "an object of header names to strings",
        );
        return Vec::new();
    };
    let mut headers = Vec::new();
    for (name, value) in map {
        let parsed = value.as_str().and_then(|text| {
            let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
            let value = http::HeaderValue::from_str(text).ok()?;
            Some((name, value))
        });
        match parsed {
            Some(header) => headers.push(header),
            None => r.fail(
                &format!("{path}.headers.{name}"),
                value,
                "a header name with a string value (no line breaks)",
            ),
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, deep_merge, default_options};
    use serde_json::json;

    fn config(clients: Value) -> Result<Config, Vec<crate::config::ConfigError>> {
        let mut options = default_options();
        deep_merge(&mut options, json!({ "clients": clients }));
        Config::from_merged(&options).map(|(config, _)| config)
    }

    #[test]
    fn soketis_shape() {
        let c = config(
            json!([{"appId": "1", "key": "k", "secret": "s", "webhooks": [{
                "url": "https://example.com/hook?token=x",
                "event_types": ["channel_occupied", "client_event"],
                "headers": {"X-Team": "blue"},
                "filter": {"channel_name_starts_with": "orders-"}
            }]}]),
        )
        .expect("valid");
        let hook = &c.clients[0].webhooks[0];
        assert_eq!(hook.url.as_str(), "https://example.com/hook?token=x");
        assert_eq!(hook.headers.len(), 1);
        assert!(hook.wants(WebhookKind::ChannelOccupied, "orders-1"));
        assert!(!hook.wants(WebhookKind::ChannelOccupied, "news"));
        assert!(!hook.wants(WebhookKind::ChannelVacated, "orders-1"));
    }

    #[test]
    fn mistakes_are_named() {
        let errors = config(json!([{"appId": "1", "key": "k", "secret": "s", "webhooks": [
            {"url": "ftp://example.com", "event_types": ["channel_occupied"]},
            {"url": "https://example.com", "event_types": ["channel_opened"]},
            {"url": "https://example.com", "event_types": ["channel_occupied"], "headers": {"X-A": "a\nb"}}
        ]}]))
        .expect_err("invalid");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "clients[0].webhooks[0].url",
                "clients[0].webhooks[1].event_types[0]",
                "clients[0].webhooks[1].event_types",
                "clients[0].webhooks[2].headers.X-A"
            ]
        );
        let unsigned =
            config(json!([{"appId": "1", "key": "k", "webhooks": []}])).expect_err("no secret");
        assert_eq!(unsigned[0].key, "clients[0].webhooks");
    }
}
