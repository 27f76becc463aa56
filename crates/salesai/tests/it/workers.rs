//! Worker processes sharing one database: exactly-once processing at volume, and recovery from
//! a worker killed with SIGKILL while it held leases. Both backends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use salesai_core::queue::{JobFilter, JobStatus, MAINTENANCE, NewJob, QueueSettings};
use salesai_db::testing::TestDb;
use serde_json::json;

use crate::{Running, salesai};

use salesai_db::story;

fn worker(db: &TestDb, dir: &std::path::Path, id: &str) -> Running {
    let mut command = salesai(dir);
    command
        .arg("worker")
        .env("DATABASE_URL", &db.url)
        .env("SALESAI_DATA_DIR", dir)
        .env("SALESAI_WORKER_ID", id)
        .env("SALESAI_WORKER_QUEUES", MAINTENANCE)
        .env("SALESAI_WORKER_POLL_MS", "20")
        .env("SALESAI_SHUTDOWN_GRACE_SECS", "5")
        .env("SALESAI_LOG", "info");
    Running::start(command)
}

async fn count(db: &TestDb, status: JobStatus) -> usize {
    db.store()
        .list_jobs(&JobFilter {
            status: Some(status),
            limit: Some(100_000),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
}

async fn wait_for_completed(db: &TestDb, n: usize, limit: Duration, workers: &[&Running]) {
    let started = Instant::now();
    while count(db, JobStatus::Completed).await < n {
        if started.elapsed() > limit {
            let logs: Vec<String> = workers.iter().map(|w| w.log_text()).collect();
            panic!(
                "only {} of {n} completed within {limit:?}; logs:\n{}",
                count(db, JobStatus::Completed).await,
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

story!(ten_thousand_jobs_two_workers_exactly_once);
async fn ten_thousand_jobs_two_workers_exactly_once(db: &TestDb) {
    const JOBS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let store = db.store();
    store
        .put_queue_settings(&QueueSettings {
            max_concurrency: 8,
            max_batch: 8,
            ..QueueSettings::defaults_for(MAINTENANCE)
        })
        .await
        .unwrap();
    for chunk in 0..JOBS / 500 {
        let jobs = (0..500)
            .map(|i| {
                NewJob::new(
                    MAINTENANCE,
                    "maintenance.noop",
                    json!({ "n": chunk * 500 + i }),
                )
            })
            .collect();
        store.enqueue_many(jobs).await.unwrap();
    }
    let mut a = worker(db, dir.path(), "node-a");
    let mut b = worker(db, dir.path(), "node-b");
    wait_for_completed(db, JOBS, Duration::from_secs(240), &[&a, &b]).await;
    a.signal("TERM");
    b.signal("TERM");
    assert!(a.wait(Duration::from_secs(20)).success());
    assert!(b.wait(Duration::from_secs(20)).success());

    // Every job completed exactly once: one `job.completed` event per job across both nodes,
    // and no job needed a second attempt.
    let mut seen: HashMap<i64, u32> = HashMap::new();
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for events in [a.events(), b.events()] {
        for event in events.iter().filter(|e| e["event"] == "job.completed") {
            *seen.entry(event["job_id"].as_i64().unwrap()).or_default() += 1;
            *per_node
                .entry(event["worker_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(seen.len(), JOBS, "every job completed");
    assert!(seen.values().all(|n| *n == 1), "no job completed twice");
    assert_eq!(per_node.len(), 2, "both nodes took work: {per_node:?}");
    let jobs = store
        .list_jobs(&JobFilter {
            limit: Some(100_000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), JOBS);
    assert!(
        jobs.iter()
            .all(|j| j.status == JobStatus::Completed && j.attempts == 1)
    );
    assert!(a.log_text().contains("\"event\":\"worker.stopped\""));
}

story!(killed_worker_loses_no_job);
async fn killed_worker_loses_no_job(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let store = db.store();
    store
        .put_queue_settings(&QueueSettings {
            max_concurrency: 4,
            max_batch: 4,
            lease_secs: 2,
            ..QueueSettings::defaults_for(MAINTENANCE)
        })
        .await
        .unwrap();
    let jobs: Vec<NewJob> = (0..12)
        .map(|_| NewJob::new(MAINTENANCE, "maintenance.sleep", json!({ "ms": 600_000 })))
        .collect();
    let ids: Vec<i64> = store
        .enqueue_many(jobs)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();

    // Node A takes four hour-long jobs and is killed mid-flight.
    let mut a = worker(db, dir.path(), "node-a");
    let started = Instant::now();
    while count(db, JobStatus::Running).await < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node A never claimed: {}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.signal("KILL");
    a.wait(Duration::from_secs(10));
    let held: Vec<i64> = store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Running),
            ..Default::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(held.len(), 4);

    // Make the remaining work short so node B can finish everything.
    for id in &ids {
        match &db.database {
            salesai_db::Database::Sqlite(s) => {
                sqlx::query("UPDATE jobs SET payload = '{\"ms\":50}' WHERE id = ?")
                    .bind(id)
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
            salesai_db::Database::Postgres(s) => {
                sqlx::query("UPDATE jobs SET payload = '{\"ms\":50}'::jsonb WHERE id = $1")
                    .bind(id)
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
        }
    }
    let mut b = worker(db, dir.path(), "node-b");
    wait_for_completed(db, 12, Duration::from_secs(90), &[&b]).await;
    b.signal("TERM");
    assert!(b.wait(Duration::from_secs(20)).success());

    for id in held {
        let detail = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(detail.job.status, JobStatus::Completed);
        assert_eq!(detail.job.attempts, 2, "the killed attempt counted");
        assert_eq!(detail.attempts[0].outcome, "lease_expired");
        assert_eq!(detail.attempts[0].worker_id.as_deref(), Some("node-a"));
    }
    assert!(
        b.log_text().contains("queue.leases_expired"),
        "{}",
        b.log_text()
    );
}
