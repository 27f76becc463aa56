//! The runner loop: one claim loop per queue, a heartbeat that renews leases, a reaper that
//! returns dead workers' jobs, and a graceful shutdown.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use salesai_core::queue::{FailOutcome, Job, JobFailure, Lease, QueueSettings};
use salesai_core::{App, ErrorCode};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::{JobError, Registry};

/// How a node runs its workers.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This node's id in leases and logs; unique per process.
    pub worker_id: String,
    /// The queues to take jobs from.
    pub queues: Vec<String>,
    /// How long an idle queue loop waits before claiming again.
    pub poll_interval: Duration,
    /// How often queue settings (pause, concurrency, batch) are re-read from the database.
    pub settings_refresh: Duration,
    /// How often this node looks for expired leases.
    pub reap_interval: Duration,
    /// How long shutdown waits for running jobs before returning them to the queue.
    pub shutdown_grace: Duration,
}

impl WorkerOptions {
    /// Defaults for `worker_id` on the built-in queues.
    pub fn new(worker_id: impl Into<String>) -> Self {
        WorkerOptions {
            worker_id: worker_id.into(),
            queues: salesai_core::queue::BUILTIN_QUEUES
                .iter()
                .map(|q| q.to_string())
                .collect(),
            poll_interval: Duration::from_millis(250),
            settings_refresh: Duration::from_secs(2),
            reap_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

struct Shared {
    app: App,
    registry: Registry,
    options: WorkerOptions,
    in_flight: Mutex<HashMap<i64, Lease>>,
    /// Cancelled when the grace period is over: running handlers are dropped.
    hard_stop: CancellationToken,
}

impl Shared {
    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Lease>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs workers until `shutdown` is cancelled, then stops claiming, lets running jobs finish
/// within the grace period, and returns the rest to the queue without spending an attempt.
pub async fn run(
    app: App,
    registry: Registry,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        app,
        registry,
        options,
        in_flight: Mutex::new(HashMap::new()),
        hard_stop: CancellationToken::new(),
    });
    let tracker = TaskTracker::new();
    let stopped = CancellationToken::new();
    info!(
        event = "worker.started",
        worker_id = %shared.options.worker_id,
        queues = ?shared.options.queues,
        kinds = ?shared.registry.kinds(),
        "worker started"
    );

    // Leases still held under this worker's own id belong to its previous incarnation (a
    // process that is just starting holds none): they end now, not when they run out.
    recover_leases(&shared, true).await;
    let heartbeat = tokio::spawn(heartbeat(shared.clone(), stopped.clone()));
    let reaper = tokio::spawn(reaper(shared.clone(), shutdown.clone()));
    let loops: Vec<_> = shared
        .options
        .queues
        .clone()
        .into_iter()
        .map(|queue| {
            tokio::spawn(queue_loop(
                shared.clone(),
                queue,
                tracker.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    for handle in loops {
        let _ = handle.await;
    }

    // No more claims. Let running jobs finish, within the grace period.
    tracker.close();
    let running = shared.in_flight().len();
    if running > 0 {
        info!(
            event = "worker.draining",
            worker_id = %shared.options.worker_id,
            running,
            grace_ms = shared.options.shutdown_grace.as_millis() as u64,
            "waiting for running jobs"
        );
    }
    if tokio::time::timeout(shared.options.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        shared.hard_stop.cancel();
        tracker.wait().await;
    }
    let leftover: Vec<Lease> = shared.in_flight().drain().map(|(_, l)| l).collect();
    if !leftover.is_empty() {
        match shared.app.store.release(&leftover).await {
            Ok(released) => warn!(
                event = "worker.released",
                worker_id = %shared.options.worker_id,
                released,
                "grace period over; returned unfinished jobs to the queue"
            ),
            Err(err) => error!(
                event = "worker.release_failed",
                error = %err,
                "could not return unfinished jobs; their leases will expire and the reaper will"
            ),
        }
    }
    stopped.cancel();
    let _ = heartbeat.await;
    let _ = reaper.await;
    info!(event = "worker.stopped", worker_id = %shared.options.worker_id, "worker stopped");
}

async fn sleep_or(token: &CancellationToken, duration: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = token.cancelled() => {}
    }
}

async fn queue_loop(
    shared: Arc<Shared>,
    queue: String,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let store = shared.app.store.clone();
    let running = Arc::new(AtomicUsize::new(0));
    // The queue's concurrency as last read: a job that finishes takes the next one itself only
    // while its queue is within it.
    let limit = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(Notify::new());
    let mut settings = QueueSettings::defaults_for(&queue);
    let mut refreshed: Option<Instant> = None;
    let mut was_paused = false;
    while !shutdown.is_cancelled() {
        if refreshed.is_none_or(|at| at.elapsed() >= shared.options.settings_refresh) {
            match store.get_queue_settings(&queue).await {
                Ok(fresh) => settings = fresh,
                Err(err) => {
                    warn!(event = "queue.settings_failed", queue = %queue, error = %err, "could not read queue settings")
                }
            }
            refreshed = Some(Instant::now());
            if settings.paused != was_paused {
                info!(event = if settings.paused { "queue.paused" } else { "queue.resumed" }, queue = %queue, "queue {}", if settings.paused { "paused" } else { "resumed" });
                was_paused = settings.paused;
            }
        }
        if settings.paused {
            sleep_or(&shutdown, shared.options.poll_interval).await;
            continue;
        }
        let busy = running.load(Ordering::Acquire);
        limit.store(settings.max_concurrency as usize, Ordering::Release);
        let limit_now = settings.max_concurrency as usize;
        if busy >= limit_now {
            tokio::select! {
                _ = finished.notified() => {}
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(shared.options.poll_interval) => {}
            }
            continue;
        }
        let want = (limit_now - busy).min(settings.max_batch as usize) as u32;
        let jobs = match store.claim(&queue, &shared.options.worker_id, want).await {
            Ok(jobs) => jobs,
            Err(err) => {
                warn!(event = "queue.claim_failed", queue = %queue, error_code = %err.code(), error = %err, "claim failed");
                sleep_or(&shutdown, Duration::from_secs(1)).await;
                continue;
            }
        };
        if jobs.is_empty() {
            sleep_or(&shutdown, shared.options.poll_interval).await;
            continue;
        }
        for job in jobs {
            let Some(lease) = job.lease() else { continue };
            running.fetch_add(1, Ordering::AcqRel);
            shared.in_flight().insert(job.id, lease.clone());
            let shared = shared.clone();
            let running = running.clone();
            let limit = limit.clone();
            let finished = finished.clone();
            let shutdown = shutdown.clone();
            tracker.spawn(async move {
                // A job cut off by the end of the grace period keeps its entry in the
                // in-flight map; shutdown releases it. A job that completes while work is
                // waiting hands its slot to the next job it claims in the same round trip.
                let more = || {
                    !shutdown.is_cancelled()
                        && running.load(Ordering::Acquire) <= limit.load(Ordering::Acquire)
                };
                let mut next = Some((job, lease));
                while let Some((job, lease)) = next.take() {
                    next = run_one(&shared, job, lease, &more).await;
                }
                running.fetch_sub(1, Ordering::AcqRel);
                finished.notify_one();
            });
        }
    }
}

/// The longest a job's end is retried while the database cannot record it (see
/// [`crate::until_stored`]): the job stays in the in-flight map meanwhile, so the heartbeat
/// keeps its lease once the database is back, and it is settled then — not left to run out
/// its lease and run (and pay its providers) a second time. Past this another node may have
/// taken it over; the recording then finds the lease lost.
const SETTLE_FOR: Duration = Duration::from_secs(300);

/// Runs one job and records its outcome. A job cut off by the end of the grace period returns
/// without recording anything: its lease stays in the in-flight map for shutdown to release.
/// A job that succeeds while `more()` says the worker may go on is completed with its queue's
/// next job claimed in the same call; that job, already in the in-flight map, is returned.
async fn run_one(
    shared: &Shared,
    job: Job,
    lease: Lease,
    more: &(dyn Fn() -> bool + Sync),
) -> Option<(Job, Lease)> {
    let started = Instant::now();
    debug!(event = "job.started", job_id = job.id, queue = %job.queue, kind = %job.kind, attempt = job.attempts, "job started");
    let result = match shared.registry.get(&job.kind) {
        None => Err(JobError::terminal(
            ErrorCode::UnknownJobKind,
            format!(
                "no handler for job kind {:?} on worker {}; deploy a salesai that knows it, then retry the job",
                job.kind, shared.options.worker_id
            ),
        )),
        Some(handler) => {
            let work = AssertUnwindSafe(handler.run(&shared.app, &job)).catch_unwind();
            tokio::select! {
                outcome = work => match outcome {
                    Ok(result) => result,
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        Err(JobError::retryable(ErrorCode::Internal, format!("handler panicked: {what}")))
                    }
                },
                _ = shared.hard_stop.cancelled() => return None,
            }
        }
    };
    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_millis() as u64;
    let store = &shared.app.store;
    let mut next = None;
    let (outcome, code) = match result {
        Ok(()) => match crate::until_stored(
            "job completion",
            SETTLE_FOR,
            Some(&shared.hard_stop),
            || async {
                if more() {
                    store
                        .complete_and_claim(&lease, &job.queue, &lease.worker_id, 1)
                        .await
                } else {
                    store.complete(&lease).await.map(|done| (done, Vec::new()))
                }
            },
        )
        .await
        {
            Ok((done, claimed)) => {
                next = claimed.into_iter().find_map(|j| j.lease().map(|l| (j, l)));
                if let Some((j, l)) = &next {
                    shared.in_flight().insert(j.id, l.clone());
                }
                if done {
                    info!(event = "job.completed", job_id = job.id, queue = %job.queue, kind = %job.kind, attempt = job.attempts, duration_ms, worker_id = %lease.worker_id, "job completed");
                    ("completed", String::new())
                } else {
                    warn!(event = "job.lease_lost", job_id = job.id, queue = %job.queue, kind = %job.kind, duration_ms, "job finished after its lease was taken over; result not recorded");
                    ("lease_lost", String::new())
                }
            }
            Err(err) => {
                error!(event = "job.record_failed", job_id = job.id, error_code = %err.code(), error = %err, "could not record completion before shutdown; the lease will expire and the job run again");
                ("record_failed", err.code().to_string())
            }
        },
        Err(JobError::RetryAt { at, code, message }) => {
            match crate::until_stored(
                "job reschedule",
                SETTLE_FOR,
                Some(&shared.hard_stop),
                || store.reschedule(&lease, at, code.as_str(), &message),
            )
            .await
            {
                Ok(_) => {
                    info!(event = "job.rescheduled", job_id = job.id, queue = %job.queue, kind = %job.kind, error_code = %code, run_at = %at, "job rescheduled")
                }
                Err(err) => {
                    error!(event = "job.record_failed", job_id = job.id, error = %err, "could not reschedule")
                }
            }
            ("rescheduled", code.to_string())
        }
        Err(err @ (JobError::Retryable { .. } | JobError::Terminal { .. })) => {
            let (code, message, retryable) = match &err {
                JobError::Retryable { code, message } => (*code, message.clone(), true),
                JobError::Terminal { code, message } => (*code, message.clone(), false),
                JobError::RetryAt { .. } => unreachable!("handled above"),
            };
            let failure = JobFailure {
                code: code.to_string(),
                message: message.clone(),
                retryable,
            };
            match crate::until_stored("job failure", SETTLE_FOR, Some(&shared.hard_stop), || {
                store.fail(&lease, &failure)
            })
            .await
            {
                Ok(FailOutcome::Retrying { run_at }) => {
                    warn!(event = "job.failed", job_id = job.id, queue = %job.queue, kind = %job.kind, attempt = job.attempts, error_code = %code, error = %message, run_at = %run_at, duration_ms, "job failed; will retry");
                    ("retrying", code.to_string())
                }
                Ok(FailOutcome::Dead) => {
                    error!(event = "job.dead", job_id = job.id, queue = %job.queue, kind = %job.kind, attempt = job.attempts, error_code = %code, error = %message, duration_ms, "job failed for good; moved to dead letters");
                    ("dead", code.to_string())
                }
                Ok(FailOutcome::LeaseLost) => ("lease_lost", code.to_string()),
                Err(store_err) => {
                    error!(event = "job.record_failed", job_id = job.id, error = %store_err, "could not record failure");
                    ("record_failed", code.to_string())
                }
            }
        }
    };
    shared
        .app
        .metrics
        .observe_job(&job.queue, &job.kind, outcome, &code, elapsed);
    shared.in_flight().remove(&job.id);
    next
}

async fn heartbeat(shared: Arc<Shared>, stopped: CancellationToken) {
    loop {
        // Renew at a third of the shortest lease, so two renewals can fail before one expires.
        let mut shortest = 60u64;
        for queue in &shared.options.queues {
            if let Ok(settings) = shared.app.store.get_queue_settings(queue).await {
                shortest = shortest.min(settings.lease_secs);
            }
        }
        let interval = Duration::from_millis((shortest * 1000 / 3).clamp(200, 10_000));
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.cancelled() => return,
        }
        let leases: Vec<Lease> = shared.in_flight().values().cloned().collect();
        if leases.is_empty() {
            continue;
        }
        if let Err(err) = shared.app.store.extend_leases(&leases).await {
            warn!(event = "worker.heartbeat_failed", error = %err, "could not renew leases");
        }
    }
}

/// The workers that hold leases but are known to be gone: this host's `<host>-<pid>` ids
/// whose process no longer runs, and — at start only — this worker's own id.
fn gone_workers(holders: &[String], own: &str, at_start: bool) -> Vec<String> {
    holders
        .iter()
        .filter(|holder| {
            if holder.as_str() == own {
                at_start
            } else {
                crate::is_gone_here(holder)
            }
        })
        .cloned()
        .collect()
}

/// Ends the leases of workers known to be gone (see [`gone_workers`]) and reaps them at once:
/// a restarted node resumes its own dead jobs in seconds, not after the lease (other nodes'
/// workers still wait for theirs to run out).
async fn recover_leases(shared: &Shared, at_start: bool) {
    let store = &shared.app.store;
    let holders = match store.lease_holders().await {
        Ok(holders) => holders,
        Err(err) => {
            warn!(event = "queue.recover_failed", error = %err, "could not list lease holders");
            return;
        }
    };
    let gone = gone_workers(&holders, &shared.options.worker_id, at_start);
    if gone.is_empty() {
        return;
    }
    match store.expire_leases_of(&gone).await {
        Ok(ended) if ended > 0 => {
            info!(event = "queue.leases_recovered", workers = ?gone, leases = ended, "ended the leases of workers that are gone");
            if let Err(err) = store.reap_expired_leases().await {
                warn!(event = "queue.reap_failed", error = %err, "could not reap the recovered leases");
            }
        }
        Ok(_) => {}
        Err(err) => {
            warn!(event = "queue.recover_failed", error = %err, "could not end the leases of gone workers")
        }
    }
}

async fn reaper(shared: Arc<Shared>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        recover_leases(&shared, false).await;
        match shared.app.store.reap_expired_leases().await {
            Ok(reaped) if reaped.requeued + reaped.dead > 0 => warn!(
                event = "queue.leases_expired",
                requeued = reaped.requeued,
                dead = reaped.dead,
                "returned jobs of a worker that stopped renewing its leases"
            ),
            Ok(_) => {}
            Err(err) => {
                warn!(event = "queue.reap_failed", error = %err, "could not reap expired leases")
            }
        }
        sleep_or(&shutdown, shared.options.reap_interval).await;
    }
}
