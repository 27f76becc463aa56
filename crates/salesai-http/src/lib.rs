//! salesai's HTTP surface. Architecture invariant: this is the only crate that knows HTTP; it
//! sees the rest of the program only through the core's `App`.
//!
//! [`router`] builds the whole application; `main` serves it and the tests drive the very
//! same router on port 0.

mod auth;
mod error;
mod observe;
mod routes;
pub mod serve;
pub mod web;

use axum::Router;
use axum::http::HeaderName;
use salesai_core::App;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

pub use auth::{Authorize, Caller};
pub use error::ApiError;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Builds the application's router.
pub fn router(app: App) -> Router {
    router_with(app, Router::new())
}

/// Builds the application's router with `extra` routes (the Slack app's) inside the same
/// request-id, logging and metrics layers.
pub fn router_with(app: App, extra: Router) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    Router::new()
        .merge(routes::health::routes())
        .merge(routes::openapi::routes())
        .nest("/api/v1/admin", routes::admin::routes())
        .nest("/api/v1/conversations", routes::conversations::routes())
        .merge(web::routes())
        .with_state(app.clone())
        .merge(extra)
        .fallback(web::not_found)
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn(web::security_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(app, observe::observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, NewRequestId))
}

/// Every API answer that is an error speaks the one JSON error format, also when the framework
/// answered on its own (a rejected query string, JSON body or multipart stream, an unknown
/// route, a wrong method), which would otherwise be plain text or empty.
async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !path.starts_with("/api/")
        || !(status.is_client_error() || status.is_server_error())
        || is_json
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = match (status, text.is_empty()) {
        (axum::http::StatusCode::NOT_FOUND, true) => {
            format!("no route {method} {path}; the API is under /api/v1")
        }
        (axum::http::StatusCode::METHOD_NOT_ALLOWED, _) => {
            format!("{method} is not allowed on {path}")
        }
        (_, true) => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_owned(),
        (_, false) => text,
    };
    let mut fixed = (
        status,
        axum::Json(error::error_body(error::code_for_status(status), &message)),
    )
        .into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

/// A handler that panicked: a logged 500 in the JSON error format (the request id is on the
/// `http.request` line and in the response header), never a dropped connection.
fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let detail = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(event = "http.panic", error = %detail, "a request handler panicked");
    (
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(error::error_body(
            "INTERNAL",
            "internal error; the server log has the details",
        )),
    )
        .into_response()
}

/// Request ids are time-ordered UUIDs, so sorting logs by id sorts them by arrival.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        uuid::Uuid::now_v7()
            .to_string()
            .parse()
            .ok()
            .map(RequestId::new)
    }
}
