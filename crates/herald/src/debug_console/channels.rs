//! `GET /console/api/channels`: this node's occupied channels with their subscriber counts and,
//! for presence channels, their members; and the apps an event can be sent to.

use super::{ConsoleState, answer};
use crate::hub::activity::channel_of;
use crate::hub::{ChannelKind, user_id_text};
use axum::extract::State;
use axum::response::Response;
use http::header::HeaderMap;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Channels listed at most (the busiest node still answers quickly); the answer says how many
/// more there are.
const MOST_CHANNELS: usize = 500;

/// Members listed per presence channel at most.
const MOST_MEMBERS: usize = 100;

/// The channels view.
pub(super) async fn list(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return super::unauthorized();
    }
    let occupied = state.hub.channels("");
    let total = occupied.len();
    let mut channels = Vec::with_capacity(total.min(MOST_CHANNELS));
    for info in occupied.into_iter().take(MOST_CHANNELS) {
        let (name, app) = channel_of(&info.name);
        let mut entry = json!({
            "name": name,
            "subscribers": info.subscription_count,
        });
        if let Some(app) = app {
            entry["app"] = json!(app);
        }
        if ChannelKind::of(&name) == ChannelKind::Presence {
            entry["members"] = match state.presence.members(&info.name).await {
                Ok(entries) => {
                    let mut seen = HashSet::new();
                    let members: Vec<Value> = entries
                        .into_iter()
                        .filter(|m| seen.insert(user_id_text(&m.user_id)))
                        .take(MOST_MEMBERS)
                        .map(|m| json!({"user_id": m.user_id, "user_info": m.user_info}))
                        .collect();
                    json!(members)
                }
                Err(e) => json!({ "error": format!("presence is unavailable: {e}") }),
            };
        }
        channels.push(entry);
    }
    let apps: Vec<Value> = state
        .clients
        .iter()
        .filter(|client| client.space() != crate::hub::Space::shared())
        .map(|client| json!(client.app_id))
        .collect();
    answer(json!({
        "connections": state.hub.connection_count(),
        "channels": channels,
        "more": total.saturating_sub(MOST_CHANNELS),
        "isolated_apps": apps,
    }))
}
