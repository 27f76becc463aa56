//! The admin API for the queue: what `salesai queue …` does, over HTTP, for the admin role.

use axum::extract::{Path, Query, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::Utc;
use salesai_core::App;
use salesai_core::domain::Role;
use salesai_core::queue::{
    JobDetail, JobFilter, JobStatus, QueueSettings, QueueSettingsPatch, QueueStats,
    parse_queue_name,
};
use serde::{Deserialize, Serialize};

use crate::auth::{Authorize, Caller};
use crate::error::ApiError;

/// The routes, nested under `/api/v1/admin`.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/queues", get(list_queues))
        .route("/queues/{name}", patch(update_queue))
        .route("/queues/{name}/pause", post(pause_queue))
        .route("/queues/{name}/resume", post(resume_queue))
        .route("/jobs", get(list_jobs))
        .route("/jobs/retry", post(retry_jobs))
        .route("/jobs/purge", post(purge_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/retry", post(retry_job))
        .route("/db/terminate-idle", post(terminate_idle))
        .route("/db/analyze", post(analyze))
}

/// Every queue's settings and numbers.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueuesResponse {
    /// Settings per queue.
    pub settings: Vec<QueueSettings>,
    /// Depth, age and recent outcomes.
    pub stats: QueueStats,
}

async fn list_queues(
    caller: Caller,
    State(app): State<App>,
) -> Result<Json<QueuesResponse>, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(Json(QueuesResponse {
        settings: app.store.queue_settings().await?,
        stats: app.store.queue_stats().await?,
    }))
}

async fn update_queue(
    caller: Caller,
    State(app): State<App>,
    Path(name): Path<String>,
    Json(patch): Json<QueueSettingsPatch>,
) -> Result<Json<QueueSettings>, ApiError> {
    caller.require(&[Role::Admin])?;
    let name = known_queue(&app, &name).await?;
    let current = app.store.get_queue_settings(&name).await?;
    let next = patch
        .apply(&current)
        .map_err(|e| ApiError::BadRequest(e.0))?;
    app.store.put_queue_settings(&next).await?;
    tracing::info!(event = "queue.settings_changed", queue = %name, by = %caller.token.name, "queue settings changed");
    Ok(Json(next))
}

async fn set_paused(
    app: &App,
    caller: &Caller,
    name: &str,
    paused: bool,
) -> Result<Json<QueueSettings>, ApiError> {
    caller.require(&[Role::Admin])?;
    pause_or_resume(app, name, paused, &caller.token.name)
        .await
        .map(Json)
}

/// Pauses or resumes a queue this installation knows (the API's and the operations page's
/// action, `by` naming who did it in the log).
pub(crate) async fn pause_or_resume(
    app: &App,
    name: &str,
    paused: bool,
    by: &str,
) -> Result<QueueSettings, ApiError> {
    let name = known_queue(app, name).await?;
    let mut settings = app.store.get_queue_settings(&name).await?;
    settings.paused = paused;
    app.store.put_queue_settings(&settings).await?;
    tracing::info!(event = if paused { "queue.paused" } else { "queue.resumed" }, queue = %name, by, "queue {}", if paused { "paused" } else { "resumed" });
    Ok(settings)
}

async fn pause_queue(
    caller: Caller,
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<QueueSettings>, ApiError> {
    set_paused(&app, &caller, &name, true).await
}

async fn resume_queue(
    caller: Caller,
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<QueueSettings>, ApiError> {
    set_paused(&app, &caller, &name, false).await
}

/// Job selection, as query parameters or a JSON body. An unknown field is refused (a typo
/// would otherwise select more than meant).
#[derive(Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs unchanged for this many seconds.
    pub older_than_secs: Option<u64>,
    /// At most this many (listings).
    pub limit: Option<u32>,
    /// Only list what would be deleted (purge).
    #[serde(default)]
    pub dry_run: bool,
    /// Retry every dead job: required when no other filter is given (bulk retry).
    #[serde(default)]
    pub all: bool,
}

impl FilterParams {
    pub(crate) fn to_filter(&self) -> Result<JobFilter, ApiError> {
        Ok(JobFilter {
            queue: self
                .queue
                .as_deref()
                .map(parse_queue_name)
                .transpose()
                .map_err(|e| ApiError::BadRequest(e.0))?,
            status: self
                .status
                .as_deref()
                .map(JobStatus::parse)
                .transpose()
                .map_err(|e| ApiError::BadRequest(e.0))?,
            kind: self.kind.clone(),
            older_than: self.older_than_secs.map(older_than).transpose()?,
            ids: None,
            conversation_id: None,
            limit: Some(self.limit.unwrap_or(100).min(10_000)),
        })
    }
}

/// The longest age a filter may name: ten years (a larger one would overflow a timestamp).
pub const MAX_AGE_SECS: u64 = 10 * 366 * 24 * 3600;

/// The instant `secs` ago, for an age given by a caller.
fn older_than(secs: u64) -> Result<chrono::DateTime<Utc>, ApiError> {
    if secs > MAX_AGE_SECS {
        return Err(ApiError::BadRequest(format!(
            "older_than_secs {secs} is more than ten years ({MAX_AGE_SECS}); give a smaller age"
        )));
    }
    Ok(Utc::now() - chrono::Duration::seconds(secs as i64))
}

/// A queue this installation knows: a built-in one, one with settings, or one holding jobs.
/// Pausing or configuring any other would create a phantom queue that doctor then reports.
async fn known_queue(app: &App, raw: &str) -> Result<String, ApiError> {
    let name = parse_queue_name(raw).map_err(|e| ApiError::BadRequest(e.0))?;
    if salesai_core::queue::BUILTIN_QUEUES.contains(&name.as_str())
        || app
            .store
            .queue_settings()
            .await?
            .iter()
            .any(|s| s.name == name)
        || app
            .store
            .queue_stats()
            .await?
            .queues
            .iter()
            .any(|q| q.queue == name)
    {
        Ok(name)
    } else {
        Err(ApiError::NotFound(format!(
            "no queue {name:?}; queues: {} (salesai queue status)",
            salesai_core::queue::BUILTIN_QUEUES.join(", ")
        )))
    }
}

async fn list_jobs(
    caller: Caller,
    State(app): State<App>,
    Query(params): Query<FilterParams>,
) -> Result<Json<JobsResponse>, ApiError> {
    caller.require(&[Role::Admin])?;
    let jobs = app.store.list_jobs(&params.to_filter()?).await?;
    Ok(Json(JobsResponse { jobs }))
}

/// Jobs, newest first.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobsResponse {
    /// The jobs.
    pub jobs: Vec<salesai_core::queue::Job>,
}

