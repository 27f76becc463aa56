//! The job runner: claims jobs from the durable queue with a lease, runs their handlers,
//! renews the leases of jobs still running, returns the jobs of dead workers to the queue, and
//! shuts down gracefully.
//!
//! Architecture invariant: handlers are idempotent. A job may run more than once (its worker
//! died after finishing but before recording it), so a handler checks its own checkpoints
//! before paying for work again.

mod builtin;
pub mod jobs;
mod runner;

pub use builtin::{FAIL, FailJob, NOOP, NoopJob, SLEEP, SleepJob, register_builtin};
pub use jobs::register_pipeline;
pub use runner::{WorkerOptions, run};

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use salesai_core::queue::{Job, JobKind};
use salesai_core::{App, ErrorCode};

/// Runs a store write again while the database does not answer — an outage, a full disk —
/// from 200 ms, doubling to every 2 s, for at most `limit` or until `stop` is cancelled: for
/// what must not be lost once it was paid for (an agent's answer, a chunk's transcript, a
/// job's end), so a job goes on as soon as the database is back instead of failing and paying
/// its provider again. Errors that are not the database's (a conflict, bad input) are returned
/// at once.
pub(crate) async fn until_stored<T, F, Fut>(
    what: &str,
    limit: std::time::Duration,
    stop: Option<&tokio_util::sync::CancellationToken>,
    write: F,
) -> salesai_core::store::StoreResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = salesai_core::store::StoreResult<T>>,
{
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let mut wait = Duration::from_millis(200);
    let mut tries = 0u32;
    let stopped = || stop.is_some_and(|s| s.is_cancelled());
    loop {
        match write().await {
            Ok(value) => {
                if tries > 0 {
                    tracing::info!(
                        event = "db.write_settled",
                        what,
                        tries,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "written once the database answered"
                    );
                }
                return Ok(value);
            }
            Err(err)
                if err.code() == ErrorCode::DatabaseError
                    && started.elapsed() < limit
                    && !stopped() =>
            {
                tries += 1;
                if tries == 1 {
                    tracing::warn!(event = "db.write_retrying", what, error = %err, "could not write; retrying until the database answers");
                }
                match stop {
                    Some(stop) => tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => return Err(err),
                    },
                    None => tokio::time::sleep(wait).await,
                }
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(err) => return Err(err),
        }
    }
}

/// This machine's host name (`node` when it has none): the first part of a default worker id.
pub fn node_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

/// The default worker id, `<host>-<pid>`: unique per process, and recognisable by a later
/// process on the same host as belonging to one that is gone.
pub fn default_worker_id() -> String {
    format!("{}-{}", node_host(), std::process::id())
}

/// Whether `worker_id` names a process of this host that is gone: a `<host>-<pid>` id (the
/// default) whose host is this one and whose process no longer runs. Ids of other hosts, and
/// ids that are not of that form, are never called gone.
pub fn is_gone_here(worker_id: &str) -> bool {
    worker_id
        .strip_prefix(&node_host())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
}

/// Why a job attempt did not succeed, and what the queue should do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Try again after the queue's backoff (until the attempts are spent).
    Retryable {
        /// The stable code.
        code: ErrorCode,
        /// What happened.
        message: String,
    },
    /// Do not try again: the job goes to dead at once.
    Terminal {
        /// The stable code.
        code: ErrorCode,
        /// What happened.
        message: String,
    },
    /// A provider asked us to come back at `at` (a 429's `retry-after`). Not an attempt.
    RetryAt {
        /// When to run again.
        at: DateTime<Utc>,
        /// The stable code (usually `RATE_LIMITED`).
        code: ErrorCode,
        /// What happened.
        message: String,
    },
}

impl JobError {
    /// A retryable failure.
    pub fn retryable(code: ErrorCode, message: impl Into<String>) -> Self {
        JobError::Retryable {
            code,
            message: message.into(),
        }
    }

    /// A terminal failure.
    pub fn terminal(code: ErrorCode, message: impl Into<String>) -> Self {
        JobError::Terminal {
            code,
            message: message.into(),
        }
    }

    /// A failure with the code's default retryability.
    pub fn from_code(code: ErrorCode, message: impl Into<String>) -> Self {
        if code.retryable_by_default() {
            JobError::retryable(code, message)
        } else {
            JobError::terminal(code, message)
        }
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            JobError::Retryable { code, .. }
            | JobError::Terminal { code, .. }
            | JobError::RetryAt { code, .. } => *code,
        }
    }
}

/// Runs jobs of one kind, with their payload decoded.
///
/// The kind's name, queue and payload type are declared once, on the payload type
/// ([`JobKind`]); registering the handler with [`Registry::add`] is all a new kind needs.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The kind this handler runs, whose payload it receives.
    type Kind: JobKind;

    /// Does the job's work. Must be idempotent (see the crate docs).
    async fn run(&self, app: &App, job: &Job, payload: Self::Kind) -> Result<(), JobError>;
}

/// A handler as the runner calls it: decodes the payload, then runs the typed handler. A
/// payload that does not decode will not decode on the next attempt either: a terminal
/// `INVALID_INPUT` naming the decode error.
#[async_trait]
trait Erased: Send + Sync + 'static {
    async fn run(&self, app: &App, job: &Job) -> Result<(), JobError>;
}

struct Decoding<H>(H);

#[async_trait]
impl<H: Handler> Erased for Decoding<H> {
    async fn run(&self, app: &App, job: &Job) -> Result<(), JobError> {
        let payload = H::Kind::decode(job)
            .map_err(|message| JobError::terminal(ErrorCode::InvalidInput, message))?;
        self.0.run(app, job, payload).await
    }
}

/// The handlers a node runs, by job kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Erased>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `handler` for its kind, replacing any earlier one.
    pub fn add<H: Handler>(&mut self, handler: H) -> &mut Self {
        self.handlers
            .insert(H::Kind::KIND.to_owned(), Arc::new(Decoding(handler)));
        self
    }

    /// Whether `kind` has a handler.
    pub fn handles(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    /// The handler for `kind`.
    fn get(&self, kind: &str) -> Option<&Arc<dyn Erased>> {
        self.handlers.get(kind)
    }

    /// The kinds this registry handles, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::{is_gone_here, node_host};

    #[test]
    fn gone_means_this_host_and_no_such_process() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let host = node_host();
        assert!(is_gone_here(&format!("{host}-{dead}")));
        assert!(
            !is_gone_here(&format!("{host}-{}", std::process::id())),
            "this process"
        );
        assert!(
            !is_gone_here(&format!("another-host-{dead}")),
            "another host's"
        );
        assert!(!is_gone_here("w-configured"), "not of the default form");
    }
}
