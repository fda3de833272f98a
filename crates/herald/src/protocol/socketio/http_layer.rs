//! What engine.io 3 did around the transport that socketioxide leaves to us: polling CORS,
//! the `io` cookie, the `origins` check and serving `/socket.io/socket.io.js`; and what keeps
//! sessions apart: the connection limit counted when a session opens, sealed session ids for
//! Engine.IO 4 and client-bound sessions for Engine.IO 3 ([`super::session`]).

use super::SocketIoContext;
use super::connection::Handshake;
use super::session::{EngineQuery, SessionSeal, seal_open_packet, with_sid};
use super::websocket_session::{self, Eio};
use crate::config::{SocketIoOptions, Transport};
use crate::hub::Hub;
use crate::peer::TrustedProxies;
use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use socketioxide::socket::Sid;
use socketioxide::{ProtocolVersion, SocketIo};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// Largest handshake body read back to find the session id for the cookie.
const HANDSHAKE_BODY_LIMIT: usize = 64 * 1024;

/// State of the middleware in front of the Socket.IO endpoint.
#[derive(Clone)]
pub struct SocketIoHttpLayer {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    options: SocketIoOptions,
    search_dirs: Vec<PathBuf>,
    hub: Arc<Hub>,
    max_connections: usize,
    io: SocketIo,
    seal: SessionSeal,
    trusted_proxies: TrustedProxies,
    core: Arc<SocketIoContext>,
}

/// What the layer needs besides the `socketio` options.
pub struct SessionGuard {
    /// Where `node_modules` may be, to serve `socket.io.js`.
    pub search_dirs: Vec<PathBuf>,
    /// Counts connections for `limits.maxConnections`.
    pub hub: Arc<Hub>,
    /// `limits.maxConnections`: sessions opened beyond it get a 503.
    pub max_connections: usize,
    /// The Socket.IO server, to find the session a request names.
    pub io: SocketIo,
    /// Whose forwarded address is believed.
    pub trusted_proxies: TrustedProxies,
    /// What sessions on Herald's own core share.
    pub core: Arc<SocketIoContext>,
}

impl SocketIoHttpLayer {
    /// Built from the `socketio` options and what guards sessions.
    pub fn new(options: SocketIoOptions, guard: SessionGuard) -> anyhow::Result<SocketIoHttpLayer> {
        Ok(SocketIoHttpLayer {
            inner: Arc::new(Inner {
                prefix: format!("{}/", options.path),
                options,
                search_dirs: guard.search_dirs,
                hub: guard.hub,
                max_connections: guard.max_connections,
                io: guard.io,
                seal: SessionSeal::new()?,
                trusted_proxies: guard.trusted_proxies,
                core: guard.core,
            }),
        })
    }

    /// The axum middleware function.
    pub async fn handle(
        State(layer): State<SocketIoHttpLayer>,
        req: Request,
        next: Next,
    ) -> Response {
        let inner = &layer.inner;
        let path = req.uri().path();
        let Some(rest) = path.strip_prefix(&inner.prefix) else {
            return next.run(req).await;
        };
        if matches!(rest, "socket.io.js" | "socket.io.js.map") && req.method() == Method::GET {
            return inner.serve_client(rest.ends_with(".map")).await;
        }
        let origin = req.headers().get(header::ORIGIN).cloned();
        if req.method() == Method::OPTIONS {
            let mut response = StatusCode::OK.into_response();
            add_cors(response.headers_mut(), origin.as_ref());
            response.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Content-Type"),
            );
            response.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            return response;
        }
        let query = EngineQuery::parse(req.uri().query());
        let is_polling = query.transport == Some("polling");
        let sealed = query.eio == Some("4");
        if let Some(sid) = query.sid.map(str::to_owned) {
            if sealed && !inner.may_be_ours(&sid) {
                return unknown_session_elsewhere();
            }
            let Some(req) = inner.session_request(req, &sid) else {
                crate::metrics::metrics().session_refusals.inc();
                return unknown_session();
            };
            let mut response = next.run(req).await;
            add_cors(response.headers_mut(), origin.as_ref());
            return response;
        }
        // This request opens a session.
        if !origin_allowed(inner.options.origins.as_deref(), origin.as_ref()) {
            return forbidden();
        }
        if !inner.hub.reserve_connection(inner.max_connections) {
            return at_capacity(inner.max_connections);
        }
        if let Some(eio) = inner.on_core(&query) {
            let mut response = inner.open_on_core(req, eio);
            add_cors(response.headers_mut(), origin.as_ref());
            return response;
        }
        let mut response = next.run(detach_from_read_buffer(req)).await;
        let status = response.status();
        if !(status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS) {
            inner.hub.release_reservation();
        }
        add_cors(response.headers_mut(), origin.as_ref());
        let cookie = inner.options.cookie.as_ref();
        if is_polling && status == StatusCode::OK && (sealed || cookie.is_some()) {
            let seal = sealed.then_some(&inner.seal);
            response = finish_polling_handshake(response, seal, cookie).await;
        }
        response
    }
}

