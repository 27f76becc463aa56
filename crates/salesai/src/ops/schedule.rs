//! Scheduled maintenance: every `serve`/`worker` process checks once a minute whether today's
//! backup (`SALESAI_BACKUP_AT`) and retention run (`SALESAI_PRUNE_AT`) are due, local time in
//! `SALESAI_TIME_ZONE`, and enqueues `maintenance.backup` / `maintenance.prune` with the date as
//! the idempotency key, so across any number of nodes each runs once a day, on whichever node's
//! worker claims it.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveTime, Utc};
use salesai_core::queue::{Job, MAINTENANCE, NewJob};
use salesai_core::{App, ErrorCode};
use salesai_db::Database;
use salesai_worker::{Handler, JobError};
use tokio_util::sync::CancellationToken;

/// The backup job kind.
pub const BACKUP: &str = "maintenance.backup";
/// The retention job kind.
pub const PRUNE: &str = "maintenance.prune";
/// The job-history purge kind: completed jobs older than `SALESAI_JOBS_KEEP_DAYS`.
pub const PURGE_JOBS: &str = "maintenance.purge_jobs";

salesai_core::empty_job!(
    /// The payload of [`BACKUP`].
    BackupRun = BACKUP, MAINTENANCE
);
salesai_core::empty_job!(
    /// The payload of [`PRUNE`].
    PruneRun = PRUNE, MAINTENANCE
);
salesai_core::empty_job!(
    /// The payload of [`PURGE_JOBS`].
    PurgeJobsRun = PURGE_JOBS, MAINTENANCE
);

use super::period::due_key;

/// Enqueues each daily task (`(local time, job)`) when it is due, every minute until `stop`.
pub async fn run_daily_schedule(
    app: App,
    tasks: Vec<(NaiveTime, NewJob)>,
    stop: CancellationToken,
) {
    loop {
        for (at, task) in &tasks {
            let kind = task.kind.as_str();
            let Some(key) = due_key(kind, Utc::now(), app.time_zone, *at) else {
                continue;
            };
            let job = task.clone().idempotency_key(key);
            match app.store.enqueue(job).await {
                Ok(e) if e.created => {
                    tracing::info!(
                        event = "maintenance.scheduled",
                        kind,
                        job_id = e.id,
                        "queued today's run"
                    )
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(event = "maintenance.schedule_failed", kind, error = %err, "could not queue today's run; trying again in a minute")
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

/// Starts this process's schedulers: the daily tasks its configuration enables (backups,
/// retention, the job-history purge) and the ops-alert schedule, until `shutdown`.
pub fn spawn(app: &App, config: &crate::config::Config, shutdown: &CancellationToken) {
    let mut daily = Vec::new();
    if let Some(at) = config.backup_at {
        daily.push((
            at,
            salesai_core::queue::NewJob::of(&crate::ops::schedule::BackupRun {}),
        ));
        tracing::info!(event = "backup.schedule", at = %at.format("%H:%M"), time_zone = %config.time_zone, dir = %config.backup_dir.display(), "daily backups scheduled");
    }
    if let Some(prune) = &config.prune {
        daily.push((
            prune.at,
            salesai_core::queue::NewJob::of(&crate::ops::schedule::PruneRun {}),
        ));
        tracing::info!(event = "prune.schedule", at = %prune.at.format("%H:%M"), older_than_days = prune.older_than.num_days(), audio_only = prune.audio_only, "daily retention scheduled");
    }
    if config.jobs_keep_days > 0 {
        daily.push((
            config.jobs_purge_at,
            salesai_core::queue::NewJob::of(&crate::ops::schedule::PurgeJobsRun {}),
        ));
    }
    if !daily.is_empty() {
        tokio::spawn(crate::ops::schedule::run_daily_schedule(
            app.clone(),
            daily,
            shutdown.clone(),
        ));
    }
    tokio::spawn(crate::ops::monitor::run_schedule(
        app.clone(),
        config.clone(),
        shutdown.clone(),
    ));
}

/// Runs `backup create` as a job.
pub struct BackupJob {
    /// The database to back up.
    pub database: Database,
    /// Where backups go.
    pub dir: PathBuf,
    /// How many to keep.
    pub keep: usize,
}

#[async_trait]
impl Handler for BackupJob {
    type Kind = BackupRun;

    async fn run(&self, _app: &App, _job: &Job, _: BackupRun) -> Result<(), JobError> {
        let m = salesai_db::backup::create(&self.database, &self.dir, self.keep)
            .await
            .map_err(|e| {
                JobError::retryable(ErrorCode::StorageError, format!("backup failed: {e}"))
            })?;
        let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
        tracing::info!(event = "backup.created", name = %m.name, rows, bytes = m.bytes, dir = %self.dir.display(), "backup created");
        Ok(())
    }
}

/// Runs retention as a job.
pub struct PruneJob {
    /// Age of the completed conversations to prune.
    pub older_than: chrono::Duration,
    /// Delete only their audio.
    pub audio_only: bool,
}

#[async_trait]
impl Handler for PruneJob {
    type Kind = PruneRun;

    async fn run(&self, app: &App, _job: &Job, _: PruneRun) -> Result<(), JobError> {
        let cases = crate::ops::prune::prune(app, self.older_than, self.audio_only, false, 100)
            .await
            .map_err(|e| {
                JobError::retryable(ErrorCode::StorageError, format!("prune failed: {e:#}"))
            })?;
        tracing::info!(
            event = "prune.completed",
            count = cases.len(),
            audio_only = self.audio_only,
            "retention run"
        );
        Ok(())
    }
}

/// Deletes completed jobs older than `keep` (dead ones stay: they are the dead letters). The
/// queue's statistics read only the last 24 hours.
pub struct PurgeJobsJob {
    /// How long completed jobs are kept.
    pub keep: chrono::Duration,
}

#[async_trait]
impl Handler for PurgeJobsJob {
    type Kind = PurgeJobsRun;

    async fn run(&self, app: &App, _job: &Job, _: PurgeJobsRun) -> Result<(), JobError> {
        let purged = app
            .store
            .purge_jobs(
                &salesai_core::queue::JobFilter {
                    status: Some(salesai_core::queue::JobStatus::Completed),
                    older_than: Some(Utc::now() - self.keep),
                    ..Default::default()
                },
                false,
            )
            .await
            .map_err(|e| JobError::retryable(ErrorCode::DatabaseError, e.to_string()))?;
        tracing::info!(
            event = "jobs.purged",
            count = purged.len(),
            keep_days = self.keep.num_days(),
            "purged completed jobs"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_daily_task_is_due_from_its_local_time_once_a_day() {
        let at = NaiveTime::from_hms_opt(3, 0, 0).unwrap();
        let tz = chrono_tz::Asia::Taipei;
        // 18:59 UTC is 02:59 in Taipei: not yet.
        let before = Utc.with_ymd_and_hms(2026, 11, 27, 18, 59, 0).unwrap();
        assert_eq!(due_key("backup", before, tz, at), None);
        // 19:00 UTC is 03:00 the next day in Taipei.
        let due = Utc.with_ymd_and_hms(2026, 11, 27, 19, 0, 0).unwrap();
        assert_eq!(
            due_key("backup", due, tz, at).as_deref(),
            Some("backup:2026-11-28")
        );
        let later = Utc.with_ymd_and_hms(2026, 11, 28, 10, 0, 0).unwrap();
        assert_eq!(
            due_key("backup", later, tz, at).as_deref(),
            Some("backup:2026-11-28"),
            "the same key all day"
        );
    }
}
