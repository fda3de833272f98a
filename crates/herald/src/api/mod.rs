//! The HTTP API: laravel-echo-server's (`GET /`, `/apps/{appId}/…` reads, `POST …/events`), and
//! the same routes signed as Pusher's HTTP API for Pusher apps, plus `POST …/batch_events`.

mod app_auth;
mod error;
mod events;
mod express;
mod pusher_signature;
mod reads;
mod users;

pub use error::ApiError;
pub use events::publish_body;
pub use express::{ExpressCompat, not_found};

use crate::config::{ApiClient, Config};
use crate::hub::Hub;
use crate::presence::Presence;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use http::header::{CONNECTION, CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use std::sync::Arc;
use std::time::Instant;

/// What the API handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// Channel registry.
    pub hub: Arc<Hub>,
    /// Presence members.
    pub presence: Arc<Presence>,
    /// Allowed API clients.
    pub clients: Arc<[ApiClient]>,
    /// When the server started, for `uptime`.
    pub started: Instant,
    /// Largest event body accepted.
    pub max_event_bytes: usize,
    /// In a cluster: every node's channel counts (the reads answer for the whole cluster).
    pub occupancy: Option<Arc<crate::cluster::Occupancy>>,
}

/// The API routes, with `POST /apps/{appId}/events` only when the HTTP subscriber is on.
pub fn router(
    config: &Config,
    hub: Arc<Hub>,
    presence: Arc<Presence>,
    occupancy: Option<Arc<crate::cluster::Occupancy>>,
) -> Router {
    let state = ApiState {
        hub,
        presence,
        occupancy,
        clients: config.clients.clone().into(),
        started: Instant::now(),
        max_event_bytes: config.limits.max_event_bytes,
    };
    let mut router = Router::new()
        .route("/", get(reads::root))
        .route("/apps/{app_id}/status", get(reads::status))
        .route("/apps/{app_id}/channels", get(reads::channels))
        .route("/apps/{app_id}/channels/{channel}", get(reads::channel))
        .route("/apps/{app_id}/channels/{channel}/users", get(reads::users))
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            post(users::terminate_connections).layer(DefaultBodyLimit::max(64 * 1024)),
        );
    if config.subscribers.http {
        router = router
            .route(
                "/apps/{app_id}/events",
                post(events::publish).layer(DefaultBodyLimit::max(config.limits.max_event_bytes)),
            )
            .route(
                "/apps/{app_id}/batch_events",
                post(events::publish_batch)
                    .layer(DefaultBodyLimit::max(config.limits.max_event_bytes)),
            );
    }
    router
        .layer(axum::middleware::from_fn(close_after_refused_body))
        .with_state(state)
}

/// A request refused before its body was read to the end (too large, bad credentials) leaves
/// the rest of that body on the connection, which the server then closes: the answer says so
/// (`Connection: close`), or an HTTP client that keeps connections alive (Guzzle in a queue
/// worker, undici) would send its next request on a connection about to be reset.
async fn close_after_refused_body(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let has_body = headers
        .get(CONTENT_LENGTH)
        .is_some_and(|length| length.as_bytes() != b"0")
        || headers.contains_key(TRANSFER_ENCODING);
    let mut response = next.run(request).await;
    let status = response.status();
    if has_body && (status.is_client_error() || status.is_server_error()) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
