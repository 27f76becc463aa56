//! The durable job queue's vocabulary: queues and their settings, jobs, leases, failures, and
//! the backoff rule. The SQL that moves jobs lives in `salesai-db`; everything here is pure.
//!
//! A job moves `queued → running → completed`, or back to `queued` (retry after a backoff, a
//! provider's `retry-after`, or an expired lease), or to `dead` when its attempts are spent or
//! its failure is terminal. Dead jobs keep their kind, payload and attempt history until an
//! operator retries or purges them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;

/// The queue that carries conversation processing (prepare, transcribe, analyse).
pub const CONVERSATIONS: &str = "conversations";
/// The queue that carries notifications (Slack messages, webhooks).
pub const NOTIFICATIONS: &str = "notifications";
/// The queue that carries maintenance (backups, retention, diagnostics).
pub const MAINTENANCE: &str = "maintenance";
/// The queues every salesai database has.
pub const BUILTIN_QUEUES: [&str; 3] = [CONVERSATIONS, NOTIFICATIONS, MAINTENANCE];

/// Checks a queue name: 1–64 lower-case letters, digits, `_`, `-` or `.`.
pub fn parse_queue_name(raw: &str) -> Result<String, InvalidInput> {
    if raw.is_empty()
        || raw.len() > 64
        || !raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
    {
        return Err(InvalidInput(format!(
            "queue name {raw:?} must be 1 to 64 lower-case letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(raw.to_owned())
}

/// A queue's settings. They live in the database, so a change made on one node (or with
/// `salesai queue set`) applies to every node without a redeploy, and a pause survives restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueSettings {
    /// The queue's name.
    pub name: String,
    /// A paused queue accepts jobs but dispatches none.
    pub paused: bool,
    /// How many jobs one claim may take at once.
    pub max_batch: u32,
    /// How many of this queue's jobs one node runs at once.
    pub max_concurrency: u32,
    /// Attempts before a job goes dead (the runbook's `max_retries`).
    pub max_attempts: u32,
    /// The first retry's delay; each later one doubles, up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    /// The longest delay between two attempts.
    pub backoff_max_ms: u64,
    /// How long a claim holds a job before another node may take it; workers renew it while a
    /// job runs, so it only has to outlast a crash, not the job.
    pub lease_secs: u64,
}

impl QueueSettings {
    /// The settings a queue starts with.
    pub fn defaults_for(name: &str) -> Self {
        let (max_batch, max_concurrency) = match name {
            CONVERSATIONS => (4, 4),
            NOTIFICATIONS => (10, 8),
            _ => (1, 1),
        };
        // Six attempts with a 5 s base: 77–155 s of backoff before the last one, so a lone
        // call outlives a provider's (or Slack's) outage of a minute or two. An outage that
        // many calls meet pauses the provider instead (`breaker`), spending no attempt.
        let max_attempts = match name {
            CONVERSATIONS | NOTIFICATIONS => 6,
            _ => 3,
        };
        QueueSettings {
            name: name.to_owned(),
            paused: false,
            max_batch,
            max_concurrency,
            max_attempts,
            backoff_base_ms: 5_000,
            backoff_max_ms: 600_000,
            lease_secs: 60,
        }
    }

    /// Rejects settings that would stall or spin the queue.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        parse_queue_name(&self.name)?;
        let check = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(InvalidInput(what.to_owned()))
            }
        };
        check(
            (1..=1000).contains(&self.max_batch),
            "max_batch must be between 1 and 1000",
        )?;
        check(
            (1..=1000).contains(&self.max_concurrency),
            "max_concurrency must be between 1 and 1000",
        )?;
        check(
            (1..=100).contains(&self.max_attempts),
            "max_attempts must be between 1 and 100",
        )?;
        check(
            self.backoff_base_ms <= self.backoff_max_ms,
            "backoff_base_ms must not exceed backoff_max_ms",
        )?;
        check(
            (1..=86_400).contains(&self.lease_secs),
            "lease_secs must be between 1 and 86400",
        )
    }
}

/// A change to some of a queue's settings; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueSettingsPatch {
    /// New batch size.
    pub max_batch: Option<u32>,
    /// New per-node concurrency.
    pub max_concurrency: Option<u32>,
    /// New attempt limit.
    pub max_attempts: Option<u32>,
    /// New first backoff.
    pub backoff_base_ms: Option<u64>,
    /// New backoff ceiling.
    pub backoff_max_ms: Option<u64>,
    /// New lease duration.
    pub lease_secs: Option<u64>,
}

