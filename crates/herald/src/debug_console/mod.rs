//! The debug console: a page at `/console` that shows, live, what happens on this node
//! (connections, subscriptions, channels, events with their source, authorizations, presence),
//! the occupied channels with their members, and a form to send a test event.
//!
//! Served only when `console.token` is set. The page and its script are static (embedded in the
//! binary, no outside resources) and carry no data; every data request must carry the token as
//! `Authorization: Bearer`, which the page takes from the URL fragment (never sent to the
//! server, so never in an access log) or a login field. The live feed reads the Hub's activity
//! tap: bounded, and a browser that falls behind loses lines and is told how many, so the
//! console never slows delivery.

mod channels;
mod feed;

use crate::api::publish_body;
use crate::config::{ApiClient, AppLimits, Config};
use crate::hub::{EventSource, Hub, Space};
use crate::presence::Presence;
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

/// Consoles watching at once; a further one is refused (429) until one closes.
pub const MAX_WATCHERS: usize = 8;

const PAGE: &str = include_str!("assets/console.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// No outside resource, no inline script, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the console's handlers share.
#[derive(Clone)]
pub struct ConsoleState {
    hub: Arc<Hub>,
    presence: Arc<Presence>,
    token: Arc<str>,
    clients: Arc<[ApiClient]>,
    /// Turns true when the server stops: live feeds end, so the shutdown does not wait on them.
    shutdown: watch::Receiver<bool>,
    watching: Arc<AtomicUsize>,
}

/// The console's routes under `/console`, or `None` when no token is configured.
pub fn router(
    config: &Config,
    hub: Arc<Hub>,
    presence: Arc<Presence>,
    shutdown: watch::Receiver<bool>,
) -> Option<Router> {
    let token = config.console_token.as_deref()?;
    let state = ConsoleState {
        hub,
        presence,
        token: Arc::from(token),
        clients: config.clients.clone().into(),
        shutdown,
        watching: Arc::default(),
    };
    Some(
        Router::new()
            .route("/console", get(page))
            .route("/console/", get(page))
            .route("/console/console.js", get(script))
            .route("/console/console.css", get(style))
            .route("/console/api/stream", get(feed::stream))
            .route("/console/api/channels", get(channels::list))
            .route(
                "/console/api/events",
                post(send_event).layer(DefaultBodyLimit::max(config.limits.max_event_bytes)),
            )
            .with_state(state),
    )
}

/// A static asset with the console's headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    protect(headers);
    response
}

/// Headers every console answer carries: nothing cached, nothing framed or sniffed, no
/// referrer leaving the page.
fn protect(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// A refused console request: `{"error": …}` with the console's headers.
fn refusal(status: StatusCode, message: &str) -> Response {
    let mut response = (status, Json(json!({ "error": message }))).into_response();
    protect(response.headers_mut());
    response
}

/// The answer to a request without the right token.
fn unauthorized() -> Response {
    refusal(
        StatusCode::UNAUTHORIZED,
        "Wrong or missing console token: open /console#token=<console.token> or enter it in the page",
    )
}

/// A JSON answer with the console's headers.
fn answer(value: serde_json::Value) -> Response {
    let mut response = Json(value).into_response();
    protect(response.headers_mut());
    response
}

impl ConsoleState {
    /// Whether the request carries the console's token (compared in constant time).
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        crate::secret::secrets_equal(presented.as_bytes(), self.token.as_bytes())
    }

    /// The space and limits of the app named `app_id` (`None`: the shared space, where
    /// Echo clients and non-isolated apps live).
    fn app(&self, app_id: Option<&str>) -> Option<(Space, AppLimits)> {
        match app_id.filter(|id| !id.is_empty()) {
            None => Some((Space::shared(), AppLimits::default())),
            Some(id) => self
                .clients
                .iter()
                .find(|client| client.app_id == id)
                .map(|client| (client.space(), client.limits)),
        }
    }
}

/// `POST /console/api/events`: `{app?, channel, name, data}`, published as the HTTP API
/// publishes (the same rules), shown on the feed with the source `console`.
async fn send_event(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.authorized(&headers) {
        return unauthorized();
    }
    let app_id = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("app").and_then(|a| a.as_str()).map(str::to_owned));
    let Some((space, limits)) = state.app(app_id.as_deref()) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "No app has this id: choose one of the apps the console lists",
        );
    };
    match publish_body(&state.hub, &space, &limits, &body, EventSource::Console) {
        Ok(delivered) => answer(json!({ "delivered": delivered })),
        Err(e) => {
            let mut response = e.into_response();
            protect(response.headers_mut());
            response
        }
    }
}

/// Counts the consoles watching, against [`MAX_WATCHERS`]; the place is given back on drop.
struct WatcherPlace(Arc<AtomicUsize>);

impl WatcherPlace {
    fn take(watching: &Arc<AtomicUsize>) -> Option<WatcherPlace> {
        watching
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WATCHERS).then_some(n + 1)
            })
            .ok()
            .map(|_| WatcherPlace(watching.clone()))
    }
}

impl Drop for WatcherPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
