//! The Socket.IO endpoint's HTTP side: what engine.io 3 did around the transport (polling
//! CORS, the `io` cookie, the `origins` check, serving `/socket.io/socket.io.js`), the
//! connection limit counted when a session opens, and every Engine.IO request handed to its
//! session on Herald's core ([`super::engine_session`]): a handshake opens one, a request
//! naming a session reaches it only if it is open here, speaks its protocol revision and, for
//! Engine.IO 3, comes from the address that opened it ([`super::session`]).

use super::SocketIoContext;
use super::connection::Handshake;
use super::engine_session::{self, ToSession};
use super::session::{Eio, EngineQuery, SessionHandle};
use crate::config::{SocketIoOptions, Transport};
use crate::hub::Hub;
use crate::peer::TrustedProxies;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

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
    /// Whose forwarded address is believed.
    pub trusted_proxies: TrustedProxies,
    /// What sessions on Herald's own core share.
    pub core: Arc<SocketIoContext>,
}

/// The transport a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Polling,
    Websocket,
}

impl SocketIoHttpLayer {
    /// Built from the `socketio` options and what guards sessions.
    pub fn new(options: SocketIoOptions, guard: SessionGuard) -> SocketIoHttpLayer {
        SocketIoHttpLayer {
            inner: Arc::new(Inner {
                prefix: format!("{}/", options.path),
                options,
                search_dirs: guard.search_dirs,
                hub: guard.hub,
                max_connections: guard.max_connections,
                trusted_proxies: guard.trusted_proxies,
                core: guard.core,
            }),
        }
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
        let mut response = inner.engine_request(req, origin.as_ref()).await;
        // A refused origin gets no CORS grant.
        if response.status() != StatusCode::FORBIDDEN {
            add_cors(response.headers_mut(), origin.as_ref());
        }
        response
    }
}

impl Inner {
    /// An Engine.IO request: a handshake, or a request of an open session.
    async fn engine_request(&self, req: Request, origin: Option<&HeaderValue>) -> Response {
        let query = EngineQuery::parse(req.uri().query());
        let eio = match query.eio {
            Some("3") => Eio::V3,
            Some("4") => Eio::V4,
            _ => return engine_error(5, "Unsupported protocol version"),
        };
        let allowed = |transport| self.options.transports.contains(&transport);
        let via = match query.transport {
            Some("polling") if allowed(Transport::Polling) => Via::Polling,
            Some("websocket") if allowed(Transport::Websocket) => Via::Websocket,
            _ => return engine_error(0, "Transport unknown"),
        };
        if let Some(sid) = query.sid {
            let sid = sid.to_owned();
            return self.to_session(req, &sid, eio, via).await;
        }
        // This request opens a session.
        if via == Via::Polling && req.method() != Method::GET {
            return engine_error(2, "Bad handshake method");
        }
        if !origin_allowed(self.options.origins.as_deref(), origin) {
            return forbidden();
        }
        if !self.hub.reserve_connection(self.max_connections) {
            return at_capacity(self.max_connections);
        }
        let handshake = Box::new(Handshake::of(&self.core, req.extensions(), req.headers()));
        match via {
            Via::Websocket => self.open_websocket(req, eio, handshake),
            Via::Polling => self.open_polling(&req, eio, handshake),
        }
    }

    /// Upgrades `req` and serves the session on the core; its reservation is given back if
    /// the upgrade fails.
    fn open_websocket(&self, mut req: Request, eio: Eio, handshake: Box<Handshake>) -> Response {
        let (response, upgraded) = match crate::connection::upgrade(&mut req, self.max_message()) {
            Ok(accepted) => accepted,
            Err(refused) => {
                self.hub.release_reservation();
                return *refused;
            }
        };
        // One async fn from the upgrade to the end: every layer of futures around it would be
        // sized for its largest state, in every idle session's allocation.
        self.core.workers.spawn(engine_session::run_websocket(
            self.core.clone(),
            upgraded,
            eio,
            handshake,
        ));
        response
    }

