//! Users (`pusher:signin`): checking a sign-in, and the server's own channels a signed-in
//! connection joins in the Hub — `#server-to-user-<id>`, which the SDKs' `sendToUser` and the
//! terminate API publish to, and `#watchlist-<id>` for each user it watches. The Hub's registry
//! stays the one record of who is where: a user is online while their `#server-to-user-`
//! channel has a subscriber.

use super::signature::auth_is_valid;
pub(super) use crate::hub::watchlist_channel;
use crate::hub::{user_channel, validate_channel_name};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;

/// Most users one connection may watch (Pusher's limit); the rest are ignored, with 4302.
pub(super) const MAX_WATCHLIST: usize = 100;

/// The `data` of `pusher:signin`.
#[derive(Deserialize)]
struct SigninData {
    auth: String,
    user_data: String,
}

/// A sign-in that checked out.
#[derive(Debug, PartialEq)]
pub(super) struct Signin {
    /// `user_data` exactly as the client sent (and the app signed) it.
    pub(super) user_data: String,
    /// The user id.
    pub(super) id: String,
    /// Watched user ids, at most [`MAX_WATCHLIST`].
    pub(super) watchlist: Vec<String>,
    /// Whether the watchlist was cut to [`MAX_WATCHLIST`].
    pub(super) watchlist_cut: bool,
}

/// Why a sign-in was refused.
#[derive(Debug, PartialEq)]
pub(super) enum SigninError {
    /// `data` is not `{"auth": …, "user_data": "…"}`.
    Malformed,
    /// The signature is not the app's over `<socket_id>::user::<user_data>`.
    BadSignature,
    /// `user_data` has no usable string `id`.
    BadUserData(&'static str),
}

impl fmt::Display for SigninError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigninError::Malformed => f.write_str(
                "pusher:signin needs data {\"auth\": \"<key>:<signature>\", \"user_data\": \"<JSON text>\"}",
            ),
            SigninError::BadSignature => f.write_str(
                "invalid signature: auth must be <app key>:<HMAC-SHA256 of socket_id::user::user_data>, as your app's user authentication endpoint returns with the app's secret",
            ),
            SigninError::BadUserData(why) => write!(f, "user_data {why}"),
        }
    }
}

/// Checks a `pusher:signin` from `socket_id` against the app's key and secret.
pub(super) fn check_signin(
    data: Option<&RawValue>,
    socket_id: &str,
    key: &str,
    secret: &str,
) -> Result<Signin, SigninError> {
    let data: SigninData = data
        .and_then(|data| serde_json::from_str(data.get()).ok())
        .ok_or(SigninError::Malformed)?;
    let signed = format!("{socket_id}::user::{}", data.user_data);
    if !auth_is_valid(key, secret, &signed, &data.auth) {
        return Err(SigninError::BadSignature);
    }
    let user: Value = serde_json::from_str(&data.user_data)
        .map_err(|_| SigninError::BadUserData("is not JSON"))?;
    let id = match user.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(SigninError::BadUserData("needs a non-empty string \"id\"")),
    };
    // The id names a channel: it must make a valid one.
    if validate_channel_name(&user_channel(&id)).is_err() {
        return Err(SigninError::BadUserData(
            "id must be at most 184 bytes, without whitespace or control characters",
        ));
    }
    let watched: Vec<String> = match user.get("watchlist") {
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(Value::as_str)
            .filter(|id| validate_channel_name(&watchlist_channel(id)).is_ok())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let watchlist_cut = watched.len() > MAX_WATCHLIST;
    Ok(Signin {
        user_data: data.user_data,
        id,
        watchlist: watched.into_iter().take(MAX_WATCHLIST).collect(),
        watchlist_cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(auth: &str, user_data: &str) -> Box<RawValue> {
        let text = serde_json::json!({"auth": auth, "user_data": user_data}).to_string();
        RawValue::from_string(text).expect("json")
    }

    fn signed(socket_id: &str, user_data: &str) -> String {
        let signature =
            super::super::signature::sign("secret", &format!("{socket_id}::user::{user_data}"));
        format!("key:{signature}")
    }

    #[test]
    fn pushers_test_vector() {
        // ../shared/spec/pusher-channels.md §1.6
        let signature = super::super::signature::sign(
            "7ad3773142a6692b25b8",
            "1234.1234::user::{\"id\":\"12345\"}",
        );
        assert!(signature.starts_with("4708d583"), "{signature}");
        assert!(signature.ends_with("de336ba"), "{signature}");
    }

    #[test]
    fn a_signed_sign_in_with_its_watchlist() {
        let user = r#"{"id":"42","watchlist":["1","2"]}"#;
        let signin = check_signin(
            Some(&data(&signed("1.2", user), user)),
            "1.2",
            "key",
            "secret",
        )
        .expect("valid");
        assert_eq!(signin.id, "42");
        assert_eq!(signin.watchlist, vec!["1", "2"]);
        assert!(!signin.watchlist_cut);
        assert_eq!(signin.user_data, user);
    }

    #[test]
    fn refusals() {
        let user = r#"{"id":"42"}"#;
        let check = |data: Option<&RawValue>| check_signin(data, "1.2", "key", "secret");
        assert_eq!(check(None), Err(SigninError::Malformed));
        assert_eq!(
            check(Some(&data(&signed("9.9", user), user))),
            Err(SigninError::BadSignature),
            "signed for another socket"
        );
        let no_id = r#"{"name":"x"}"#;
        assert!(matches!(
            check(Some(&data(&signed("1.2", no_id), no_id))),
            Err(SigninError::BadUserData(_))
        ));
        let spaced = r#"{"id":"a b"}"#;
        assert!(matches!(
            check(Some(&data(&signed("1.2", spaced), spaced))),
            Err(SigninError::BadUserData(_))
        ));
    }

    #[test]
    fn a_long_watchlist_is_cut_to_100() {
        let ids: Vec<String> = (0..150).map(|i| i.to_string()).collect();
        let user = serde_json::json!({"id": "1", "watchlist": ids}).to_string();
        let signin = check_signin(
            Some(&data(&signed("1.2", &user), &user)),
            "1.2",
            "key",
            "secret",
        )
        .expect("valid");
        assert_eq!(signin.watchlist.len(), MAX_WATCHLIST);
        assert!(signin.watchlist_cut);
    }
}
