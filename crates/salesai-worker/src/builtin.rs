//! Job kinds every node knows: diagnostics used by `salesai bench`, smoke tests and the
//! queue's own test suite.

use std::time::Duration;

use async_trait::async_trait;
use salesai_core::queue::{Job, JobKind, MAINTENANCE};
use salesai_core::{App, ErrorCode};
use serde::{Deserialize, Serialize};

use crate::{Handler, JobError, Registry};

/// `maintenance.noop`: does nothing, successfully. Measures the queue's own overhead.
pub const NOOP: &str = "maintenance.noop";
/// `maintenance.sleep`: sleeps `{"ms": N}` milliseconds. Holds a lease for a while.
pub const SLEEP: &str = "maintenance.sleep";
/// `maintenance.fail`: fails with `{"code": "…", "retryable": bool}`. Exercises retries and
/// dead letters end to end.
pub const FAIL: &str = "maintenance.fail";

salesai_core::empty_job!(
    /// The payload of [`NOOP`].
    NoopJob = NOOP, MAINTENANCE
);

/// The payload of [`SLEEP`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SleepJob {
    /// How long to hold the lease (at most an hour).
    #[serde(default = "default_sleep_ms")]
    pub ms: u64,
}

fn default_sleep_ms() -> u64 {
    100
}

impl JobKind for SleepJob {
    const KIND: &'static str = SLEEP;
    const QUEUE: &'static str = MAINTENANCE;
}

/// The payload of [`FAIL`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailJob {
    /// The error code to fail with (`INTERNAL` when missing or unknown).
    #[serde(default)]
    pub code: Option<String>,
    /// Whether the failure is retryable.
    #[serde(default = "default_retryable")]
    pub retryable: bool,
}

fn default_retryable() -> bool {
    true
}

impl JobKind for FailJob {
    const KIND: &'static str = FAIL;
    const QUEUE: &'static str = MAINTENANCE;
}

/// Registers the built-in kinds.
pub fn register_builtin(registry: &mut Registry) {
    registry.add(Noop).add(Sleep).add(Fail);
}

struct Noop;

#[async_trait]
impl Handler for Noop {
    type Kind = NoopJob;

    async fn run(&self, _app: &App, _job: &Job, _: NoopJob) -> Result<(), JobError> {
        Ok(())
    }
}

struct Sleep;

#[async_trait]
impl Handler for Sleep {
    type Kind = SleepJob;

    async fn run(&self, _app: &App, _job: &Job, payload: SleepJob) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(payload.ms.min(3_600_000))).await;
        Ok(())
    }
}

struct Fail;

#[async_trait]
impl Handler for Fail {
    type Kind = FailJob;

    async fn run(&self, _app: &App, _job: &Job, payload: FailJob) -> Result<(), JobError> {
        let code = payload
            .code
            .as_deref()
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::Internal);
        let message = format!("maintenance.fail asked to fail with {code}");
        Err(if payload.retryable {
            JobError::retryable(code, message)
        } else {
            JobError::terminal(code, message)
        })
    }
}
