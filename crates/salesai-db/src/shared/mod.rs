//! The store's methods, written once for both backends.
//!
//! This folder is compiled twice, once inside each dialect module (`crate::sqlite`,
//! `crate::postgres`), so every name it takes from `super` — `Db`, `DbRow`, `Conn`, `Pool`,
//! `StoreImpl`, `Time`, `db_time`, `time`, `write_tx`, the `sql!` macro and the few functions
//! a dialect does its own way — is a concrete type or function of that dialect: no generic
//! bounds, no run-time dispatch. The SQL is PostgreSQL's with `$n` placeholders; `sql!` keeps it
//! as it is for PostgreSQL and translates it once for SQLite (`crate::sqlite::translate`).
//!
//! Business rules live here once: case-number allocation, find-or-create user, the
//! notification outbox, failing the conversation of a dead pipeline job.

use chrono::{DateTime, Utc};
use salesai_core::domain::{
    CaseNumber, Conversation, ConversationStatus, ConversationType, Media, Opportunity, Role,
    SlackThread, StageError, UploadKind,
};
use salesai_core::pipeline::{NOTIFY, dead_job_failure};
use salesai_core::queue::{
    CONVERSATIONS, Enqueued, Job, JobStatus, Lease, NOTIFICATIONS, NewJob, QueueSettings,
};
use salesai_core::store::{ApiToken, StoreError};
use sqlx::Row;

use super::{Conn, DbRow, db_time, opt_time, time};
use crate::error::R;

/// The columns of `jobs` that `job_from_row` reads (no `SELECT *`: sqlx's SQLite driver
/// mislabels `RETURNING *` after an `ALTER TABLE`).
macro_rules! job_columns {
    () => {
        "id, queue, kind, payload, status, attempts, max_attempts, run_at, priority, locked_by, \
         lease_expires_at, last_error_code, last_error_message, idempotency_key, conversation_id, \
         created_at, updated_at, finished_at"
    };
}

/// The columns of `queue_settings` that `settings_from_row` reads.
macro_rules! settings_columns {
    () => {
        "name, paused, max_batch, max_concurrency, max_attempts, backoff_base_ms, backoff_max_ms, lease_secs"
    };
}

/// The columns of `conversations` that `conversation_from_row` reads. Every query names its
/// columns: sqlx's SQLite driver keeps a prepared `SELECT *` with the columns it had before a
/// migration changed the table.
macro_rules! conversation_columns {
    () => {
        "id, case_number, opportunity_id, product_line, conversation_type, title, status, \
         error_stage, error_code, error_message, error_retryable, blob_key, rep_user_id, \
         conversation_date, media_kind, media_format, media_bytes, file_name, metadata, \
         slack_channel_id, slack_thread_ts, created_at, updated_at, \
         (SELECT customer_number FROM opportunities WHERE opportunities.id = opportunity_id) AS customer_number, \
         (SELECT company_name FROM opportunities WHERE opportunities.id = opportunity_id) AS customer_name"
    };
}

/// The columns of `api_tokens` that `token_from_row` reads.
macro_rules! token_columns {
    () => {
        "id, name, role, token_hash, created_at, last_used_at, revoked_at, user_id"
    };
}

fn not_found(what: String) -> StoreError {
    StoreError::NotFound(what)
}

/// An integer column as `u32` (counts, attempts: never negative).
fn u32_col(row: &DbRow, column: &str) -> R<u32> {
    Ok(row.try_get::<i32, _>(column)?.max(0) as u32)
}

fn job_from_row(row: &DbRow) -> R<Job> {
    Ok(Job {
        id: row.try_get("id")?,
        queue: row.try_get("queue")?,
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        status: JobStatus::parse(&row.try_get::<String, _>("status")?)?,
        attempts: u32_col(row, "attempts")?,
        max_attempts: u32_col(row, "max_attempts")?,
        run_at: time(row, "run_at")?,
        priority: row.try_get("priority")?,
        locked_by: row.try_get("locked_by")?,
        lease_expires_at: opt_time(row, "lease_expires_at")?,
        last_error_code: row.try_get("last_error_code")?,
        last_error_message: row.try_get("last_error_message")?,
        idempotency_key: row.try_get("idempotency_key")?,
        conversation_id: row.try_get("conversation_id")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        finished_at: opt_time(row, "finished_at")?,
    })
}

