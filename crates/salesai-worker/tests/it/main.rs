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
use salesai_providers::blob::ObjectBlobStore;
use salesai_worker::{Handler, JobError, Registry, WorkerOptions, register_builtin};
use tokio_util::sync::CancellationToken;

use salesai_db::story;

fn app(db: &TestDb, dir: &tempfile::TempDir) -> App {
    App::new(
        db.store(),
        Arc::new(ObjectBlobStore::folder(dir.path()).unwrap()),
    )
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

/// Runs the pipeline on a worker named `worker` until conversation `id` ends (completed or
/// failed, at most 20 s), stops the worker, and gives back the conversation as it ended.
async fn run_pipeline(app: &App, id: &str, worker: &str) -> salesai_core::domain::Conversation {
    use salesai_core::domain::ConversationStatus;
    let mut registry = builtin();
    salesai_worker::register_pipeline(&mut registry);
    let (token, handle) = spawn_worker(app, registry, worker);
    for _ in 0..1000 {
        let c = app.store.get_conversation(id).await.unwrap().unwrap();
        if matches!(
            c.status,
            ConversationStatus::Completed | ConversationStatus::Failed
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    handle.await.unwrap();
    app.store.get_conversation(id).await.unwrap().unwrap()
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

salesai_core::empty_job!(LimitedJob = "test.limited", MAINTENANCE);
salesai_core::empty_job!(PanicsJob = "test.panics", MAINTENANCE);

struct RateLimitedOnce(Arc<AtomicU32>);

#[async_trait]
impl Handler for RateLimitedOnce {
    type Kind = LimitedJob;

    async fn run(&self, _app: &App, _job: &Job, _: LimitedJob) -> Result<(), JobError> {
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
impl Handler for Panics {
    type Kind = PanicsJob;

    async fn run(&self, _app: &App, _job: &Job, _: PanicsJob) -> Result<(), JobError> {
        panic!("boom")
    }
}

story!(a_restarted_node_resumes_its_own_dead_jobs_at_once);
/// A node that comes back (its own id, or this host's `<host>-<pid>` of a process that is gone)
/// gets its leases back at once, not after the 60-second lease; a live process's lease stays.
async fn a_restarted_node_resumes_its_own_dead_jobs_at_once(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(db, &dir);
    let store = &app.store;
    let mut settings = store.get_queue_settings(MAINTENANCE).await.unwrap();
    settings.lease_secs = 60;
    store.put_queue_settings(&settings).await.unwrap();
    let host = salesai_worker::node_host();
    let dead_pid = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let mut alive = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let holders = [
        "w-restarted".to_owned(),
        format!("{host}-{dead_pid}"),
        format!("{host}-{}", alive.id()),
    ];
    let mut ids = Vec::new();
    for holder in &holders {
        store
            .enqueue(NewJob::new(
                MAINTENANCE,
                "maintenance.noop",
                serde_json::json!({}),
            ))
            .await
            .unwrap();
        let claimed = store.claim(MAINTENANCE, holder, 1).await.unwrap();
        ids.push(claimed[0].id);
    }
    // The node comes back under its own id: its earlier lease and the dead process's end now.
    let (token, handle) = spawn_worker(&app, builtin(), "w-restarted");
    wait_for(&app, "the dead incarnations' jobs to complete", |jobs| {
        let status = |id| jobs.iter().find(|j| j.id == id).map(|j| j.status);
        status(ids[0]) == Some(JobStatus::Completed) && status(ids[1]) == Some(JobStatus::Completed)
    })
    .await;
    let live = store.get_job(ids[2]).await.unwrap().unwrap().job;
    assert_eq!(
        live.status,
        JobStatus::Running,
        "a live process keeps its lease"
    );
    alive.kill().unwrap();
    alive.wait().unwrap();
    wait_for(&app, "the job of the process that then died", |jobs| {
        jobs.iter()
            .any(|j| j.id == ids[2] && j.status == JobStatus::Completed)
    })
    .await;
    token.cancel();
    handle.await.unwrap();
}

story!(rate_limits_panics_and_unknown_kinds);
async fn rate_limits_panics_and_unknown_kinds(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let app = app(db, &dir);
    quick_settings(&app, MAINTENANCE).await;
    let mut registry = builtin();
    let limited = Arc::new(AtomicU32::new(0));
    registry.add(RateLimitedOnce(limited.clone())).add(Panics);
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
    // A payload its kind cannot decode will not decode on the next attempt either.
    let garbled_id = store
        .enqueue(NewJob::new(
            MAINTENANCE,
            "maintenance.sleep",
            serde_json::json!({ "ms": "soon" }),
        ))
        .await
        .unwrap()
        .id;
    let (token, handle) = spawn_worker(&app, registry, "w-mixed");
    wait_for(&app, "all four to settle", |jobs| {
        let status = |id| jobs.iter().find(|j| j.id == id).map(|j| j.status);
        status(limited_id) == Some(JobStatus::Completed)
            && status(panic_id) == Some(JobStatus::Dead)
            && status(unknown_id) == Some(JobStatus::Dead)
            && status(garbled_id) == Some(JobStatus::Dead)
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
    assert_eq!(limited.load(Ordering::SeqCst), 2);
    let panicked = store.get_job(panic_id).await.unwrap().unwrap();
    assert_eq!(panicked.job.attempts, 3);
    assert!(panicked.job.last_error_message.unwrap().contains("boom"));
    let unknown = store.get_job(unknown_id).await.unwrap().unwrap();
    assert_eq!(unknown.job.attempts, 1, "unknown kinds are terminal");
    assert_eq!(
        unknown.job.last_error_code.as_deref(),
        Some("UNKNOWN_JOB_KIND")
    );
    let garbled = store.get_job(garbled_id).await.unwrap().unwrap().job;
    assert_eq!(
        garbled.attempts, 1,
        "a payload that does not decode is terminal"
    );
    assert_eq!(garbled.last_error_code.as_deref(), Some("INVALID_INPUT"));
    let message = garbled.last_error_message.unwrap();
    assert!(
        message.contains("maintenance.sleep") && message.contains("does not decode"),
        "{message}"
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

/// A conversation with a saved transcript whose first job is the analysis.
async fn analyze_conversation(
    app: &App,
    transcript: &str,
) -> salesai_core::domain::CreatedConversation {
    use salesai_core::domain::{
        CasePeriod, CasePrefix, ConversationType, CustomerNumber, NewConversation,
    };
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
            media: Default::default(),
            metadata: serde_json::json!({}),
            first_job: NewJob::new(
                salesai_core::queue::CONVERSATIONS,
                salesai_worker::jobs::ANALYZE,
                serde_json::json!({}),
            ),
            idempotency_key: None,
            slack: None,
        })
        .await
        .unwrap();
    app.store
        .save_transcript(
            &created.id,
            &salesai_core::transcript::parse_transcript(transcript)
                .unwrap()
                .1,
        )
        .await
        .unwrap();
    created
}

/// An LLM that always fails for the seller agent (a retryable provider error).
struct BrokenSeller {
    strict: bool,
    calls: std::sync::Mutex<std::collections::BTreeMap<&'static str, u32>>,
}

#[async_trait]
impl salesai_core::analysis::engine::Analyzer for BrokenSeller {
    fn engine(&self) -> &'static str {
        "llm"
    }

    fn strict(&self) -> bool {
        self.strict
    }

    async fn run(
        &self,
        agent: salesai_core::analysis::Agent,
        context: salesai_core::analysis::engine::AgentContext<'_>,
    ) -> Result<salesai_core::store::AgentRun, salesai_core::analysis::engine::AnalyzerError> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(agent.as_str())
            .or_insert(0) += 1;
        if agent == salesai_core::analysis::Agent::Seller {
            return Err(salesai_core::analysis::engine::AnalyzerError {
                code: ErrorCode::LlmApiError,
                message: "HTTP 503 from the model".into(),
                retry_at: None,
            });
        }
        salesai_core::analysis::engine::RulesAnalyzer
            .run(agent, context)
            .await
    }
}

story!(an_agent_whose_llm_keeps_failing_falls_back_on_the_last_attempt);
async fn an_agent_whose_llm_keeps_failing_falls_back_on_the_last_attempt(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    for strict in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut app = app(db, &dir);
        let analyzer = Arc::new(BrokenSeller {
            strict,
            calls: Default::default(),
        });
        app.analyzer = analyzer.clone();
        let settings = QueueSettings {
            backoff_base_ms: 20,
            backoff_max_ms: 40,
            max_attempts: 3,
            ..QueueSettings::defaults_for(salesai_core::queue::CONVERSATIONS)
        };
        app.store.put_queue_settings(&settings).await.unwrap();
        let created = analyze_conversation(
            &app,
            "Customer: We lose orders every night.\nRep: Shall we start a trial?",
        )
        .await;
        let mut registry = builtin();
        salesai_worker::register_pipeline(&mut registry);
        let (token, handle) = spawn_worker(&app, registry, "w-fallback");
        let mut conversation = None;
        // Each attempt gives the seller its own three calls with a backoff of a few seconds.
        for _ in 0..3000 {
            let c = app
                .store
                .get_conversation(&created.id)
                .await
                .unwrap()
                .unwrap();
            if matches!(
                c.status,
                ConversationStatus::Completed | ConversationStatus::Failed
            ) {
                conversation = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        token.cancel();
        handle.await.unwrap();
        let conversation = conversation.expect("the conversation reached an outcome");
        let calls = analyzer.calls.lock().unwrap().clone();
        assert_eq!(
            calls.get("seller"),
            Some(&(3 * salesai_worker::jobs::analyze::AGENT_CALLS)),
            "the seller got its own calls on every attempt"
        );
        assert_eq!(
            calls.get("buyer"),
            Some(&1),
            "finished agents are not paid twice"
        );
        if strict {
            assert_eq!(conversation.status, ConversationStatus::Failed);
            assert_eq!(conversation.error.unwrap().code, "LLM_API_ERROR");
        } else {
            assert_eq!(conversation.status, ConversationStatus::Completed);
            let outputs = app.store.get_agent_outputs(&created.id).await.unwrap();
            let seller = outputs.iter().find(|o| o.agent == "seller").unwrap();
            assert_eq!(seller.engine, "rules");
            let reason = seller.fallback.as_deref().unwrap();
            assert!(
                reason.contains("LLM_API_ERROR") && reason.contains("503"),
                "{reason}"
            );
            assert!(
                outputs
                    .iter()
                    .filter(|o| o.agent != "seller")
                    .all(|o| o.fallback.is_none()),
                "only the failing agent fell back"
            );
        }
    }
}

// One agent's transient failure is retried within the attempt, on its own: nobody else is
// called again and the job's attempts are not spent.
story!(a_failed_agent_is_the_only_one_run_again);
async fn a_failed_agent_is_the_only_one_run_again(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(db, &dir);
    let analyzer = Arc::new(FlakyCoach {
        calls: Default::default(),
    });
    app.analyzer = analyzer.clone();
    quick_settings(&app, salesai_core::queue::CONVERSATIONS).await;
    let created = analyze_conversation(&app, "店長：都是手寫，很麻煩\n業務：要不要先試用？").await;
    let mut registry = builtin();
    salesai_worker::register_pipeline(&mut registry);
    let (token, handle) = spawn_worker(&app, registry, "w-resume");
    for _ in 0..1000 {
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
    assert_eq!(calls.get("coach"), Some(&2), "the coach was called again");
    for agent in ["context", "buyer", "seller", "crm", "summary"] {
        assert_eq!(calls.get(agent), Some(&1), "{agent} was not paid for twice");
    }
    let job = app.store.get_job(created.job_id).await.unwrap().unwrap();
    assert_eq!(
        job.job.attempts, 1,
        "the coach's own budget absorbed its failure: the job spent one attempt"
    );
}

/// A speech-to-text stub: answers each chunk with its file name, rate-limits `chunk-0001` once
/// and answers 413 for the chunk named `too_large` (its split halves are accepted).
struct StubStt {
    calls: std::sync::Mutex<Vec<(String, chrono::DateTime<chrono::Utc>)>>,
    too_large: &'static str,
    /// The `prompt` of every request.
    prompts: std::sync::Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl salesai_core::stt::SpeechToText for StubStt {
    fn provider(&self) -> &str {
        "stub"
    }
    fn model(&self) -> &str {
        "stub-whisper"
    }
    fn limits(&self) -> salesai_core::audio::ChunkLimits {
        salesai_core::audio::ChunkLimits {
            max_ms: 10_000,
            search_ms: 3_000,
            overlap_ms: 500,
            ..Default::default()
        }
    }
    async fn transcribe(
        &self,
        request: salesai_core::stt::SttRequest,
    ) -> Result<salesai_core::stt::SttResult, salesai_core::stt::SttError> {
        self.prompts.lock().unwrap().push(request.prompt.clone());
        let first_time = {
            let mut calls = self.calls.lock().unwrap();
            let first = !calls.iter().any(|(n, _)| n == &request.file_name);
            calls.push((request.file_name.clone(), chrono::Utc::now()));
            first
        };
        if request.file_name == "chunk-0001.flac" && first_time {
            return Err(salesai_core::stt::SttError::RateLimited {
                retry_at: chrono::Utc::now() + chrono::Duration::milliseconds(400),
            });
        }
        if request.file_name == self.too_large {
            return Err(salesai_core::stt::SttError::TooLarge);
        }
        Ok(salesai_core::stt::SttResult {
            segments: vec![salesai_core::transcript::Segment {
                speaker: None,
                start_ms: 1_000,
                end_ms: 2_000,
                text: format!("said in {}", request.file_name),
                ..Default::default()
            }],
            language: Some("en".into()),
        })
    }
}

/// Stores `audio` and creates a conversation for it whose first job is `conversation.prepare`.
async fn audio_conversation(
    app: &App,
    line: &str,
    prefix: &str,
    audio: Vec<u8>,
    metadata: serde_json::Value,
) -> String {
    use salesai_core::blob::{BlobKey, ByteStream};
    use salesai_core::domain::{
        CasePeriod, CasePrefix, ConversationType, CustomerNumber, NewConversation,
    };
    let key = BlobKey::parse(&format!("uploads/test/{}.wav", uuid_like())).unwrap();
    let stream: ByteStream = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(audio))]));
    app.blobs.put_stream(&key, stream).await.unwrap();
    app.store
        .create_conversation(NewConversation {
            customer_number: CustomerNumber::parse(line).unwrap(),
            customer_name: line.into(),
            product_line: line.into(),
            case_prefix: CasePrefix::parse(prefix).unwrap(),
            case_period: CasePeriod::at(chrono::Utc::now(), chrono_tz::Asia::Taipei),
            conversation_type: ConversationType::Demo,
            title: String::new(),
            conversation_date: None,
            rep_user_id: None,
            blob_key: Some(key.as_str().into()),
            media: salesai_core::domain::Media::sniffed(
                salesai_core::media::MediaKind::Wav,
                0,
                None,
            ),
            metadata,
            first_job: NewJob::new(
                salesai_core::queue::CONVERSATIONS,
                salesai_worker::jobs::PREPARE,
                serde_json::json!({}),
            ),
            idempotency_key: None,
            slack: None,
        })
        .await
        .unwrap()
        .id
}

fn uuid_like() -> String {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A WAV of `seconds` with a loud tone everywhere except a short pause every 4 s.
fn tone_wav(seconds: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let n = rate * seconds;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let t = i as f32 / rate as f32;
        let pause = (t % 4.0) > 3.6;
        let v = if pause {
            0.0
        } else {
            (2.0 * std::f32::consts::PI * 300.0 * t).sin() * 0.4 + (t * 7919.0).sin() * 0.05
        };
        data.extend_from_slice(&((v * 32767.0) as i16).to_le_bytes());
    }
    salesai_audio::pcm16_wav(1, rate, &data)
}

story!(a_line_from_a_file_sends_its_vocabulary_to_speech_to_text);
async fn a_line_from_a_file_sends_its_vocabulary_to_speech_to_text(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(db, &dir);
    let lines = salesai_core::product_line::with_files(&[(
        "lines/fitness.toml".into(),
        "id = \"fitness\"\ncase_prefix = \"FT\"\nlanguage = \"en\"\nvocabulary = \"FitDesk, GymPro, Zumba\"\n".into(),
    )])
    .unwrap();
    app.product_lines = Arc::new(lines);
    let stt = Arc::new(StubStt {
        prompts: Default::default(),
        calls: Default::default(),
        too_large: "none",
    });
    app.stt = Some(stt.clone());
    quick_settings(&app, salesai_core::queue::CONVERSATIONS).await;
    let id = audio_conversation(
        &app,
        "fitness",
        "FT",
        tone_wav(6),
        serde_json::json!({ "media": "audio", "format": "wav" }),
    )
    .await;
    let conversation = run_pipeline(&app, &id, "w-vocabulary").await;
    assert_eq!(
        conversation.status,
        ConversationStatus::Completed,
        "{:?}",
        conversation.error
    );
    let prompts = stt.prompts.lock().unwrap().clone();
    assert!(!prompts.is_empty());
    assert!(
        prompts
            .iter()
            .all(|p| p.as_deref() == Some("FitDesk, GymPro, Zumba")),
        "every chunk carries the line's vocabulary: {prompts:?}"
    );
}

story!(audio_chunks_rate_limit_and_split);
async fn audio_chunks_rate_limit_and_split(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(db, &dir);
    let stt = Arc::new(StubStt {
        prompts: Default::default(),
        calls: Default::default(),
        too_large: "chunk-0002.flac",
    });
    app.stt = Some(stt.clone());
    quick_settings(&app, salesai_core::queue::CONVERSATIONS).await;
    let id = audio_conversation(
        &app,
        "default",
        "SA",
        tone_wav(26),
        serde_json::json!({ "media": "audio", "format": "wav" }),
    )
    .await;
    let conversation = run_pipeline(&app, &id, "w-audio").await;
    assert_eq!(
        conversation.status,
        ConversationStatus::Completed,
        "{:?}",
        conversation.error
    );

    let calls = stt.calls.lock().unwrap().clone();
    let count = |name: &str| calls.iter().filter(|(n, _)| n == name).count();
    assert_eq!(count("chunk-0000.flac"), 1, "{calls:?}");
    assert_eq!(
        count("chunk-0001.flac"),
        2,
        "the rate-limited chunk is sent again"
    );
    let first = calls
        .iter()
        .find(|(n, _)| n == "chunk-0001.flac")
        .unwrap()
        .1;
    let second = calls
        .iter()
        .rev()
        .find(|(n, _)| n == "chunk-0001.flac")
        .unwrap()
        .1;
    assert!(
        (second - first).num_milliseconds() >= 350,
        "after the retry-after delay"
    );
    let transcript = app.store.get_transcript(&id).await.unwrap();
    let texts: Vec<&str> = transcript.iter().map(|s| s.text.as_str()).collect();
    assert!(
        texts.contains(&"said in chunk-0000.flac") && texts.contains(&"said in chunk-0001.flac"),
        "{texts:?}"
    );
    assert!(
        transcript
            .windows(2)
            .all(|w| w[0].start_ms <= w[1].start_ms),
        "merged in time order"
    );
    let chunks = app.store.get_chunk_transcripts(&id).await.unwrap();
    assert!(
        (3..=4).contains(&chunks.len()),
        "26 s in chunks of at most 10 s, cut at pauses: {}",
        chunks.len()
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.provider == "stub" && c.end_ms > c.start_ms)
    );
    let chunk_jobs = app
        .store
        .list_jobs(&JobFilter {
            kind: Some(salesai_core::pipeline::TRANSCRIBE_CHUNK.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(chunk_jobs.len(), chunks.len());
    assert!(
        chunk_jobs.iter().all(|j| j.attempts == 1),
        "the 429 spent no attempt"
    );
    let events: Vec<ConversationStatus> = app
        .store
        .stage_events(&id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        events,
        [
            ConversationStatus::Pending,
            ConversationStatus::Preparing,
            ConversationStatus::Transcribing,
            ConversationStatus::Analyzing,
            ConversationStatus::Completed
        ]
    );
    // 413: a chunk bigger than the stub accepts was split and its halves sent.
    assert!(
        calls.iter().filter(|(n, _)| n.starts_with("part-")).count() >= 2,
        "{calls:?}"
    );
    assert!(!texts.contains(&"said in chunk-0002.flac"));
    assert!(
        texts.iter().any(|t| t.starts_with("said in part-")),
        "{texts:?}"
    );
}

/// Answers every chunk in Simplified Chinese, as Whisper often does for Taiwanese Mandarin.
struct SimplifiedStt;

#[async_trait]
impl salesai_core::stt::SpeechToText for SimplifiedStt {
    fn provider(&self) -> &str {
        "stub"
    }
    fn model(&self) -> &str {
        "stub"
    }
    fn limits(&self) -> salesai_core::audio::ChunkLimits {
        Default::default()
    }
    async fn transcribe(
        &self,
        _request: salesai_core::stt::SttRequest,
    ) -> Result<salesai_core::stt::SttResult, salesai_core::stt::SttError> {
        Ok(salesai_core::stt::SttResult {
            segments: vec![salesai_core::transcript::Segment {
                speaker: None,
                start_ms: 0,
                end_ms: 2_000,
                text: "我们现在用手写点单，软件和鼠标都很旧".into(),
                ..Default::default()
            }],
            language: Some("zh".into()),
        })
    }
}

story!(simplified_output_becomes_traditional_for_taiwan_lines);
async fn simplified_output_becomes_traditional_for_taiwan_lines(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(db, &dir);
    app.stt = Some(Arc::new(SimplifiedStt));
    let mut ids = Vec::new();
    for (line, prefix) in [("ichef", "IC"), ("default", "SA")] {
        ids.push(
            audio_conversation(
                &app,
                line,
                prefix,
                tone_wav(3),
                serde_json::json!({ "media": "audio", "format": "wav" }),
            )
            .await,
        );
    }
    let mut registry = builtin();
    salesai_worker::register_pipeline(&mut registry);
    let (token, handle) = spawn_worker(&app, registry, "w-s2t");
    for _ in 0..500 {
        let mut done = 0;
        for id in &ids {
            if app
                .store
                .get_conversation(id)
                .await
                .unwrap()
                .unwrap()
                .status
                == ConversationStatus::Completed
            {
                done += 1;
            }
        }
        if done == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    handle.await.unwrap();
    let ichef = app.store.get_transcript(&ids[0]).await.unwrap();
    assert_eq!(
        ichef[0].text, "我們現在用手寫點單，軟體和滑鼠都很舊",
        "Traditional, Taiwan phrasing"
    );
    let default = app.store.get_transcript(&ids[1]).await.unwrap();
    assert_eq!(
        default[0].text, "我们现在用手写点单，软件和鼠标都很旧",
        "left alone where the line does not ask"
    );
}

/// A stereo WAV: a tone on the left for the first half, on the right for the second.
fn dialer_wav(seconds: u32) -> Vec<u8> {
    let rate = 16_000u32;
    let mut data = Vec::new();
    for i in 0..rate * seconds {
        let t = i as f32 / rate as f32;
        let v = ((2.0 * std::f32::consts::PI * 300.0 * t).sin() * 0.4 * 32767.0) as i16;
        let (l, r) = if t < seconds as f32 / 2.0 {
            (v, 0)
        } else {
            (0, v)
        };
        data.extend_from_slice(&l.to_le_bytes());
        data.extend_from_slice(&r.to_le_bytes());
    }
    salesai_audio::pcm16_wav(2, rate, &data)
}

story!(stereo_channels_are_transcribed_apart_and_labelled);
async fn stereo_channels_are_transcribed_apart_and_labelled(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(db, &dir);
    let stt = Arc::new(StubStt {
        prompts: Default::default(),
        calls: Default::default(),
        too_large: "none",
    });
    app.stt = Some(stt.clone());
    let id = audio_conversation(
        &app,
        "default",
        "SA",
        dialer_wav(8),
        serde_json::json!({ "media": "audio", "format": "wav", "speaker_channels": "rep_right" }),
    )
    .await;
    let conversation = run_pipeline(&app, &id, "w-stereo").await;
    assert_eq!(
        conversation.status,
        ConversationStatus::Completed,
        "{:?}",
        conversation.error
    );
    let names: Vec<String> = stt
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert!(
        names.contains(&"chunk-c0-0000.flac".to_owned())
            && names.contains(&"chunk-c1-0000.flac".to_owned()),
        "{names:?}"
    );
    let transcript = app.store.get_transcript(&id).await.unwrap();
    let speakers: Vec<(String, String)> = transcript
        .iter()
        .map(|s| (s.speaker.clone().unwrap_or_default(), s.text.clone()))
        .collect();
    assert!(
        speakers.contains(&("Customer".into(), "said in chunk-c0-0000.flac".into())),
        "{speakers:?}"
    );
    assert!(
        speakers.contains(&("Rep".into(), "said in chunk-c1-0000.flac".into())),
        "rep on the right: {speakers:?}"
    );
}

/// Blob storage that fails the first store of one key (a crash in the middle of preparing a
/// recording, as far as the preparation can tell) and counts the stores per key.
struct FlakyBlobs {
    inner: Arc<dyn salesai_core::blob::BlobStore>,
    fail_once: &'static str,
    puts: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

#[async_trait]
impl salesai_core::blob::BlobStore for FlakyBlobs {
    fn describe(&self) -> String {
        "flaky".into()
    }
    async fn put_stream(
        &self,
        key: &salesai_core::blob::BlobKey,
        stream: salesai_core::blob::ByteStream,
    ) -> Result<u64, salesai_core::blob::BlobError> {
        let n = {
            let mut puts = self.puts.lock().unwrap();
            let n = puts.entry(key.as_str().to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        if key.as_str().ends_with(self.fail_once) && n == 1 {
            return Err(salesai_core::blob::BlobError::Unavailable(
                "the disk went away".into(),
            ));
        }
        self.inner.put_stream(key, stream).await
    }
    async fn get_stream(
        &self,
        key: &salesai_core::blob::BlobKey,
    ) -> Result<salesai_core::blob::ByteStream, salesai_core::blob::BlobError> {
        self.inner.get_stream(key).await
    }
    async fn size(
        &self,
        key: &salesai_core::blob::BlobKey,
    ) -> Result<Option<u64>, salesai_core::blob::BlobError> {
        self.inner.size(key).await
    }
    async fn delete(
        &self,
        key: &salesai_core::blob::BlobKey,
    ) -> Result<(), salesai_core::blob::BlobError> {
        self.inner.delete(key).await
    }
}

story!(chunks_are_transcribed_while_the_rest_is_prepared);
async fn chunks_are_transcribed_while_the_rest_is_prepared(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(db, &dir);
    // Storing the third chunk fails once: the preparation's first attempt ends there, and its
    // retry waits a backoff of at least a second.
    let blobs = Arc::new(FlakyBlobs {
        inner: app.blobs.clone(),
        fail_once: "-0002.flac",
        puts: Default::default(),
    });
    app.blobs = blobs.clone();
    let stt = Arc::new(StubStt {
        prompts: Default::default(),
        calls: Default::default(),
        too_large: "none",
    });
    app.stt = Some(stt.clone());
    let settings = QueueSettings {
        backoff_base_ms: 2_000,
        backoff_max_ms: 2_000,
        max_concurrency: 4,
        max_batch: 4,
        ..QueueSettings::defaults_for(salesai_core::queue::CONVERSATIONS)
    };
    app.store.put_queue_settings(&settings).await.unwrap();
    let id = audio_conversation(
        &app,
        "default",
        "OV",
        tone_wav(36),
        serde_json::json!({ "media": "audio", "format": "wav" }),
    )
    .await;
    let conversation = run_pipeline(&app, &id, "w-overlap").await;
    assert_eq!(
        conversation.status,
        ConversationStatus::Completed,
        "{:?}",
        conversation.error
    );
    let prepare = app
        .store
        .list_jobs(&JobFilter {
            kind: Some(salesai_worker::jobs::PREPARE.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(prepare[0].attempts, 2, "the preparation ran again");
    let detail = app.store.get_job(prepare[0].id).await.unwrap().unwrap();
    // The retry waits at least half the 2 s backoff after the first attempt failed.
    let retried_at = detail.attempts[0].finished_at + chrono::Duration::milliseconds(1_000);
    // The chunks stored before the failure went to speech-to-text while the preparation was
    // still unfinished (waiting for its retry), were not encoded again by the retry, and were
    // sent once.
    // (The stub answers chunk-0001's first request with a 429.)
    let calls = stt.calls.lock().unwrap().clone();
    for (chunk, requests) in [("chunk-0000.flac", 1), ("chunk-0001.flac", 2)] {
        let sent: Vec<_> = calls.iter().filter(|(n, _)| n == chunk).collect();
        assert_eq!(sent.len(), requests, "{chunk}: {calls:?}");
        assert!(
            sent[0].1 < retried_at,
            "{chunk} went to speech-to-text before the preparation finished: {calls:?}"
        );
    }
    let puts = blobs.puts.lock().unwrap().clone();
    let stored = |suffix: &str| {
        puts.iter()
            .filter(|(k, _)| k.ends_with(suffix))
            .map(|(_, n)| *n)
            .sum::<u32>()
    };
    assert_eq!(stored("-0000.flac"), 1, "{puts:?}");
    assert_eq!(stored("-0001.flac"), 1, "{puts:?}");
    assert_eq!(stored("-0002.flac"), 2, "{puts:?}");
    let chunks = app.store.get_chunk_transcripts(&id).await.unwrap();
    assert!(chunks.len() >= 4, "36 s in chunks of at most 10 s");
    assert_eq!(
        calls.len(),
        chunks.len() + 1,
        "every chunk sent once, plus the 429's repeat: {calls:?}"
    );
}

/// A voice-like buzz: harmonics of `f0` shaped by two formant peaks, with a slow wobble in
/// pitch and loudness as in speech; 16 kHz samples.
fn voice(f0: f32, formants: [f32; 2], seconds: f32) -> Vec<f32> {
    let rate = 16_000.0;
    let harmonics = (7_000.0 / f0) as usize;
    // Each harmonic's phase is accumulated, so the wobble stays a wobble however long.
    let mut phases = vec![0f32; harmonics + 1];
    (0..(seconds * rate) as usize)
        .map(|i| {
            let t = i as f32 / rate;
            let wobble = 1.0 + 0.03 * (2.0 * std::f32::consts::PI * 3.0 * t).sin();
            let syllables = 0.6 + 0.4 * (2.0 * std::f32::consts::PI * 4.0 * t).sin().abs();
            let mut v = 0.0;
            for (h, phase) in phases.iter_mut().enumerate().skip(1) {
                let f = h as f32 * f0 * wobble;
                *phase = (*phase + 2.0 * std::f32::consts::PI * f / rate) % std::f32::consts::TAU;
                let gain: f32 = formants
                    .iter()
                    .map(|c| 1.0 / (1.0 + ((f - c) / 150.0).powi(2)))
                    .sum();
                v += phase.sin() * gain / (h as f32).sqrt();
            }
            v * 0.05 * syllables
        })
        .collect()
}

/// The turns of `two_voice_wav`: (start ms, end ms, rep speaking).
const TWO_VOICE_TURNS: [(u64, u64, bool); 6] = [
    (500, 4_500, true),
    (5_000, 9_000, false),
    (9_500, 13_500, true),
    (14_000, 18_000, false),
    (18_500, 22_500, true),
    (23_000, 27_000, false),
];

/// A mono WAV of two alternating voices (the rep low, the customer high) with pauses.
fn two_voice_wav() -> Vec<u8> {
    let mut samples = vec![0f32; 16 * 27_500];
    for (start, end, rep) in TWO_VOICE_TURNS {
        let seconds = (end - start) as f32 / 1000.0;
        let speech = if rep {
            voice(105.0, [600.0, 1_100.0], seconds)
        } else {
            voice(215.0, [850.0, 2_300.0], seconds)
        };
        let at = start as usize * 16;
        samples[at..at + speech.len()].copy_from_slice(&speech);
    }
    let data: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    salesai_audio::pcm16_wav(1, 16_000, &data)
}

/// Answers the one chunk of `two_voice_wav` with its lines at their true times and no
/// speakers, as Whisper does: the rep asks discovery questions, the customer describes their
/// business.
struct TwoVoiceStt;

#[async_trait]
impl salesai_core::stt::SpeechToText for TwoVoiceStt {
    fn provider(&self) -> &str {
        "stub"
    }
    fn model(&self) -> &str {
        "stub"
    }
    fn limits(&self) -> salesai_core::audio::ChunkLimits {
        Default::default()
    }
    async fn transcribe(
        &self,
        _request: salesai_core::stt::SttRequest,
    ) -> Result<salesai_core::stt::SttResult, salesai_core::stt::SttError> {
        let rep = [
            "Thanks for the time today. How do you take orders right now?",
            "How many people touch each order? What does a lost ticket cost you?",
            "Our platform sends every order to the kitchen. Could we set up a trial next week?",
        ];
        let customer = [
            "We write every order by hand and the kitchen loses tickets on busy nights.",
            "Three of us, and we lose about two thousand dollars a month to mistakes.",
            "My partner decides with me, and she wants to see the numbers first.",
        ];
        let (mut r, mut c) = (rep.iter(), customer.iter());
        Ok(salesai_core::stt::SttResult {
            segments: TWO_VOICE_TURNS
                .iter()
                .map(|(start, end, is_rep)| {
                    let text = if *is_rep { r.next() } else { c.next() };
                    salesai_core::transcript::Segment::said(
                        *start,
                        *end,
                        *text.expect("three lines each"),
                    )
                })
                .collect(),
            language: Some("en".into()),
        })
    }
}

/// The mono two-voice recording run through the whole pipeline on worker `worker` (answered
/// by [`TwoVoiceStt`]); fails unless it completes. Returns the app and the conversation id.
async fn two_voice_call(db: &TestDb, dir: &tempfile::TempDir, worker: &str) -> (App, String) {
    use salesai_core::domain::ConversationStatus;
    let mut app = app(db, dir);
    app.stt = Some(Arc::new(TwoVoiceStt));
    let id = audio_conversation(
        &app,
        "default",
        "SA",
        two_voice_wav(),
        serde_json::json!({ "media": "audio", "format": "wav" }),
    )
    .await;
    let conversation = run_pipeline(&app, &id, worker).await;
    assert_eq!(
        conversation.status,
        ConversationStatus::Completed,
        "{:?}",
        conversation.error
    );
    (app, id)
}

story!(a_mono_recording_gets_speakers_and_sides_from_its_voices);
async fn a_mono_recording_gets_speakers_and_sides_from_its_voices(db: &TestDb) {
    use salesai_core::transcript::{Attribution, Role};
    let dir = tempfile::tempdir().unwrap();
    let (app, id) = two_voice_call(db, &dir, "w-mono").await;
    // The prepare stage saved the speaker turns: two voices.
    let diarization = app.store.speaker_turns(&id).await.unwrap().expect("turns");
    assert_eq!(diarization.voices.len(), 2, "{diarization:?}");
    let transcript = app.store.get_transcript(&id).await.unwrap();
    assert_eq!(transcript.len(), 6);
    for (segment, (_, _, rep)) in transcript.iter().zip(TWO_VOICE_TURNS) {
        assert_eq!(
            segment.attribution,
            Some(Attribution::Inferred),
            "{segment:?}"
        );
        assert!(segment.confidence.is_some_and(|c| c >= 50), "{segment:?}");
        let expected = if rep { Role::Rep } else { Role::Customer };
        assert_eq!(segment.role, Some(expected), "{segment:?}");
    }
    // One voice per side: the rep's three lines share a speaker, the customer's another.
    let speaker = |i: usize| transcript[i].speaker.clone();
    assert_eq!(speaker(0), speaker(2));
    assert_eq!(speaker(0), speaker(4));
    assert_eq!(speaker(1), speaker(3));
    assert_eq!(speaker(1), speaker(5));
    assert_ne!(speaker(0), speaker(1));
}

story!(a_preparation_rerun_after_the_call_moved_on_queues_no_second_analysis);
async fn a_preparation_rerun_after_the_call_moved_on_queues_no_second_analysis(db: &TestDb) {
    // A worker killed after queuing a recording's chunks loses its preparation job; the chunks,
    // the merge and the hand-over to the analysis go on without it. When the lost job runs
    // again, the transcript is already saved: it must not queue the analysis a second time.
    use salesai_core::domain::ConversationStatus;
    use salesai_core::queue::{CONVERSATIONS, JobFilter, JobStatus};
    let dir = tempfile::tempdir().unwrap();
    let (app, id) = two_voice_call(db, &dir, "w-first").await;
    let analyses = |app: &App| {
        let store = app.store.clone();
        let id = id.clone();
        async move {
            store
                .list_jobs(&JobFilter {
                    kind: Some(salesai_worker::jobs::ANALYZE.into()),
                    conversation_id: Some(id),
                    ..Default::default()
                })
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(analyses(&app).await, 1);
    // The call is being analysed when the lost preparation runs again.
    app.store
        .set_conversation_status(&id, ConversationStatus::Analyzing, None)
        .await
        .unwrap();
    let rerun = app
        .store
        .enqueue(
            NewJob::new(
                CONVERSATIONS,
                salesai_worker::jobs::PREPARE,
                serde_json::json!({}),
            )
            .for_conversation(&id),
        )
        .await
        .unwrap();
    let mut registry = builtin();
    salesai_worker::register_pipeline(&mut registry);
    let (token, handle) = spawn_worker(&app, registry, "w-rerun");
    for _ in 0..500 {
        let job = app.store.get_job(rerun.id).await.unwrap().unwrap();
        if job.job.status == JobStatus::Completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    handle.await.unwrap();
    let job = app.store.get_job(rerun.id).await.unwrap().unwrap();
    assert_eq!(job.job.status, JobStatus::Completed, "{job:?}");
    assert_eq!(analyses(&app).await, 1, "the analysis is queued once");
}

/// An LLM that accepts every call and never answers, with a one-second budget per analysis.
struct SilentLlm {
    calls: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl salesai_core::analysis::engine::Analyzer for SilentLlm {
    fn engine(&self) -> &'static str {
        "llm"
    }

    fn budget(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    async fn run(
        &self,
        _agent: salesai_core::analysis::Agent,
        _context: salesai_core::analysis::engine::AgentContext<'_>,
    ) -> Result<salesai_core::store::AgentRun, salesai_core::analysis::engine::AnalyzerError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3600)).await;
        unreachable!("never answers")
    }
}

story!(an_llm_that_never_answers_gives_way_to_the_rules_engine_within_the_budget);
async fn an_llm_that_never_answers_gives_way_to_the_rules_engine_within_the_budget(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(db, &dir);
    let analyzer = Arc::new(SilentLlm {
        calls: Default::default(),
    });
    app.analyzer = analyzer.clone();
    let created = analyze_conversation(
        &app,
        "Customer: We lose orders every night.\nRep: Shall we start a trial on Friday?\nCustomer: Friday works.",
    )
    .await;
    let mut registry = builtin();
    salesai_worker::register_pipeline(&mut registry);
    let (token, handle) = spawn_worker(&app, registry, "w-silent");
    let mut conversation = None;
    for _ in 0..1500 {
        let c = app
            .store
            .get_conversation(&created.id)
            .await
            .unwrap()
            .unwrap();
        if matches!(
            c.status,
            ConversationStatus::Completed | ConversationStatus::Failed
        ) {
            conversation = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    token.cancel();
    handle.await.unwrap();
    let conversation = conversation.expect("the analysis ended: the budget is not waited past");
    assert_eq!(conversation.status, ConversationStatus::Completed);
    let outputs = app.store.get_agent_outputs(&created.id).await.unwrap();
    assert_eq!(outputs.len(), 6);
    for o in &outputs {
        let reason = o.fallback.as_deref().unwrap_or_default();
        assert!(
            o.engine == "rules" && reason.contains("SALESAI_LLM_BUDGET_SECS"),
            "{}: {reason}",
            o.agent
        );
    }
    assert!(
        analyzer.calls.load(std::sync::atomic::Ordering::SeqCst) <= 6,
        "no agent is called again once the budget is spent"
    );
}
