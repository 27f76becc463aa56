//! Per-request logging and metrics: one `http.request` log line with the request id, and the
//! request counter and latency histogram by matched route.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use salesai_core::App;
use tracing::Instrument;

/// The middleware.
pub async fn observe(State(app): State<App>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request
        .headers()
        .get(crate::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span =
        tracing::info_span!("http", request_id = %request_id, method = %method, route = %route);
    let response = next.run(request).instrument(span).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    app.metrics.observe_http(&method, &route, status, elapsed);
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    if route == "/health" || route == "/metrics" || route == "/ready" {
        tracing::debug!(event = "http.request", request_id = %request_id, method = %method, route = %route, status, duration_ms, "request");
    } else {
        tracing::info!(event = "http.request", request_id = %request_id, method = %method, route = %route, status, duration_ms, "request");
    }
    response
}
