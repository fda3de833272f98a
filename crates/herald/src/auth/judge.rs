//! Deciding what an auth endpoint's answer means.

use crate::hub::ChannelKind;
use serde_json::Value;

/// Permission to join, with the presence member the app described (if any).
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    /// `channel_data` from the answer, parsed when it came as a JSON string.
    pub channel_data: Option<Value>,
}

/// A refusal: the HTTP status (0 when there was no answer) and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status of the auth answer, 429 when Herald did not ask (too many waiting), or 0
    /// when no answer arrived.
    pub status: u16,
    /// Why, for the browser and the log.
    pub reason: String,
    /// What kind of refusal, for the metrics: never read back from `reason`.
    pub kind: RefusalKind,
}

/// The kinds of refusal, as `herald_auth_requests_total{outcome}` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The app answered, and the answer does not grant.
    Refused,
    /// No answer within `authTimeout`.
    Timeout,
    /// The app could not be reached.
    Unreachable,
    /// Herald did not ask: too many requests were waiting.
    Throttled,
}

impl RefusalKind {
    /// The metric's `outcome` label.
    pub fn outcome(self) -> &'static str {
        match self {
            RefusalKind::Refused => "refused",
            RefusalKind::Timeout => "timeout",
            RefusalKind::Unreachable => "unreachable",
            RefusalKind::Throttled => "throttled",
        }
    }
}

impl Refusal {
    /// The app's answer `status` does not grant.
    pub fn answered(status: u16, reason: String) -> Refusal {
        Refusal {
            status,
            reason,
            kind: RefusalKind::Refused,
        }
    }

    /// No answer arrived (`kind` says why: a timeout, or unreachable).
    pub fn unanswered(kind: RefusalKind, reason: String) -> Refusal {
        Refusal {
            status: 0,
            reason,
            kind,
        }
    }

    /// Herald refused without asking (429).
    pub fn throttled(reason: String) -> Refusal {
        Refusal {
            status: 429,
            reason,
            kind: RefusalKind::Throttled,
        }
    }
}

/// Judges an answer. Status 200 grants, as laravel-echo-server does; with `strict`, the body
/// must also be what Laravel sends: `true` (or an object) for private channels, an object with
/// `channel_data` for presence channels. A strict refusal quotes the start of the body only
/// when `body_shown` (the host is configured, not chosen by a client's referer).
pub fn judge(
    kind: ChannelKind,
    status: u16,
    body: &[u8],
    strict: bool,
    body_shown: bool,
) -> Result<Grant, Refusal> {
    if status != 200 {
        let said = match app_message(body) {
            Some(message) if body_shown => format!(": \"{message}\""),
            _ => String::new(),
        };
        return Err(Refusal::answered(
            status,
            format!(
                "auth endpoint answered {status}{}{said}",
                status_hint(status)
            ),
        ));
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let channel_data = parsed
        .as_ref()
        .and_then(|v| v.get("channel_data"))
        .and_then(|data| match data {
            Value::String(text) => serde_json::from_str::<Value>(text).ok(),
            Value::Null => None,
            other => Some(other.clone()),
        });
    if strict {
        let quote = |text: String| if body_shown { text } else { HIDDEN.to_owned() };
        strict_check(kind, parsed.as_ref(), channel_data.as_ref(), body, quote)?;
    }
    Ok(Grant { channel_data })
}

/// What a refusal says instead of quoting an answer from a host nobody configured verbatim:
/// the client chose that host, and must not learn what it answered.
const HIDDEN: &str = "(not shown: the host was chosen by the page's Referer)";

fn strict_check(
    kind: ChannelKind,
    parsed: Option<&Value>,
    channel_data: Option<&Value>,
    body: &[u8],
    quote: impl Fn(String) -> String,
) -> Result<(), Refusal> {
    let refuse = |what: String| Err(Refusal::answered(200, format!("strict mode: {what}")));
    let Some(parsed) = parsed else {
        return refuse(format!("body was not JSON: {}", quote(preview(body))));
    };
    if let Some(error) = parsed.get("error") {
        return refuse(format!("body was an error: {}", quote(error.to_string())));
    }
    match kind {
        ChannelKind::Presence => match channel_data {
            Some(data) if data.get("user_id").is_some_and(|id| !id.is_null()) => Ok(()),
            Some(_) => refuse("channel_data has no user_id".to_owned()),
            None => refuse(format!(
                "body has no channel_data for a presence channel: {}",
                quote(preview(body))
            )),
        },
        _ => match parsed {
            Value::Bool(true) | Value::Object(_) => Ok(()),
            other => refuse(format!("body was {}", quote(other.to_string()))),
        },
    }
}

/// What a status usually means for a Laravel app.
fn status_hint(status: u16) -> &'static str {
    match status {
        301 | 302 | 303 | 307 | 308 => {
            " (a redirect, usually to the login page: the user is not authenticated for that request)"
        }
        401 => " (unauthenticated: is the session cookie or bearer token reaching the app?)",
        403 => " (denied by the channel's callback in routes/channels.php)",
        404 => {
            " (no such route: is Broadcast::routes() registered, and are authHost and authEndpoint right?)"
        }
        405 => " (method not allowed: authEndpoint must accept POST)",
        419 => " (CSRF token mismatch: send X-CSRF-TOKEN in auth.headers)",
        500..=599 => " (the app failed: see its log)",
        _ => "",
    }
}

