//! The runner against real stores (SQLite always, PostgreSQL when configured): retries with
//! backoff into dead letters, rate-limit reschedules, panics, pause/resume and graceful
//! shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use salesai_core::queue::Job;
use salesai_core::queue::{JobFilter, JobStatus, MAINTENANCE, NewJob, QueueSettings};
use salesai_core::{App, ErrorCode};
use salesai_db::testing::TestDb;
use salesai_providers::blob::{BlobConfig, ObjectBlobStore, S3Config};
use salesai_worker::{JobError, JobHandler, Registry, WorkerOptions, register_builtin};
use tokio_util::sync::CancellationToken;

macro_rules! story {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = salesai_db::testing::TestDb::sqlite().await;
                super::$name(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = salesai_db::testing::TestDb::postgres().await else {
                    return;
                };
                super::$name(&db).await;
            }
        }
    };
}

fn app(db: &TestDb, dir: &tempfile::TempDir) -> App {
    let config = BlobConfig::parse(
        dir.path().to_str().unwrap(),
        S3Config {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            region: "auto".into(),
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            virtual_hosted_style: false,
        },
    )
    .unwrap();
    App {
        store: db.store(),
        blobs: Arc::new(ObjectBlobStore::open(&config).unwrap()),
        metrics: Arc::new(salesai_core::metrics::Metrics::new()),
        time_zone: chrono_tz::Asia::Taipei,
        product_lines: Arc::new(salesai_core::product_line::builtin()),
        analyzer: Arc::new(salesai_core::analysis::engine::RulesAnalyzer),
        max_upload_bytes: 500 * 1024 * 1024,
    }
}

fn options(id: &str) -> WorkerOptions {
    WorkerOptions {
        poll_interval: Duration::from_millis(20),
        settings_refresh: Duration::from_millis(50),
        reap_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_millis(300),
        ..WorkerOptions::new(id)
    }
}

async fn quick_settings(app: &App, queue: &str) {
    let settings = QueueSettings {
        backoff_base_ms: 50,
        backoff_max_ms: 100,
        max_concurrency: 4,
        max_batch: 4,
        ..QueueSettings::defaults_for(queue)
    };
    app.store.put_queue_settings(&settings).await.unwrap();
}

