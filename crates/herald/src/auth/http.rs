//! The auth request laravel-echo-server sends, with a timeout, pooling and TLS verification.

use super::{
    AuthBounds, AuthGate, AuthPermit, AuthTarget, ConnectionSlots, Grant, Refusal, RefusalKind,
    judge, select_auth_host,
};
use crate::config::Config;
use crate::hub::ChannelKind;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// Largest auth answer body read, in bytes; Laravel's are tiny.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Headers never forwarded from the client: they describe the client's own request.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "expect",
    "te",
    "x-requested-with",
    // Herald says who the client is, and what the request is: a client must not claim to be
    // someone else, or turn the POST into another method, or pick the socket id Laravel sees.
    "x-forwarded-for",
    "forwarded",
    "x-real-ip",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-socket-id",
];

/// What a subscribe brings to authorize.
#[derive(Debug, Clone, Default)]
pub struct AuthRequest {
    /// Full channel name, `private-…` or `presence-…`.
    pub channel: String,
    /// The subscribing socket's id (sent as `socket_id`).
    pub socket_id: String,
    /// Echo's `auth.headers`, forwarded verbatim.
    pub client_headers: Vec<(String, String)>,
    /// The `Cookie` header of the Socket.IO handshake, used when the client sent none.
    pub handshake_cookie: Option<String>,
    /// The handshake's `Referer`, which selects among several `authHost`s.
    pub referer: Option<String>,
    /// `X-Forwarded-For` to send: the client's real address (see [`crate::peer`]).
    pub forwarded_for: Option<String>,
}

/// The auth endpoint's answer, before judgement.
#[derive(Debug, Clone)]
pub struct AuthAnswer {
    /// HTTP status.
    pub status: u16,
    /// Body (at most 64 KiB).
    pub body: Vec<u8>,
}

/// Posts to the Laravel app's auth endpoint.
#[derive(Clone)]
pub struct HttpAuthorizer {
    client: reqwest::Client,
    hosts: Vec<String>,
    endpoint: String,
    timeout: Duration,
    strict: bool,
    gate: std::sync::Arc<AuthGate>,
}

