//! Store stories: every test runs on SQLite always and on PostgreSQL when
//! `SALESAI_TEST_POSTGRES_URL` is set (always in CI).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use salesai_core::domain::{
    CasePeriod, CasePrefix, ConversationStatus, ConversationType, CustomerNumber, NewConversation,
    Role,
};
use salesai_core::queue::{
    CONVERSATIONS, FailOutcome, JobFailure, JobFilter, JobStatus, NewJob, QueueSettings,
};
use salesai_core::store::{AgentRun, NewApiToken, Store, StoreError};
use salesai_db::testing::TestDb;

use salesai_db::story;

mod access;
mod backup;
mod fuzz;
mod speakers;

fn job(kind: &str) -> NewJob {
    NewJob::new(CONVERSATIONS, kind, serde_json::json!({ "n": 1 }))
}

fn failure(code: &str, retryable: bool) -> JobFailure {
    JobFailure {
        code: code.into(),
        message: format!("{code} happened"),
        retryable,
    }
}

async fn fast_backoff(store: &Arc<dyn Store>, queue: &str) {
    let settings = QueueSettings {
        backoff_base_ms: 0,
        backoff_max_ms: 0,
        ..store.get_queue_settings(queue).await.unwrap()
    };
    store.put_queue_settings(&settings).await.unwrap();
}

/// Whether saving an agent output fails for want of the `fallback_reason` column (0004 undone).
async fn fallback_column_is_gone(db: &TestDb) -> bool {
    let run = AgentRun {
        agent: "buyer".into(),
        engine: "rules".into(),
        model: None,
        output: serde_json::json!({}),
        prompt_tokens: None,
        completion_tokens: None,
        latency_ms: None,
        fallback: None,
    };
    db.store()
        .save_agent_output("no-such-conversation", &run)
        .await
        .err()
        .is_some_and(|e| e.to_string().contains("fallback_reason"))
}

story!(migrations_are_checked);
async fn migrations_are_checked(db: &TestDb) {
    let migrator = db.database.migrator();
    assert_eq!(
        migrator.current_version().await.unwrap(),
        migrator.latest_known()
    );
    assert!(
        migrator.up().await.unwrap().is_empty(),
        "second up is a no-op"
    );
    let status = migrator.status().await.unwrap();
    assert!(status.iter().all(|s| s.applied_at.is_some() && s.known));

    // 0006 keeps what was uploaded through a round trip: down puts it back in the metadata,
    // up takes it out again into its columns.
    let mut new = new_conversation("MEDIA-1", None);
    new.media = salesai_core::domain::Media::sniffed(
        salesai_core::media::MediaKind::Transcript,
        1234,
        Some("call.vtt".into()),
    );
    let created = db.store().create_conversation(new.clone()).await.unwrap();
    assert_eq!(
        migrator.down_to(5).await.unwrap(),
        vec![15, 14, 13, 12, 11, 10, 9, 8, 7, 6]
    );
    assert_eq!(
        migrator.up().await.unwrap(),
        vec![6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    );
    let back = db
        .store()
        .get_conversation(&created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.media, new.media);
    assert_eq!(
        back.metadata, new.metadata,
        "no upload keys left in the metadata"
    );

    // Down to zero and up again: the down migrations really undo the schema.
    assert_eq!(
        migrator.down_to(3).await.unwrap(),
        vec![15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4]
    );
    assert!(
        fallback_column_is_gone(db).await,
        "0004 is undone: agent_outputs has no fallback_reason"
    );
    assert_eq!(migrator.down_to(1).await.unwrap(), vec![3, 2]);
    assert!(
        db.store().slack_messages("x").await.is_err(),
        "0002 is undone"
    );
    assert_eq!(migrator.down_to(0).await.unwrap(), vec![1]);
    assert_eq!(migrator.current_version().await.unwrap(), 0);
    assert!(db.store().list_jobs(&JobFilter::default()).await.is_err());
    assert_eq!(
        migrator.up().await.unwrap(),
        vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    );
    assert!(db.store().slack_messages("x").await.unwrap().is_empty());
    db.store().enqueue(job("noop")).await.unwrap();

    // A schema from a newer release is refused with a clear message.
    let pretend = "INSERT INTO salesai_migrations (version, name, checksum, applied_at) VALUES (999, 'future', 'x', ";
    let sql = match db.database.backend() {
        salesai_core::store::Backend::Sqlite => format!("{pretend} 0)"),
        salesai_core::store::Backend::Postgres => format!("{pretend} now())"),
    };
    match &db.database {
        salesai_db::Database::Sqlite(s) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(s.pool())
                .await
                .unwrap();
        }
        salesai_db::Database::Postgres(s) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(s.pool())
                .await
                .unwrap();
        }
    }
    let err = migrator.check().await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { database: 999, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer salesai release"));
    assert!(migrator.up().await.is_err());
}

