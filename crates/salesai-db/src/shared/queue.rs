//! The job queue, on both backends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng;
use salesai_core::queue::{
    Enqueued, FailOutcome, Job, JobAttempt, JobDetail, JobFailure, JobFilter, JobStatus, Lease,
    NewJob, QueueSettings, QueueStats, QueueStatsRow, Reaped, STATS_WINDOWS, WindowStats,
    backoff_delay, complete_settings, stats_row,
};
use salesai_core::store::{JobQueue, StoreError, StoreResult};
use sqlx::{QueryBuilder, Row};

use super::super::{
    Db, NOW, OLDEST_WAITING_SECS, Pool, SECOND_AGO, StoreImpl, Time, from_db, hold, release, time,
    write_tx,
};
use super::{
    enqueue_in, fail_conversation_of_dead_job_in, job_from_row, record_attempt, settings_from_row,
    settings_in, u32_col, unlease,
};
use crate::error::{R, run};

/// Appends the conditions of a job filter (the caller has written a `WHERE` already).
fn push_filter(qb: &mut QueryBuilder<Db>, filter: &JobFilter) {
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
        qb.push(" AND updated_at < ")
            .push_bind(super::db_time(older));
    }
    if let Some(ids) = &filter.ids {
        qb.push(" AND id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        if ids.is_empty() {
            list.push("NULL");
        }
        qb.push(")");
    }
}

/// The claim: `$1` the worker, `$2` the queue, `$3` how many. One statement, in PostgreSQL's
/// SQL (the dialects translate it as any other).
pub(crate) fn claim_sql() -> String {
    format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, \
         lease_expires_at = now() + make_interval(secs => COALESCE( \
             (SELECT lease_secs FROM queue_settings WHERE name = $2), 60)), \
         updated_at = now() \
         WHERE id IN (SELECT j.id FROM jobs j WHERE j.queue = $2 AND j.status = 'queued' AND j.run_at <= now() \
                      AND NOT EXISTS (SELECT 1 FROM queue_settings WHERE name = $2 AND paused) \
                      {serial} ORDER BY j.priority, j.id LIMIT $3 FOR UPDATE OF j SKIP LOCKED) \
         RETURNING {columns}",
        serial = crate::serial_guard(),
        columns = job_columns!(),
    )
}