fn settings_from_row(row: &DbRow) -> R<QueueSettings> {
    Ok(QueueSettings {
        name: row.try_get("name")?,
        paused: row.try_get("paused")?,
        max_batch: u32_col(row, "max_batch")?,
        max_concurrency: u32_col(row, "max_concurrency")?,
        max_attempts: u32_col(row, "max_attempts")?,
        backoff_base_ms: row.try_get::<i64, _>("backoff_base_ms")?.max(0) as u64,
        backoff_max_ms: row.try_get::<i64, _>("backoff_max_ms")?.max(0) as u64,
        lease_secs: row.try_get::<i64, _>("lease_secs")?.max(0) as u64,
    })
}

fn token_from_row(row: &DbRow) -> R<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&row.try_get::<String, _>("role")?)?,
        created_at: time(row, "created_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
        user_id: row.try_get("user_id")?,
    })
}

fn opportunity_from_row(r: &DbRow) -> R<Opportunity> {
    Ok(Opportunity {
        id: r.try_get("id")?,
        customer_number: r.try_get("customer_number")?,
        company_name: r.try_get("company_name")?,
        product_line: r.try_get("product_line")?,
        owner_user_id: r.try_get("owner_user_id")?,
        status: r.try_get("status")?,
        latest_score: r
            .try_get::<Option<i32>, _>("latest_score")?
            .map(|s| s.clamp(0, 100) as u8),
        conversations: r.try_get::<i64, _>("conversations")?.max(0) as u64,
        created_at: time(r, "created_at")?,
    })
}

