//! Pusher signatures: the `auth` of a private or presence subscription,
//! `<key>:<hex HMAC-SHA256(secret, text)>`, checked in constant time over the exact strings the
//! client sent (never a re-serialisation of `channel_data`).

use ring::hmac;

/// `hex(HMAC-SHA256(secret, text))`.
#[cfg(test)]
pub(super) fn sign(secret: &str, text: &str) -> String {
    crate::secret::hmac_sha256_hex(secret, text.as_bytes())
}

/// The text a subscription's `auth` signs: `<socket_id>:<channel>` for private channels,
/// `<socket_id>:<channel>:<channel_data>` for presence channels.
pub(super) fn subscription_text(
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// Whether `auth` is `<key>:<signature of text>` under `secret`.
pub(super) fn auth_is_valid(key: &str, secret: &str, text: &str, auth: &str) -> bool {
    let Some((given_key, given_signature)) = auth.split_once(':') else {
        return false;
    };
    let Ok(given) = hex::decode(given_signature) else {
        return false;
    };
    // `verify` compares in constant time.
    let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature_ok = hmac::verify(&hmac_key, text.as_bytes(), &given).is_ok();
    crate::secret::secrets_equal(given_key.as_bytes(), key.as_bytes()) & signature_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The vectors of ../shared/spec/pusher-channels.md §1.3 (Pusher's documentation).
    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn private_channel_vector() {
        let text = subscription_text("1234.1234", "private-foobar", None);
        let expected = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        assert_eq!(sign(SECRET, &text), expected);
        assert!(auth_is_valid(
            KEY,
            SECRET,
            &text,
            &format!("{KEY}:{expected}")
        ));
    }

    #[test]
    fn presence_channel_vector_signs_the_exact_channel_data() {
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let text = subscription_text("1234.1234", "presence-foobar", Some(data));
        let signature = sign(SECRET, &text);
        assert!(signature.starts_with("31935e7d"), "{signature}");
        assert!(signature.ends_with("481bc80"), "{signature}");
        assert!(auth_is_valid(
            KEY,
            SECRET,
            &text,
            &format!("{KEY}:{signature}")
        ));
        // The same JSON with other spacing is another text: refused.
        let respaced = r#"{"user_id": 10,"user_info":{"name":"Mr. Channels"}}"#;
        let other = subscription_text("1234.1234", "presence-foobar", Some(respaced));
        assert!(!auth_is_valid(
            KEY,
            SECRET,
            &other,
            &format!("{KEY}:{signature}")
        ));
    }

    #[test]
    fn wrong_key_secret_socket_or_shape_is_refused() {
        let text = subscription_text("1234.1234", "private-foobar", None);
        let good = sign(SECRET, &text);
        assert!(!auth_is_valid(KEY, SECRET, &text, &format!("other:{good}")));
        assert!(!auth_is_valid(
            KEY,
            "other",
            &text,
            &format!("{KEY}:{good}")
        ));
        let moved = subscription_text("1234.1235", "private-foobar", None);
        assert!(!auth_is_valid(
            KEY,
            SECRET,
            &moved,
            &format!("{KEY}:{good}")
        ));
        assert!(!auth_is_valid(KEY, SECRET, &text, &good));
        assert!(!auth_is_valid(
            KEY,
            SECRET,
            &text,
            &format!("{KEY}:zz{good}")
        ));
        assert!(!auth_is_valid(KEY, SECRET, &text, ""));
    }

    proptest! {
        #[test]
        fn fuzz_auth_never_panics_and_only_the_signature_passes(auth in ".{0,120}", text in ".{0,60}") {
            let valid = auth_is_valid(KEY, SECRET, &text, &auth);
            prop_assert_eq!(valid, auth == format!("{KEY}:{}", sign(SECRET, &text)));
        }
    }
}
