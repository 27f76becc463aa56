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
    /// 422: well-formed, but cannot be done as asked; the code says why
    /// (`IDEMPOTENCY_KEY_REUSED`).
    Unprocessable(&'static str, String),
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
        let (status, code, message): (StatusCode, &str, String) = match self {
            ApiError::BadRequest(msg) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidInput.as_str(), msg),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "missing or invalid API token; send `Authorization: Bearer <token>` (create one with `salesai token create`)".to_owned(),
            ),
            ApiError::Forbidden(msg) => (StatusCode::FORBIDDEN, "FORBIDDEN", msg),
            ApiError::NotFound(msg) => (StatusCode::NOT_FOUND, "NOT_FOUND", msg),
            ApiError::Conflict(msg) => (StatusCode::CONFLICT, "CONFLICT", msg),
            ApiError::Unprocessable(code, msg) => (StatusCode::UNPROCESSABLE_ENTITY, code, msg),
            ApiError::PayloadTooLarge(msg) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::AudioTooLarge.as_str(), msg),
            ApiError::UnsupportedMedia(msg) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", msg),
            ApiError::Unavailable(code, cause) => {
                tracing::error!(event = "http.unavailable", error_code = %code, error = %cause, "dependency unavailable");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, "5")],
                    Json(error_body(code.as_str(), "a dependency is unavailable; retry later")),
                )
                    .into_response();
            }
            ApiError::Internal(code, cause) => {
                tracing::error!(event = "http.internal_error", error_code = %code, error = %cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    code.as_str(),
                    "internal error; the server log has the details".to_owned(),
                )
            }
        };
        (status, Json(error_body(code, &message))).into_response()
    }
}

/// The one error format: `{"error": {"code": …, "message": …}}`.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({ "error": { "code": code, "message": message } })
}

/// The code for a status the framework answered on its own (a rejected query string, body or
/// path, an unknown route, a wrong method).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::CONFLICT => "CONFLICT",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNPROCESSABLE_ENTITY => "UNPROCESSABLE",
        StatusCode::REQUEST_TIMEOUT => "TIMEOUT",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        s if s.is_server_error() => "INTERNAL",
        _ => "INVALID_INPUT",
    }
}
