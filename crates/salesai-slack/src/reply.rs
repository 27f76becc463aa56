//! The answers a Slack endpoint gives, and the form it reads: shared by the router and the
//! handlers so neither imports the other for them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Reads a form-encoded body into pairs.
pub(crate) fn form(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// A 200 with a JSON body.
pub(crate) fn ok_json(value: serde_json::Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// An empty 200: Slack's acknowledgement.
pub(crate) fn ack() -> Response {
    StatusCode::OK.into_response()
}