story!(complete_and_claim_next_in_one_call);
async fn complete_and_claim_next_in_one_call(db: &TestDb) {
    let store = db.store();
    let ids: Vec<i64> = store
        .enqueue_many((0..3).map(|_| job("c")).collect())
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    let first = store.claim(CONVERSATIONS, "w1", 1).await.unwrap().remove(0);
    let lease = first.lease().unwrap();
    let (done, next) = store
        .complete_and_claim(&lease, CONVERSATIONS, "w1", 1)
        .await
        .unwrap();
    assert!(done);
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[1]]);
    assert_eq!(next[0].status, JobStatus::Running);
    assert_eq!(next[0].locked_by.as_deref(), Some("w1"));
    // A lost lease completes nothing, and the next job is still handed out.
    let (done, again) = store
        .complete_and_claim(&lease, CONVERSATIONS, "w1", 1)
        .await
        .unwrap();
    assert!(!done, "completes once");
    assert_eq!(again.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[2]]);
    // A paused queue hands out nothing; the completion still counts.
    let mut settings = store.get_queue_settings(CONVERSATIONS).await.unwrap();
    settings.paused = true;
    store.put_queue_settings(&settings).await.unwrap();
    let (done, none) = store
        .complete_and_claim(&next[0].lease().unwrap(), CONVERSATIONS, "w1", 1)
        .await
        .unwrap();
    assert!(done && none.is_empty());
    settings.paused = false;
    store.put_queue_settings(&settings).await.unwrap();
    let (done, none) = store
        .complete_and_claim(&again[0].lease().unwrap(), CONVERSATIONS, "w1", 1)
        .await
        .unwrap();
    assert!(done && none.is_empty(), "an empty queue hands out nothing");
    let completed = store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Completed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(completed.len(), 3, "each job completed exactly once");
}

