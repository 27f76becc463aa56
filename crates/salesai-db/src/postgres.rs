//! The PostgreSQL store: the team server, shared by any number of `serve` and `worker` nodes.
//!
//! Claims use `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each other's rows
//! and never take the same job; time comes from the database (`now()`), so the nodes' clocks
//! do not have to agree.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use salesai_core::domain::Score;
use salesai_core::domain::{
    CaseNumber, Conversation, ConversationStatus, ConversationType, CreatedConversation,
    NewConversation, Opportunity, Role, SlackThread, StageError, User,
};
use salesai_core::pipeline::{NOTIFY, dead_job_failure};
use salesai_core::queue::{
    CONVERSATIONS, Enqueued, FailOutcome, Job, JobAttempt, JobDetail, JobFailure, JobFilter,
    JobStatus, Lease, NOTIFICATIONS, NewJob, QueueSettings, QueueStats, QueueStatsRow, Reaped,
    STATS_WINDOWS, WindowStats, backoff_delay, complete_settings, stats_row,
};
use salesai_core::store::{
    AgentRun, ApiToken, Backend, ChunkTranscript, ConversationFilter, Incident, NewApiToken,
    PruneCandidate, StageEvent, Store, StoreError, StoreResult, StoredAnalysis,
};
use salesai_core::transcript::Segment;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, QueryBuilder, Row};

use crate::ConnectOptions;
use crate::error::{is_unique_violation, map};

/// The PostgreSQL implementation of `Store`.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

const JOB_COLUMNS: &str = "id, queue, kind, payload, status, attempts, max_attempts, run_at, locked_by, \
     lease_expires_at, last_error_code, last_error_message, idempotency_key, conversation_id, \
     created_at, updated_at, finished_at";

impl PgStore {
    /// Connects to the database a `postgres://` URL names.
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<Self> {
        let connect: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::InvalidInput(format!("invalid PostgreSQL URL: {e}")))?;
        let connect = connect.application_name("salesai");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {}: {e}",
                    crate::redact_url(url)
                ))
            })?;
        Ok(PgStore { pool })
    }

    /// The connection pool, for migrations and diagnostics.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn job_from_row(row: &PgRow) -> StoreResult<Job> {
    let status: String = row.try_get("status").map_err(map)?;
    Ok(Job {
        id: row.try_get("id").map_err(map)?,
        queue: row.try_get("queue").map_err(map)?,
        kind: row.try_get("kind").map_err(map)?,
        payload: row.try_get("payload").map_err(map)?,
        status: JobStatus::parse(&status).map_err(|e| StoreError::Other(e.0))?,
        attempts: row.try_get::<i32, _>("attempts").map_err(map)? as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts").map_err(map)? as u32,
        run_at: row.try_get("run_at").map_err(map)?,
        locked_by: row.try_get("locked_by").map_err(map)?,
        lease_expires_at: row.try_get("lease_expires_at").map_err(map)?,
        last_error_code: row.try_get("last_error_code").map_err(map)?,
        last_error_message: row.try_get("last_error_message").map_err(map)?,
        idempotency_key: row.try_get("idempotency_key").map_err(map)?,
        conversation_id: row.try_get("conversation_id").map_err(map)?,
        created_at: row.try_get("created_at").map_err(map)?,
        updated_at: row.try_get("updated_at").map_err(map)?,
        finished_at: row.try_get("finished_at").map_err(map)?,
    })
}

fn settings_from_row(row: &PgRow) -> StoreResult<QueueSettings> {
    Ok(QueueSettings {
        name: row.try_get("name").map_err(map)?,
        paused: row.try_get("paused").map_err(map)?,
        max_batch: row.try_get::<i32, _>("max_batch").map_err(map)? as u32,
        max_concurrency: row.try_get::<i32, _>("max_concurrency").map_err(map)? as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts").map_err(map)? as u32,
        backoff_base_ms: row.try_get::<i64, _>("backoff_base_ms").map_err(map)? as u64,
        backoff_max_ms: row.try_get::<i64, _>("backoff_max_ms").map_err(map)? as u64,
        lease_secs: row.try_get::<i64, _>("lease_secs").map_err(map)? as u64,
    })
}

fn token_from_row(row: &PgRow) -> StoreResult<ApiToken> {
    let role: String = row.try_get("role").map_err(map)?;
    Ok(ApiToken {
        id: row.try_get("id").map_err(map)?,
        name: row.try_get("name").map_err(map)?,
        role: Role::parse(&role).map_err(|e| StoreError::Other(e.0))?,
        created_at: row.try_get("created_at").map_err(map)?,
        last_used_at: row.try_get("last_used_at").map_err(map)?,
        revoked_at: row.try_get("revoked_at").map_err(map)?,
        user_id: row.try_get("user_id").map_err(map)?,
    })
}

async fn settings_in(conn: &mut sqlx::PgConnection, queue: &str) -> StoreResult<QueueSettings> {
    let row = sqlx::query("SELECT * FROM queue_settings WHERE name = $1")
        .bind(queue)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map)?;
    match row {
        Some(row) => settings_from_row(&row),
        None => Ok(QueueSettings::defaults_for(queue)),
    }
}

async fn enqueue_in(conn: &mut sqlx::PgConnection, job: &NewJob) -> StoreResult<Enqueued> {
    salesai_core::queue::parse_queue_name(&job.queue).map_err(|e| StoreError::InvalidInput(e.0))?;
    let max_attempts = match job.max_attempts {
        Some(n) => n,
        None => settings_in(conn, &job.queue).await?.max_attempts,
    };
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (queue, kind, payload, status, attempts, max_attempts, run_at, \
         idempotency_key, conversation_id, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', 0, $4, COALESCE($5, now()), $6, $7, now(), now()) \
         ON CONFLICT (queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(&job.queue)
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(max_attempts as i32)
    .bind(job.run_at)
    .bind(&job.idempotency_key)
    .bind(&job.conversation_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    match id {
        Some(id) => Ok(Enqueued { id, created: true }),
        None => {
            let id: i64 =
                sqlx::query_scalar("SELECT id FROM jobs WHERE queue = $1 AND idempotency_key = $2")
                    .bind(&job.queue)
                    .bind(&job.idempotency_key)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(map)?;
            Ok(Enqueued { id, created: false })
        }
    }
}

/// Appends the WHERE clause for a job filter (the caller has written a WHERE already).
fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &JobFilter) {
    if let Some(queue) = &filter.queue {
        qb.push(" AND queue = ").push_bind(queue.clone());
    }
    if let Some(status) = filter.status {
        qb.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(kind) = &filter.kind {
        qb.push(" AND kind = ").push_bind(kind.clone());
    }
    if let Some(conversation) = &filter.conversation_id {
        qb.push(" AND conversation_id = ")
            .push_bind(conversation.clone());
    }
    if let Some(older) = filter.older_than {
        qb.push(" AND updated_at < ").push_bind(older);
    }
    if let Some(ids) = &filter.ids {
        qb.push(" AND id = ANY(").push_bind(ids.clone()).push(")");
    }
}

async fn record_attempt(
    conn: &mut sqlx::PgConnection,
    lease: &Lease,
    outcome: &str,
    code: Option<&str>,
    message: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, error_code, error_message, finished_at) \
         VALUES ($1, $2, $3, $4, $5, $6, now())",
    )
    .bind(lease.job_id)
    .bind(lease.attempt as i32)
    .bind(&lease.worker_id)
    .bind(outcome)
    .bind(code)
    .bind(message)
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    Ok(())
}

