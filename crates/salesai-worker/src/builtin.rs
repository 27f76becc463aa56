//! Job kinds every node knows: diagnostics used by `salesai bench`, smoke tests and the
//! queue's own test suite.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use salesai_core::queue::Job;
use salesai_core::{App, ErrorCode};

use crate::{JobError, JobHandler, Registry};

/// `maintenance.noop`: does nothing, successfully. Measures the queue's own overhead.
pub const NOOP: &str = "maintenance.noop";
/// `maintenance.sleep`: sleeps `{"ms": N}` milliseconds. Holds a lease for a while.
pub const SLEEP: &str = "maintenance.sleep";
/// `maintenance.fail`: fails with `{"code": "…", "retryable": bool}`. Exercises retries and
/// dead letters end to end.
pub const FAIL: &str = "maintenance.fail";

/// Registers the built-in kinds.
pub fn register_builtin(registry: &mut Registry) {
    registry
        .register(NOOP, Arc::new(Noop))
        .register(SLEEP, Arc::new(Sleep))
        .register(FAIL, Arc::new(Fail));
}

struct Noop;

#[async_trait]
impl JobHandler for Noop {
    async fn run(&self, _app: &App, _job: &Job) -> Result<(), JobError> {
        Ok(())
    }
}

struct Sleep;

#[async_trait]
impl JobHandler for Sleep {
    async fn run(&self, _app: &App, job: &Job) -> Result<(), JobError> {
        let ms = job
            .payload
            .get("ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms.min(3_600_000))).await;
        Ok(())
    }
}

struct Fail;

#[async_trait]
impl JobHandler for Fail {
    async fn run(&self, _app: &App, job: &Job) -> Result<(), JobError> {
        let code = job
            .payload
            .get("code")
            .and_then(|v| v.as_str())
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::Internal);
        let retryable = job
            .payload
            .get("retryable")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let message = format!("maintenance.fail asked to fail with {code}");
        Err(if retryable {
            JobError::retryable(code, message)
        } else {
            JobError::terminal(code, message)
        })
    }
}