impl Inner {
    /// The Engine.IO revision of a session that opens on the core: one that opens on a
    /// websocket (polling sessions, and their upgrade, are socketioxide's).
    fn on_core(&self, query: &EngineQuery<'_>) -> Option<Eio> {
        if query.transport != Some("websocket")
            || !self.options.transports.contains(&Transport::Websocket)
        {
            return None;
        }
        match query.eio {
            Some("3") => Some(Eio::V3),
            Some("4") => Some(Eio::V4),
            _ => None, // socketioxide says which revisions it serves
        }
    }

    /// Upgrades `req` and serves the session on the core; its reservation is given back if
    /// the upgrade fails.
    fn open_on_core(&self, mut req: Request, eio: Eio) -> Response {
        let handshake = Box::new(Handshake::of(&self.core, req.extensions(), req.headers()));
        let max_message = usize::try_from(self.options.max_http_buffer_size).unwrap_or(usize::MAX);
        let (response, upgraded) = match crate::connection::upgrade(&mut req, max_message) {
            Ok(accepted) => accepted,
            Err(refused) => {
                self.hub.release_reservation();
                return *refused;
            }
        };
        // One async fn from the upgrade to the end: every layer of futures around it would be
        // sized for its largest state, in every idle session's allocation.
        tokio::spawn(websocket_session::run(
            self.core.clone(),
            upgraded,
            eio,
            handshake,
        ));
        response
    }

    /// Whether an Engine.IO 4 session id may be one of this process's: every id it hands out
    /// is sealed with its own key, so one that does not open (and is not a bare id, refused
    /// below) was opened elsewhere — another node, or an earlier run.
    fn may_be_ours(&self, sid: &str) -> bool {
        self.seal.open(sid).is_some() || Sid::from_str(sid).is_ok()
    }

    /// Lets a request of an open session through, its sealed id opened, or refuses it
    /// (`None`): a bare Engine.IO 4 id is public (it is `socket.id`), and an Engine.IO 3
    /// session answers only the client that opened it.
    fn session_request(&self, req: Request, sid: &str) -> Option<Request> {
        if let Some(public_id) = self.seal.open(sid) {
            return Some(with_uri_sid(req, public_id));
        }
        let Some(socket) = Sid::from_str(sid)
            .ok()
            .and_then(|sid| self.io.get_socket(sid))
        else {
            // An upgrade comes after a poll, when the socket exists: one naming no socket
            // names a session of the core (never upgraded) or none at all.
            if EngineQuery::parse(req.uri().query()).transport == Some("websocket") {
                return None;
            }
            // A poll naming no connection (yet): Engine.IO answers "Session ID unknown"
            // itself, or serves a session whose id nobody else has seen.
            return Some(req);
        };
        let allowed = match socket.protocol() {
            ProtocolVersion::V5 => false,
            ProtocolVersion::V4 => {
                let handshake = socket.req_parts();
                let opened_by = self
                    .trusted_proxies
                    .client_of(&handshake.extensions, &handshake.headers);
                let asking = self
                    .trusted_proxies
                    .client_of(req.extensions(), req.headers());
                opened_by.map(|c| c.ip) == asking.map(|c| c.ip)
            }
        };
        allowed.then_some(req)
    }

