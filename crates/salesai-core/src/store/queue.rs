//! The durable job queue: enqueue, lease, heartbeat, finish, fail with backoff, reap.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::queue::{
    Enqueued, FailOutcome, Job, JobDetail, JobFailure, JobFilter, Lease, NewJob, QueueSettings,
    QueueStats, Reaped,
};

use super::StoreResult;

/// The durable job queue: enqueue, lease, complete, fail, reap, and what operators see of it.
///
/// Leases are fenced by `(job id, attempt, worker)`: a worker whose lease was lost cannot
/// complete or fail the job any more.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues one job (or returns the existing one with the same idempotency key).
    async fn enqueue(&self, job: NewJob) -> StoreResult<Enqueued>;

    /// Enqueues several jobs in one transaction.
    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>>;

    /// Leases up to `max` due jobs of `queue` to `worker_id`, unless the queue is paused.
    async fn claim(&self, queue: &str, worker_id: &str, max: u32) -> StoreResult<Vec<Job>>;

    /// Marks a leased job completed. False when the lease was lost.
    async fn complete(&self, lease: &Lease) -> StoreResult<bool>;

    /// Marks a leased job completed and leases up to `max` due jobs of `queue` to `worker_id`
    /// in one round trip where the backend can (PostgreSQL: one statement): a worker that
    /// finishes a job asks for its next one at the same time. Returns whether the lease was
    /// still held (as `complete`) and the jobs claimed (as `claim`).
    async fn complete_and_claim(
        &self,
        lease: &Lease,
        queue: &str,
        worker_id: &str,
        max: u32,
    ) -> StoreResult<(bool, Vec<Job>)>;

    /// Marks several leased jobs completed in one statement; returns how many were still held.
    async fn complete_many(&self, leases: &[Lease]) -> StoreResult<u64>;

    /// Records a failed attempt and queues the job again after a backoff, or moves it to dead.
    async fn fail(&self, lease: &Lease, failure: &JobFailure) -> StoreResult<FailOutcome>;

    /// Puts a leased job back for `run_at` without spending an attempt: a provider said
    /// "retry after", which is not the job's fault. The reschedule is still recorded in the
    /// job's history under `code`.
    async fn reschedule(
        &self,
        lease: &Lease,
        run_at: DateTime<Utc>,
        code: &str,
        message: &str,
    ) -> StoreResult<bool>;

    /// Returns leased jobs to the queue at once without spending an attempt (graceful
    /// shutdown ran out of time).
    async fn release(&self, leases: &[Lease]) -> StoreResult<u64>;

    /// Extends the leases of jobs a live worker still runs.
    async fn extend_leases(&self, leases: &[Lease]) -> StoreResult<u64>;

    /// Ends now the leases held by these workers, known to be gone (an earlier incarnation of a
    /// restarted node), so the next reap returns their jobs without waiting for the leases to
    /// run out. Returns how many leases ended.
    async fn expire_leases_of(&self, worker_ids: &[String]) -> StoreResult<u64>;

    /// The workers that hold leases now.
    async fn lease_holders(&self) -> StoreResult<Vec<String>>;

    /// Returns jobs whose lease ran out to the queue, or to dead when their attempts are spent.
    async fn reap_expired_leases(&self) -> StoreResult<Reaped>;

    /// Every queue's settings, the built-in queues always included.
    async fn queue_settings(&self) -> StoreResult<Vec<QueueSettings>>;

    /// One queue's settings (defaults when the queue has never been configured).
    async fn get_queue_settings(&self, queue: &str) -> StoreResult<QueueSettings>;

    /// Saves a queue's settings (the paused flag included).
    async fn put_queue_settings(&self, settings: &QueueSettings) -> StoreResult<()>;

    /// Lists jobs, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>>;

    /// One job with its attempt history.
    async fn get_job(&self, id: i64) -> StoreResult<Option<JobDetail>>;

    /// Queues matching dead jobs again with fresh attempts; returns their ids.
    async fn retry_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<i64>>;

    /// Deletes matching jobs that are not running (or, with `dry_run`, only lists them);
    /// returns the ids deleted or that would be.
    async fn purge_jobs(&self, filter: &JobFilter, dry_run: bool) -> StoreResult<Vec<i64>>;

    /// Depth, age and recent outcomes.
    async fn queue_stats(&self) -> StoreResult<QueueStats>;
}
