//! `POST /apps/{appId}/users/{userId}/terminate_connections`: closes every connection signed
//! in as that user (Pusher's API; the SDKs' `terminateUserConnections`).

use super::app_auth::AuthorizedApp;
use super::{ApiError, ApiState};
use crate::hub::{EventSource, Message, Publication, user_channel};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use serde_json::{Value, json};

/// Publishes a `Terminate` to the user's `#server-to-user-` channel: each of the user's
/// signed-in connections, on whatever node it is subscribed, closes with 4009.
pub(super) async fn terminate_connections(
    app: AuthorizedApp,
    State(state): State<ApiState>,
    Path((_, user_id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    app.check_body(&body)?;
    let channel = app.space.key(&user_channel(&user_id)).into_owned();
    let publication = Publication::with(&channel, Message::Terminate, None);
    crate::sources::dispatch(&state.hub, &publication, EventSource::PusherApi);
    Ok(Json(json!({})))
}
