//! Pusher's HTTP API request signatures (../shared/spec/pusher-channels.md §2.2): the query
//! carries `auth_key`, `auth_timestamp`, `auth_version=1.0`, `body_md5` (with a body) and
//! `auth_signature = hex HMAC-SHA256(secret, "METHOD\npath\nsorted params")`.

use md5::{Digest, Md5};
use ring::hmac;

/// How far `auth_timestamp` may be from this server's clock: Pusher's window. A signed request
/// cannot be replayed later than this.
pub(super) const TIMESTAMP_WINDOW_S: u64 = 600;

/// What a valid signature says about the body: the MD5 the signer computed, if it sent one.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Signed {
    body_md5: Option<String>,
}

impl Signed {
    /// Whether `body` is what was signed: a body needs `body_md5`, and it must match.
    pub(super) fn check_body(&self, body: &[u8]) -> Result<(), String> {
        match (&self.body_md5, body.is_empty()) {
            (None, true) => Ok(()),
            (None, false) => {
                Err("body_md5 is missing: sign the body's MD5 with the request".into())
            }
            (Some(given), _) => {
                let actual = hex::encode(Md5::digest(body));
                if crate::secret::secrets_equal(given.as_bytes(), actual.as_bytes()) {
                    Ok(())
                } else {
                    Err("body_md5 does not match the body: it was changed, or signed by another client".into())
                }
            }
        }
    }
}

/// Checks the signature of a request for the app `key`/`secret` at Unix time `now`. The
/// error says what to fix.
pub(super) fn verify(
    method: &str,
    path: &str,
    query: &str,
    key: &str,
    secret: &str,
    now: u64,
) -> Result<Signed, String> {
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (name.to_lowercase(), value.into_owned()))
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let signature = param("auth_signature")
        .ok_or("auth_signature is missing: this app accepts only signed requests (use a Pusher server SDK with the app's key and secret)")?;
    let given_key = param("auth_key").ok_or("auth_key is missing")?;
    if !crate::secret::secrets_equal(given_key.as_bytes(), key.as_bytes()) {
        return Err("auth_key is not this app's key".into());
    }
    if param("auth_version").as_deref() != Some("1.0") {
        return Err("auth_version must be 1.0".into());
    }
    let timestamp: u64 = param("auth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("auth_timestamp is missing or not a number of seconds")?;
    if now.abs_diff(timestamp) > TIMESTAMP_WINDOW_S {
        return Err(format!(
            "auth_timestamp is more than {TIMESTAMP_WINDOW_S} s from the server's time ({now}): check the clocks"
        ));
    }
    let body_md5 = param("body_md5");
    params.retain(|(name, _)| name != "auth_signature");
    params.sort();
    let query_text: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let text = format!(
        "{}\n{path}\n{}",
        method.to_uppercase(),
        query_text.join("&")
    );
    let Ok(given) = hex::decode(&signature) else {
        return Err("auth_signature is not hex".into());
    };
    let hmac_key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&hmac_key, text.as_bytes(), &given)
        .map_err(|_| "auth_signature does not match: sign with the app's secret, over the exact path and query".to_owned())?;
    Ok(Signed { body_md5 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The vector of ../shared/spec/pusher-channels.md §2.2.
    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";
    const BODY: &str = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    const QUERY: &str = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f";
    const SIGNATURE: &str = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

    fn signed_query() -> String {
        format!("{QUERY}&auth_signature={SIGNATURE}")
    }

    #[test]
    fn the_documented_vector_verifies_with_its_body() {
        let signed = verify(
            "POST",
            "/apps/3/events",
            &signed_query(),
            KEY,
            SECRET,
            1353088179,
        )
        .expect("valid");
        assert_eq!(
            hex::encode(Md5::digest(BODY)),
            "ec365a775a4cd0599faeb73354201b6f"
        );
        assert_eq!(signed.check_body(BODY.as_bytes()), Ok(()));
        assert!(signed.check_body(b"{}").is_err());
    }

    #[test]
    fn parameter_order_and_key_case_do_not_matter() {
        let shuffled = format!(
            "auth_signature={SIGNATURE}&body_md5=ec365a775a4cd0599faeb73354201b6f&AUTH_VERSION=1.0&auth_timestamp=1353088179&auth_key={KEY}"
        );
        assert!(verify("post", "/apps/3/events", &shuffled, KEY, SECRET, 1353088179).is_ok());
    }

    #[test]
    fn everything_signed_is_checked() {
        let at = 1353088179;
        let q = signed_query();
        assert!(
            verify("POST", "/apps/4/events", &q, KEY, SECRET, at).is_err(),
            "path"
        );
        assert!(
            verify("GET", "/apps/3/events", &q, KEY, SECRET, at).is_err(),
            "method"
        );
        assert!(
            verify("POST", "/apps/3/events", &q, KEY, "other", at).is_err(),
            "secret"
        );
        assert!(
            verify("POST", "/apps/3/events", &q, "other", SECRET, at).is_err(),
            "key"
        );
        let extra = format!("{q}&socket_id=1.1");
        assert!(
            verify("POST", "/apps/3/events", &extra, KEY, SECRET, at).is_err(),
            "a param added"
        );
        assert!(
            verify("POST", "/apps/3/events", QUERY, KEY, SECRET, at).is_err(),
            "unsigned"
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let q = signed_query();
        let at: u64 = 1353088179;
        assert!(verify("POST", "/apps/3/events", &q, KEY, SECRET, at + 600).is_ok());
        let late = verify("POST", "/apps/3/events", &q, KEY, SECRET, at + 601);
        assert!(late.expect_err("replay").contains("auth_timestamp"));
        assert!(verify("POST", "/apps/3/events", &q, KEY, SECRET, at - 601).is_err());
    }

    proptest! {
        #[test]
        fn fuzz_queries_never_panic(query in ".{0,200}", path in "/.{0,40}") {
            let _ = verify("POST", &path, &query, KEY, SECRET, 1353088179);
        }
    }
}