    /// Opens a polling session: its open packet, and the `io` cookie when it is on.
    fn open_polling(&self, req: &Request, eio: Eio, mut handshake: Box<Handshake>) -> Response {
        handshake.transport = "polling";
        let client = self
            .trusted_proxies
            .client_of(req.extensions(), req.headers())
            .map(|c| c.ip);
        let upgrades = self.options.transports.contains(&Transport::Websocket);
        let (sid, body) =
            engine_session::open_polling(&self.core, eio, handshake, client, upgrades);
        let mut response = payload_response(body);
        if let Some(cookie) = &self.options.cookie {
            let mut value = format!("{}={sid}; Path={}", cookie.name, cookie.path);
            if cookie.http_only {
                value.push_str("; HttpOnly");
            }
            value.push_str("; SameSite=Strict");
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }

    fn max_message(&self) -> usize {
        usize::try_from(self.options.max_http_buffer_size).unwrap_or(usize::MAX)
    }

    /// A request naming session `sid`: a poll, a post or the upgrade.
    async fn to_session(&self, req: Request, sid: &str, eio: Eio, via: Via) -> Response {
        let Some(session) = self.session(&req, sid, eio) else {
            return if eio == Eio::V4 && !self.core.sessions.sealed_here(sid) {
                unknown_session_elsewhere()
            } else {
                unknown_session()
            };
        };
        match (via, req.method()) {
            (Via::Polling, &Method::GET) => {
                let (answer, answered) = oneshot::channel();
                if session.requests.try_send(ToSession::Poll(answer)).is_err() {
                    return engine_error(3, "Bad request");
                }
                match answered.await {
                    Ok(payload) => payload_response(payload),
                    Err(_) => unknown_session(),
                }
            }
            (Via::Polling, &Method::POST) => self.post(req, &session).await,
            (Via::Websocket, &Method::GET) => self.upgrade(req, session),
            _ => engine_error(3, "Bad request"),
        }
    }

    /// The open session `sid` names, if this request may reach it: the same protocol
    /// revision, and for Engine.IO 3 (whose session id is the public socket id) the address
    /// that opened it.
    fn session(&self, req: &Request, sid: &str, eio: Eio) -> Option<SessionHandle> {
        let session = self.core.sessions.get(sid)?;
        let asking = || {
            self.trusted_proxies
                .client_of(req.extensions(), req.headers())
                .map(|c| c.ip)
        };
        let allowed = session.eio == eio
            && session
                .opened_by
                .is_none_or(|opened_by| asking() == Some(opened_by));
        if !allowed {
            crate::metrics::metrics().session_refusals.inc();
        }
        allowed.then_some(session)
    }

    /// A POST's payload, handed to its session.
    async fn post(&self, req: Request, session: &SessionHandle) -> Response {
        let body = match axum::body::to_bytes(req.into_body(), self.max_message()).await {
            Ok(body) => body,
            Err(_) => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload over socketio.maxHttpBufferSize",
                )
                    .into_response();
            }
        };
        let Ok(body) = String::from_utf8(body.to_vec()) else {
            return engine_error(3, "Bad request");
        };
        let (answer, answered) = oneshot::channel();
        if session
            .requests
            .try_send(ToSession::Post(body, answer))
            .is_err()
        {
            return engine_error(3, "Bad request");
        }
        match answered.await {
            Ok(true) => ([(header::CONTENT_TYPE, "text/html")], "ok").into_response(),
            Ok(false) => engine_error(3, "Bad request"),
            Err(_) => unknown_session(),
        }
    }

    /// The polling → websocket upgrade: the websocket is handed to the session's task.
    fn upgrade(&self, mut req: Request, session: SessionHandle) -> Response {
        let (response, upgraded) = match crate::connection::upgrade(&mut req, self.max_message()) {
            Ok(accepted) => accepted,
            Err(refused) => return *refused,
        };
        let within = self.options.upgrade_timeout;
        tokio::spawn(async move {
            if let Some(websocket) = upgraded.await {
                let handed = session
                    .requests
                    .send(ToSession::Upgrade(Box::new(websocket)));
                let _ = tokio::time::timeout(within, handed).await;
            }
        });
        response
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

/// A polling payload as the answer to a GET (or a handshake).
fn payload_response(payload: String) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        payload,
    )
        .into_response()
}

/// engine.io's error answer: `400 {"code", "message"}`.
fn engine_error(code: u8, message: &str) -> Response {
    let body = serde_json::json!({ "code": code, "message": message });
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