async fn unlease(
    conn: &mut sqlx::PgConnection,
    lease: &Lease,
    run_at: Option<DateTime<Utc>>,
    outcome: &str,
    code: &str,
    message: &str,
) -> StoreResult<bool> {
    let changed = sqlx::query(
        "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_at = COALESCE($1, now()), \
         locked_by = NULL, lease_expires_at = NULL, last_error_code = $2, last_error_message = $3, \
         updated_at = now() WHERE id = $4 AND status = 'running' AND attempts = $5 AND locked_by = $6",
    )
    .bind(run_at)
    .bind(code)
    .bind(message)
    .bind(lease.job_id)
    .bind(lease.attempt as i32)
    .bind(&lease.worker_id)
    .execute(&mut *conn)
    .await
    .map_err(map)?
    .rows_affected();
    if changed == 1 {
        record_attempt(conn, lease, outcome, Some(code), Some(message)).await?;
    }
    Ok(changed == 1)
}

/// Enqueues `conversation.notify` for a conversation with a Slack thread, inside the
/// transaction that changed its status (the outbox: the change and its announcement commit
/// together). One queued notification is enough: it renders the status current when it runs.
async fn notify_in(conn: &mut sqlx::PgConnection, id: &str) -> StoreResult<()> {
    let wanted: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM conversations c WHERE c.id = $1 AND c.slack_channel_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.conversation_id = c.id AND j.kind = $2 AND j.status = 'queued')",
    )
    .bind(id)
    .bind(NOTIFY)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
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

/// A pipeline job went dead: in the same transaction its conversation fails (unless it already
/// finished or failed) with its stage and code — a lost worker as `WORKER_LOST` — its other
/// queued jobs are cancelled, and the failure is announced through the outbox. The
/// conversation row is locked first so two siblings dying at once announce one failure.
async fn fail_conversation_of_dead_job_in(
    conn: &mut sqlx::PgConnection,
    job_id: i64,
    code: &str,
    message: &str,
) -> StoreResult<()> {
    let row = sqlx::query(
        "SELECT c.id, c.status FROM jobs j JOIN conversations c ON c.id = j.conversation_id \
         WHERE j.id = $1 AND j.queue = $2 FOR UPDATE OF c",
    )
    .bind(job_id)
    .bind(CONVERSATIONS)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map)?;
    let Some(row) = row else {
        return Ok(());
    };
    let id: String = row.try_get("id").map_err(map)?;
    let status: String = row.try_get("status").map_err(map)?;
    let Some(failure) = dead_job_failure(&status, code, message) else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE conversations SET status = 'failed', error_stage = $1, error_code = $2, error_message = $3, \
         error_retryable = $4, updated_at = now() WHERE id = $5",
    )
    .bind(failure.stage.as_str())
    .bind(&failure.code)
    .bind(&failure.message)
    .bind(failure.retryable)
    .bind(&id)
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    sqlx::query("INSERT INTO conversation_stage_events (conversation_id, status, at) VALUES ($1, 'failed', now())")
        .bind(&id)
        .execute(&mut *conn)
        .await
        .map_err(map)?;
    sqlx::query(
        "UPDATE jobs SET status = 'dead', last_error_code = 'CANCELLED', last_error_message = $1, \
         finished_at = now(), updated_at = now() WHERE conversation_id = $2 AND queue = $3 AND status = 'queued' AND id <> $4",
    )
    .bind(format!("cancelled: the conversation failed ({})", failure.code))
    .bind(&id)
    .bind(CONVERSATIONS)
    .bind(job_id)
    .execute(&mut *conn)
    .await
    .map_err(map)?;
    notify_in(conn, &id).await
}

fn opportunity_from_row(r: &PgRow) -> StoreResult<Opportunity> {
    Ok(Opportunity {
        id: r.try_get("id").map_err(map)?,
        customer_number: r.try_get("customer_number").map_err(map)?,
        company_name: r.try_get("company_name").map_err(map)?,
        product_line: r.try_get("product_line").map_err(map)?,
        owner_user_id: r.try_get("owner_user_id").map_err(map)?,
        status: r.try_get("status").map_err(map)?,
        latest_score: r
            .try_get::<Option<i32>, _>("latest_score")
            .map_err(map)?
            .map(|s| s.clamp(0, 100) as u8),
        conversations: r.try_get::<i64, _>("conversations").map_err(map)?.max(0) as u64,
        created_at: r.try_get("created_at").map_err(map)?,
    })
}

const OPPORTUNITY_SELECT: &str = "SELECT o.*, (SELECT COUNT(*) FROM conversations c WHERE c.opportunity_id = o.id) AS conversations FROM opportunities o";

fn conversation_from_row(row: &PgRow) -> StoreResult<Conversation> {
    let status = ConversationStatus::parse(&row.try_get::<String, _>("status").map_err(map)?)
        .map_err(|e| StoreError::Other(e.0))?;
    let error = match row
        .try_get::<Option<String>, _>("error_code")
        .map_err(map)?
    {
        Some(code) => Some(StageError {
            stage: ConversationStatus::parse(
                &row.try_get::<Option<String>, _>("error_stage")
                    .map_err(map)?
                    .unwrap_or_else(|| "pending".into()),
            )
            .map_err(|e| StoreError::Other(e.0))?,
            code,
            message: row
                .try_get::<Option<String>, _>("error_message")
                .map_err(map)?
                .unwrap_or_default(),
            retryable: row
                .try_get::<Option<bool>, _>("error_retryable")
                .map_err(map)?
                .unwrap_or(false),
        }),
        None => None,
    };
    Ok(Conversation {
        id: row.try_get("id").map_err(map)?,
        case_number: CaseNumber::parse(&row.try_get::<String, _>("case_number").map_err(map)?)
            .map_err(|e| StoreError::Other(e.0))?,
        opportunity_id: row.try_get("opportunity_id").map_err(map)?,
        product_line: row.try_get("product_line").map_err(map)?,
        conversation_type: ConversationType::parse(
            &row.try_get::<String, _>("conversation_type").map_err(map)?,
        )
        .map_err(|e| StoreError::Other(e.0))?,
        title: row.try_get("title").map_err(map)?,
        status,
        error,
        blob_key: row.try_get("blob_key").map_err(map)?,
        rep_user_id: row.try_get("rep_user_id").map_err(map)?,
        conversation_date: row.try_get("conversation_date").map_err(map)?,
        metadata: row.try_get("metadata").map_err(map)?,
        slack: row
            .try_get::<Option<String>, _>("slack_channel_id")
            .map_err(map)?
            .map(|channel_id| -> StoreResult<SlackThread> {
                Ok(SlackThread {
                    channel_id,
                    thread_ts: row.try_get("slack_thread_ts").map_err(map)?,
                })
            })
            .transpose()?,
        created_at: row.try_get("created_at").map_err(map)?,
        updated_at: row.try_get("updated_at").map_err(map)?,
    })
}

impl PgStore {
    /// The queues with a settings row.
    async fn configured_queues(&self) -> StoreResult<Vec<QueueSettings>> {
        let rows = sqlx::query("SELECT * FROM queue_settings ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter().map(settings_from_row).collect()
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn enqueue(&self, job: NewJob) -> StoreResult<Enqueued> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        enqueue_in(&mut conn, &job).await
    }

    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        let mut out = Vec::with_capacity(jobs.len());
        for job in &jobs {
            out.push(enqueue_in(&mut tx, job).await?);
        }
        tx.commit().await.map_err(map)?;
        Ok(out)
    }

