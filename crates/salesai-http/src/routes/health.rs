//! `/health` (liveness), `/ready` (readiness with per-check detail) and `/metrics`.

use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use salesai_core::App;
use salesai_core::blob::BlobKey;
use serde::Serialize;
use serde_json::json;

use crate::error::ApiError;

/// The routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// Liveness: the process answers. Touches nothing else, so a slow database cannot get a
/// healthy process restarted.
async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// One readiness check's result.
#[derive(Debug, Serialize)]
struct Check {
    ok: bool,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

async fn check<F, T, E>(work: F) -> Check
where
    F: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let result = tokio::time::timeout(CHECK_TIMEOUT, work).await;
    let duration_ms = (started.elapsed().as_secs_f64() * 1e5).round() / 100.0;
    match result {
        Ok(Ok(_)) => Check {
            ok: true,
            duration_ms,
            error: None,
        },
        Ok(Err(err)) => Check {
            ok: false,
            duration_ms,
            error: Some(err.to_string()),
        },
        Err(_) => Check {
            ok: false,
            duration_ms,
            error: Some(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
        },
    }
}

/// How long a storage write probe's success stands: `/ready` is polled every few seconds, and
/// storage is written at most this often while it works. A failure is never reused: the next
/// `/ready` probes again, so a node is back in its load balancer as soon as storage is.
const STORAGE_OK_FOR: Duration = Duration::from_secs(2);

/// Whether storage takes a write: a few bytes written to `probes/ready`, at most once per
/// [`STORAGE_OK_FOR`] per process while it succeeds (the answer in between is the last one),
/// and at every `/ready` while it fails. A folder that became read-only or full, or a bucket
/// whose credentials lost write access, fails here while reads still work.
async fn storage_writable(app: &App) -> Result<(), String> {
    let mut last = app.storage_probe.lock().await;
    if let Some((at, Ok(()))) = last.as_ref()
        && at.elapsed() < STORAGE_OK_FOR
    {
        return Ok(());
    }
    let key = BlobKey::parse("probes/ready").expect("static key is valid");
    let bytes = bytes::Bytes::from_static(b"salesai ready probe\n");
    let stream: salesai_core::blob::ByteStream = Box::pin(futures_util::stream::iter([Ok(bytes)]));
    let result = match tokio::time::timeout(CHECK_TIMEOUT, app.blobs.put_stream(&key, stream)).await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("storage does not take a write: {err}")),
        Err(_) => Err(format!(
            "storage did not take a write within {CHECK_TIMEOUT:?}"
        )),
    };
    *last = Some((Instant::now(), result.clone()));
    result
}

/// Readiness: the database takes a write, blob storage takes a write, the queue tables are
/// readable (one keyed read: `/ready` is polled often and must stay cheap however many jobs
/// there are).
async fn ready(State(app): State<App>) -> impl IntoResponse {
    let (database, storage, queue) = tokio::join!(
        // A write, not a ping: a SQLite node whose disk is full answers reads and refuses
        // every upload and job; it is not ready.
        check(async {
            app.store.ping().await?;
            app.store
                .set_fact("ready_probe", &chrono::Utc::now().to_rfc3339())
                .await
        }),
        check(storage_writable(&app)),
        check(
            app.store
                .get_queue_settings(salesai_core::queue::CONVERSATIONS)
        ),
    );
    let ok = database.ok && storage.ok && queue.ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !ok {
        tracing::warn!(
            event = "http.not_ready",
            database = database.ok,
            storage = storage.ok,
            queue = queue.ok,
            "not ready"
        );
    }
    (
        status,
        Json(json!({
            "status": if ok { "ready" } else { "unavailable" },
            "backend": app.store.backend().as_str(),
            "checks": { "database": database, "storage": storage, "queue": queue },
        })),
    )
}

/// Prometheus metrics, with the queue gauges read fresh from the shared database.
async fn metrics(State(app): State<App>) -> Result<impl IntoResponse, ApiError> {
    let stats = app.store.queue_stats().await?;
    app.metrics.set_queue_stats(&stats);
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    ))
}
