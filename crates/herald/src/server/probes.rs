//! `/health` (liveness), `/ready` (readiness: sources connected, not shutting down) and
//! `/metrics` (Prometheus), on the main port or on `metricsPort`.

use crate::sources::redis::RedisSourceState;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What readiness depends on.
#[derive(Clone, Default)]
pub(super) struct Readiness {
    /// The Redis source's state, when the Redis source is on.
    pub(super) redis: Option<Arc<RedisSourceState>>,
    /// Set when shutdown starts, so load balancers stop sending new clients.
    pub(super) shutting_down: Arc<AtomicBool>,
    /// `metricsToken`: when set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub(super) metrics_token: Option<Arc<str>>,
}

/// The three routes.
pub(super) fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(readiness)
}

async fn health() -> &'static str {
    "OK"
}

async fn ready(State(readiness): State<Readiness>) -> Response {
    let mut reasons = Vec::new();
    if readiness.shutting_down.load(Ordering::Relaxed) {
        reasons.push("shutting down");
    }
    if readiness.redis.as_ref().is_some_and(|r| !r.is_subscribed()) {
        reasons.push("the Redis source is not subscribed");
    }
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({"ready": reasons.is_empty(), "reasons": reasons})),
    )
        .into_response()
}

async fn metrics(State(readiness): State<Readiness>, headers: http::HeaderMap) -> Response {
    if let Some(token) = &readiness.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::secret::secrets_equal(given.as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "/metrics needs Authorization: Bearer <metricsToken>\n",
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::metrics().render(),
    )
        .into_response()
}
