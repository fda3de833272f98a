//! The Pusher Channels protocol, version 7, on WebSocket `/app/{key}` of the main port, on
//! Herald's own connection core (`crate::connection`). Its connections share the Hub with
//! Socket.IO's, so a publication reaches the subscribers of both protocols.

mod apps;
mod codes;
mod connection;
mod frames;
mod signature;
mod socket_id;
mod subscriber;
mod users;

pub use apps::{PusherApp, PusherApps};

use crate::config::Limits;
use crate::hub::Hub;
use crate::presence::Presence;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use http::{Request, Response};
use std::sync::Arc;
use std::time::Duration;

/// Seconds of silence after which a client pings (sent in `connection_established`), and after
/// which the server pings a silent client.
pub const ACTIVITY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a client has to answer the server's `pusher:ping` before it is closed with 4201.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(30);

/// What every Pusher connection shares.
pub struct PusherContext {
    /// Channel registry and fan-out.
    pub hub: Arc<Hub>,
    /// Presence members (shared with Socket.IO).
    pub presence: Arc<Presence>,
    /// The apps, by key.
    pub apps: PusherApps,
    /// Connection and subscription limits.
    pub limits: Limits,
    /// Turns true when the server shuts down: every connection closes with 4200 (reconnect).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Pusher connections open now (the shutdown waits for them to close).
    pub open: std::sync::atomic::AtomicUsize,
    /// In a cluster, every node's channel counts: who is online, for watchlists.
    pub cluster: Option<Arc<crate::cluster::Occupancy>>,
    /// Who the client is behind a proxy (shown on the debug console).
    pub trusted_proxies: crate::peer::TrustedProxies,
    /// The threads that run the connections' tasks.
    pub workers: Arc<crate::workers::Workers>,
}

/// What the debug console shows of the request that opened a connection: made only while a
/// console watches, and dropped once shown.
pub(super) struct Hello {
    /// `protocol 7, js 8.4.0`.
    detail: String,
    /// The client's address.
    address: String,
    /// Its `User-Agent`.
    user_agent: String,
}

impl Hello {
    fn of(ctx: &PusherContext, request: &Request<Body>, query: &str) -> Hello {
        let param = |wanted: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| value.chars().take(64).collect::<String>())
                .unwrap_or_default()
        };
        let headers = request.headers();
        Hello {
            detail: format!(
                "protocol {}, {} {}",
                param("protocol"),
                param("client"),
                param("version")
            ),
            address: ctx
                .trusted_proxies
                .client_of(request.extensions(), headers)
                .map(|client| client.forwarded_for)
                .unwrap_or_default(),
            user_agent: crate::hub::activity::shown_user_agent(
                headers
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default(),
            ),
        }
    }
}

/// `GET /app/{key}`: the WebSocket endpoint.
pub fn router(ctx: Arc<PusherContext>) -> Router {
    Router::new()
        .route("/app/{key}", get(accept))
        .with_state(ctx)
}

async fn accept(
    State(ctx): State<Arc<PusherContext>>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    mut request: Request<Body>,
) -> Response<Body> {
    let hello = ctx.hub.activity().is_watched().then(|| {
        Box::new(Hello::of(
            &ctx,
            &request,
            query.as_deref().unwrap_or_default(),
        ))
    });
    let (response, websocket) =
        match crate::connection::upgrade(&mut request, crate::connection::MAX_CLIENT_MESSAGE) {
            Ok(accepted) => accepted,
            Err(refused) => return *refused,
        };
    let protocol = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "protocol")
        .map(|(_, value)| value.parse::<u32>().unwrap_or(0));
    let workers = ctx.workers.clone();
    workers.spawn(async move {
        if let Some(websocket) = websocket.await {
            connection::run(ctx, websocket, &key, protocol, hello).await;
        }
    });
    response
}
