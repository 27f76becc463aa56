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

/// Every error status the API answers with and the codes each can carry: the one list the
/// handlers' errors, the framework's own refusals ([`code_for_status`]) and the OpenAPI
/// document's per-response `code` enums are checked against (a test builds every
/// [`ApiError`] and every listed status and finds its code here).
pub const ANSWERS: &[(u16, &[&str])] = &[
    (400, &["INVALID_INPUT"]),
    (401, &["UNAUTHORIZED"]),
    (403, &["FORBIDDEN"]),
    (404, &["NOT_FOUND"]),
    (405, &["METHOD_NOT_ALLOWED"]),
    (408, &["TIMEOUT"]),
    (409, &["CONFLICT"]),
    (413, &["AUDIO_TOO_LARGE", "PAYLOAD_TOO_LARGE"]),
    (414, &["INVALID_INPUT"]),
    (415, &["UNSUPPORTED_MEDIA_TYPE"]),
    (422, &["UNPROCESSABLE", "IDEMPOTENCY_KEY_REUSED"]),
    (429, &["RATE_LIMITED"]),
    (431, &["INVALID_INPUT"]),
    (500, &["INTERNAL", "DATABASE_ERROR", "STORAGE_ERROR"]),
    (503, &["UNAVAILABLE", "DATABASE_ERROR", "STORAGE_ERROR"]),
];

/// The codes a response with `status` can carry (empty for a status the API never answers).
pub fn codes_for(status: u16) -> &'static [&'static str] {
    ANSWERS
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(&[], |(_, codes)| codes)
}

/// `code` when [`ANSWERS`] lists it for `status`, else the status's first code: a server error
/// names its dependency only with a code the document promises.
fn listed(status: StatusCode, code: &'static str) -> &'static str {
    let codes = codes_for(status.as_u16());
    if codes.contains(&code) {
        code
    } else {
        codes.first().copied().unwrap_or("INTERNAL")
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
                let code = listed(StatusCode::SERVICE_UNAVAILABLE, code.as_str());
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, "5")],
                    Json(error_body(code, "a dependency is unavailable; retry later")),
                )
                    .into_response();
            }
            ApiError::Internal(code, cause) => {
                tracing::error!(event = "http.internal_error", error_code = %code, error = %cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    listed(StatusCode::INTERNAL_SERVER_ERROR, code.as_str()),
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
        StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
        s if s.is_server_error() => "INTERNAL",
        _ => "INVALID_INPUT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(err: ApiError) -> (u16, String) {
        let response = err.into_response();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (status, body["error"]["code"].as_str().unwrap().to_owned())
    }

    #[tokio::test]
    async fn every_error_answers_a_listed_status_and_code() {
        let mut errors = vec![
            ApiError::BadRequest("x".into()),
            ApiError::Unauthorized,
            ApiError::Forbidden("x".into()),
            ApiError::NotFound("x".into()),
            ApiError::Conflict("x".into()),
            ApiError::Unprocessable("IDEMPOTENCY_KEY_REUSED", "x".into()),
            ApiError::PayloadTooLarge("x".into()),
            ApiError::UnsupportedMedia("x".into()),
        ];
        for code in ErrorCode::ALL {
            errors.push(ApiError::Unavailable(code, "x".into()));
            errors.push(ApiError::Internal(code, "x".into()));
        }
        for err in errors {
            let shown = format!("{err:?}");
            let (status, code) = answer(err).await;
            assert!(
                codes_for(status).contains(&code.as_str()),
                "{shown} answers {status} {code}, which ANSWERS does not list"
            );
        }
        // The framework's own refusals, for every status the API lists.
        for (status, codes) in ANSWERS {
            let code = code_for_status(StatusCode::from_u16(*status).unwrap());
            assert!(codes.contains(&code), "{status}: {code}");
        }
        let from_store: ApiError = StoreError::Unavailable("down".into()).into();
        assert_eq!(answer(from_store).await, (503, "DATABASE_ERROR".into()));
    }
}