async fn wait_for(app: &App, what: &str, mut done: impl FnMut(&[Job]) -> bool) {
    for _ in 0..300 {
        let jobs = app
            .store
            .list_jobs(&JobFilter {
                limit: Some(10_000),
                ..Default::default()
            })
            .await
            .unwrap();
        if done(&jobs) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn spawn_worker(
    app: &App,
    registry: Registry,
    id: &str,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let handle = tokio::spawn(salesai_worker::run(
        app.clone(),
        registry,
        options(id),
        token.clone(),
    ));
    (token, handle)
}

fn builtin() -> Registry {
    let mut registry = Registry::new();
    register_builtin(&mut registry);
    registry
}

story!(retries_with_backoff_then_dead_then_retry);
async fn retries_with_backoff_then_dead_then_retry(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(db, &dir);
    quick_settings(&app, MAINTENANCE).await;
    let id = app
        .store
        .enqueue(NewJob::new(
            MAINTENANCE,
            "maintenance.fail",
            serde_json::json!({ "code": "LLM_API_ERROR", "retryable": true }),
        ))
        .await
        .unwrap()
        .id;
    let (token, handle) = spawn_worker(&app, builtin(), "w-retry");
    wait_for(&app, "the job to go dead", |jobs| {
        jobs.iter()
            .any(|j| j.id == id && j.status == JobStatus::Dead)
    })
    .await;
    let detail = app.store.get_job(id).await.unwrap().unwrap();
    assert_eq!(detail.job.attempts, 3);
    assert_eq!(detail.job.last_error_code.as_deref(), Some("LLM_API_ERROR"));
    assert_eq!(detail.attempts.len(), 3);
    // Backoff really waited between attempts (≥ base/2 each).
    let gaps: Vec<i64> = detail
        .attempts
        .windows(2)
        .map(|w| (w[1].finished_at - w[0].finished_at).num_milliseconds())
        .collect();
    assert!(gaps.iter().all(|g| *g >= 20), "gaps {gaps:?}");
    let metrics = app.metrics.render();
    assert!(
        metrics.contains(r#"outcome="dead",error_code="LLM_API_ERROR""#),
        "{metrics}"
    );

    // Retried from dead with a payload that now succeeds? The kind still fails, so it comes
    // back and goes dead again — proving the retry really re-queued it.
    let ids = app
        .store
        .retry_jobs(&JobFilter {
            status: Some(JobStatus::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids, vec![id]);
    wait_for(&app, "the retried job to go dead again", |jobs| {
        jobs.iter()
            .any(|j| j.id == id && j.status == JobStatus::Dead)
    })
    .await;
    assert_eq!(
        app.store.get_job(id).await.unwrap().unwrap().attempts.len(),
        6
    );
    token.cancel();
    handle.await.unwrap();
}

struct RateLimitedOnce(AtomicU32);

#[async_trait]
impl JobHandler for RateLimitedOnce {
    async fn run(&self, _app: &App, _job: &Job) -> Result<(), JobError> {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(JobError::RetryAt {
                at: chrono::Utc::now() + chrono::Duration::milliseconds(300),
                code: ErrorCode::RateLimited,
                message: "429 retry-after 0.3".into(),
            });
        }
        Ok(())
    }
}

struct Panics;

#[async_trait]
impl JobHandler for Panics {
    async fn run(&self, _app: &App, _job: &Job) -> Result<(), JobError> {
        panic!("boom")
    }
}

story!(rate_limits_panics_and_unknown_kinds);
async fn rate_limits_panics_and_unknown_kinds(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(db, &dir);
    quick_settings(&app, MAINTENANCE).await;
    let mut registry = builtin();
    let limited = Arc::new(RateLimitedOnce(AtomicU32::new(0)));
    registry.register("test.limited", limited.clone());
    registry.register("test.panics", Arc::new(Panics));
    let store = &app.store;
    let limited_id = store
        .enqueue(NewJob::new(
            MAINTENANCE,
            "test.limited",
            serde_json::json!({}),
        ))
        .await
        .unwrap()
        .id;
    let panic_id = store
        .enqueue(NewJob::new(
            MAINTENANCE,
            "test.panics",
            serde_json::json!({}),
        ))
        .await
        .unwrap()
        .id;
    let unknown_id = store
        .enqueue(NewJob::new(
            MAINTENANCE,
            "test.nobody",
            serde_json::json!({}),
        ))
        .await
        .unwrap()
        .id;
    let (token, handle) = spawn_worker(&app, registry, "w-mixed");
    wait_for(&app, "all three to settle", |jobs| {
        let status = |id| jobs.iter().find(|j| j.id == id).map(|j| j.status);
        status(limited_id) == Some(JobStatus::Completed)
            && status(panic_id) == Some(JobStatus::Dead)
            && status(unknown_id) == Some(JobStatus::Dead)
    })
    .await;
    token.cancel();
    handle.await.unwrap();
    let limited_job = store.get_job(limited_id).await.unwrap().unwrap();
    assert_eq!(
        limited_job.job.attempts, 1,
        "the rate limit did not spend an attempt"
    );
    assert_eq!(limited_job.attempts[0].outcome, "rescheduled");
    assert_eq!(limited.0.load(Ordering::SeqCst), 2);
    let panicked = store.get_job(panic_id).await.unwrap().unwrap();
    assert_eq!(panicked.job.attempts, 3);
    assert!(panicked.job.last_error_message.unwrap().contains("boom"));
    let unknown = store.get_job(unknown_id).await.unwrap().unwrap();
    assert_eq!(unknown.job.attempts, 1, "unknown kinds are terminal");
    assert_eq!(
        unknown.job.last_error_code.as_deref(),
        Some("UNKNOWN_JOB_KIND")
    );
}

story!(pause_stops_dispatch_and_resume_drains);
async fn pause_stops_dispatch_and_resume_drains(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(db, &dir);
    quick_settings(&app, MAINTENANCE).await;
    let mut settings = app.store.get_queue_settings(MAINTENANCE).await.unwrap();
    settings.paused = true;
    app.store.put_queue_settings(&settings).await.unwrap();
    let (token, handle) = spawn_worker(&app, builtin(), "w-pause");
    for _ in 0..20 {
        app.store
            .enqueue(NewJob::new(
                MAINTENANCE,
                "maintenance.noop",
                serde_json::json!({}),
            ))
            .await
            .unwrap();
    }
    // Several poll and settings-refresh periods pass; nothing may be dispatched.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let jobs = app.store.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(jobs.len(), 20);
    assert!(
        jobs.iter()
            .all(|j| j.status == JobStatus::Queued && j.attempts == 0)
    );
    settings.paused = false;
    app.store.put_queue_settings(&settings).await.unwrap();
    wait_for(&app, "the queue to drain", |jobs| {
        jobs.len() == 20 && jobs.iter().all(|j| j.status == JobStatus::Completed)
    })
    .await;
    token.cancel();
    handle.await.unwrap();
}

story!(graceful_shutdown_finishes_or_returns_jobs);
async fn graceful_shutdown_finishes_or_returns_jobs(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(db, &dir);
    quick_settings(&app, MAINTENANCE).await;
    let short = app
        .store
        .enqueue(NewJob::new(
            MAINTENANCE,
            "maintenance.sleep",
            serde_json::json!({ "ms": 100 }),
        ))
        .await
        .unwrap()
        .id;
    let long = app
        .store
        .enqueue(NewJob::new(
            MAINTENANCE,
            "maintenance.sleep",
            serde_json::json!({ "ms": 60_000 }),
        ))
        .await
        .unwrap()
        .id;
    let (token, handle) = spawn_worker(&app, builtin(), "w-shutdown");
    wait_for(&app, "both to run", |jobs| {
        jobs.iter()
            .filter(|j| j.status == JobStatus::Running)
            .count()
            == 2
    })
    .await;
    token.cancel();
    handle.await.unwrap();
    let short_job = app.store.get_job(short).await.unwrap().unwrap().job;
    assert_eq!(
        short_job.status,
        JobStatus::Completed,
        "finished within the grace period"
    );
    let long_job = app.store.get_job(long).await.unwrap().unwrap();
    assert_eq!(
        long_job.job.status,
        JobStatus::Queued,
        "returned to the queue"
    );
    assert_eq!(long_job.job.attempts, 0, "without spending an attempt");
    assert_eq!(long_job.attempts[0].outcome, "released");
}

/// Counts calls per agent and fails the coach's first call.
struct FlakyCoach {
    calls: std::sync::Mutex<std::collections::BTreeMap<&'static str, u32>>,
}

#[async_trait]
impl salesai_core::analysis::engine::Analyzer for FlakyCoach {
    fn engine(&self) -> &'static str {
        "rules"
    }

    async fn run(
        &self,
        agent: salesai_core::analysis::Agent,
        context: salesai_core::analysis::engine::AgentContext<'_>,
    ) -> Result<salesai_core::store::AgentRun, salesai_core::analysis::engine::AnalyzerError> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            let n = calls.entry(agent.as_str()).or_insert(0);
            *n += 1;
            *n
        };
        if agent == salesai_core::analysis::Agent::Coach && n == 1 {
            return Err(salesai_core::analysis::engine::AnalyzerError {
                code: ErrorCode::LlmApiError,
                message: "503 from the model".into(),
                retry_at: None,
            });
        }
        salesai_core::analysis::engine::RulesAnalyzer
            .run(agent, context)
            .await
    }
}

story!(a_failed_agent_is_the_only_one_run_again);
async fn a_failed_agent_is_the_only_one_run_again(db: &TestDb) {
    use salesai_core::domain::{
        CasePeriod, CasePrefix, ConversationStatus, ConversationType, CustomerNumber,
        NewConversation,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(db, &dir);
    let analyzer = Arc::new(FlakyCoach {
        calls: Default::default(),
    });
    app.analyzer = analyzer.clone();
    quick_settings(&app, salesai_core::queue::CONVERSATIONS).await;
    let created = app
        .store
        .create_conversation(NewConversation {
            customer_number: CustomerNumber::parse("C1").unwrap(),
            customer_name: "Cafe".into(),
            product_line: "ichef".into(),
            case_prefix: CasePrefix::parse("IC").unwrap(),
            case_period: CasePeriod::at(chrono::Utc::now(), chrono_tz::Asia::Taipei),
            conversation_type: ConversationType::Demo,
            title: String::new(),
            conversation_date: None,
            rep_user_id: None,
            blob_key: None,
            metadata: serde_json::json!({}),
            first_job: NewJob::new(
                salesai_core::queue::CONVERSATIONS,
                salesai_worker::jobs::ANALYZE,
                serde_json::json!({}),
            ),
            idempotency_key: None,
        })
        .await
        .unwrap();
    app.store
        .save_transcript(
            &created.id,
            &salesai_core::transcript::parse_transcript(
                "店長：都是手寫，很麻煩\n業務：要不要先試用？",
            )
            .unwrap()
            .1,
        )
        .await
        .unwrap();
    let mut registry = builtin();
    salesai_worker::register_pipeline(&mut registry);
    let (token, handle) = spawn_worker(&app, registry, "w-resume");
    for _ in 0..300 {
        let c = app
            .store
            .get_conversation(&created.id)
            .await
            .unwrap()
            .unwrap();
        if c.status == ConversationStatus::Completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    handle.await.unwrap();
    let conversation = app
        .store
        .get_conversation(&created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.status, ConversationStatus::Completed);
    let calls = analyzer.calls.lock().unwrap().clone();
    assert_eq!(calls.get("coach"), Some(&2), "the coach ran again");
    for agent in ["context", "buyer", "seller", "crm", "summary"] {
        assert_eq!(calls.get(agent), Some(&1), "{agent} was not paid for twice");
    }
    let job = app.store.get_job(created.job_id).await.unwrap().unwrap();
    assert_eq!(job.job.attempts, 2);
    assert_eq!(job.attempts[0].error_code.as_deref(), Some("LLM_API_ERROR"));
}