    async fn claim(&self, queue: &str, worker_id: &str, max: u32) -> StoreResult<Vec<Job>> {
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, \
             lease_expires_at = now() + make_interval(secs => COALESCE( \
                 (SELECT lease_secs FROM queue_settings WHERE name = $2), 60)), \
             updated_at = now() \
             WHERE id IN (SELECT j.id FROM jobs j WHERE j.queue = $2 AND j.status = 'queued' AND j.run_at <= now() \
                          AND NOT EXISTS (SELECT 1 FROM queue_settings WHERE name = $2 AND paused) \
                          {serial} ORDER BY j.run_at, j.id LIMIT $3 FOR UPDATE OF j SKIP LOCKED) \
             RETURNING {JOB_COLUMNS}",
            serial = crate::serial_guard()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker_id)
            .bind(queue)
            .bind(i64::from(max.max(1)))
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    async fn complete(&self, lease: &Lease) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE jobs SET status = 'completed', finished_at = now(), updated_at = now(), \
             locked_by = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND status = 'running' AND attempts = $2 AND locked_by = $3",
        )
        .bind(lease.job_id)
        .bind(lease.attempt as i32)
        .bind(&lease.worker_id)
        .execute(&self.pool)
        .await
        .map_err(map)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn complete_many(&self, leases: &[Lease]) -> StoreResult<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = leases.iter().map(|l| l.job_id).collect();
        let attempts: Vec<i32> = leases.iter().map(|l| l.attempt as i32).collect();
        let workers: Vec<String> = leases.iter().map(|l| l.worker_id.clone()).collect();
        let changed = sqlx::query(
            "UPDATE jobs SET status = 'completed', finished_at = now(), updated_at = now(), \
             locked_by = NULL, lease_expires_at = NULL \
             FROM unnest($1::bigint[], $2::int[], $3::text[]) AS l(id, attempt, worker) \
             WHERE jobs.id = l.id AND jobs.status = 'running' AND jobs.attempts = l.attempt \
             AND jobs.locked_by = l.worker",
        )
        .bind(ids)
        .bind(attempts)
        .bind(workers)
        .execute(&self.pool)
        .await
        .map_err(map)?
        .rows_affected();
        Ok(changed)
    }

    async fn fail(&self, lease: &Lease, failure: &JobFailure) -> StoreResult<FailOutcome> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        let row = sqlx::query(
            "SELECT queue, attempts, max_attempts FROM jobs \
             WHERE id = $1 AND status = 'running' AND attempts = $2 AND locked_by = $3 FOR UPDATE",
        )
        .bind(lease.job_id)
        .bind(lease.attempt as i32)
        .bind(&lease.worker_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map)?;
        let Some(row) = row else {
            return Ok(FailOutcome::LeaseLost);
        };
        let queue: String = row.try_get("queue").map_err(map)?;
        let attempts = row.try_get::<i32, _>("attempts").map_err(map)? as u32;
        let max_attempts = row.try_get::<i32, _>("max_attempts").map_err(map)? as u32;
        let settings = settings_in(&mut tx, &queue).await?;
        let outcome = if failure.retryable && attempts < max_attempts {
            let delay = backoff_delay(&settings, attempts, rand::rng().random::<f64>());
            let run_at: DateTime<Utc> = sqlx::query_scalar(
                "UPDATE jobs SET status = 'queued', run_at = now() + make_interval(secs => $1), \
                 locked_by = NULL, lease_expires_at = NULL, last_error_code = $2, \
                 last_error_message = $3, updated_at = now() WHERE id = $4 RETURNING run_at",
            )
            .bind(delay.as_secs_f64())
            .bind(&failure.code)
            .bind(&failure.message)
            .bind(lease.job_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map)?;
            FailOutcome::Retrying { run_at }
        } else {
            sqlx::query(
                "UPDATE jobs SET status = 'dead', locked_by = NULL, lease_expires_at = NULL, \
                 last_error_code = $1, last_error_message = $2, updated_at = now(), finished_at = now() \
                 WHERE id = $3",
            )
            .bind(&failure.code)
            .bind(&failure.message)
            .bind(lease.job_id)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            fail_conversation_of_dead_job_in(
                &mut tx,
                lease.job_id,
                &failure.code,
                &failure.message,
            )
            .await?;
            FailOutcome::Dead
        };
        record_attempt(
            &mut tx,
            lease,
            "failed",
            Some(&failure.code),
            Some(&failure.message),
        )
        .await?;
        tx.commit().await.map_err(map)?;
        Ok(outcome)
    }

    async fn reschedule(
        &self,
        lease: &Lease,
        run_at: DateTime<Utc>,
        code: &str,
        message: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        let done = unlease(&mut tx, lease, Some(run_at), "rescheduled", code, message).await?;
        tx.commit().await.map_err(map)?;
        Ok(done)
    }

    async fn release(&self, leases: &[Lease]) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        let mut total = 0;
        for lease in leases {
            if unlease(
                &mut tx,
                lease,
                None,
                "released",
                "RELEASED",
                "worker shut down before the job finished",
            )
            .await?
            {
                total += 1;
            }
        }
        tx.commit().await.map_err(map)?;
        Ok(total)
    }

    async fn extend_leases(&self, leases: &[Lease]) -> StoreResult<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = leases.iter().map(|l| l.job_id).collect();
        let attempts: Vec<i32> = leases.iter().map(|l| l.attempt as i32).collect();
        let workers: Vec<String> = leases.iter().map(|l| l.worker_id.clone()).collect();
        let changed = sqlx::query(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => COALESCE( \
                 (SELECT lease_secs FROM queue_settings WHERE name = jobs.queue), 60)) \
             FROM unnest($1::bigint[], $2::int[], $3::text[]) AS l(id, attempt, worker) \
             WHERE jobs.id = l.id AND jobs.status = 'running' AND jobs.attempts = l.attempt \
             AND jobs.locked_by = l.worker",
        )
        .bind(ids)
        .bind(attempts)
        .bind(workers)
        .execute(&self.pool)
        .await
        .map_err(map)?
        .rows_affected();
        Ok(changed)
    }

    async fn reap_expired_leases(&self) -> StoreResult<Reaped> {
        // One statement: the locked rows are recorded in the history and moved together, and
        // SKIP LOCKED lets several nodes reap at once without waiting on each other; the
        // conversations of jobs that went dead fail in the same transaction.
        let mut tx = self.pool.begin().await.map_err(map)?;
        let rows = sqlx::query(
            "WITH expired AS ( \
                 SELECT id, attempts, max_attempts, locked_by FROM jobs \
                 WHERE status = 'running' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED), \
             history AS ( \
                 INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, error_code, error_message, finished_at) \
                 SELECT id, attempts, locked_by, 'lease_expired', 'LEASE_EXPIRED', \
                        'lease expired while held by ' || COALESCE(locked_by, '?'), now() FROM expired), \
             moved AS ( \
                 UPDATE jobs SET \
                   status = CASE WHEN expired.attempts >= expired.max_attempts THEN 'dead' ELSE 'queued' END, \
                   finished_at = CASE WHEN expired.attempts >= expired.max_attempts THEN now() ELSE NULL END, \
                   run_at = now(), last_error_code = 'LEASE_EXPIRED', \
                   last_error_message = 'lease expired while held by ' || COALESCE(expired.locked_by, '?'), \
                   locked_by = NULL, lease_expires_at = NULL, updated_at = now() \
                 FROM expired WHERE jobs.id = expired.id RETURNING jobs.id, jobs.status, jobs.last_error_message) \
             SELECT id, status, last_error_message FROM moved",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(map)?;
        let mut reaped = Reaped::default();
        for row in rows {
            let id: i64 = row.try_get("id").map_err(map)?;
            let status: String = row.try_get("status").map_err(map)?;
            let message: String = row.try_get("last_error_message").map_err(map)?;
            if status == "dead" {
                reaped.dead += 1;
                fail_conversation_of_dead_job_in(&mut tx, id, "LEASE_EXPIRED", &message).await?;
            } else {
                reaped.requeued += 1;
            }
        }
        tx.commit().await.map_err(map)?;
        Ok(reaped)
    }

    async fn queue_settings(&self) -> StoreResult<Vec<QueueSettings>> {
        let seen: Vec<String> = sqlx::query_scalar("SELECT DISTINCT queue FROM jobs")
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        Ok(complete_settings(self.configured_queues().await?, seen))
    }

    async fn get_queue_settings(&self, queue: &str) -> StoreResult<QueueSettings> {
        let mut conn = self.pool.acquire().await.map_err(map)?;
        settings_in(&mut conn, queue).await
    }

    async fn put_queue_settings(&self, settings: &QueueSettings) -> StoreResult<()> {
        settings
            .validate()
            .map_err(|e| StoreError::InvalidInput(e.0))?;
        sqlx::query(
            "INSERT INTO queue_settings (name, paused, max_batch, max_concurrency, max_attempts, \
             backoff_base_ms, backoff_max_ms, lease_secs, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) \
             ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, max_batch = excluded.max_batch, \
             max_concurrency = excluded.max_concurrency, max_attempts = excluded.max_attempts, \
             backoff_base_ms = excluded.backoff_base_ms, backoff_max_ms = excluded.backoff_max_ms, \
             lease_secs = excluded.lease_secs, updated_at = excluded.updated_at",
        )
        .bind(&settings.name)
        .bind(settings.paused)
        .bind(settings.max_batch as i32)
        .bind(settings.max_concurrency as i32)
        .bind(settings.max_attempts as i32)
        .bind(settings.backoff_base_ms as i64)
        .bind(settings.backoff_max_ms as i64)
        .bind(settings.lease_secs as i64)
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        let mut qb =
            QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE TRUE"));
        push_filter(&mut qb, filter);
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.unwrap_or(100)));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(map)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn get_job(&self, id: i64) -> StoreResult<Option<JobDetail>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map)?;
        let Some(row) = row else { return Ok(None) };
        let job = job_from_row(&row)?;
        let rows = sqlx::query(
            "SELECT attempt, worker_id, outcome, error_code, error_message, finished_at \
             FROM job_attempts WHERE job_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(map)?;
        let attempts = rows
            .iter()
            .map(|r| {
                Ok(JobAttempt {
                    attempt: r.try_get::<i32, _>("attempt").map_err(map)? as u32,
                    worker_id: r.try_get("worker_id").map_err(map)?,
                    outcome: r.try_get("outcome").map_err(map)?,
                    error_code: r.try_get("error_code").map_err(map)?,
                    error_message: r.try_get("error_message").map_err(map)?,
                    finished_at: r.try_get("finished_at").map_err(map)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(JobDetail { job, attempts }))
    }

    async fn retry_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<i64>> {
        let mut qb = QueryBuilder::<Postgres>::new(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_at = now(), updated_at = now(), \
             finished_at = NULL WHERE status = 'dead'",
        );
        push_filter(&mut qb, filter);
        qb.push(" RETURNING id");
        let mut ids: Vec<i64> = qb
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn purge_jobs(&self, filter: &JobFilter, dry_run: bool) -> StoreResult<Vec<i64>> {
        if filter.status == Some(JobStatus::Running) {
            return Err(StoreError::InvalidInput(
                "running jobs cannot be purged: pause the queue and let them finish first".into(),
            ));
        }
        let mut qb = if dry_run {
            QueryBuilder::<Postgres>::new("SELECT id FROM jobs WHERE status <> 'running'")
        } else {
            QueryBuilder::<Postgres>::new("DELETE FROM jobs WHERE status <> 'running'")
        };
        push_filter(&mut qb, filter);
        qb.push(if dry_run {
            " ORDER BY id"
        } else {
            " RETURNING id"
        });
        let mut ids: Vec<i64> = qb
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        ids.sort_unstable();
        Ok(ids)
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        // No scan for queue names: queues without settings show up through their depth rows.
        let settings = complete_settings(self.configured_queues().await?, []);
        let mut queues: Vec<QueueStatsRow> = settings
            .iter()
            .map(|s| QueueStatsRow {
                queue: s.name.clone(),
                paused: s.paused,
                ..Default::default()
            })
            .collect();
        let depth =
            sqlx::query("SELECT queue, 'queued' AS status, COUNT(*) AS n FROM jobs WHERE status = 'queued' GROUP BY queue \
             UNION ALL SELECT queue, 'running', COUNT(*) FROM jobs WHERE status = 'running' GROUP BY queue \
             UNION ALL SELECT queue, 'completed', COUNT(*) FROM jobs WHERE status = 'completed' GROUP BY queue \
             UNION ALL SELECT queue, 'dead', COUNT(*) FROM jobs WHERE status = 'dead' GROUP BY queue")
                .fetch_all(&self.pool)
                .await
                .map_err(map)?;
        for row in depth {
            let queue: String = row.try_get("queue").map_err(map)?;
            let status: String = row.try_get("status").map_err(map)?;
            let n: i64 = row.try_get("n").map_err(map)?;
            stats_row(&mut queues, &queue)
                .depth
                .insert(status, n as u64);
        }
        let oldest = sqlx::query(
            "SELECT queue, EXTRACT(EPOCH FROM now() - MIN(run_at))::float8 AS age FROM jobs \
             WHERE status = 'queued' AND run_at <= now() GROUP BY queue",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map)?;
        for row in oldest {
            let queue: String = row.try_get("queue").map_err(map)?;
            let age: f64 = row.try_get("age").map_err(map)?;
            stats_row(&mut queues, &queue).oldest_waiting_secs = age.max(0.0) as u64;
        }
        let expired = sqlx::query(
            "SELECT queue, COUNT(*) AS n FROM jobs WHERE status = 'running' AND lease_expires_at < now() GROUP BY queue",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map)?;
        for row in expired {
            let queue: String = row.try_get("queue").map_err(map)?;
            let n: i64 = row.try_get("n").map_err(map)?;
            stats_row(&mut queues, &queue).expired_leases = n as u64;
        }
        let mut windows = Vec::new();
        for (name, seconds) in STATS_WINDOWS {
            let completed: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE status = 'completed' \
                 AND finished_at >= now() - make_interval(secs => $1)",
            )
            .bind(seconds as f64)
            .fetch_one(&self.pool)
            .await
            .map_err(map)?;
            let failures = sqlx::query(
                "SELECT COALESCE(error_code, 'INTERNAL') AS code, COUNT(*) AS n FROM job_attempts \
                 WHERE finished_at >= now() - make_interval(secs => $1) AND outcome <> 'released' \
                 GROUP BY error_code",
            )
            .bind(seconds as f64)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
            let mut window = WindowStats {
                window: name.to_owned(),
                seconds,
                completed: completed as u64,
                ..Default::default()
            };
            for row in failures {
                let code: String = row.try_get("code").map_err(map)?;
                let n: i64 = row.try_get("n").map_err(map)?;
                window.failures_by_code.insert(code, n as u64);
            }
            windows.push(window);
        }
        Ok(QueueStats { queues, windows })
    }

    async fn create_conversation(&self, new: NewConversation) -> StoreResult<CreatedConversation> {
        // Two uploads with the same idempotency key may race past the lookup; the loser hits
        // the unique index, rolls back, and on its second pass finds the winner's row.
        for pass in 0..2 {
            match self.try_create_conversation(&new).await {
                Err(CreateError::DuplicateKey) if pass == 0 => continue,
                Err(CreateError::DuplicateKey) => {
                    return Err(StoreError::Other(
                        "idempotency key conflict did not resolve".into(),
                    ));
                }
                Err(CreateError::Store(e)) => return Err(e),
                Ok(created) => return Ok(created),
            }
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn get_conversation(&self, id: &str) -> StoreResult<Option<Conversation>> {
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn find_conversation_by_case(
        &self,
        case_number: &str,
    ) -> StoreResult<Option<Conversation>> {
        let row = sqlx::query("SELECT * FROM conversations WHERE case_number = $1")
            .bind(case_number)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> StoreResult<Vec<Conversation>> {
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT c.* FROM conversations c JOIN opportunities o ON o.id = c.opportunity_id WHERE TRUE",
        );
        if let Some(status) = filter.status {
            qb.push(" AND c.status = ").push_bind(status.as_str());
        }
        if let Some(line) = &filter.product_line {
            qb.push(" AND c.product_line = ").push_bind(line.clone());
        }
        if let Some(rep) = &filter.rep_user_id {
            qb.push(" AND c.rep_user_id = ").push_bind(rep.clone());
        }
        if let Some(customer) = &filter.customer_number {
            qb.push(" AND o.customer_number = ")
                .push_bind(customer.clone());
        }
        if let Some(from) = filter.from {
            qb.push(" AND c.created_at >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            qb.push(" AND c.created_at < ").push_bind(to);
        }
        qb.push(" ORDER BY c.created_at DESC, c.id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 500)))
            .push(" OFFSET ")
            .push_bind(i64::from(filter.offset));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(map)?;
        rows.iter().map(conversation_from_row).collect()
    }

    async fn set_conversation_status(
        &self,
        id: &str,
        status: ConversationStatus,
        error: Option<&StageError>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        let changed = sqlx::query(
            "UPDATE conversations SET status = $1, error_stage = $2, error_code = $3, error_message = $4, \
             error_retryable = $5, updated_at = now() WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(error.map(|e| e.stage.as_str()))
        .bind(error.map(|e| e.code.clone()))
        .bind(error.map(|e| e.message.clone()))
        .bind(error.map(|e| e.retryable))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound(format!("conversation {id}")));
        }
        sqlx::query("INSERT INTO conversation_stage_events (conversation_id, status, at) VALUES ($1, $2, now())")
            .bind(id)
            .bind(status.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        notify_in(&mut tx, id).await?;
        tx.commit().await.map_err(map)?;
        Ok(())
    }

    async fn restart_conversation(
        &self,
        id: &str,
        status: ConversationStatus,
        job: NewJob,
        clear_analysis: bool,
    ) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        let changed = sqlx::query(
            "UPDATE conversations SET status = $1, error_stage = NULL, error_code = NULL, error_message = NULL, \
             error_retryable = NULL, updated_at = now() WHERE id = $2",
        )
        .bind(status.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound(format!("conversation {id}")));
        }
        if clear_analysis {
            for sql in [
                "DELETE FROM agent_outputs WHERE conversation_id = $1",
                "DELETE FROM analyses WHERE conversation_id = $1",
            ] {
                sqlx::query(sql)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
            }
        }
        sqlx::query("INSERT INTO conversation_stage_events (conversation_id, status, at) VALUES ($1, $2, now())")
            .bind(id)
            .bind(status.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let mut job = job;
        job.conversation_id = Some(id.to_owned());
        let enqueued = enqueue_in(&mut tx, &job).await?;
        notify_in(&mut tx, id).await?;
        tx.commit().await.map_err(map)?;
        Ok(enqueued.id)
    }

    async fn stage_events(&self, id: &str) -> StoreResult<Vec<StageEvent>> {
        let rows = sqlx::query("SELECT status, at FROM conversation_stage_events WHERE conversation_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter()
            .map(|r| {
                Ok(StageEvent {
                    status: ConversationStatus::parse(
                        &r.try_get::<String, _>("status").map_err(map)?,
                    )
                    .map_err(|e| StoreError::Other(e.0))?,
                    at: r.try_get("at").map_err(map)?,
                })
            })
            .collect()
    }

    async fn save_transcript(&self, id: &str, segments: &[Segment]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        sqlx::query("DELETE FROM transcript_segments WHERE conversation_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        let seqs: Vec<i32> = (0..segments.len() as i32).collect();
        let speakers: Vec<Option<String>> = segments.iter().map(|s| s.speaker.clone()).collect();
        let starts: Vec<i32> = segments
            .iter()
            .map(|s| s.start_ms.min(i32::MAX as u64) as i32)
            .collect();
        let ends: Vec<i32> = segments
            .iter()
            .map(|s| s.end_ms.min(i32::MAX as u64) as i32)
            .collect();
        let texts: Vec<String> = segments.iter().map(|s| s.text.clone()).collect();
        sqlx::query(
            "INSERT INTO transcript_segments (conversation_id, seq, speaker, start_ms, end_ms, text) \
             SELECT $1, * FROM unnest($2::int[], $3::text[], $4::int[], $5::int[], $6::text[])",
        )
        .bind(id)
        .bind(seqs)
        .bind(speakers)
        .bind(starts)
        .bind(ends)
        .bind(texts)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(())
    }

    async fn get_transcript(&self, id: &str) -> StoreResult<Vec<Segment>> {
        let rows = sqlx::query("SELECT speaker, start_ms, end_ms, text FROM transcript_segments WHERE conversation_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter()
            .map(|r| {
                Ok(Segment {
                    speaker: r.try_get("speaker").map_err(map)?,
                    start_ms: r.try_get::<i32, _>("start_ms").map_err(map)? as u64,
                    end_ms: r.try_get::<i32, _>("end_ms").map_err(map)? as u64,
                    text: r.try_get("text").map_err(map)?,
                })
            })
            .collect()
    }

    async fn save_chunk_transcript(&self, id: &str, chunk: &ChunkTranscript) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO transcript_chunks (conversation_id, chunk_index, channel, start_ms, end_ms, provider, model, segments, latency_ms, created_at) \
             VALUES ($1, $2, $9, $3, $4, $5, $6, $7, $8, now()) ON CONFLICT (conversation_id, channel, chunk_index) DO UPDATE SET \
             start_ms = excluded.start_ms, end_ms = excluded.end_ms, provider = excluded.provider, model = excluded.model, \
             segments = excluded.segments, latency_ms = excluded.latency_ms, created_at = excluded.created_at",
        )
        .bind(id)
        .bind(chunk.index as i32)
        .bind(chunk.start_ms.min(i32::MAX as u64) as i32)
        .bind(chunk.end_ms.min(i32::MAX as u64) as i32)
        .bind(&chunk.provider)
        .bind(&chunk.model)
        .bind(serde_json::to_value(&chunk.segments).map_err(|e| StoreError::Other(e.to_string()))?)
        .bind(chunk.latency_ms.map(|v| v as i32))
        .bind(chunk.channel as i32)
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn get_chunk_transcripts(&self, id: &str) -> StoreResult<Vec<ChunkTranscript>> {
        let rows = sqlx::query("SELECT * FROM transcript_chunks WHERE conversation_id = $1 ORDER BY channel, chunk_index")
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter()
            .map(|r| {
                let segments: serde_json::Value = r.try_get("segments").map_err(map)?;
                Ok(ChunkTranscript {
                    channel: r.try_get::<i32, _>("channel").map_err(map)? as u32,
                    index: r.try_get::<i32, _>("chunk_index").map_err(map)? as u32,
                    start_ms: r.try_get::<i32, _>("start_ms").map_err(map)? as u64,
                    end_ms: r.try_get::<i32, _>("end_ms").map_err(map)? as u64,
                    provider: r
                        .try_get::<Option<String>, _>("provider")
                        .map_err(map)?
                        .unwrap_or_default(),
                    model: r.try_get("model").map_err(map)?,
                    segments: serde_json::from_value(segments)
                        .map_err(|e| StoreError::Other(e.to_string()))?,
                    latency_ms: r
                        .try_get::<Option<i32>, _>("latency_ms")
                        .map_err(map)?
                        .map(i64::from),
                })
            })
            .collect()
    }

    async fn save_agent_output(&self, id: &str, run: &AgentRun) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO agent_outputs (conversation_id, agent, engine, model, output, prompt_tokens, completion_tokens, latency_ms, fallback_reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) ON CONFLICT (conversation_id, agent) DO UPDATE SET engine = excluded.engine, \
             model = excluded.model, output = excluded.output, prompt_tokens = excluded.prompt_tokens, \
             completion_tokens = excluded.completion_tokens, latency_ms = excluded.latency_ms, \
             fallback_reason = excluded.fallback_reason, created_at = excluded.created_at",
        )
        .bind(id)
        .bind(&run.agent)
        .bind(&run.engine)
        .bind(&run.model)
        .bind(&run.output)
        .bind(run.prompt_tokens.map(|v| v as i32))
        .bind(run.completion_tokens.map(|v| v as i32))
        .bind(run.latency_ms.map(|v| v as i32))
        .bind(&run.fallback)
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn get_agent_outputs(&self, id: &str) -> StoreResult<Vec<AgentRun>> {
        let rows = sqlx::query(
            "SELECT * FROM agent_outputs WHERE conversation_id = $1 ORDER BY created_at, agent",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(map)?;
        rows.iter()
            .map(|r| {
                Ok(AgentRun {
                    agent: r.try_get("agent").map_err(map)?,
                    engine: r.try_get("engine").map_err(map)?,
                    model: r.try_get("model").map_err(map)?,
                    output: r.try_get("output").map_err(map)?,
                    prompt_tokens: r
                        .try_get::<Option<i32>, _>("prompt_tokens")
                        .map_err(map)?
                        .map(i64::from),
                    completion_tokens: r
                        .try_get::<Option<i32>, _>("completion_tokens")
                        .map_err(map)?
                        .map(i64::from),
                    latency_ms: r
                        .try_get::<Option<i32>, _>("latency_ms")
                        .map_err(map)?
                        .map(i64::from),
                    fallback: r.try_get("fallback_reason").map_err(map)?,
                })
            })
            .collect()
    }

    async fn clear_analysis(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        for sql in [
            "DELETE FROM agent_outputs WHERE conversation_id = $1",
            "DELETE FROM analyses WHERE conversation_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
        }
        tx.commit().await.map_err(map)?;
        Ok(())
    }

    async fn complete_analysis(&self, id: &str, analysis: &StoredAnalysis) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        sqlx::query(
            "INSERT INTO analyses (conversation_id, engine, overall_score, qualification, pain_score, decision_score, \
             champion_score, metrics_score, result, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now()) \
             ON CONFLICT (conversation_id) DO UPDATE SET engine = excluded.engine, overall_score = excluded.overall_score, \
             qualification = excluded.qualification, pain_score = excluded.pain_score, decision_score = excluded.decision_score, \
             champion_score = excluded.champion_score, metrics_score = excluded.metrics_score, result = excluded.result, \
             created_at = excluded.created_at",
        )
        .bind(id)
        .bind(&analysis.engine)
        .bind(i32::from(analysis.overall_score.value()))
        .bind(&analysis.qualification)
        .bind(i32::from(analysis.pain_score.value()))
        .bind(i32::from(analysis.decision_score.value()))
        .bind(i32::from(analysis.champion_score.value()))
        .bind(i32::from(analysis.metrics_score.value()))
        .bind(&analysis.result)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        sqlx::query(
            "UPDATE conversations SET status = 'completed', error_stage = NULL, error_code = NULL, error_message = NULL, \
             error_retryable = NULL, updated_at = now() WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        sqlx::query("INSERT INTO conversation_stage_events (conversation_id, status, at) VALUES ($1, 'completed', now())")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
        notify_in(&mut tx, id).await?;
        sqlx::query(
            "UPDATE opportunities SET latest_score = $1, updated_at = now() WHERE id = (SELECT opportunity_id FROM conversations WHERE id = $2)",
        )
        .bind(i32::from(analysis.overall_score.value()))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(())
    }

    async fn get_analysis(&self, id: &str) -> StoreResult<Option<StoredAnalysis>> {
        let row = sqlx::query("SELECT * FROM analyses WHERE conversation_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        let Some(r) = row else { return Ok(None) };
        let score = |name: &str| -> StoreResult<Score> {
            Score::new(i64::from(
                r.try_get::<Option<i32>, _>(name).map_err(map)?.unwrap_or(0),
            ))
            .map_err(|e| StoreError::Other(e.0))
        };
        Ok(Some(StoredAnalysis {
            engine: r.try_get("engine").map_err(map)?,
            overall_score: score("overall_score")?,
            qualification: r.try_get("qualification").map_err(map)?,
            pain_score: score("pain_score")?,
            decision_score: score("decision_score")?,
            champion_score: score("champion_score")?,
            metrics_score: score("metrics_score")?,
            result: r.try_get("result").map_err(map)?,
        }))
    }

    async fn prune_candidates(
        &self,
        before: DateTime<Utc>,
        with_audio_only: bool,
        limit: u32,
    ) -> StoreResult<Vec<PruneCandidate>> {
        let rows = sqlx::query(
            "SELECT id, case_number, blob_key FROM conversations WHERE status = 'completed' AND NOT protected \
             AND created_at < $1 AND (NOT $2 OR blob_key IS NOT NULL) ORDER BY created_at, id LIMIT $3",
        )
        .bind(before)
        .bind(with_audio_only)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id").map_err(map)?;
            let chunks = sqlx::query("SELECT channel, chunk_index FROM transcript_chunks WHERE conversation_id = $1 AND provider <> 'silence'")
                .bind(&id)
                .fetch_all(&self.pool)
                .await
                .map_err(map)?
                .iter()
                .map(|c| Ok((c.try_get::<i32, _>("channel").map_err(map)? as u32, c.try_get::<i32, _>("chunk_index").map_err(map)? as u32)))
                .collect::<StoreResult<Vec<_>>>()?;
            out.push(PruneCandidate {
                id,
                case_number: r.try_get("case_number").map_err(map)?,
                blob_key: r.try_get("blob_key").map_err(map)?,
                chunks,
            });
        }
        Ok(out)
    }

    async fn delete_conversation(&self, id: &str) -> StoreResult<bool> {
        let changed = sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map)?
            .rows_affected();
        Ok(changed == 1)
    }

    async fn forget_audio(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE conversations SET blob_key = NULL, updated_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn attach_media(
        &self,
        id: &str,
        blob_key: &str,
        metadata: serde_json::Value,
        next: NewJob,
    ) -> StoreResult<i64> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        let changed = sqlx::query(
            "UPDATE conversations SET blob_key = $1, metadata = metadata || $2, updated_at = now() WHERE id = $3",
        )
        .bind(blob_key)
        .bind(&metadata)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound(format!("conversation {id}")));
        }
        let job = enqueue_in(&mut tx, &next).await?;
        tx.commit().await.map_err(map)?;
        Ok(job.id)
    }

    async fn get_opportunity(&self, customer_number: &str) -> StoreResult<Option<Opportunity>> {
        let sql = format!("{OPPORTUNITY_SELECT} WHERE o.customer_number = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(customer_number)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?
            .as_ref()
            .map(opportunity_from_row)
            .transpose()
    }

    async fn search_opportunities(&self, query: &str, limit: u32) -> StoreResult<Vec<Opportunity>> {
        let sql = format!(
            "{OPPORTUNITY_SELECT} WHERE $1 = '' OR o.customer_number = $1 OR strpos(lower(o.company_name), lower($1)) > 0 \
             ORDER BY o.created_at DESC, o.id LIMIT $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(query)
            .bind(i64::from(limit.clamp(1, 500)))
            .fetch_all(&self.pool)
            .await
            .map_err(map)?
            .iter()
            .map(opportunity_from_row)
            .collect()
    }

    async fn create_opportunity(
        &self,
        customer_number: &str,
        company_name: &str,
        product_line: &str,
        owner_user_id: Option<&str>,
    ) -> StoreResult<Opportunity> {
        sqlx::query(
            "INSERT INTO opportunities (id, customer_number, company_name, product_line, owner_user_id, \
             status_changed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, now(), now(), now())",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(customer_number)
        .bind(company_name)
        .bind(product_line)
        .bind(owner_user_id)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("customer {customer_number} already exists"))
            } else {
                map(e)
            }
        })?;
        self.get_opportunity(customer_number)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("opportunity {customer_number}")))
    }

    async fn get_user(&self, id: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(
            "SELECT id, email, display_name, role, slack_user_id FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map)?;
        row.map(|r| -> StoreResult<User> {
            Ok(User {
                id: r.try_get("id").map_err(map)?,
                email: r.try_get("email").map_err(map)?,
                display_name: r.try_get("display_name").map_err(map)?,
                role: Role::parse(&r.try_get::<String, _>("role").map_err(map)?)
                    .map_err(|e| StoreError::Other(e.0))?,
                slack_user_id: r.try_get("slack_user_id").map_err(map)?,
            })
        })
        .transpose()
    }

    async fn update_user_profile(
        &self,
        id: &str,
        email: Option<&str>,
        display_name: &str,
    ) -> StoreResult<()> {
        let name = display_name.trim();
        if !name.is_empty() {
            sqlx::query("UPDATE users SET display_name = $1, updated_at = now() WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map)?;
        }
        if let Some(email) = email.map(str::trim).filter(|e| e.contains('@')) {
            sqlx::query(
                "UPDATE users SET email = $1, updated_at = now() WHERE id = $2 AND email IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM users WHERE email = $1)",
            )
            .bind(email)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map)?;
        }
        Ok(())
    }

    async fn set_user_role(&self, who: &str, role: Role) -> StoreResult<Option<User>> {
        let id: Option<String> = sqlx::query_scalar("UPDATE users SET role = $1, updated_at = now() WHERE id = $2 OR email = $2 OR slack_user_id = $2 RETURNING id")
            .bind(role.as_str())
            .bind(who)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
        match id {
            Some(id) => self.get_user(&id).await,
            None => Ok(None),
        }
    }

    async fn slack_messages(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Vec<(String, String, String)>> {
        sqlx::query_as("SELECT kind, channel_id, ts FROM slack_messages WHERE conversation_id = $1 ORDER BY created_at, kind")
            .bind(conversation_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map)
    }

    async fn put_slack_message(
        &self,
        conversation_id: &str,
        kind: &str,
        channel_id: &str,
        ts: &str,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "INSERT INTO slack_messages (conversation_id, kind, channel_id, ts, created_at) VALUES ($1, $2, $3, $4, now()) \
             ON CONFLICT (conversation_id, kind) DO NOTHING",
        )
        .bind(conversation_id)
        .bind(kind)
        .bind(channel_id)
        .bind(ts)
        .execute(&self.pool)
        .await
        .map_err(map)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn find_or_create_user(
        &self,
        email: Option<&str>,
        slack_user_id: Option<&str>,
        display_name: &str,
    ) -> StoreResult<String> {
        let email = email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        let slack = slack_user_id.map(str::trim).filter(|s| !s.is_empty());
        if email.is_none() && slack.is_none() {
            return Err(StoreError::InvalidInput(
                "a user needs an e-mail or a Slack user id".into(),
            ));
        }
        let mut tx = self.pool.begin().await.map_err(map)?;
        if let Some(slack) = slack
            && let Some(id) =
                sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE slack_user_id = $1")
                    .bind(slack)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map)?
        {
            tx.commit().await.map_err(map)?;
            return Ok(id);
        }
        if let Some(email) = &email
            && let Some(id) =
                sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map)?
        {
            if let Some(slack) = slack {
                sqlx::query("UPDATE users SET slack_user_id = $1, updated_at = now() WHERE id = $2 AND slack_user_id IS NULL")
                    .bind(slack)
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
            }
            tx.commit().await.map_err(map)?;
            return Ok(id);
        }
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO users (id, email, display_name, role, slack_user_id, created_at, updated_at) VALUES ($1, $2, $3, 'rep', $4, now(), now())",
        )
        .bind(&id)
        .bind(&email)
        .bind(display_name)
        .bind(slack)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        tx.commit().await.map_err(map)?;
        Ok(id)
    }

    async fn create_api_token(&self, token: NewApiToken) -> StoreResult<ApiToken> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (name, role, token_hash, user_id, created_at) VALUES ($1, $2, $3, $4, now()) RETURNING id, name, role, token_hash, created_at, last_used_at, revoked_at, user_id",
        )
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.token_hash)
        .bind(&token.user_id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::InvalidInput(format!(
                    "a live token named {:?} already exists; revoke it first or pick another name",
                    token.name
                ))
            } else {
                map(e)
            }
        })?;
        token_from_row(&row)
    }

    async fn authenticate_api_token(&self, token_hash: &str) -> StoreResult<Option<ApiToken>> {
        let row = sqlx::query(
            "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1 AND revoked_at IS NULL RETURNING id, name, role, token_hash, created_at, last_used_at, revoked_at, user_id",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query("SELECT id, name, role, token_hash, created_at, last_used_at, revoked_at, user_id FROM api_tokens ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_api_token(&self, name_or_id: &str) -> StoreResult<bool> {
        let id = name_or_id.parse::<i64>().ok();
        let changed = sqlx::query(
            "UPDATE api_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND (name = $1 OR id = $2)",
        )
        .bind(name_or_id)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map)?
        .rows_affected();
        Ok(changed > 0)
    }

    async fn list_incidents(&self) -> StoreResult<Vec<Incident>> {
        let rows = sqlx::query("SELECT * FROM alert_incidents ORDER BY opened_at, key")
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
        rows.iter()
            .map(|r| {
                Ok(Incident {
                    key: r.try_get("key").map_err(map)?,
                    severity: r.try_get("severity").map_err(map)?,
                    title: r.try_get("title").map_err(map)?,
                    detail: r.try_get("detail").map_err(map)?,
                    opened_at: r.try_get("opened_at").map_err(map)?,
                    resolved_at: r.try_get("resolved_at").map_err(map)?,
                    notified_at: r.try_get("notified_at").map_err(map)?,
                })
            })
            .collect()
    }

    async fn save_incident(&self, i: &Incident) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO alert_incidents (key, severity, title, detail, opened_at, resolved_at, notified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO UPDATE SET severity = excluded.severity, \
             title = excluded.title, detail = excluded.detail, opened_at = excluded.opened_at, \
             resolved_at = excluded.resolved_at, notified_at = excluded.notified_at",
        )
        .bind(&i.key)
        .bind(&i.severity)
        .bind(&i.title)
        .bind(&i.detail)
        .bind(i.opened_at)
        .bind(i.resolved_at)
        .bind(i.notified_at)
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn add_counter(
        &self,
        node: &str,
        name: &str,
        minute: i64,
        delta: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO node_counters (node, name, minute, count) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (node, name, minute) DO UPDATE SET count = node_counters.count + excluded.count",
        )
        .bind(node)
        .bind(name)
        .bind(minute)
        .bind(delta)
        .execute(&self.pool)
        .await
        .map_err(map)?;
        Ok(())
    }

    async fn sum_counter(&self, name: &str, since_minute: i64) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COALESCE(SUM(count), 0)::bigint FROM node_counters WHERE name = $1 AND minute >= $2")
            .bind(name)
            .bind(since_minute)
            .fetch_one(&self.pool)
            .await
            .map_err(map)
    }

    async fn counter_nodes(&self, name: &str, since_minute: i64) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT DISTINCT node FROM node_counters WHERE name = $1 AND minute >= $2 ORDER BY node")
            .bind(name)
            .bind(since_minute)
            .fetch_all(&self.pool)
            .await
            .map_err(map)
    }

    async fn prune_counters(&self, before_minute: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM node_counters WHERE minute < $1")
            .bind(before_minute)
            .execute(&self.pool)
            .await
            .map_err(map)?
            .rows_affected())
    }

    async fn terminate_idle(&self, older_than: std::time::Duration) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND state = 'idle' AND pid <> pg_backend_pid() \
             AND state_change < now() - make_interval(secs => $1)",
        )
        .bind(older_than.as_secs_f64())
        .fetch_one(&self.pool)
        .await
        .map_err(map)
    }

    async fn analyze(&self) -> StoreResult<()> {
        sqlx::raw_sql("VACUUM ANALYZE")
            .execute(&self.pool)
            .await
            .map_err(map)?;
        Ok(())
    }

    async fn record_external_event(&self, source: &str, event_id: &str) -> StoreResult<bool> {
        let changed = sqlx::query(
            "INSERT INTO external_events (source, event_id, received_at) VALUES ($1, $2, now()) \
             ON CONFLICT (source, event_id) DO NOTHING",
        )
        .bind(source)
        .bind(event_id)
        .execute(&self.pool)
        .await
        .map_err(map)?
        .rows_affected();
        Ok(changed == 1)
    }
}

