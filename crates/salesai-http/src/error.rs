//! The one place where failures become HTTP responses.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salesai_core::ErrorCode;
use salesai_core::store::StoreError;
use serde_json::json;

/// An API failure. Client errors carry their message; server errors are logged once here and
/// answered with an opaque body, so internals never leak to callers.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with a message saying what to fix.
    BadRequest(String),
    /// 401: no valid credentials.
    Unauthorized,
    /// 403: valid credentials, insufficient role.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 409: the resource is not in a state that allows this.
    Conflict(String),
    /// 413.
    PayloadTooLarge(String),
    /// 415 with the accepted formats.
    UnsupportedMedia(String),
    /// 503: a dependency is down; retry later.
    Unavailable(ErrorCode, String),
    /// 500.
    Internal(ErrorCode, String),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidInput(msg) => ApiError::BadRequest(msg),
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Unavailable(msg) => ApiError::Unavailable(ErrorCode::DatabaseError, msg),
            other => ApiError::Internal(ErrorCode::DatabaseError, other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, msg),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::InvalidInput,
                "missing or invalid API token; send `Authorization: Bearer <token>` (create one with `salesai token create`)".to_owned(),
            ),
            ApiError::Forbidden(msg) => (StatusCode::FORBIDDEN, ErrorCode::InvalidInput, msg),
            ApiError::NotFound(msg) => (StatusCode::NOT_FOUND, ErrorCode::InvalidInput, msg),
            ApiError::Conflict(msg) => (StatusCode::CONFLICT, ErrorCode::InvalidInput, msg),
            ApiError::PayloadTooLarge(msg) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::AudioTooLarge, msg),
            ApiError::UnsupportedMedia(msg) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorCode::InvalidInput, msg),
            ApiError::Unavailable(code, cause) => {
                tracing::error!(event = "http.unavailable", error_code = %code, error = %cause, "dependency unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    "a dependency is unavailable; retry later".to_owned(),
                )
            }
            ApiError::Internal(code, cause) => {
                tracing::error!(event = "http.internal_error", error_code = %code, error = %cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code,
                    "internal error; the server log has the details".to_owned(),
                )
            }
        };
        let body = json!({ "error": { "code": code.as_str(), "message": message } });
        (status, Json(body)).into_response()
    }
}