/// What `terminate-idle` did.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TerminatedResponse {
    /// Connections terminated.
    pub terminated: i64,
    /// The idle age they had passed.
    pub older_than_secs: u64,
}

/// What `analyze` did.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AnalyzeResponse {
    /// Always true (a failure is an error response).
    pub ok: bool,
    /// How long it took.
    pub ms: u64,
}

async fn get_job(
    caller: Caller,
    State(app): State<App>,
    Path(id): Path<i64>,
) -> Result<Json<JobDetail>, ApiError> {
    caller.require(&[Role::Admin])?;
    app.store
        .get_job(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

/// The ids a bulk operation touched.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdsResponse {
    /// How many.
    pub count: usize,
    /// Which.
    pub ids: Vec<i64>,
    /// True when nothing was changed (purge dry run).
    pub dry_run: bool,
}

async fn retry_job(
    caller: Caller,
    State(app): State<App>,
    Path(id): Path<i64>,
) -> Result<Json<IdsResponse>, ApiError> {
    caller.require(&[Role::Admin])?;
    let ids = app
        .store
        .retry_jobs(&JobFilter {
            ids: Some(vec![id]),
            ..Default::default()
        })
        .await?;
    if ids.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no dead job {id}; only dead jobs can be retried"
        )));
    }
    Ok(Json(IdsResponse {
        count: ids.len(),
        ids,
        dry_run: false,
    }))
}

async fn retry_jobs(
    caller: Caller,
    State(app): State<App>,
    Json(params): Json<FilterParams>,
) -> Result<Json<IdsResponse>, ApiError> {
    caller.require(&[Role::Admin])?;
    let mut filter = params.to_filter()?;
    if filter.selects_everything() && !params.all {
        return Err(ApiError::BadRequest(
            "retrying every dead job needs \"all\": true; or narrow it with queue, kind or older_than_secs".into(),
        ));
    }
    filter.status = Some(JobStatus::Dead);
    let ids = app.store.retry_jobs(&filter).await?;
    tracing::info!(event = "queue.retried", count = ids.len(), by = %caller.token.name, "dead jobs retried");
    Ok(Json(IdsResponse {
        count: ids.len(),
        ids,
        dry_run: false,
    }))
}

async fn purge_jobs(
    caller: Caller,
    State(app): State<App>,
    Json(params): Json<FilterParams>,
) -> Result<Json<IdsResponse>, ApiError> {
    caller.require(&[Role::Admin])?;
    let filter = params.to_filter()?;
    if filter.selects_everything() {
        return Err(ApiError::BadRequest(
            "purge needs at least one of queue, status, kind or older_than_secs".into(),
        ));
    }
    let ids = app.store.purge_jobs(&filter, params.dry_run).await?;
    if !params.dry_run {
        tracing::warn!(event = "queue.purged", count = ids.len(), by = %caller.token.name, "jobs purged");
    }
    Ok(Json(IdsResponse {
        count: ids.len(),
        ids,
        dry_run: params.dry_run,
    }))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateParams {
    /// Idle longer than this many seconds (default 300).
    older_than_secs: Option<u64>,
}

/// `POST /api/v1/admin/db/terminate-idle?older_than_secs=300`: `salesai db terminate-idle`.
async fn terminate_idle(
    caller: Caller,
    State(app): State<App>,
    Query(params): Query<TerminateParams>,
) -> Result<Json<TerminatedResponse>, ApiError> {
    caller.require(&[Role::Admin])?;
    let secs = params.older_than_secs.unwrap_or(300).max(1);
    older_than(secs)?;
    let terminated = app
        .store
        .terminate_idle(std::time::Duration::from_secs(secs))
        .await?;
    tracing::warn!(event = "db.terminate_idle", terminated, older_than_secs = secs, by = %caller.token.name, "terminated idle connections");
    Ok(Json(TerminatedResponse {
        terminated,
        older_than_secs: secs,
    }))
}

/// `POST /api/v1/admin/db/analyze`: `salesai db analyze`.
async fn analyze(
    caller: Caller,
    State(app): State<App>,
) -> Result<Json<AnalyzeResponse>, ApiError> {
    caller.require(&[Role::Admin])?;
    let started = std::time::Instant::now();
    app.store.analyze().await?;
    tracing::info!(event = "db.analyze", by = %caller.token.name, "ANALYZE run");
    Ok(Json(AnalyzeResponse {
        ok: true,
        ms: started.elapsed().as_millis() as u64,
    }))
}