    async fn serve_client(&self, source_map: bool) -> Response {
        if !self.options.serve_client {
            return (
                StatusCode::NOT_FOUND,
                "socket.io client serving is off (socketio.serveClient is false)",
            )
                .into_response();
        }
        // Off the runtime's workers: looking for the file and reading it block.
        let (options, dirs) = (self.options.clone(), self.search_dirs.clone());
        let found = tokio::task::spawn_blocking(move || client_bundle_path(&options, &dirs)).await;
        let Some(bundle) = found.ok().flatten() else {
            return (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Herald does not bundle the socket.io client. Either set socketio.clientPath in \
                 laravel-echo-server.json to a socket.io.js file, or run `npm install socket.io-client@2` \
                 in the directory Herald starts from so node_modules/socket.io-client/dist/socket.io.js exists, \
                 or load the client from your app's own bundle.\n",
            )
                .into_response();
        };
        let path = if source_map {
            let mut p = bundle.into_os_string();
            p.push(".map");
            PathBuf::from(p)
        } else {
            bundle
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let content_type = if source_map {
                    "application/json"
                } else {
                    "application/javascript"
                };
                ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
            }
            Err(e) => (
                StatusCode::NOT_FOUND,
                format!("cannot read {}: {e}\n", path.display()),
            )
                .into_response(),
        }
    }
}

/// engine.io 3's `origins` check: `host:port` patterns where either side may be `*`; `None`
/// allows every origin.
fn origin_allowed(origins: Option<&[String]>, origin: Option<&HeaderValue>) -> bool {
    let Some(patterns) = origins else {
        return true;
    };
    let Some(origin) = origin.and_then(|o| o.to_str().ok()) else {
        return true; // non-browser clients send no Origin; engine.io 3 let them in
    };
    let (scheme, authority) = origin.split_once("://").unwrap_or(("http", origin));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.to_owned()),
        None => (
            authority,
            if scheme == "https" { "443" } else { "80" }.to_owned(),
        ),
    };
    patterns.iter().any(|pattern| {
        let (ph, pp) = pattern.rsplit_once(':').unwrap_or((pattern, "*"));
        let ph = ph.split_once("://").map_or(ph, |(_, h)| h);
        (ph == "*" || ph == host) && (pp == "*" || pp == port)
    })
}

/// Where the socket.io client bundle is: `socketio.clientPath`, else the first
/// `node_modules/socket.io-client/dist/socket.io.js` under `search_dirs`.
pub fn client_bundle_path(options: &SocketIoOptions, search_dirs: &[PathBuf]) -> Option<PathBuf> {
    if let Some(path) = &options.client_path {
        return Some(PathBuf::from(path));
    }
    search_dirs
        .iter()
        .map(|dir| dir.join("node_modules/socket.io-client/dist/socket.io.js"))
        .find(|p| p.is_file())
}

/// Copies the URI and header values of a handshake into their own small allocations.
///
/// hyper parses them as slices of the connection's read buffer (8 to 16 KiB), and
/// socketioxide keeps the handshake's request parts for the whole life of the connection,
/// which would pin that buffer for every connected client. Copying costs a few hundred bytes
/// once per handshake and saves ~16 KiB per idle connection (docs/performance.md).
fn detach_from_read_buffer(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    if let Ok(uri) = http::Uri::try_from(parts.uri.to_string()) {
        // axum's router keeps a clone of the original URI in the extensions too.
        if parts.extensions.get::<OriginalUri>().is_some() {
            parts.extensions.insert(OriginalUri(uri.clone()));
        }
        parts.uri = uri;
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            headers.append(name.clone(), copy);
        }
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}

/// `req` with its `sid=` replaced by the public id Engine.IO knows the session by.
fn with_uri_sid(req: Request, public_id: &str) -> Request {
    let (mut parts, body) = req.into_parts();
    let query = parts.uri.query().map(|q| with_sid(q, public_id));
    let path_and_query = format!("{}?{}", parts.uri.path(), query.unwrap_or_default());
    if let Ok(uri) = http::Uri::try_from(path_and_query) {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// engine.io 3 polling CORS: reflect the Origin with credentials, else `*`.
fn add_cors(headers: &mut HeaderMap, origin: Option<&HeaderValue>) {
    match origin {
        Some(origin) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        None => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
}

/// Too many connections: 503, so clients back off and retry (or a balancer tries another node).
fn at_capacity(limit: usize) -> Response {
    let body = serde_json::json!({
        "code": 5,
        "message": format!("Herald is at its connection limit ({limit}, limits.maxConnections); retry later"),
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// engine.io's answer to a session id it does not know: the client opens a new session.
fn unknown_session() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"code":1,"message":"Session ID unknown"}"#,
    )
        .into_response()
}

/// A session this process never opened: Engine.IO's "Session ID unknown" (code 1, so clients
/// start a new session as they would anyway), saying why it happens.
fn unknown_session_elsewhere() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"code":1,"message":"Session ID unknown: this Herald node did not open this session (it opened before a restart, or on another node: behind a load balancer, HTTP long-polling needs sticky sessions, see docs/scaling.md)"}"#,
    )
        .into_response()
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"code":4,"message":"Forbidden"}"#,
    )
        .into_response()
}