/// The app's own words in a refusal: Laravel's JSON error body `{"message": "…"}` (e.g. an
/// `AccessDeniedHttpException`'s message). One line, printable characters, at most 200.
fn app_message(body: &[u8]) -> Option<String> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    let message = parsed.get("message")?.as_str()?;
    let clean: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_owned())
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "(empty)".to_owned()
    } else if text.chars().count() > 100 {
        format!("{}…", text.chars().take(100).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// Any answer is judged without panicking; strict grants imply normal grants.
        #[test]
        fn fuzz_judge(status in 0u16..600, body in crate::test_support::arb_payload(), presence: bool) {
            let kind = if presence { ChannelKind::Presence } else { ChannelKind::Private };
            let strict = judge(kind, status, &body, true, true);
            let normal = judge(kind, status, &body, false, true);
            proptest::prop_assert!(strict.is_err() || normal.is_ok());
        }
    }

    #[test]
    fn a_refusal_passes_on_the_apps_own_message_from_a_configured_host_only() {
        let body = br#"{"message": "Only team members may listen.\nReally."}"#;
        let r = judge(ChannelKind::Private, 403, body, false, true).expect_err("refused");
        assert_eq!(
            r.reason,
            "auth endpoint answered 403 (denied by the channel's callback in routes/channels.php): \"Only team members may listen. Really.\""
        );
        let hidden = judge(ChannelKind::Private, 403, body, false, false).expect_err("refused");
        assert!(!hidden.reason.contains("team"), "{}", hidden.reason);
        let plain = judge(ChannelKind::Private, 403, b"<html>nope", false, true).expect_err("x");
        assert!(
            plain.reason.ends_with("routes/channels.php)"),
            "{}",
            plain.reason
        );
    }

    #[test]
    fn status_200_grants_whatever_the_body_without_strict() {
        for body in [&b"true"[..], b"false", b"{\"error\":1}", b"<html>", b""] {
            assert!(judge(ChannelKind::Private, 200, body, false, true).is_ok());
        }
    }

    #[test]
    fn other_statuses_refuse_with_a_hint() {
        let r = judge(ChannelKind::Private, 403, b"", false, true).expect_err("refused");
        assert_eq!(r.status, 403);
        assert!(r.reason.starts_with("auth endpoint answered 403"));
        assert!(r.reason.contains("routes/channels.php"));
        let r = judge(ChannelKind::Private, 419, b"", false, true).expect_err("refused");
        assert!(r.reason.contains("CSRF"));
        assert_eq!(
            judge(ChannelKind::Private, 201, b"true", false, true)
                .expect_err("refused")
                .status,
            201
        );
    }

    #[test]
    fn channel_data_as_object_or_json_string() {
        let g = judge(
            ChannelKind::Presence,
            200,
            br#"{"channel_data":{"user_id":1,"user_info":{"name":"A"}}}"#,
            false,
            true,
        )
        .expect("granted");
        assert_eq!(
            g.channel_data,
            Some(json!({"user_id":1,"user_info":{"name":"A"}}))
        );
        let g = judge(
            ChannelKind::Presence,
            200,
            br#"{"channel_data":"{\"user_id\":\"7\"}"}"#,
            false,
            true,
        )
        .expect("granted");
        assert_eq!(g.channel_data, Some(json!({"user_id":"7"})));
    }

    #[test]
    fn strict_mode_requires_what_laravel_sends() {
        assert!(judge(ChannelKind::Private, 200, b"true", true, true).is_ok());
        assert!(judge(ChannelKind::Private, 200, br#"{"auth":"k:s"}"#, true, true).is_ok());
        let r = judge(ChannelKind::Private, 200, b"false", true, true).expect_err("refused");
        assert_eq!(r.reason, "strict mode: body was false");
        let r = judge(
            ChannelKind::Private,
            200,
            br#"{"error":"nope"}"#,
            true,
            true,
        )
        .expect_err("refused");
        assert_eq!(r.reason, "strict mode: body was an error: \"nope\"");
        let r = judge(ChannelKind::Private, 200, b"<html>login</html>", true, true)
            .expect_err("refused");
        assert!(r.reason.contains("not JSON"));
        let r = judge(ChannelKind::Presence, 200, b"true", true, true).expect_err("refused");
        assert!(r.reason.contains("no channel_data"));
        let r =
            judge(ChannelKind::Private, 200, b"internal secret", true, false).expect_err("refused");
        assert!(!r.reason.contains("secret"), "{}", r.reason);
        let r = judge(
            ChannelKind::Private,
            200,
            br#"{"error":"secret"}"#,
            true,
            false,
        )
        .expect_err("refused");
        assert!(!r.reason.contains("secret"), "{}", r.reason);
        assert!(
            judge(
                ChannelKind::Presence,
                200,
                br#"{"channel_data":{"user_id":1}}"#,
                true,
                true
            )
            .is_ok()
        );
    }
}