enum CreateError {
    DuplicateKey,
    Store(StoreError),
}

impl From<StoreError> for CreateError {
    fn from(value: StoreError) -> Self {
        CreateError::Store(value)
    }
}

fn create_map(err: sqlx::Error) -> CreateError {
    if is_unique_violation(&err) {
        CreateError::DuplicateKey
    } else {
        CreateError::Store(map(err))
    }
}

impl PgStore {
    async fn try_create_conversation(
        &self,
        new: &NewConversation,
    ) -> Result<CreatedConversation, CreateError> {
        let mut tx = self.pool.begin().await.map_err(map)?;
        if let Some(key) = &new.idempotency_key {
            let existing = sqlx::query(
                "SELECT c.id, c.case_number, c.opportunity_id, \
                 (SELECT MIN(j.id) FROM jobs j WHERE j.conversation_id = c.id) AS job_id \
                 FROM conversations c WHERE c.idempotency_key = $1",
            )
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
            if let Some(row) = existing {
                let case: String = row.try_get("case_number").map_err(map)?;
                return Ok(CreatedConversation {
                    id: row.try_get("id").map_err(map)?,
                    case_number: CaseNumber::parse(&case).map_err(|e| StoreError::Other(e.0))?,
                    opportunity_id: row.try_get("opportunity_id").map_err(map)?,
                    job_id: row
                        .try_get::<Option<i64>, _>("job_id")
                        .map_err(map)?
                        .unwrap_or(0),
                    created: false,
                });
            }
        }
        let opportunity_id: String = sqlx::query_scalar(
            "INSERT INTO opportunities (id, customer_number, company_name, product_line, status, \
             status_changed_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'new', now(), now(), now()) \
             ON CONFLICT (customer_number) DO UPDATE SET updated_at = excluded.updated_at RETURNING id",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(new.customer_number.as_str())
        .bind(&new.customer_name)
        .bind(&new.product_line)
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
        let sequence: i32 = sqlx::query_scalar(
            "INSERT INTO case_sequences (period, prefix, last_value) VALUES ($1, $2, 1) \
             ON CONFLICT (period, prefix) DO UPDATE SET last_value = case_sequences.last_value + 1 \
             RETURNING last_value",
        )
        .bind(new.case_period.as_str())
        .bind(new.case_prefix.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(map)?;
        let case_number = CaseNumber::new(&new.case_period, &new.case_prefix, sequence as u64);
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO conversations (id, case_number, opportunity_id, product_line, conversation_type, \
             title, status, blob_key, conversation_date, rep_user_id, metadata, idempotency_key, \
             slack_channel_id, slack_thread_ts, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12, $13, now(), now())",
        )
        .bind(&id)
        .bind(case_number.as_str())
        .bind(&opportunity_id)
        .bind(&new.product_line)
        .bind(new.conversation_type.as_str())
        .bind(&new.title)
        .bind(&new.blob_key)
        .bind(new.conversation_date)
        .bind(&new.rep_user_id)
        .bind(&new.metadata)
        .bind(&new.idempotency_key)
        .bind(new.slack.as_ref().map(|s| s.channel_id.clone()))
        .bind(new.slack.as_ref().and_then(|s| s.thread_ts.clone()))
        .execute(&mut *tx)
        .await
        .map_err(create_map)?;
        sqlx::query(
            "INSERT INTO conversation_stage_events (conversation_id, status, at) VALUES ($1, 'pending', now())",
        )
        .bind(&id)
        .execute(&mut *tx)
        .await
        .map_err(map)?;
        notify_in(&mut tx, &id).await?;
        let mut job = new.first_job.clone();
        job.conversation_id = Some(id.clone());
        let enqueued = enqueue_in(&mut tx, &job).await?;
        tx.commit().await.map_err(map)?;
        Ok(CreatedConversation {
            id,
            case_number,
            opportunity_id,
            job_id: enqueued.id,
            created: true,
        })
    }
}