/// A polling handshake's answer: the Engine.IO 4 open packet with its session id sealed (when
/// `seal` is given), and `Set-Cookie: io=<sid>` when the cookie is on.
async fn finish_polling_handshake(
    response: Response,
    seal: Option<&SessionSeal>,
    cookie: Option<&crate::config::CookieOptions>,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let mut bytes = match axum::body::to_bytes(body, HANDSHAKE_BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "handshake too large").into_response();
        }
    };
    if let Some(seal) = seal {
        match seal_open_packet(&bytes, seal) {
            Some(sealed) => {
                bytes = sealed.into();
                parts.headers.remove(header::CONTENT_LENGTH);
            }
            // Never hand out a bare session id.
            None => return unknown_session(),
        }
    }
    if let Some(cookie) = cookie
        && let Some(sid) = session_id_in_open_packet(&bytes)
    {
        let mut value = format!("{}={sid}; Path={}", cookie.name, cookie.path);
        if cookie.http_only {
            value.push_str("; HttpOnly");
        }
        value.push_str("; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&value) {
            parts.headers.append(header::SET_COOKIE, value);
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Finds `"sid":"…"` in an Engine.IO open packet (v3 framed or v4 plain, text or base64 framing
/// aside, the JSON text is in the clear).
fn session_id_in_open_packet(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"sid\":\"")? + 7;
    let end = text[start..].find('"')?;
    let sid = &text[start..start + end];
    sid.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        .then(|| sid.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sid_is_found_in_v3_and_v4_open_packets() {
        let v3 = br#"97:0{"sid":"aB-_c1","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}2:40"#;
        assert_eq!(session_id_in_open_packet(v3).as_deref(), Some("aB-_c1"));
        let v4 = br#"0{"sid":"xyz","upgrades":[],"pingInterval":25000}"#;
        assert_eq!(session_id_in_open_packet(v4).as_deref(), Some("xyz"));
        assert_eq!(session_id_in_open_packet(br#"0{"sid":"a;b"}"#), None);
        assert_eq!(session_id_in_open_packet(b"garbage"), None);
    }

    #[test]
    fn origins_patterns() {
        let origins = vec!["app.test:*".to_owned(), "*:8080".to_owned()];
        let ok =
            |o: &str| origin_allowed(Some(&origins), Some(&HeaderValue::from_str(o).expect("hv")));
        assert!(ok("https://app.test"));
        assert!(ok("http://other.test:8080"));
        assert!(!ok("http://evil.test"));
        assert!(origin_allowed(Some(&origins), None));
        assert!(origin_allowed(
            None,
            Some(&HeaderValue::from_static("http://x"))
        ));
    }

    proptest::proptest! {
        #[test]
        fn fuzz_open_packet(body in crate::test_support::arb_payload()) {
            if let Some(sid) = session_id_in_open_packet(&body) {
                proptest::prop_assert!(sid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            }
        }
    }

    #[test]
    fn handshakes_keep_no_slice_of_the_read_buffer() {
        let buffer =
            bytes::Bytes::from_static(b"/socket.io/?EIO=4&transport=websocketlaravel_session=abc");
        let uri = http::Uri::from_maybe_shared(buffer.slice(0..37)).expect("uri");
        let cookie = HeaderValue::from_maybe_shared(buffer.slice(37..)).expect("header");
        let req = Request::builder()
            .uri(uri)
            .header(header::COOKIE, cookie)
            .header(header::COOKIE, "second=1")
            .body(Body::empty())
            .expect("request");
        let buffer_range = buffer.as_ptr_range();
        let detached = detach_from_read_buffer(req);
        let cookies: Vec<_> = detached.headers().get_all(header::COOKIE).iter().collect();
        assert_eq!(cookies, ["laravel_session=abc", "second=1"]);
        assert!(!buffer_range.contains(&cookies[0].as_bytes().as_ptr()));
        assert_eq!(detached.uri(), "/socket.io/?EIO=4&transport=websocket");
        let query = detached.uri().query().expect("query");
        assert!(!buffer_range.contains(&query.as_ptr()));
    }
}