impl QueueSettingsPatch {
    /// Applies the patch and validates the result.
    pub fn apply(&self, current: &QueueSettings) -> Result<QueueSettings, InvalidInput> {
        let next = QueueSettings {
            name: current.name.clone(),
            paused: current.paused,
            max_batch: self.max_batch.unwrap_or(current.max_batch),
            max_concurrency: self.max_concurrency.unwrap_or(current.max_concurrency),
            max_attempts: self.max_attempts.unwrap_or(current.max_attempts),
            backoff_base_ms: self.backoff_base_ms.unwrap_or(current.backoff_base_ms),
            backoff_max_ms: self.backoff_max_ms.unwrap_or(current.backoff_max_ms),
            lease_secs: self.lease_secs.unwrap_or(current.lease_secs),
        };
        next.validate()?;
        Ok(next)
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// The queue it goes to.
    pub queue: String,
    /// What to do; a handler is registered per kind.
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// A second enqueue with the same key in the same queue returns the first job instead.
    pub idempotency_key: Option<String>,
    /// Not before this time (now when `None`).
    pub run_at: Option<DateTime<Utc>>,
    /// Overrides the queue's `max_attempts` for this job.
    pub max_attempts: Option<u32>,
    /// The conversation this job works on, for listings and cascading deletes.
    pub conversation_id: Option<String>,
}

impl NewJob {
    /// A job of `kind` on `queue` with `payload`, to run now.
    pub fn new(queue: &str, kind: &str, payload: serde_json::Value) -> Self {
        NewJob {
            queue: queue.to_owned(),
            kind: kind.to_owned(),
            payload,
            idempotency_key: None,
            run_at: None,
            max_attempts: None,
            conversation_id: None,
        }
    }

    /// A job of kind `K` carrying `payload`, on `K`'s queue, to run now. The way to enqueue a
    /// job: the kind name, the queue and the payload's shape come from one declaration.
    pub fn of<K: JobKind>(payload: &K) -> Self {
        let payload = serde_json::to_value(payload)
            .unwrap_or_else(|e| panic!("the {} payload does not serialise: {e}", K::KIND));
        NewJob::new(K::QUEUE, K::KIND, payload)
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the conversation the job works on.
    pub fn for_conversation(mut self, id: &str) -> Self {
        self.conversation_id = Some(id.to_owned());
        self
    }
}

/// Declares a job kind whose payload carries nothing (a scheduled task, a pipeline stage that
/// takes its conversation from the job's `conversation_id`): an empty struct that decodes from
/// any JSON object, so fields an older release put in the payload are ignored.
#[macro_export]
macro_rules! empty_job {
    ($(#[$doc:meta])* $name:ident = $kind:expr, $queue:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub struct $name {}

        impl $crate::queue::JobKind for $name {
            const KIND: &'static str = $kind;
            const QUEUE: &'static str = $queue;
        }
    };
}

/// The longest age a command or setting may give: ten years. Anything longer is refused when
/// it is read, so no later `now - age` can overflow (and panic).
pub const MAX_AGE: chrono::Duration = chrono::Duration::days(3660);

/// Parses an age given on the command line or in a setting: `90s`, `30m`, `12h`, `7d`, at most
/// [`MAX_AGE`].
pub fn parse_age(raw: &str) -> Result<chrono::Duration, String> {
    let raw = raw.trim();
    let shape = || format!("{raw:?} is not a duration like 90s, 30m, 12h or 7d");
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let too_long = || format!("{raw:?} is longer than ten years; give an age up to 3660d");
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(shape()),
    };
    let n: i64 = match number.parse() {
        Ok(n) => n,
        // Digits beyond what a number holds: certainly too long.
        Err(_) if !number.is_empty() => return Err(too_long()),
        Err(_) => return Err(shape()),
    };
    n.checked_mul(seconds_per)
        .filter(|s| *s <= MAX_AGE.num_seconds())
        .map(chrono::Duration::seconds)
        .ok_or_else(too_long)
}

/// A job kind: its name, its queue and its payload type, declared once, on the payload type.
///
/// Enqueue with [`NewJob::of`]; a handler (`salesai_worker::Handler`) receives the payload
/// decoded, and a payload that does not decode is a terminal `INVALID_INPUT` dead letter that
/// names the decode error. Payload types ignore unknown fields, so a job queued by an older
/// release still decodes; a field a handler can do without has a serde default.
pub trait JobKind: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    /// The kind name, e.g. `conversation.prepare`.
    const KIND: &'static str;
    /// The queue its jobs go to.
    const QUEUE: &'static str;

