//! The read-only routes.

use super::app_auth::AuthorizedApp;
use super::{ApiError, ApiState};
use crate::hub::ChannelKind;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// `GET /`: `OK`.
pub(super) async fn root() -> Html<&'static str> {
    Html("OK")
}

/// `GET /apps/{appId}/status`.
pub(super) async fn status(_: AuthorizedApp, State(state): State<ApiState>) -> Json<Value> {
    let rss = resident_memory_bytes().await;
    Json(json!({
        "subscription_count": state.hub.connection_count(),
        "uptime": state.started.elapsed().as_secs_f64(),
        "memory_usage": {
            "rss": rss,
            "heapTotal": 0,
            "heapUsed": 0,
            "external": 0,
            "arrayBuffers": 0
        }
    }))
}

/// `?filter_by_prefix=` of `/channels`.
#[derive(Deserialize)]
pub(super) struct ChannelsQuery {
    filter_by_prefix: Option<String>,
}

/// `GET /apps/{appId}/channels[?filter_by_prefix=x]`.
pub(super) async fn channels(
    _: AuthorizedApp,
    State(state): State<ApiState>,
    Query(query): Query<ChannelsQuery>,
) -> Json<Value> {
    let prefix = query.filter_by_prefix.unwrap_or_default();
    let channels: Map<String, Value> = state
        .hub
        .channels(&prefix)
        .into_iter()
        .map(|c| {
            let info = json!({"subscription_count": c.subscription_count, "occupied": true});
            (c.name, info)
        })
        .collect();
    Json(json!({ "channels": channels }))
}

/// `GET /apps/{appId}/channels/{channel}`: `user_count` added for presence channels.
pub(super) async fn channel(
    _: AuthorizedApp,
    State(state): State<ApiState>,
    Path((_, channel)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let count = state.hub.subscription_count(&channel);
    let mut body = json!({"subscription_count": count, "occupied": count > 0});
    if ChannelKind::of(&channel) == ChannelKind::Presence {
        let members = state
            .presence
            .members(&channel)
            .await
            .map_err(unavailable)?;
        body["user_count"] = json!(members.len());
    }
    Ok(Json(body))
}

/// `GET /apps/{appId}/channels/{channel}/users`: one entry per user.
pub(super) async fn users(
    _: AuthorizedApp,
    State(state): State<ApiState>,
    Path((_, channel)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if ChannelKind::of(&channel) != ChannelKind::Presence {
        return Err(ApiError::BadRequest(
            "User list is only possible for Presence Channels".to_owned(),
        ));
    }
    let members = state
        .presence
        .members(&channel)
        .await
        .map_err(unavailable)?;
    let users: Vec<Value> = members
        .iter()
        .map(|m| json!({"id": m.user_id, "user_info": m.user_info}))
        .collect();
    Ok(Json(json!({ "users": users })))
}

fn unavailable(e: crate::presence::StoreError) -> ApiError {
    ApiError::Unavailable(e.to_string())
}

/// Resident set size from `/proc/self/status` (`VmRSS`), 0 where that is unavailable.
pub(crate) async fn resident_memory_bytes() -> u64 {
    tokio::fs::read_to_string("/proc/self/status")
        .await
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}
