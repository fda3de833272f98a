//! The read-only routes.

use super::app_auth::AuthorizedApp;
use super::{ApiError, ApiState};
use crate::hub::{ChannelInfo, ChannelKind, Message, data_as_text, is_cache_channel};
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

/// `?filter_by_prefix=` and `?info=` of the channel reads.
#[derive(Deserialize)]
pub(super) struct ChannelsQuery {
    filter_by_prefix: Option<String>,
    info: Option<String>,
}

impl ChannelsQuery {
    /// Whether `info=` asks for `attribute` (a comma-separated list).
    fn wants(&self, attribute: &str) -> bool {
        self.info
            .as_deref()
            .is_some_and(|info| info.split(',').any(|a| a.trim() == attribute))
    }
}

/// `GET /apps/{appId}/channels[?filter_by_prefix=x]`: occupied channels. A Pusher app gets
/// Pusher's shape: `{}` per channel, plus the `info=` attributes it asked for.
pub(super) async fn channels(
    app: AuthorizedApp,
    State(state): State<ApiState>,
    Query(query): Query<ChannelsQuery>,
) -> Result<Json<Value>, ApiError> {
    let prefix = query.filter_by_prefix.clone().unwrap_or_default();
    // Keys of the app's space, named as its clients name them.
    let occupied: Vec<ChannelInfo> = occupied_channels(&state, &app.space.key(&prefix))
        .await?
        .into_iter()
        .filter_map(|c| {
            let name = app.space.name_of(&c.name)?.to_owned();
            // `#`-channels are the server's own (users, watchlists), not the app's.
            (!name.starts_with('#')).then_some(ChannelInfo { name, ..c })
        })
        .collect();
    if !app.is_pusher() {
        let channels: Map<String, Value> = occupied
            .into_iter()
            .map(|c| {
                let info = json!({"subscription_count": c.subscription_count, "occupied": true});
                (c.name, info)
            })
            .collect();
        return Ok(Json(json!({ "channels": channels })));
    }
    let user_count = query.wants("user_count");
    if user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::BadRequest(
            "info=user_count needs filter_by_prefix=presence-".to_owned(),
        ));
    }
    let mut channels = Map::new();
    for c in occupied {
        let mut info = Map::new();
        if user_count {
            info.insert(
                "user_count".to_owned(),
                json!(live_users(&state, &app.space.key(&c.name)).await?),
            );
        }
        if query.wants("subscription_count") {
            info.insert("subscription_count".to_owned(), json!(c.subscription_count));
        }
        channels.insert(c.name, Value::Object(info));
    }
    Ok(Json(json!({ "channels": channels })))
}

/// `GET /apps/{appId}/channels/{channel}`: `user_count` added for presence channels. A Pusher
/// app gets `occupied` and the `info=` attributes it asked for.
pub(super) async fn channel(
    app: AuthorizedApp,
    State(state): State<ApiState>,
    Path((_, name)): Path<(String, String)>,
    Query(query): Query<ChannelsQuery>,
) -> Result<Json<Value>, ApiError> {
    let channel = app.space.key(&name);
    let count = match &state.occupancy {
        Some(cluster) => cluster
            .count(&channel)
            .await
            .map_err(|e| ApiError::Unavailable(format!("cluster channel counts: {e}")))?,
        None => state.hub.subscription_count(&channel),
    };
    let presence = ChannelKind::of(&name) == ChannelKind::Presence;
    if app.is_pusher() {
        let mut body = json!({"occupied": count > 0});
        if query.wants("user_count") {
            if !presence {
                return Err(ApiError::BadRequest(
                    "info=user_count is only possible for presence channels".to_owned(),
                ));
            }
            body["user_count"] = json!(live_users(&state, &channel).await?);
        }
        if query.wants("subscription_count") {
            body["subscription_count"] = json!(count);
        }
        if query.wants("cache") {
            if !is_cache_channel(&name) {
                return Err(ApiError::BadRequest(
                    "info=cache is only possible for cache channels (cache-…)".to_owned(),
                ));
            }
            if let Some((last, ttl)) = state.hub.cached(&channel)
                && let Message::Event { name, data, .. } = &last.message
            {
                body["cache"] = json!({
                    "event": &**name,
                    "data": data_as_text(data),
                    "ttl": ttl.as_secs(),
                });
            }
        }
        return Ok(Json(body));
    }
    let mut body = json!({"subscription_count": count, "occupied": count > 0});
    if presence {
        body["user_count"] = json!(live_users(&state, &channel).await?);
    }
    Ok(Json(body))
}

/// `GET /apps/{appId}/channels/{channel}/users`: one entry per user (Pusher apps: `{"id"}`
/// with the id as a string, as Pusher answers).
pub(super) async fn users(
    app: AuthorizedApp,
    State(state): State<ApiState>,
    Path((_, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let channel = app.space.key(&name);
    if ChannelKind::of(&name) != ChannelKind::Presence {
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
        .map(|m| match app.is_pusher() {
            true => json!({"id": m.user_key()}),
            false => json!({"id": m.user_id, "user_info": m.user_info}),
        })
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// The occupied channels whose key starts with `prefix`: this node's, or in a cluster every
/// node's.
async fn occupied_channels(state: &ApiState, prefix: &str) -> Result<Vec<ChannelInfo>, ApiError> {
    match &state.occupancy {
        Some(cluster) => cluster
            .channels(prefix)
            .await
            .map_err(|e| ApiError::Unavailable(format!("cluster channel counts: {e}"))),
        None => Ok(state.hub.channels(prefix)),
    }
}

/// Live users of a presence channel.
async fn live_users(state: &ApiState, channel: &str) -> Result<usize, ApiError> {
    Ok(state
        .presence
        .members(channel)
        .await
        .map_err(unavailable)?
        .len())
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
