//! API errors as `{"error": "…"}` responses.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

/// A refused API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 403 `{"error":"Unauthorized"}`: unknown appId or wrong key.
    Unauthorized,
    /// 401 with what is wrong: a Pusher app's request is unsigned or badly signed.
    BadSignature(String),
    /// 400 with laravel-echo-server's message or a more precise one.
    BadRequest(String),
    /// 413: the body is over the limit.
    TooLarge(usize),
    /// 413: an event's `data` is over the app's `maxEventPayloadInKb`.
    DataTooLarge(usize),
    /// 503: a store Herald depends on did not answer.
    Unavailable(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Unauthorized => (StatusCode::FORBIDDEN, "Unauthorized".to_owned()),
            ApiError::BadSignature(message) => (StatusCode::UNAUTHORIZED, message),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ApiError::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {limit} bytes"),
            ),
            ApiError::DataTooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Event data is larger than {limit} bytes (the app's maxEventPayloadInKb)"),
            ),
            ApiError::Unavailable(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}