story!(eight_clients_chaining_complete_each_job_once);
/// Eight clients that each complete a job and claim the next in one call drain a queue with no
/// error and no job twice. (The first PostgreSQL version of the statement deadlocked in the
/// release-build benchmark at 30,000 jobs; this test did not reproduce that, the benchmark does.)
async fn eight_clients_chaining_complete_each_job_once(db: &TestDb) {
    let store = db.store();
    let total = 800;
    for _ in 0..(total / 100) {
        store
            .enqueue_many((0..100).map(|_| job("chain")).collect())
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for client in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("w{client}");
            let mut done = 0;
            loop {
                let mut claimed = store.claim(CONVERSATIONS, &worker, 1).await.unwrap();
                while let Some(job) = claimed.pop() {
                    let (completed, next) = store
                        .complete_and_claim(&job.lease().unwrap(), CONVERSATIONS, &worker, 1)
                        .await
                        .unwrap();
                    assert!(completed, "a held lease completes");
                    done += 1;
                    claimed = next;
                }
                // Nothing handed out: stop only once nothing is queued.
                let queued = store
                    .list_jobs(&JobFilter {
                        status: Some(JobStatus::Queued),
                        limit: Some(1),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                if queued.is_empty() {
                    break;
                }
            }
            done
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.unwrap();
    }
    assert_eq!(done, total);
    let completed = store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Completed),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(completed.len(), total);
}

story!(enqueue_claim_complete);
async fn enqueue_claim_complete(db: &TestDb) {
    let store = db.store();
    let first = store.enqueue(job("a").idempotency_key("k1")).await.unwrap();
    let again = store.enqueue(job("a").idempotency_key("k1")).await.unwrap();
    assert!(first.created && !again.created);
    assert_eq!(first.id, again.id);
    let many = store
        .enqueue_many((0..9).map(|_| job("b")).collect())
        .await
        .unwrap();
    assert_eq!(many.len(), 9);

    let claimed = store.claim(CONVERSATIONS, "w1", 4).await.unwrap();
    assert_eq!(claimed.len(), 4);
    assert_eq!(claimed[0].id, first.id, "oldest first");
    assert!(
        claimed
            .iter()
            .all(|j| j.status == JobStatus::Running && j.attempts == 1)
    );
    let other = store.claim(CONVERSATIONS, "w2", 100).await.unwrap();
    assert_eq!(other.len(), 6, "no job is claimed twice");
    let mine: HashSet<i64> = claimed.iter().map(|j| j.id).collect();
    assert!(other.iter().all(|j| !mine.contains(&j.id)));

    assert!(store.complete(&claimed[0].lease().unwrap()).await.unwrap());
    assert!(
        !store.complete(&claimed[0].lease().unwrap()).await.unwrap(),
        "completes once"
    );
    let leases: Vec<_> = other.iter().map(|j| j.lease().unwrap()).collect();
    assert_eq!(store.complete_many(&leases).await.unwrap(), 6);
    let stats = store.queue_stats().await.unwrap();
    let row = stats
        .queues
        .iter()
        .find(|q| q.queue == CONVERSATIONS)
        .unwrap();
    assert_eq!(row.depth.get("completed"), Some(&7));
    assert_eq!(row.depth.get("running"), Some(&3));
    assert_eq!(stats.windows[0].window, "10m");
    assert_eq!(stats.windows[0].completed, 7);
}

story!(retry_backoff_dead_and_back);
async fn retry_backoff_dead_and_back(db: &TestDb) {
    let store = db.store();
    let id = store
        .enqueue(NewJob {
            max_attempts: Some(3),
            ..job("flaky")
        })
        .await
        .unwrap()
        .id;

    // With the default backoff the retry waits: the job is not claimable straight away.
    let claimed = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    let outcome = store
        .fail(
            &claimed[0].lease().unwrap(),
            &failure("GROQ_API_ERROR", true),
        )
        .await
        .unwrap();
    let FailOutcome::Retrying { run_at } = outcome else {
        panic!("expected a retry, got {outcome:?}")
    };
    assert!(run_at > Utc::now() + chrono::Duration::milliseconds(1000));
    assert!(store.claim(CONVERSATIONS, "w", 1).await.unwrap().is_empty());

    // Make backoff instant and burn the remaining attempts.
    sqlx_force_due(db, id).await;
    fast_backoff(&store, CONVERSATIONS).await;
    let second = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    assert_eq!(second[0].attempts, 2);
    let outcome = store
        .fail(
            &second[0].lease().unwrap(),
            &failure("GROQ_API_ERROR", true),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, FailOutcome::Retrying { .. }));
    let third = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    assert_eq!(third[0].attempts, 3);
    let outcome = store
        .fail(&third[0].lease().unwrap(), &failure("GROQ_API_ERROR", true))
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::Dead);

    let detail = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(detail.job.status, JobStatus::Dead);
    assert_eq!(
        detail.job.last_error_code.as_deref(),
        Some("GROQ_API_ERROR")
    );
    assert_eq!(detail.job.kind, "flaky");
    assert_eq!(detail.job.payload, serde_json::json!({ "n": 1 }));
    assert_eq!(detail.attempts.len(), 3);
    assert!(detail.attempts.iter().all(|a| a.outcome == "failed"));
    let stats = store.queue_stats().await.unwrap();
    assert_eq!(
        stats.windows[0].failures_by_code.get("GROQ_API_ERROR"),
        Some(&3)
    );

    // A terminal failure goes dead at once.
    let terminal = store.enqueue(job("bad")).await.unwrap().id;
    let claimed = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    assert_eq!(claimed[0].id, terminal);
    let outcome = store
        .fail(
            &claimed[0].lease().unwrap(),
            &failure("INVALID_INPUT", false),
        )
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::Dead);

    // Retry one from dead, then all matching.
    let dead = JobFilter {
        status: Some(JobStatus::Dead),
        ..Default::default()
    };
    assert_eq!(store.list_jobs(&dead).await.unwrap().len(), 2);
    let one = store
        .retry_jobs(&JobFilter {
            ids: Some(vec![id]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(one, vec![id]);
    let back = store.get_job(id).await.unwrap().unwrap().job;
    assert_eq!((back.status, back.attempts), (JobStatus::Queued, 0));
    assert_eq!(store.retry_jobs(&dead).await.unwrap(), vec![terminal]);
    assert!(store.list_jobs(&dead).await.unwrap().is_empty());
    let claimed = store.claim(CONVERSATIONS, "w", 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
}

async fn sqlx_force_due(db: &TestDb, id: i64) {
    match &db.database {
        salesai_db::Database::Sqlite(s) => {
            sqlx::query("UPDATE jobs SET run_at = 0 WHERE id = ?")
                .bind(id)
                .execute(s.pool())
                .await
                .unwrap();
        }
        salesai_db::Database::Postgres(s) => {
            sqlx::query("UPDATE jobs SET run_at = now() - interval '1 second' WHERE id = $1")
                .bind(id)
                .execute(s.pool())
                .await
                .unwrap();
        }
    }
}

story!(rate_limits_do_not_spend_attempts);
async fn rate_limits_do_not_spend_attempts(db: &TestDb) {
    let store = db.store();
    let id = store.enqueue(job("stt")).await.unwrap().id;
    for _ in 0..5 {
        let claimed = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
        assert_eq!(claimed[0].attempts, 1, "a rate limit is not an attempt");
        let later = Utc::now() - chrono::Duration::milliseconds(1);
        assert!(
            store
                .reschedule(
                    &claimed[0].lease().unwrap(),
                    later,
                    "RATE_LIMITED",
                    "retry-after 0"
                )
                .await
                .unwrap()
        );
    }
    let claimed = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    let until = Utc::now() + chrono::Duration::seconds(30);
    store
        .reschedule(
            &claimed[0].lease().unwrap(),
            until,
            "RATE_LIMITED",
            "retry-after 30",
        )
        .await
        .unwrap();
    let detail = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(detail.job.attempts, 0);
    assert!(detail.job.run_at >= until - chrono::Duration::milliseconds(5));
    assert_eq!(detail.attempts.len(), 6);
    assert!(
        store.claim(CONVERSATIONS, "w", 1).await.unwrap().is_empty(),
        "waits for retry-after"
    );
}

story!(pause_and_resume);
async fn pause_and_resume(db: &TestDb) {
    let store = db.store();
    let mut settings = store.get_queue_settings(CONVERSATIONS).await.unwrap();
    settings.paused = true;
    store.put_queue_settings(&settings).await.unwrap();
    for _ in 0..3 {
        store.enqueue(job("x")).await.unwrap();
    }
    assert!(
        store
            .claim(CONVERSATIONS, "w", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .get_queue_settings(CONVERSATIONS)
            .await
            .unwrap()
            .paused
    );
    let stats = store.queue_stats().await.unwrap();
    assert!(
        stats
            .queues
            .iter()
            .any(|q| q.queue == CONVERSATIONS && q.paused)
    );
    settings.paused = false;
    store.put_queue_settings(&settings).await.unwrap();
    assert_eq!(store.claim(CONVERSATIONS, "w", 10).await.unwrap().len(), 3);
}

story!(a_worker_lost_on_every_attempt_fails_the_conversation_once);
async fn a_worker_lost_on_every_attempt_fails_the_conversation_once(db: &TestDb) {
    use salesai_core::domain::{ConversationStatus, SlackThread};
    let store = db.store();
    // A lost worker waits out the backoff like any failure; 1 ms here.
    let settings = QueueSettings {
        lease_secs: 1,
        max_attempts: 2,
        backoff_base_ms: 1,
        backoff_max_ms: 1,
        ..QueueSettings::defaults_for(CONVERSATIONS)
    };
    store.put_queue_settings(&settings).await.unwrap();
    let mut new = new_conversation("C-LOST", None);
    new.slack = Some(SlackThread {
        channel_id: "C0SALES".into(),
        thread_ts: Some("1700000000.000100".into()),
    });
    let created = store.create_conversation(new).await.unwrap();
    store
        .set_conversation_status(&created.id, ConversationStatus::Preparing, None)
        .await
        .unwrap();
    // A sibling still queued (e.g. a chunk that has not started).
    let mut sibling = NewJob::new(
        CONVERSATIONS,
        "conversation.transcribe_chunk",
        serde_json::json!({}),
    );
    sibling.conversation_id = Some(created.id.clone());
    sibling.run_at = Some(Utc::now() + chrono::Duration::hours(1));
    let sibling = store.enqueue(sibling).await.unwrap().id;
    // Queued notifications; draining runs them as the notifier would.
    let notify_jobs = |store: Arc<dyn Store>| async move {
        store
            .list_jobs(&JobFilter {
                kind: Some("conversation.notify".into()),
                status: Some(JobStatus::Queued),
                limit: Some(100),
                ..Default::default()
            })
            .await
            .unwrap()
            .len()
    };
    let drain = |store: Arc<dyn Store>| async move {
        for job in store
            .claim(salesai_core::queue::NOTIFICATIONS, "notifier", 100)
            .await
            .unwrap()
        {
            assert!(store.complete(&job.lease().unwrap()).await.unwrap());
        }
    };
    drain(store.clone()).await;
    assert_eq!(notify_jobs(store.clone()).await, 0);
    for attempt in 1..=2u32 {
        let claimed = store
            .claim(CONVERSATIONS, &format!("killed-{attempt}"), 1)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            claimed[0].id, created.job_id,
            "the prepare job, not the future sibling"
        );
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let reaped = store.reap_expired_leases().await.unwrap();
        if attempt == 1 {
            assert_eq!((reaped.requeued, reaped.dead), (1, 0));
            let c = store.get_conversation(&created.id).await.unwrap().unwrap();
            assert_eq!(
                c.status,
                ConversationStatus::Preparing,
                "still going after one loss"
            );
        } else {
            assert_eq!((reaped.requeued, reaped.dead), (0, 1));
        }
    }
    let c = store.get_conversation(&created.id).await.unwrap().unwrap();
    assert_eq!(
        c.status,
        ConversationStatus::Failed,
        "no conversation left without an outcome"
    );
    let error = c.error.unwrap();
    assert_eq!(error.code, "WORKER_LOST");
    assert_eq!(error.stage, ConversationStatus::Preparing);
    assert!(
        error.retryable && error.message.contains("retry"),
        "{error:?}"
    );
    let sibling = store.get_job(sibling).await.unwrap().unwrap().job;
    assert_eq!(
        sibling.status,
        JobStatus::Dead,
        "queued siblings are cancelled"
    );
    assert_eq!(sibling.last_error_code.as_deref(), Some("CANCELLED"));
    assert_eq!(
        notify_jobs(store.clone()).await,
        1,
        "the failure is announced through the outbox, once"
    );
    let events = store.stage_events(&created.id).await.unwrap();
    assert_eq!(events.last().unwrap().status, ConversationStatus::Failed);

    // A second death (a late sibling) changes nothing and announces nothing.
    drain(store.clone()).await;
    let mut late = NewJob::new(
        CONVERSATIONS,
        "conversation.transcribe_chunk",
        serde_json::json!({}),
    );
    late.conversation_id = Some(created.id.clone());
    store.enqueue(late).await.unwrap();
    let claimed = store.claim(CONVERSATIONS, "late", 1).await.unwrap();
    let outcome = store
        .fail(
            &claimed[0].lease().unwrap(),
            &failure("GROQ_API_ERROR", false),
        )
        .await
        .unwrap();
    assert_eq!(outcome, FailOutcome::Dead);
    let again = store.get_conversation(&created.id).await.unwrap().unwrap();
    assert_eq!(
        again.error.as_ref().unwrap().code,
        "WORKER_LOST",
        "the first failure's code stands"
    );
    assert_eq!(
        store.stage_events(&created.id).await.unwrap().len(),
        events.len()
    );
    assert_eq!(
        notify_jobs(store.clone()).await,
        0,
        "no second failure notice"
    );

    // Retry resumes it; and a conversation stuck from before (a stage, every job dead) can be
    // retried too, while one with work still queued cannot.
    let restarted = salesai_core::pipeline::retry(store.as_ref(), &again)
        .await
        .unwrap();
    let resumed = store.get_conversation(&created.id).await.unwrap().unwrap();
    assert_ne!(resumed.status, ConversationStatus::Failed);
    assert!(restarted.job_id > 0);
    assert!(
        salesai_core::pipeline::retry(store.as_ref(), &resumed)
            .await
            .is_err(),
        "work is queued: not retryable"
    );
    let claimed = store.claim(CONVERSATIONS, "w", 10).await.unwrap();
    for job in &claimed {
        store
            .fail(&job.lease().unwrap(), &failure("X", false))
            .await
            .unwrap();
    }
    store
        .set_conversation_status(&created.id, ConversationStatus::Analyzing, None)
        .await
        .unwrap();
    let stuck = store.get_conversation(&created.id).await.unwrap().unwrap();
    assert_eq!(stuck.status, ConversationStatus::Analyzing);
    salesai_core::pipeline::retry(store.as_ref(), &stuck)
        .await
        .expect("every job dead: a stuck conversation is retryable");
}

story!(a_conversations_notifications_run_one_at_a_time);
async fn a_conversations_notifications_run_one_at_a_time(db: &TestDb) {
    use salesai_core::queue::NOTIFICATIONS;
    let store = db.store();
    let notify = |conversation: &str| {
        let mut job = NewJob::new(
            NOTIFICATIONS,
            salesai_core::pipeline::NOTIFY,
            serde_json::json!({ "conversation_id": conversation }),
        );
        job.conversation_id = Some(conversation.to_owned());
        job
    };
    let a = store
        .create_conversation(new_conversation("C-A", None))
        .await
        .unwrap()
        .id;
    let b = store
        .create_conversation(new_conversation("C-B", None))
        .await
        .unwrap()
        .id;
    let first = store.enqueue(notify(&a)).await.unwrap().id;
    let claimed = store.claim(NOTIFICATIONS, "w1", 10).await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [first]);
    // A newer status change queues the next notification while the first is still posting.
    let second = store.enqueue(notify(&a)).await.unwrap().id;
    let other = store.enqueue(notify(&b)).await.unwrap().id;
    let claimed2 = store.claim(NOTIFICATIONS, "w2", 10).await.unwrap();
    assert_eq!(
        claimed2.iter().map(|j| j.id).collect::<Vec<_>>(),
        [other],
        "another conversation's notification runs; this one's waits for the running one"
    );
    assert!(store.complete(&claimed[0].lease().unwrap()).await.unwrap());
    let claimed3 = store.claim(NOTIFICATIONS, "w2", 10).await.unwrap();
    assert_eq!(claimed3.iter().map(|j| j.id).collect::<Vec<_>>(), [second]);
    assert!(store.complete(&claimed3[0].lease().unwrap()).await.unwrap());
    // Two queued at once (a crashed notifier's job returned beside a new one): one per claim.
    let x = store.enqueue(notify(&a)).await.unwrap().id;
    let y = store.enqueue(notify(&a)).await.unwrap().id;
    let batch = store.claim(NOTIFICATIONS, "w3", 10).await.unwrap();
    assert_eq!(
        batch.iter().map(|j| j.id).collect::<Vec<_>>(),
        [x],
        "the oldest first, alone"
    );
    store.complete(&batch[0].lease().unwrap()).await.unwrap();
    let batch = store.claim(NOTIFICATIONS, "w3", 10).await.unwrap();
    assert_eq!(batch.iter().map(|j| j.id).collect::<Vec<_>>(), [y]);
}

story!(later_stages_of_earlier_calls_are_claimed_first);
async fn later_stages_of_earlier_calls_are_claimed_first(db: &TestDb) {
    use salesai_core::pipeline::{ANALYZE, MERGE, PREPARE};
    let store = db.store();
    let stage = |kind: &str, conversation: &str| {
        NewJob::new(CONVERSATIONS, kind, serde_json::json!({})).for_conversation(conversation)
    };
    let claim_one = || async {
        let jobs = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        store.complete(&jobs[0].lease().unwrap()).await.unwrap();
        (
            jobs[0].kind.clone(),
            jobs[0].conversation_id.clone().unwrap_or_default(),
        )
    };
    // Two calls uploaded one after the other: each queues its preparation.
    let a = store
        .create_conversation(new_conversation("C-A", None))
        .await
        .unwrap()
        .id;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let b = store
        .create_conversation(new_conversation("C-B", None))
        .await
        .unwrap()
        .id;
    assert_eq!(claim_one().await, (PREPARE.to_owned(), a.clone()));
    // A's preparation hands over to its analysis, queued after B's preparation: A's analysis
    // (a later stage of an earlier call) goes first.
    store.enqueue(stage(ANALYZE, &a)).await.unwrap();
    assert_eq!(claim_one().await, (ANALYZE.to_owned(), a.clone()));
    // A call uploaded later but further along also goes before B's preparation.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let c = store
        .create_conversation(new_conversation("C-C", None))
        .await
        .unwrap()
        .id;
    store.enqueue(stage(MERGE, &c)).await.unwrap();
    // A job of no conversation is first come, first served: after the calls' work queued
    // before it.
    store
        .enqueue(NewJob::new(
            CONVERSATIONS,
            "maintenance.noop",
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(claim_one().await, (MERGE.to_owned(), c.clone()));
    assert_eq!(claim_one().await, (PREPARE.to_owned(), b.clone()));
    assert_eq!(claim_one().await, (PREPARE.to_owned(), c.clone()));
    assert_eq!(claim_one().await.0, "maintenance.noop");
    // A retried job keeps its place: due again, it goes before newer calls' work.
    store.enqueue(stage(ANALYZE, &b)).await.unwrap();
    let jobs = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    assert_eq!(jobs[0].kind, ANALYZE);
    store
        .fail(&jobs[0].lease().unwrap(), &failure("LLM_API_ERROR", true))
        .await
        .unwrap();
    sqlx_force_due(db, jobs[0].id).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let d = store
        .create_conversation(new_conversation("C-D", None))
        .await
        .unwrap()
        .id;
    store.enqueue(stage(ANALYZE, &d)).await.unwrap();
    assert_eq!(claim_one().await, (ANALYZE.to_owned(), b.clone()));
    assert_eq!(claim_one().await, (ANALYZE.to_owned(), d.clone()));
}

story!(expired_leases_return_jobs);
async fn expired_leases_return_jobs(db: &TestDb) {
    let store = db.store();
    // A lost worker is a failed attempt: the job waits the queue's backoff (200–400 ms here).
    let settings = QueueSettings {
        lease_secs: 1,
        max_attempts: 2,
        backoff_base_ms: 400,
        backoff_max_ms: 400,
        ..QueueSettings::defaults_for(CONVERSATIONS)
    };
    store.put_queue_settings(&settings).await.unwrap();
    let id = store.enqueue(job("slow")).await.unwrap().id;
    let first = store.claim(CONVERSATIONS, "dead-worker", 1).await.unwrap();
    let extended = store
        .extend_leases(&[first[0].lease().unwrap()])
        .await
        .unwrap();
    assert_eq!(extended, 1);
    assert_eq!(store.reap_expired_leases().await.unwrap().requeued, 0);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let before_reap = Utc::now();
    let reaped = store.reap_expired_leases().await.unwrap();
    assert_eq!((reaped.requeued, reaped.dead), (1, 0));
    let run_at = store.get_job(id).await.unwrap().unwrap().job.run_at;
    assert!(
        run_at >= before_reap + chrono::Duration::milliseconds(200),
        "the lost attempt backs off: runs at {run_at}, reaped at {before_reap}"
    );
    assert!(
        store
            .claim(CONVERSATIONS, "eager", 1)
            .await
            .unwrap()
            .is_empty(),
        "not before its backoff"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        !store.complete(&first[0].lease().unwrap()).await.unwrap(),
        "old lease is void"
    );
    assert_eq!(
        store
            .fail(&first[0].lease().unwrap(), &failure("X", true))
            .await
            .unwrap(),
        FailOutcome::LeaseLost
    );

    let second = store.claim(CONVERSATIONS, "w2", 1).await.unwrap();
    assert_eq!((second[0].id, second[0].attempts), (id, 2));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reaped = store.reap_expired_leases().await.unwrap();
    assert_eq!(
        (reaped.requeued, reaped.dead),
        (0, 1),
        "attempts spent: dead"
    );
    let detail = store.get_job(id).await.unwrap().unwrap();
    assert_eq!(detail.job.last_error_code.as_deref(), Some("LEASE_EXPIRED"));
    assert_eq!(detail.attempts.len(), 2);

    // Graceful shutdown releases without spending an attempt.
    let other = store.enqueue(job("again")).await.unwrap().id;
    let held = store.claim(CONVERSATIONS, "w3", 1).await.unwrap();
    assert_eq!(store.release(&[held[0].lease().unwrap()]).await.unwrap(), 1);
    let job = store.get_job(other).await.unwrap().unwrap().job;
    assert_eq!((job.status, job.attempts), (JobStatus::Queued, 0));
}

story!(purge_dry_run_matches_purge);
async fn purge_dry_run_matches_purge(db: &TestDb) {
    let store = db.store();
    for kind in ["a", "a", "b", "a"] {
        store.enqueue(job(kind)).await.unwrap();
    }
    let held = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    assert_eq!(held[0].kind, "a");
    let filter = JobFilter {
        queue: Some(CONVERSATIONS.into()),
        kind: Some("a".into()),
        ..Default::default()
    };
    let would = store.purge_jobs(&filter, true).await.unwrap();
    assert_eq!(would.len(), 2, "the running job is spared");
    let before = store.list_jobs(&JobFilter::default()).await.unwrap().len();
    assert_eq!(before, 4, "dry run deletes nothing");
    let did = store.purge_jobs(&filter, false).await.unwrap();
    assert_eq!(would, did);
    assert_eq!(
        store.list_jobs(&JobFilter::default()).await.unwrap().len(),
        2
    );
    let running = JobFilter {
        status: Some(JobStatus::Running),
        ..Default::default()
    };
    assert!(store.purge_jobs(&running, true).await.is_err());
    let old = JobFilter {
        older_than: Some(Utc::now() - chrono::Duration::hours(1)),
        ..Default::default()
    };
    assert!(store.purge_jobs(&old, true).await.unwrap().is_empty());
}

pub(crate) fn new_conversation(customer: &str, key: Option<String>) -> NewConversation {
    NewConversation {
        customer_number: CustomerNumber::parse(customer).unwrap(),
        customer_name: "Cafe".into(),
        product_line: "ichef".into(),
        case_prefix: CasePrefix::parse("IC").unwrap(),
        case_period: CasePeriod::at(Utc::now(), chrono_tz::Asia::Taipei),
        conversation_type: ConversationType::DiscoveryCall,
        title: "first call".into(),
        conversation_date: Some(Utc::now()),
        rep_user_id: None,
        blob_key: Some("audio/x.flac".into()),
        media: Default::default(),
        metadata: serde_json::json!({ "store_type": "cafe" }),
        first_job: NewJob::new(CONVERSATIONS, "conversation.prepare", serde_json::json!({})),
        idempotency_key: key,
        slack: None,
    }
}

story!(concurrent_case_numbers_are_distinct);
async fn concurrent_case_numbers_are_distinct(db: &TestDb) {
    let store = db.store();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        let customer = format!("C{}", i % 7);
        tasks.push(tokio::spawn(async move {
            store
                .create_conversation(new_conversation(&customer, None))
                .await
        }));
    }
    let mut cases = HashSet::new();
    let mut opportunities = HashSet::new();
    for task in tasks {
        let created = task.await.unwrap().unwrap();
        assert!(created.created);
        cases.insert(created.case_number.to_string());
        opportunities.insert(created.opportunity_id);
        let conversation = store.get_conversation(&created.id).await.unwrap().unwrap();
        assert_eq!(conversation.status, ConversationStatus::Pending);
        let job = store.get_job(created.job_id).await.unwrap().unwrap().job;
        assert_eq!(job.conversation_id.as_deref(), Some(created.id.as_str()));
    }
    assert_eq!(cases.len(), 50, "50 distinct case numbers");
    assert_eq!(
        opportunities.len(),
        7,
        "opportunities found by customer number"
    );
    let mut sequences: Vec<u32> = cases
        .iter()
        .map(|c| c.rsplit("IC").next().unwrap().parse().unwrap())
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=50).collect::<Vec<_>>());
    let jobs = store
        .list_jobs(&JobFilter {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 50, "each conversation has exactly its one job");

    // Idempotent upload: same key, same conversation.
    let a = store
        .create_conversation(new_conversation("C1", Some("upload-1".into())))
        .await
        .unwrap();
    let b = store
        .create_conversation(new_conversation("C1", Some("upload-1".into())))
        .await
        .unwrap();
    assert!(a.created && !b.created);
    assert_eq!(
        (a.id, a.case_number, a.job_id),
        (b.id, b.case_number, b.job_id)
    );
}

story!(tokens_and_external_events);
async fn tokens_and_external_events(db: &TestDb) {
    let store = db.store();
    let hash = salesai_core::token::hash_token("sai_secret");
    let token = store
        .create_api_token(NewApiToken {
            name: "ops".into(),
            role: Role::Admin,
            token_hash: hash.clone(),
            user_id: None,
        })
        .await
        .unwrap();
    assert_eq!(token.role, Role::Admin);
    let dup = store
        .create_api_token(NewApiToken {
            name: "ops".into(),
            role: Role::Rep,
            token_hash: "other".into(),
            user_id: None,
        })
        .await;
    assert!(matches!(dup, Err(StoreError::InvalidInput(_))));
    let found = store.authenticate_api_token(&hash).await.unwrap().unwrap();
    assert!(found.last_used_at.is_some());
    assert!(
        store
            .authenticate_api_token("nope")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.revoke_api_token("ops").await.unwrap());
    assert!(!store.revoke_api_token("ops").await.unwrap());
    assert!(store.authenticate_api_token(&hash).await.unwrap().is_none());
    assert_eq!(store.list_api_tokens().await.unwrap().len(), 1);

    assert!(store.record_external_event("slack", "Ev1").await.unwrap());
    assert!(!store.record_external_event("slack", "Ev1").await.unwrap());
    assert!(
        store
            .record_external_event("slack-file", "Ev1")
            .await
            .unwrap()
    );
}

story!(conversation_lifecycle_and_checkpoints);
async fn conversation_lifecycle_and_checkpoints(db: &TestDb) {
    use salesai_core::domain::{Score, StageError};
    use salesai_core::store::{ConversationFilter, StoredAnalysis};
    use salesai_core::transcript::Segment;
    let store = db.store();
    let created = store
        .create_conversation(new_conversation("C-9", None))
        .await
        .unwrap();
    let id = created.id.as_str();
    assert_eq!(
        store
            .find_conversation_by_case(created.case_number.as_str())
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    store
        .set_conversation_status(id, ConversationStatus::Preparing, None)
        .await
        .unwrap();
    let error = StageError {
        stage: ConversationStatus::Preparing,
        code: "STT_NOT_CONFIGURED".into(),
        message: "no provider".into(),
        retryable: false,
    };
    store
        .set_conversation_status(id, ConversationStatus::Failed, Some(&error))
        .await
        .unwrap();
    let failed = store.get_conversation(id).await.unwrap().unwrap();
    assert_eq!(failed.error, Some(error));
    store
        .set_conversation_status(id, ConversationStatus::Analyzing, None)
        .await
        .unwrap();
    assert_eq!(
        store.get_conversation(id).await.unwrap().unwrap().error,
        None,
        "retry clears the error"
    );
    assert!(
        store
            .set_conversation_status("nope", ConversationStatus::Failed, None)
            .await
            .is_err()
    );

    let segments = vec![
        Segment {
            speaker: Some("Rep".into()),
            start_ms: 0,
            end_ms: 1500,
            text: "Hello".into(),
            ..Default::default()
        },
        Segment {
            speaker: None,
            start_ms: 1500,
            end_ms: 4000,
            text: "我們每天都很忙".into(),
            ..Default::default()
        },
    ];
    store.save_transcript(id, &segments).await.unwrap();
    store.save_transcript(id, &segments).await.unwrap();
    assert_eq!(
        store.get_transcript(id).await.unwrap(),
        segments,
        "replaced, not appended"
    );

    let run = |agent: &str, n: i64| AgentRun {
        agent: agent.into(),
        engine: "rules".into(),
        model: None,
        output: serde_json::json!({ "n": n }),
        prompt_tokens: Some(n),
        completion_tokens: None,
        latency_ms: Some(3),
        fallback: (n == 2).then(|| "the buyer's answer stayed invalid after a repair".into()),
    };
    store.save_agent_output(id, &run("buyer", 1)).await.unwrap();
    store.save_agent_output(id, &run("buyer", 2)).await.unwrap();
    store
        .save_agent_output(id, &run("context", 1))
        .await
        .unwrap();
    let outputs = store.get_agent_outputs(id).await.unwrap();
    assert_eq!(outputs.len(), 2);
    assert_eq!(
        outputs.iter().find(|o| o.agent == "buyer").unwrap().output["n"],
        2
    );
    assert_eq!(
        outputs
            .iter()
            .find(|o| o.agent == "buyer")
            .unwrap()
            .fallback
            .as_deref(),
        Some("the buyer's answer stayed invalid after a repair"),
        "the fallback reason is saved and replaced with the output"
    );
    assert_eq!(
        outputs
            .iter()
            .find(|o| o.agent == "context")
            .unwrap()
            .fallback,
        None
    );

    let analysis = StoredAnalysis {
        engine: "rules".into(),
        overall_score: Score::new(72).unwrap(),
        qualification: "strong".into(),
        pain_score: Score::new(80).unwrap(),
        decision_score: Score::new(70).unwrap(),
        champion_score: Score::new(65).unwrap(),
        metrics_score: Score::new(60).unwrap(),
        result: serde_json::json!({ "risks": [] }),
    };
    store.complete_analysis(id, &analysis).await.unwrap();
    assert_eq!(store.get_analysis(id).await.unwrap(), Some(analysis));
    let done = store.get_conversation(id).await.unwrap().unwrap();
    assert_eq!(done.status, ConversationStatus::Completed);
    let events: Vec<ConversationStatus> = store
        .stage_events(id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        events,
        vec![
            ConversationStatus::Pending,
            ConversationStatus::Preparing,
            ConversationStatus::Failed,
            ConversationStatus::Analyzing,
            ConversationStatus::Completed
        ]
    );
    store.clear_analysis(id).await.unwrap();
    assert!(store.get_agent_outputs(id).await.unwrap().is_empty());
    assert!(store.get_analysis(id).await.unwrap().is_none());
    assert_eq!(
        store.get_transcript(id).await.unwrap().len(),
        2,
        "the transcript stays"
    );

    store
        .create_conversation(new_conversation("C-10", None))
        .await
        .unwrap();
    let all = store
        .list_conversations(&ConversationFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let mine = store
        .list_conversations(&ConversationFilter {
            customer_number: Some("C-9".into()),
            status: Some(ConversationStatus::Completed),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    let page = store
        .list_conversations(&ConversationFilter {
            limit: 1,
            offset: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, id, "newest first, paged");
}

story!(users_are_found_by_slack_id_then_email);
async fn users_are_found_by_slack_id_then_email(db: &TestDb) {
    let store = db.store();
    let amy = store
        .find_or_create_user(Some("Amy@Example.com"), None, "Amy")
        .await
        .unwrap();
    assert_eq!(
        store
            .find_or_create_user(Some("amy@example.com "), None, "")
            .await
            .unwrap(),
        amy,
        "e-mail is case-insensitive"
    );
    let linked = store
        .find_or_create_user(Some("amy@example.com"), Some("U123"), "")
        .await
        .unwrap();
    assert_eq!(linked, amy, "found by e-mail, Slack id linked");
    assert_eq!(
        store
            .find_or_create_user(None, Some("U123"), "")
            .await
            .unwrap(),
        amy,
        "then found by Slack id"
    );
    let bob = store
        .find_or_create_user(None, Some("U999"), "Bob")
        .await
        .unwrap();
    assert_ne!(bob, amy);
    assert!(
        store
            .find_or_create_user(None, None, "nobody")
            .await
            .is_err()
    );
}