fn conversation_from_row(row: &DbRow) -> R<Conversation> {
    let error = match row.try_get::<Option<String>, _>("error_code")? {
        Some(code) => Some(StageError {
            stage: ConversationStatus::parse(
                row.try_get::<Option<String>, _>("error_stage")?
                    .as_deref()
                    .unwrap_or("pending"),
            )?,
            code,
            message: row
                .try_get::<Option<String>, _>("error_message")?
                .unwrap_or_default(),
            retryable: row
                .try_get::<Option<bool>, _>("error_retryable")?
                .unwrap_or(false),
        }),
        None => None,
    };
    let slack = match row.try_get::<Option<String>, _>("slack_channel_id")? {
        Some(channel_id) => Some(SlackThread {
            channel_id,
            thread_ts: row.try_get("slack_thread_ts")?,
        }),
        None => None,
    };
    Ok(Conversation {
        id: row.try_get("id")?,
        case_number: CaseNumber::parse(&row.try_get::<String, _>("case_number")?)?,
        opportunity_id: row.try_get("opportunity_id")?,
        customer_number: row
            .try_get::<Option<String>, _>("customer_number")?
            .unwrap_or_default(),
        customer_name: row
            .try_get::<Option<String>, _>("customer_name")?
            .unwrap_or_default(),
        product_line: row.try_get("product_line")?,
        conversation_type: ConversationType::parse(
            &row.try_get::<String, _>("conversation_type")?,
        )?,
        title: row.try_get("title")?,
        status: ConversationStatus::parse(&row.try_get::<String, _>("status")?)?,
        error,
        blob_key: row.try_get("blob_key")?,
        rep_user_id: row.try_get("rep_user_id")?,
        conversation_date: opt_time(row, "conversation_date")?,
        media: Media {
            kind: row
                .try_get::<Option<String>, _>("media_kind")?
                .as_deref()
                .map(UploadKind::parse)
                .transpose()?,
            format: row.try_get("media_format")?,
            bytes: row
                .try_get::<Option<i64>, _>("media_bytes")?
                .map(|b| b.max(0) as u64),
            file_name: row.try_get("file_name")?,
        },
        metadata: row.try_get("metadata")?,
        slack,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

async fn settings_in(conn: &mut Conn, queue: &str) -> R<QueueSettings> {
    let row = crate::statement::query(sql!(concat!(
        "SELECT ",
        settings_columns!(),
        " FROM queue_settings WHERE name = $1"
    )))
    .bind(queue)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => settings_from_row(&row),
        None => Ok(QueueSettings::defaults_for(queue)),
    }
}

/// Enqueues a job inside the caller's transaction; a job with a known idempotency key returns
/// the existing one.
async fn enqueue_in(conn: &mut Conn, job: &NewJob) -> R<Enqueued> {
    salesai_core::queue::parse_queue_name(&job.queue).map_err(|e| StoreError::InvalidInput(e.0))?;
    let max_attempts = match job.max_attempts {
        Some(n) => n,
        None => settings_in(conn, &job.queue).await?.max_attempts,
    };
    // A conversation's jobs are ordered by its upload time (and stage); others by due time.
    let uploaded = match &job.conversation_id {
        Some(id) => {
            crate::statement::query(sql!("SELECT created_at FROM conversations WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| time(&row, "created_at"))
                .transpose()?
        }
        None => None,
    };
    let due = job.run_at.unwrap_or_else(Utc::now);
    let priority = salesai_core::pipeline::job_priority(&job.kind, uploaded, due);
    let id: Option<i64> = crate::statement::query_scalar(sql!(
        "INSERT INTO jobs (queue, kind, payload, status, attempts, max_attempts, run_at, priority, \
         idempotency_key, conversation_id, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', 0, $4, COALESCE($5, now()), $6, $7, $8, now(), now()) \
         ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id"
    ))
    .bind(&job.queue)
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(max_attempts as i32)
    .bind(job.run_at.map(db_time))
    .bind(priority)
    .bind(&job.idempotency_key)
    .bind(&job.conversation_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(id) = id {
        return Ok(Enqueued { id, created: true });
    }
    let id: i64 = crate::statement::query_scalar(sql!(
        "SELECT id FROM jobs WHERE queue = $1 AND idempotency_key = $2"
    ))
    .bind(&job.queue)
    .bind(&job.idempotency_key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Enqueued { id, created: false })
}

/// The notification outbox: enqueues `conversation.notify` for a conversation with a Slack
/// thread, inside the transaction that changed its status (the change and its announcement
/// commit together). One queued notification is enough: it renders the status current when it
/// runs.
async fn notify_in(conn: &mut Conn, id: &str) -> R<()> {
    let wanted: Option<i32> = crate::statement::query_scalar(sql!(
        "SELECT 1 FROM conversations c WHERE c.id = $1 AND c.slack_channel_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.conversation_id = c.id AND j.kind = $2 AND j.status = 'queued')"
    ))
    .bind(id)
    .bind(NOTIFY)
    .fetch_optional(&mut *conn)
    .await?;
    if wanted.is_some() {
        let mut job = NewJob::new(
            NOTIFICATIONS,
            NOTIFY,
            serde_json::json!({ "conversation_id": id }),
        );
        job.conversation_id = Some(id.to_owned());
        enqueue_in(conn, &job).await?;
    }
    Ok(())
}

/// Records a stage transition of a conversation.
async fn stage_event_in(conn: &mut Conn, id: &str, status: ConversationStatus) -> R<()> {
    crate::statement::query(sql!(
        "INSERT INTO conversation_stage_events (conversation_id, status, at) VALUES ($1, $2, now())"
    ))
    .bind(id)
    .bind(status.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A pipeline job went dead: in the same transaction its conversation fails (unless it already
/// finished or failed) with its stage and code — a lost worker as `WORKER_LOST` — its other
/// queued jobs are cancelled, and the failure is announced through the outbox. The
/// conversation row is locked first (PostgreSQL; SQLite's write transactions are serial) so
/// two siblings dying at once announce one failure. No conversation is left in a stage with no
/// job to move it.
async fn fail_conversation_of_dead_job_in(
    conn: &mut Conn,
    job_id: i64,
    code: &str,
    message: &str,
) -> R<()> {
    let row = crate::statement::query(sql!(
        "SELECT c.id, c.status FROM jobs j JOIN conversations c ON c.id = j.conversation_id \
         WHERE j.id = $1 AND j.queue = $2 FOR UPDATE OF c"
    ))
    .bind(job_id)
    .bind(CONVERSATIONS)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let id: String = row.try_get("id")?;
    let status: String = row.try_get("status")?;
    let Some(failure) = dead_job_failure(&status, code, message) else {
        return Ok(());
    };
    crate::statement::query(sql!(
        "UPDATE conversations SET status = 'failed', error_stage = $1, error_code = $2, error_message = $3, \
         error_retryable = $4, updated_at = now() WHERE id = $5"
    ))
    .bind(failure.stage.as_str())
    .bind(&failure.code)
    .bind(&failure.message)
    .bind(failure.retryable)
    .bind(&id)
    .execute(&mut *conn)
    .await?;
    stage_event_in(conn, &id, ConversationStatus::Failed).await?;
    crate::statement::query(sql!(
        "UPDATE jobs SET status = 'dead', last_error_code = 'CANCELLED', last_error_message = $1, \
         finished_at = now(), updated_at = now() WHERE conversation_id = $2 AND queue = $3 AND status = 'queued' AND id <> $4"
    ))
    .bind(format!("cancelled: the conversation failed ({})", failure.code))
    .bind(&id)
    .bind(CONVERSATIONS)
    .bind(job_id)
    .execute(&mut *conn)
    .await?;
    notify_in(conn, &id).await
}

/// Records one attempt's outcome in the job's history.
async fn record_attempt(
    conn: &mut Conn,
    lease: &Lease,
    outcome: &str,
    code: Option<&str>,
    message: Option<&str>,
) -> R<()> {
    crate::statement::query(sql!(
        "INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, error_code, error_message, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, now())"
    ))
    .bind(lease.job_id)
    .bind(lease.attempt as i32)
    .bind(&lease.worker_id)
    .bind(outcome)
    .bind(code)
    .bind(message)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Puts a leased job back in the queue without spending its attempt; false when the lease was
/// lost.
async fn unlease(
    conn: &mut Conn,
    lease: &Lease,
    run_at: Option<DateTime<Utc>>,
    outcome: &str,
    code: &str,
    message: &str,
) -> R<bool> {
    let changed = crate::statement::query(sql!(
        "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = COALESCE($1, now()), \
         locked_by = NULL, lease_expires_at = NULL, last_error_code = $2, last_error_message = $3, \
         updated_at = now() WHERE id = $4 AND status = 'running' AND attempts = $5 AND locked_by = $6"
    ))
    .bind(run_at.map(db_time))
    .bind(code)
    .bind(message)
    .bind(lease.job_id)
    .bind(lease.attempt as i32)
    .bind(&lease.worker_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if changed == 1 {
        record_attempt(conn, lease, outcome, Some(code), Some(message)).await?;
    }
    Ok(changed == 1)
}

// The capabilities, after the macros above so they can use them.
#[path = "access.rs"]
mod access;
mod admins;
#[path = "conversations.rs"]
mod conversations;
// PostgreSQL builds its indexed search pattern with it; SQLite does not.
#[allow(unused_imports)]
pub(super) use conversations::like_pattern;
#[path = "customers.rs"]
mod customers;
#[path = "grams.rs"]
pub(super) mod grams;
#[path = "notes.rs"]
mod notes;
#[path = "operations.rs"]
mod operations;
#[path = "people.rs"]
mod people;
#[path = "queue.rs"]
mod queue;
#[path = "slack.rs"]
mod slack;
#[path = "voices.rs"]
mod voices;

#[allow(unused_imports)]
// complete_in: the SQLite dialect batches with it; PostgreSQL binds arrays
pub(super) use queue::{claim_sql, complete_in};
