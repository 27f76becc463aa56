//! salesai's HTTP surface. Architecture invariant: this is the only crate that knows HTTP; it
//! sees the rest of the program only through the core's `App`.
//!
//! [`router`] builds the whole application; `main` serves it and the tests drive the very
//! same router on port 0.

mod auth;
mod error;
mod observe;
mod routes;

use axum::Router;
use axum::http::HeaderName;
use salesai_core::App;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

pub use auth::{Caller, RequireRole};
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
        .nest("/api/v1/admin", routes::admin::routes())
        .nest("/api/v1/conversations", routes::conversations::routes())
        .with_state(app.clone())
        .merge(extra)
        .layer(axum::middleware::from_fn_with_state(app, observe::observe))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, NewRequestId))
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