impl HttpAuthorizer {
    /// Built from `authHost`, `authEndpoint` and the `auth*` options.
    pub fn new(config: &Config) -> anyhow::Result<HttpAuthorizer> {
        let client = reqwest::Client::builder()
            .timeout(config.auth.timeout)
            .connect_timeout(config.auth.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(!config.auth.verify_tls)
            // Kept across bursts of subscriptions: reopening hundreds of connections per burst
            // costs memory the allocator does not give back (the churn test saw RSS steps with
            // a 4-s idle time-out). A connection the app's server closes as it is reused is
            // retried on a new one (`closed_before_answer`).
            .pool_idle_timeout(Duration::from_secs(60))
            // No more idle connections than requests may be in flight (`AuthGate`): bursts
            // reuse them instead of opening new ones each time.
            .pool_max_idle_per_host(config.limits.max_auth_requests)
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let hosts = if config.auth_hosts.is_empty() {
            let host = config
                .host
                .clone()
                .unwrap_or_else(|| "localhost".to_owned());
            vec![if host.contains("://") {
                host
            } else {
                format!("http://{host}")
            }]
        } else {
            config.auth_hosts.clone()
        };
        Ok(HttpAuthorizer {
            client,
            hosts,
            endpoint: config.auth_endpoint.clone(),
            timeout: config.auth.timeout,
            strict: config.auth.strict,
            gate: std::sync::Arc::new(AuthGate::new(AuthBounds {
                per_connection: config.limits.max_auth_requests_per_connection,
                total: config.limits.max_auth_requests,
                queued: config.limits.max_auth_requests_queued,
            })),
        })
    }

    /// Slots for a new connection's authorization requests.
    pub fn connection_slots(&self) -> ConnectionSlots {
        self.gate.connection_slots()
    }

    /// The auth host a request with this referer goes to.
    pub fn target_for(&self, referer: Option<&str>) -> AuthTarget {
        select_auth_host(&self.hosts, referer)
    }

    /// The URL a request with this referer goes to.
    pub fn url_for(&self, referer: Option<&str>) -> String {
        format!("{}{}", self.target_for(referer).base, self.endpoint)
    }

    /// Waits for a slot of the connection's and one of the process's for an authorization
    /// request; refused with status 429 when too many requests wait already.
    pub async fn admit(&self, slots: &ConnectionSlots) -> Result<AuthPermit, Refusal> {
        self.gate.admit(slots).await.map_err(|busy| {
            crate::metrics::metrics().auth_request_refused(RefusalKind::Throttled.outcome());
            Refusal::throttled(busy.to_string())
        })
    }

    /// Asks the app (hold an [`AuthPermit`] from [`Self::admit`] meanwhile); the answer is
    /// judged by [`judge`].
    pub async fn authorize(&self, request: &AuthRequest) -> Result<Grant, Refusal> {
        let started = std::time::Instant::now();
        let body_shown = self.target_for(request.referer.as_deref()).configured;
        let verdict = self.ask(request).await.and_then(|answer| {
            judge(
                ChannelKind::of(&request.channel),
                answer.status,
                &answer.body,
                self.strict,
                body_shown,
            )
        });
        let outcome = match &verdict {
            Ok(_) => "granted",
            Err(refusal) => refusal.kind.outcome(),
        };
        crate::metrics::metrics().auth_request(outcome, started.elapsed());
        verdict
    }

    /// Sends the request and returns the raw answer (status and at most 64 KiB of body), or
    /// the refusal when no answer came.
    pub async fn ask(&self, request: &AuthRequest) -> Result<AuthAnswer, Refusal> {
        let url = self.url_for(request.referer.as_deref());
        let form = [
            ("channel_name", request.channel.as_str()),
            ("socket_id", request.socket_id.as_str()),
        ];
        let send = || {
            self.client
                .post(&url)
                .headers(forwarded_headers(request))
                .form(&form)
                .send()
        };
        let response = match send().await {
            // A pooled connection the app's server closed as we reused it (its keep-alive
            // ran out at that moment): nothing was answered, so ask once more, on a new one.
            Err(e) if closed_before_answer(&e) => send().await,
            other => other,
        }
        .map_err(|e| self.transport_refusal(&e))?;
        let status = response.status().as_u16();
        let body = read_limited(response)
            .await
            .map_err(|e| self.transport_refusal(&e))?;
        Ok(AuthAnswer { status, body })
    }

    fn transport_refusal(&self, error: &reqwest::Error) -> Refusal {
        if error.is_timeout() {
            return Refusal::unanswered(
                RefusalKind::Timeout,
                format!(
                    "auth endpoint timed out after {}",
                    human_duration(self.timeout)
                ),
            );
        }
        Refusal::unanswered(
            RefusalKind::Unreachable,
            format!("auth endpoint unreachable: {}", root_cause(error)),
        )
    }
}

/// Echo's `auth.headers` minus hop-by-hop and identity ones, the handshake cookie when the
/// client sent no `Cookie`, `X-Forwarded-For` with the client's real address, and
/// `X-Requested-With: XMLHttpRequest` always (so Laravel answers 401, not a redirect to the
/// login page).
fn forwarded_headers(request: &AuthRequest) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &request.client_headers {
        if NOT_FORWARDED.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    if !headers.contains_key(http::header::COOKIE)
        && let Some(cookie) = request
            .handshake_cookie
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
    {
        headers.insert(http::header::COOKIE, cookie);
    }
    if let Some(value) = request
        .forwarded_for
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(HeaderName::from_static("x-forwarded-for"), value);
    }
    headers.insert(
        HeaderName::from_static("x-requested-with"),
        HeaderValue::from_static("XMLHttpRequest"),
    );
    headers
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

/// Whether `error` is a reused connection the server closed or reset before any answer
/// (hyper's "connection closed before message completed", or a reset or broken pipe as the
/// request went out), which a second attempt on a new connection avoids. Asking again is safe:
/// an authorization answers the same question twice the same way.
fn closed_before_answer(error: &reqwest::Error) -> bool {
    if error.is_timeout() {
        return false;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(hyper_error) = current.downcast_ref::<hyper::Error>()
            && hyper_error.is_incomplete_message()
        {
            return true;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// The innermost error message: "connection refused", "dns error: …".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_lowercase(),
        None => text,
    }
}

fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_forwarded_as_laravel_echo_server_does() {
        let request = AuthRequest {
            client_headers: vec![
                ("X-CSRF-TOKEN".into(), "t".into()),
                ("Authorization".into(), "Bearer abc".into()),
                ("X-Requested-With".into(), "fetch".into()),
                ("Content-Length".into(), "999".into()),
                ("Bad Header".into(), "x".into()),
            ],
            handshake_cookie: Some("laravel_session=s".into()),
            ..AuthRequest::default()
        };
        let headers = forwarded_headers(&request);
        assert_eq!(headers["x-csrf-token"], "t");
        assert_eq!(headers["authorization"], "Bearer abc");
        assert_eq!(headers["x-requested-with"], "XMLHttpRequest");
        assert_eq!(headers["cookie"], "laravel_session=s");
        assert!(!headers.contains_key("content-length"));
        assert_eq!(headers.len(), 4);
    }

    #[test]
    fn identity_headers_are_herald_s_not_the_client_s() {
        let request = AuthRequest {
            client_headers: vec![
                ("X-Forwarded-For".into(), "10.0.0.1".into()),
                ("Forwarded".into(), "for=10.0.0.1".into()),
                ("X-Real-IP".into(), "10.0.0.1".into()),
                ("X-Forwarded-Host".into(), "admin.internal".into()),
                ("X-HTTP-Method-Override".into(), "DELETE".into()),
                ("X-Socket-ID".into(), "someone.else".into()),
            ],
            forwarded_for: Some("203.0.113.9".into()),
            ..AuthRequest::default()
        };
        let headers = forwarded_headers(&request);
        assert_eq!(headers["x-forwarded-for"], "203.0.113.9");
        for name in [
            "forwarded",
            "x-real-ip",
            "x-forwarded-host",
            "x-http-method-override",
            "x-socket-id",
        ] {
            assert!(!headers.contains_key(name), "{name}");
        }
    }

    #[test]
    fn a_client_cookie_wins_over_the_handshake_cookie() {
        let request = AuthRequest {
            client_headers: vec![("Cookie".into(), "mine=1".into())],
            handshake_cookie: Some("handshake=1".into()),
            ..AuthRequest::default()
        };
        assert_eq!(forwarded_headers(&request)["cookie"], "mine=1");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(5)), "5 s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500 ms");
    }
}