/// Marks a leased job completed; false when the lease was lost.
pub(crate) async fn complete_in(
    conn: &mut super::Conn,
    lease: &Lease,
) -> Result<bool, sqlx::Error> {
    let changed = crate::statement::query(sql!(
        "UPDATE jobs SET status = 'completed', finished_at = now(), updated_at = now(), \
         locked_by = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND status = 'running' AND attempts = $2 AND locked_by = $3"
    ))
    .bind(lease.job_id)
    .bind(lease.attempt as i32)
    .bind(&lease.worker_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

/// The queues with a settings row.
async fn configured_queues(pool: &Pool) -> R<Vec<QueueSettings>> {
    let rows = crate::statement::query(sql!(concat!(
        "SELECT ",
        settings_columns!(),
        " FROM queue_settings ORDER BY name"
    )))
    .fetch_all(pool)
    .await?;
    rows.iter().map(settings_from_row).collect()
}

/// Counted rows `(queue or code, n)` of a grouped query.
fn counts(rows: &[super::DbRow], key: &str) -> R<Vec<(String, u64)>> {
    rows.iter()
        .map(|r| Ok((r.try_get(key)?, r.try_get::<i64, _>("n")?.max(0) as u64)))
        .collect()
}

#[async_trait]
impl JobQueue for StoreImpl {
    async fn enqueue(&self, job: NewJob) -> StoreResult<Enqueued> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let out = enqueue_in(&mut tx, &job).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let mut out = Vec::with_capacity(jobs.len());
            for job in &jobs {
                out.push(enqueue_in(&mut tx, job).await?);
            }
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    async fn claim(&self, queue: &str, worker_id: &str, max: u32) -> StoreResult<Vec<Job>> {
        // One statement: the pause and the lease come from the queue's settings inside it, so
        // a pause that has committed stops every later claim on every node, and the hot path
        // makes one round trip. PostgreSQL skips rows other claims hold; SQLite's single
        // writer makes the statement atomic.
        let claim = sql!(claim_sql());
        run(async {
            let rows = crate::statement::query(claim)
                .bind(worker_id)
                .bind(queue)
                .bind(i64::from(max.max(1)))
                .fetch_all(self.pool.writes())
                .await?;
            let mut jobs = rows.iter().map(job_from_row).collect::<R<Vec<_>>>()?;
            jobs.sort_by_key(|j| (j.priority, j.id));
            Ok(jobs)
        })
        .await
    }

    async fn complete(&self, lease: &Lease) -> StoreResult<bool> {
        run(async {
            let mut conn = super::super::hold_to_write(&self.pool).await?;
            let done = complete_in(&mut conn, lease).await?;
            super::super::release_written(conn).await?;
            Ok(done)
        })
        .await
    }

    async fn complete_and_claim(
        &self,
        lease: &Lease,
        queue: &str,
        worker_id: &str,
        max: u32,
    ) -> StoreResult<(bool, Vec<Job>)> {
        run(async {
            let (done, rows) =
                super::super::complete_and_claim(&self.pool, lease, queue, worker_id, max.max(1))
                    .await?;
            let mut jobs = rows.iter().map(job_from_row).collect::<R<Vec<_>>>()?;
            jobs.sort_by_key(|j| (j.priority, j.id));
            Ok((done, jobs))
        })
        .await
    }

    async fn complete_many(&self, leases: &[Lease]) -> StoreResult<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        run(async { Ok(super::super::complete_many(&self.pool, leases).await?) }).await
    }

    async fn fail(&self, lease: &Lease, failure: &JobFailure) -> StoreResult<FailOutcome> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let row = crate::statement::query(sql!(
                "SELECT queue, attempts, max_attempts FROM jobs \
                 WHERE id = $1 AND status = 'running' AND attempts = $2 AND locked_by = $3 FOR UPDATE"
            ))
            .bind(lease.job_id)
            .bind(lease.attempt as i32)
            .bind(&lease.worker_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Ok(FailOutcome::LeaseLost);
            };
            let queue: String = row.try_get("queue")?;
            let attempts = u32_col(&row, "attempts")?;
            let max_attempts = u32_col(&row, "max_attempts")?;
            let settings = settings_in(&mut tx, &queue).await?;
            let outcome = if failure.retryable && attempts < max_attempts {
                let delay = backoff_delay(&settings, attempts, rand::rng().random::<f64>());
                let run_at: Time = crate::statement::query_scalar(sql!(
                    "UPDATE jobs SET status = 'queued', run_at = now() + make_interval(secs => $1), \
                     locked_by = NULL, lease_expires_at = NULL, last_error_code = $2, \
                     last_error_message = $3, updated_at = now() WHERE id = $4 RETURNING run_at"
                ))
                .bind(delay.as_secs_f64())
                .bind(&failure.code)
                .bind(&failure.message)
                .bind(lease.job_id)
                .fetch_one(&mut *tx)
                .await?;
                FailOutcome::Retrying {
                    run_at: from_db(run_at),
                }
            } else {
                crate::statement::query(sql!(
                    "UPDATE jobs SET status = 'dead', locked_by = NULL, lease_expires_at = NULL, \
                     last_error_code = $1, last_error_message = $2, updated_at = now(), finished_at = now() \
                     WHERE id = $3"
                ))
                .bind(&failure.code)
                .bind(&failure.message)
                .bind(lease.job_id)
                .execute(&mut *tx)
                .await?;
                fail_conversation_of_dead_job_in(
                    &mut tx,
                    lease.job_id,
                    &failure.code,
                    &failure.message,
                )
                .await?;
                FailOutcome::Dead
            };
            let (code, message) = (Some(failure.code.as_str()), Some(failure.message.as_str()));
            record_attempt(&mut tx, lease, "failed", code, message).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn reschedule(
        &self,
        lease: &Lease,
        run_at: DateTime<Utc>,
        code: &str,
        message: &str,
    ) -> StoreResult<bool> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let done = unlease(&mut tx, lease, Some(run_at), "rescheduled", code, message).await?;
            tx.commit().await?;
            Ok(done)
        })
        .await
    }

    async fn release(&self, leases: &[Lease]) -> StoreResult<u64> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let mut total = 0;
            for lease in leases {
                let message = "worker shut down before the job finished";
                if unlease(&mut tx, lease, None, "released", "RELEASED", message).await? {
                    total += 1;
                }
            }
            tx.commit().await?;
            Ok(total)
        })
        .await
    }

    async fn extend_leases(&self, leases: &[Lease]) -> StoreResult<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        run(async { Ok(super::super::extend_leases(&self.pool, leases).await?) }).await
    }

    async fn expire_leases_of(&self, worker_ids: &[String]) -> StoreResult<u64> {
        if worker_ids.is_empty() {
            return Ok(0);
        }
        run(async {
            let mut qb = QueryBuilder::<Db>::new(format!(
                "UPDATE jobs SET lease_expires_at = {SECOND_AGO} WHERE status = 'running' AND locked_by IN ("
            ));
            let mut list = qb.separated(", ");
            for id in worker_ids {
                list.push_bind(id.clone());
            }
            qb.push(")");
            let mut tx = write_tx(&self.pool).await?;
            let ended = qb.build().execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(ended)
        })
        .await
    }

    async fn lease_holders(&self) -> StoreResult<Vec<String>> {
        run(async {
            Ok(crate::statement::query_scalar(sql!(
                "SELECT DISTINCT locked_by FROM jobs WHERE status = 'running' AND locked_by IS NOT NULL"
            ))
            .fetch_all(&self.pool)
            .await?)
        })
        .await
    }

    async fn reap_expired_leases(&self) -> StoreResult<Reaped> {
        // The conversations of jobs that went dead fail in the same transaction.
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let moved = super::super::reap_expired(&mut tx).await?;
            let mut reaped = Reaped::default();
            for (id, status, message, queue, attempts) in moved {
                if status == "dead" {
                    reaped.dead += 1;
                    fail_conversation_of_dead_job_in(&mut tx, id, "LEASE_EXPIRED", &message)
                        .await?;
                } else {
                    // A lost worker is a failed attempt like any other: the job waits out the
                    // queue's backoff, so one that kills its worker every time (a file that
                    // crashes the decoder) spends its attempts over minutes, not seconds.
                    reaped.requeued += 1;
                    let settings = settings_in(&mut tx, &queue).await?;
                    let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
                    let delay = backoff_delay(&settings, attempts, rand::rng().random::<f64>());
                    crate::statement::query(sql!(
                        "UPDATE jobs SET run_at = now() + make_interval(secs => $1) \
                         WHERE id = $2 AND status = 'queued'"
                    ))
                    .bind(delay.as_secs_f64())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(reaped)
        })
        .await
    }

    async fn queue_settings(&self) -> StoreResult<Vec<QueueSettings>> {
        run(async {
            let seen: Vec<String> =
                crate::statement::query_scalar(sql!("SELECT DISTINCT queue FROM jobs"))
                    .fetch_all(&self.pool)
                    .await?;
            Ok(complete_settings(
                configured_queues(&self.pool).await?,
                seen,
            ))
        })
        .await
    }

    async fn get_queue_settings(&self, queue: &str) -> StoreResult<QueueSettings> {
        run(async {
            let mut conn = hold(&self.pool).await?;
            let settings = settings_in(&mut conn, queue).await?;
            release(conn).await?;
            Ok(settings)
        })
        .await
    }

    async fn put_queue_settings(&self, settings: &QueueSettings) -> StoreResult<()> {
        settings
            .validate()
            .map_err(|e| StoreError::InvalidInput(e.0))?;
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO queue_settings (name, paused, max_batch, max_concurrency, max_attempts, \
                 backoff_base_ms, backoff_max_ms, lease_secs, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) \
                 ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, max_batch = excluded.max_batch, \
                 max_concurrency = excluded.max_concurrency, max_attempts = excluded.max_attempts, \
                 backoff_base_ms = excluded.backoff_base_ms, backoff_max_ms = excluded.backoff_max_ms, \
                 lease_secs = excluded.lease_secs, updated_at = excluded.updated_at"
            ))
            .bind(&settings.name)
            .bind(settings.paused)
            .bind(settings.max_batch as i32)
            .bind(settings.max_concurrency as i32)
            .bind(settings.max_attempts as i32)
            .bind(settings.backoff_base_ms as i64)
            .bind(settings.backoff_max_ms as i64)
            .bind(settings.lease_secs as i64)
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>> {
        run(async {
            let mut qb = QueryBuilder::<Db>::new(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE TRUE"
            ));
            push_filter(&mut qb, filter);
            qb.push(" ORDER BY id DESC LIMIT ")
                .push_bind(i64::from(filter.limit.unwrap_or(100)));
            let rows = qb.build().fetch_all(&self.pool).await?;
            rows.iter().map(job_from_row).collect()
        })
        .await
    }

    async fn get_job(&self, id: i64) -> StoreResult<Option<JobDetail>> {
        run(async {
            let row = crate::statement::query(sql!(concat!(
                "SELECT ",
                job_columns!(),
                " FROM jobs WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let job = job_from_row(&row)?;
            let rows = crate::statement::query(sql!(
                "SELECT attempt, worker_id, outcome, error_code, error_message, finished_at \
                 FROM job_attempts WHERE job_id = $1 ORDER BY id"
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            let attempts = rows
                .iter()
                .map(|r| {
                    Ok(JobAttempt {
                        attempt: u32_col(r, "attempt")?,
                        worker_id: r.try_get("worker_id")?,
                        outcome: r.try_get("outcome")?,
                        error_code: r.try_get("error_code")?,
                        error_message: r.try_get("error_message")?,
                        finished_at: time(r, "finished_at")?,
                    })
                })
                .collect::<R<Vec<_>>>()?;
            Ok(Some(JobDetail { job, attempts }))
        })
        .await
    }

    async fn retry_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<i64>> {
        run(async {
            let mut qb = QueryBuilder::<Db>::new(format!(
                "UPDATE jobs SET status = 'queued', attempts = 0, run_at = {NOW}, updated_at = {NOW}, \
                 finished_at = NULL WHERE status = 'dead'"
            ));
            push_filter(&mut qb, filter);
            qb.push(" RETURNING id");
            let mut tx = write_tx(&self.pool).await?;
            let mut ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
            tx.commit().await?;
            ids.sort_unstable();
            Ok(ids)
        })
        .await
    }

    async fn purge_jobs(&self, filter: &JobFilter, dry_run: bool) -> StoreResult<Vec<i64>> {
        if filter.status == Some(JobStatus::Running) {
            return Err(StoreError::InvalidInput(
                "running jobs cannot be purged: pause the queue and let them finish first".into(),
            ));
        }
        run(async {
            let (start, end) = if dry_run {
                (
                    "SELECT id FROM jobs WHERE status <> 'running'",
                    " ORDER BY id",
                )
            } else {
                (
                    "DELETE FROM jobs WHERE status <> 'running'",
                    " RETURNING id",
                )
            };
            let mut qb = QueryBuilder::<Db>::new(start);
            push_filter(&mut qb, filter);
            qb.push(end);
            let mut tx = write_tx(&self.pool).await?;
            let mut ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
            tx.commit().await?;
            ids.sort_unstable();
            Ok(ids)
        })
        .await
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        run(async {
            // No scan for queue names: queues without settings show up through their depth rows.
            let settings = complete_settings(configured_queues(&self.pool).await?, []);
            let mut queues: Vec<QueueStatsRow> = settings
                .iter()
                .map(|s| QueueStatsRow {
                    queue: s.name.clone(),
                    paused: s.paused,
                    ..Default::default()
                })
                .collect();
            let depth = crate::statement::query(sql!(
                "SELECT queue, 'queued' AS status, COUNT(*) AS n FROM jobs WHERE status = 'queued' GROUP BY queue \
                 UNION ALL SELECT queue, 'running', COUNT(*) FROM jobs WHERE status = 'running' GROUP BY queue \
                 UNION ALL SELECT queue, 'completed', COUNT(*) FROM jobs WHERE status = 'completed' GROUP BY queue \
                 UNION ALL SELECT queue, 'dead', COUNT(*) FROM jobs WHERE status = 'dead' GROUP BY queue"
            ))
            .fetch_all(&self.pool)
            .await?;
            for row in &depth {
                let queue: String = row.try_get("queue")?;
                let status: String = row.try_get("status")?;
                let n: i64 = row.try_get("n")?;
                stats_row(&mut queues, &queue)
                    .depth
                    .insert(status, n.max(0) as u64);
            }
            let oldest = crate::statement::query(sql!(format!(
                "SELECT queue, {OLDEST_WAITING_SECS} AS age FROM jobs \
                 WHERE status = 'queued' AND run_at <= now() GROUP BY queue"
            )))
            .fetch_all(&self.pool)
            .await?;
            for row in oldest {
                let queue: String = row.try_get("queue")?;
                let age: f64 = row.try_get("age")?;
                stats_row(&mut queues, &queue).oldest_waiting_secs = age.max(0.0) as u64;
            }
            let expired = crate::statement::query(sql!(
                "SELECT queue, COUNT(*) AS n FROM jobs WHERE status = 'running' AND lease_expires_at < now() GROUP BY queue"
            ))
            .fetch_all(&self.pool)
            .await?;
            for (queue, n) in counts(&expired, "queue")? {
                stats_row(&mut queues, &queue).expired_leases = n;
            }
            let mut windows = Vec::new();
            for (name, seconds) in STATS_WINDOWS {
                let completed: i64 = crate::statement::query_scalar(sql!(
                    "SELECT COUNT(*) FROM jobs WHERE status = 'completed' \
                     AND finished_at >= now() - make_interval(secs => $1)"
                ))
                .bind(seconds as f64)
                .fetch_one(&self.pool)
                .await?;
                let failures = crate::statement::query(sql!(
                    "SELECT COALESCE(error_code, 'INTERNAL') AS code, COUNT(*) AS n FROM job_attempts \
                     WHERE finished_at >= now() - make_interval(secs => $1) AND outcome <> 'released' \
                     GROUP BY error_code"
                ))
                .bind(seconds as f64)
                .fetch_all(&self.pool)
                .await?;
                windows.push(WindowStats {
                    window: name.to_owned(),
                    seconds,
                    completed: completed.max(0) as u64,
                    failures_by_code: counts(&failures, "code")?.into_iter().collect(),
                });
            }
            Ok(QueueStats { queues, windows })
        })
        .await
    }
}
