//! The `{appId}` check. A Pusher app (a `clients` entry with a `secret`) accepts only requests
//! signed as Pusher's server SDKs sign them: its key ships to browsers, so knowing it proves
//! nothing. Other entries keep laravel-echo-server's check: `Authorization: Bearer <key>`, else
//! `?auth_key=<key>`.

use super::pusher_signature::{self, Signed};
use super::{ApiError, ApiState};
use crate::config::AppLimits;
use crate::hub::Space;
use axum::extract::{FromRequestParts, Path};
use http::header::AUTHORIZATION;
use http::request::Parts;
use std::collections::HashMap;

/// Proof that the request named a known appId with its key, or its signature.
pub(super) struct AuthorizedApp {
    /// For a signed request: what it says about the body.
    signed: Option<Signed>,
    /// The app's own bounds on what it publishes.
    pub(super) limits: AppLimits,
    /// Where the app's channels live.
    pub(super) space: Space,
}

impl AuthorizedApp {
    /// Whether the app is a Pusher app: its answers take Pusher's shapes.
    pub(super) fn is_pusher(&self) -> bool {
        self.signed.is_some()
    }

    /// Which API the request came through, as the debug console names it.
    pub(super) fn source(&self) -> crate::hub::EventSource {
        match self.is_pusher() {
            true => crate::hub::EventSource::PusherApi,
            false => crate::hub::EventSource::EchoApi,
        }
    }

    /// Checks that `body` is the one signed (`body_md5`); always true for unsigned apps.
    pub(super) fn check_body(&self, body: &[u8]) -> Result<(), ApiError> {
        match &self.signed {
            Some(signed) => signed.check_body(body).map_err(ApiError::BadSignature),
            None => Ok(()),
        }
    }
}

impl FromRequestParts<ApiState> for AuthorizedApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let Path(params): Path<HashMap<String, String>> = Path::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::Unauthorized)?;
        let app_id = params.get("app_id").map(String::as_str).unwrap_or("");
        let pusher_app = state
            .clients
            .iter()
            .find(|c| c.app_id == app_id && c.secret.is_some());
        if let Some(app) = pusher_app {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let signed = pusher_signature::verify(
                parts.method.as_str(),
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
                &app.key,
                app.secret.as_deref().unwrap_or_default(),
                now,
            )
            .map_err(ApiError::BadSignature)?;
            return Ok(AuthorizedApp {
                signed: Some(signed),
                limits: app.limits,
                space: app.space(),
            });
        }
        let key = presented_key(parts).unwrap_or_default();
        if app_id.is_empty() || key.is_empty() {
            return Err(ApiError::Unauthorized);
        }
        let known = state.clients.iter().find(|c| {
            c.app_id == app_id && crate::secret::secrets_equal(c.key.as_bytes(), key.as_bytes())
        });
        match known {
            Some(app) => Ok(AuthorizedApp {
                signed: None,
                limits: app.limits,
                space: app.space(),
            }),
            None => Err(ApiError::Unauthorized),
        }
    }
}

/// As laravel-echo-server: an `Authorization` header wins (minus a leading `Bearer `);
/// only without one is `auth_key` read from the query.
fn presented_key(parts: &Parts) -> Option<String> {
    if let Some(header) = parts.headers.get(AUTHORIZATION) {
        let value = header.to_str().ok()?;
        return Some(value.strip_prefix("Bearer ").unwrap_or(value).to_owned());
    }
    let query = parts.uri.query()?;
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "auth_key").then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex_value(hi).zip(hex_value(lo)),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some((hi, lo)), _) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, auth: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn bearer_header_wins_over_query() {
        assert_eq!(
            presented_key(&parts("/apps/a/status?auth_key=q", Some("Bearer h"))).as_deref(),
            Some("h")
        );
        assert_eq!(
            presented_key(&parts("/apps/a/status?auth_key=q", None)).as_deref(),
            Some("q")
        );
        assert_eq!(
            presented_key(&parts("/apps/a/status?x=1&auth_key=a%2Bb", None)).as_deref(),
            Some("a+b")
        );
        assert_eq!(presented_key(&parts("/apps/a/status", None)), None);
    }

    proptest::proptest! {
        #[test]
        fn fuzz_percent_decode(text in ".{0,64}") {
            let _ = percent_decode(&text);
        }
    }

    #[test]
    fn percent_decoding_never_panics() {
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
        assert_eq!(percent_decode("%é%"), "%é%");
    }
}