    /// Decodes a claimed job's payload, or says why it does not decode.
    fn decode(job: &Job) -> Result<Self, String> {
        Self::deserialize(&job.payload)
            .map_err(|e| format!("the {} job's payload does not decode: {e}", Self::KIND))
    }
}

/// The result of an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    /// The job id.
    pub id: i64,
    /// False when the idempotency key matched an existing job.
    pub created: bool,
}

/// Where a job is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for `run_at` and a free worker.
    Queued,
    /// Leased by a worker.
    Running,
    /// Done.
    Completed,
    /// Attempts spent or failure terminal; kept for inspection and retry.
    Dead,
}

impl JobStatus {
    /// Every status.
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Dead => "dead",
        }
    }

    /// Parses a stored or typed status.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Ok(match raw {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "completed" => JobStatus::Completed,
            "dead" => JobStatus::Dead,
            other => {
                return Err(InvalidInput(format!(
                    "unknown job status {other:?}; use queued, running, completed or dead"
                )));
            }
        })
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Job {
    /// The job id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its payload.
    pub payload: serde_json::Value,
    /// Its status.
    pub status: JobStatus,
    /// Attempts started so far (rate-limit reschedules and shutdown releases do not count).
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Not before this time.
    pub run_at: DateTime<Utc>,
    /// Among due jobs of a queue, lower is claimed first (see
    /// [`crate::pipeline::job_priority`]).
    pub priority: i64,
    /// The worker holding it, while running.
    pub locked_by: Option<String>,
    /// When the lease runs out, while running.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The last failure's code.
    pub last_error_code: Option<String>,
    /// The last failure's message.
    pub last_error_message: Option<String>,
    /// The idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// The conversation it works on, if any.
    pub conversation_id: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it completed or died.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Proof that a worker holds a job: the job, the attempt number and the worker.
///
/// Completing or failing a job checks all three, so a worker whose lease expired (and whose job
/// was taken by another node) cannot overwrite the newer attempt's result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The job id.
    pub job_id: i64,
    /// The attempt this lease is for.
    pub attempt: u32,
    /// The worker that holds it.
    pub worker_id: String,
}

impl Job {
    /// The lease a running job is held under.
    pub fn lease(&self) -> Option<Lease> {
        Some(Lease {
            job_id: self.id,
            attempt: self.attempts,
            worker_id: self.locked_by.clone()?,
        })
    }
}

/// Why a job attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFailure {
    /// A stable error code (see [`crate::ErrorCode`]).
    pub code: String,
    /// A message for the operator.
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
}

/// What happened to a job whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FailOutcome {
    /// Queued again for `run_at`.
    Retrying {
        /// When the next attempt may start.
        run_at: DateTime<Utc>,
    },
    /// Moved to the dead-letter state.
    Dead,
    /// The lease was no longer held (it expired and the job moved on); nothing was written.
    LeaseLost,
}

/// One attempt in a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobAttempt {
    /// The attempt number (rate-limited attempts repeat the number they did not spend).
    pub attempt: u32,
    /// The worker that ran it.
    pub worker_id: Option<String>,
    /// `failed`, `rate_limited`, `lease_expired` or `released`.
    pub outcome: String,
    /// The error code, if any.
    pub error_code: Option<String>,
    /// The error message, if any.
    pub error_message: Option<String>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

/// A job with its attempt history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobDetail {
    /// The job.
    pub job: Job,
    /// Its attempts that did not complete, oldest first.
    pub attempts: Vec<JobAttempt>,
}

/// Selects jobs for listing, retry and purge. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only jobs whose last change is older than this.
    pub older_than: Option<DateTime<Utc>>,
    /// Only these ids.
    pub ids: Option<Vec<i64>>,
    /// Only the jobs of this conversation.
    pub conversation_id: Option<String>,
    /// At most this many (listing only).
    pub limit: Option<u32>,
}

impl JobFilter {
    /// True when nothing narrows the selection (ids and conversation aside): a bulk purge or
    /// retry with it would touch every job, so the API, the web app and the CLI refuse it.
    pub fn selects_everything(&self) -> bool {
        self.queue.is_none()
            && self.status.is_none()
            && self.kind.is_none()
            && self.older_than.is_none()
            && self.ids.is_none()
            && self.conversation_id.is_none()
    }
}

/// What reaping expired leases did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaped {
    /// Jobs returned to the queue.
    pub requeued: u64,
    /// Jobs that had spent their attempts and went dead.
    pub dead: u64,
}

/// The queue's numbers, for `queue status`, `/metrics` and `doctor`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueStats {
    /// One row per queue.
    pub queues: Vec<QueueStatsRow>,
    /// Completions and failures over recent windows.
    pub windows: Vec<WindowStats>,
}

/// One queue's depth and age.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QueueStatsRow {
    /// The queue.
    pub queue: String,
    /// Whether it is paused.
    pub paused: bool,
    /// Jobs per status.
    pub depth: BTreeMap<String, u64>,
    /// Seconds the oldest due, queued job has waited (0 when none waits).
    pub oldest_waiting_secs: u64,
    /// Running jobs whose lease has run out (a crashed worker).
    pub expired_leases: u64,
}

/// Completions and failures in a window ending now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WindowStats {
    /// `10m`, `1h` or `24h`.
    pub window: String,
    /// The window's length in seconds.
    pub seconds: u64,
    /// Completed jobs.
    pub completed: u64,
    /// Failed attempts by error code (rate limits included, under `RATE_LIMITED`).
    pub failures_by_code: BTreeMap<String, u64>,
}

/// Every queue worth listing, each once and sorted: the configured ones, the built-in ones with
/// their defaults, and `seen` (queues that jobs name) with defaults.
pub fn complete_settings(
    mut configured: Vec<QueueSettings>,
    seen: impl IntoIterator<Item = String>,
) -> Vec<QueueSettings> {
    for name in BUILTIN_QUEUES.iter().map(|s| s.to_string()).chain(seen) {
        if !configured.iter().any(|s| s.name == name) {
            configured.push(QueueSettings::defaults_for(&name));
        }
    }
    configured.sort_by(|a, b| a.name.cmp(&b.name));
    configured
}

/// The stats row of `queue`, added (unpaused, empty) when the queue has no settings row.
pub fn stats_row<'a>(rows: &'a mut Vec<QueueStatsRow>, queue: &str) -> &'a mut QueueStatsRow {
    let index = match rows.iter().position(|r| r.queue == queue) {
        Some(index) => index,
        None => {
            rows.push(QueueStatsRow {
                queue: queue.to_owned(),
                ..Default::default()
            });
            rows.len() - 1
        }
    };
    &mut rows[index]
}

/// The windows stats are reported over.
pub const STATS_WINDOWS: [(&str, u64); 3] = [("10m", 600), ("1h", 3_600), ("24h", 86_400)];

/// The delay before attempt `attempt + 1`, after `attempt` attempts failed.
///
/// Exponential (`base · 2^(attempt−1)`, capped at `max`) with "equal jitter": half the delay is
/// fixed and half is random (`jitter` in `[0, 1)`), so retries of many jobs failing together
/// spread out instead of returning as one thundering herd, while none retries too soon.
pub fn backoff_delay(settings: &QueueSettings, attempt: u32, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let raw = settings
        .backoff_base_ms
        .saturating_mul(1u64 << exponent)
        .min(settings.backoff_max_ms);
    let jitter = jitter.clamp(0.0, 1.0);
    let half = raw / 2;
    Duration::from_millis(half + ((raw - half) as f64 * jitter) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        let settings = QueueSettings {
            backoff_base_ms: 1_000,
            backoff_max_ms: 10_000,
            ..QueueSettings::defaults_for("x")
        };
        assert_eq!(backoff_delay(&settings, 1, 0.0), Duration::from_millis(500));
        assert_eq!(
            backoff_delay(&settings, 1, 1.0),
            Duration::from_millis(1_000)
        );
        assert_eq!(
            backoff_delay(&settings, 2, 1.0),
            Duration::from_millis(2_000)
        );
        assert_eq!(
            backoff_delay(&settings, 3, 0.0),
            Duration::from_millis(2_000)
        );
        assert_eq!(
            backoff_delay(&settings, 10, 1.0),
            Duration::from_millis(10_000)
        );
        assert_eq!(
            backoff_delay(&settings, 40, 0.5),
            Duration::from_millis(7_500)
        );
        for attempt in 1..20 {
            let low = backoff_delay(&settings, attempt, 0.0);
            let high = backoff_delay(&settings, attempt, 0.999);
            assert!(low <= high && high <= Duration::from_millis(10_000));
        }
    }

    #[test]
    fn settings_validate_and_patch() {
        let defaults = QueueSettings::defaults_for(CONVERSATIONS);
        assert!(defaults.validate().is_ok());
        assert_eq!(defaults.max_attempts, 6);
        let patched = QueueSettingsPatch {
            max_batch: Some(10),
            max_concurrency: Some(10),
            ..Default::default()
        }
        .apply(&defaults)
        .unwrap();
        assert_eq!((patched.max_batch, patched.max_concurrency), (10, 10));
        let bad = QueueSettingsPatch {
            max_batch: Some(0),
            ..Default::default()
        };
        assert!(bad.apply(&defaults).is_err());
        assert!(parse_queue_name("Bad Name").is_err());
    }
}
