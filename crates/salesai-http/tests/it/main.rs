//! The real router on port 0 against real stores: health, readiness, metrics and the admin
//! API with its authentication.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::StatusCode;
use salesai_core::App;
use salesai_core::blob::{BlobError, BlobKey, BlobStore, ByteStream};
use salesai_core::domain::Role;
use salesai_core::queue::{CONVERSATIONS, JobFailure, JobStatus, NewJob};
use salesai_core::store::{NewApiToken, PersonChange};
use salesai_db::testing::TestDb;
use salesai_providers::blob::ObjectBlobStore;
use serde_json::{Value, json};

use salesai_db::story;

mod bad_input;
mod oidc;
mod openapi;
mod renderings;
mod scan;

mod serve;
mod web;

/// The application served on an ephemeral port.
struct TestApp {
    base: String,
    app: App,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn spawn(db: &TestDb) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::folder(dir.path()).unwrap());
        Self::spawn_with(db, blobs, dir).await
    }

    async fn spawn_with(db: &TestDb, blobs: Arc<dyn BlobStore>, dir: tempfile::TempDir) -> TestApp {
        Self::serve(App::new(db.store(), blobs), dir).await
    }

    /// Serves `app` (whose blobs live in `dir`) on an ephemeral port.
    async fn serve(app: App, dir: tempfile::TempDir) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        // Served as `salesai serve` serves it: the client's address (the sign-in limiter keys
        // by it), its limits, its explained parse errors.
        let router = salesai_http::router(app.clone());
        tokio::spawn(async move {
            salesai_http::serve::serve(
                listener,
                router,
                salesai_http::serve::Limits::default(),
                std::future::pending(),
            )
            .await
            .unwrap()
        });
        TestApp {
            base,
            app,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn token(&self, name: &str, role: Role) -> String {
        self.token_of(name, role, None).await
    }

    /// A token of `role` that belongs to the person `user_id` (or to nobody: a service token).
    async fn token_of(&self, name: &str, role: Role, user_id: Option<&str>) -> String {
        let secret = salesai_core::token::generate_token();
        self.app
            .store
            .create_api_token(NewApiToken {
                name: name.into(),
                role,
                token_hash: salesai_core::token::hash_token(&secret),
                user_id: user_id.map(Into::into),
            })
            .await
            .unwrap();
        secret
    }

    /// A token that belongs to a person (created by e-mail, holding `role`): (secret, the
    /// person's id).
    async fn token_for(&self, name: &str, role: Role, email: &str) -> (String, String) {
        let user = self
            .app
            .store
            .find_or_create_user(Some(email), None, name)
            .await
            .unwrap();
        self.app.store.set_user_role(&user, role).await.unwrap();
        (self.token_of(name, role, Some(&user)).await, user)
    }

    fn get(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    fn post(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
    }
}

story!(health_ready_and_metrics);
async fn health_ready_and_metrics(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let health = t
        .client
        .get(format!("{}/health", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(health.headers().contains_key("x-request-id"));
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let echoed = t
        .client
        .get(format!("{}/health", t.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "abc-123");

    let ready = t
        .client
        .get(format!("{}/ready", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    for check in ["database", "storage", "queue"] {
        assert_eq!(body["checks"][check]["ok"], true, "{check}: {body}");
    }

    t.app
        .store
        .enqueue(NewJob::new(CONVERSATIONS, "x", json!({})))
        .await
        .unwrap();
    let metrics = t
        .client
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics")
    );
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"salesai_queue_depth{queue="conversations",status="queued"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"salesai_queue_oldest_waiting_seconds{queue="conversations"}"#));
    assert!(
        text.contains(r#"salesai_http_requests_total{method="GET",route="/ready",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("salesai_http_request_duration_seconds_bucket"));
}

/// Storage that is down.
struct BrokenBlobs;

#[async_trait]
impl BlobStore for BrokenBlobs {
    fn describe(&self) -> String {
        "broken".into()
    }
    async fn put_stream(&self, _: &BlobKey, _: ByteStream) -> Result<u64, BlobError> {
        Err(BlobError::Unavailable("connection refused".into()))
    }
    async fn get_stream(&self, _: &BlobKey) -> Result<ByteStream, BlobError> {
        Err(BlobError::Unavailable("connection refused".into()))
    }
    async fn size(&self, _: &BlobKey) -> Result<Option<u64>, BlobError> {
        Err(BlobError::Unavailable("connection refused".into()))
    }
    async fn delete(&self, _: &BlobKey) -> Result<(), BlobError> {
        Err(BlobError::Unavailable("connection refused".into()))
    }
}

/// Storage that reads but no longer takes a write (a full disk, a read-only mount, a bucket
/// key that lost write access), counting the writes tried.
struct ReadOnlyBlobs(std::sync::atomic::AtomicU32);

#[async_trait]
impl BlobStore for ReadOnlyBlobs {
    fn describe(&self) -> String {
        "read-only".into()
    }
    async fn put_stream(&self, _: &BlobKey, _: ByteStream) -> Result<u64, BlobError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(BlobError::Unavailable("read-only file system".into()))
    }
    async fn get_stream(&self, _: &BlobKey) -> Result<ByteStream, BlobError> {
        Ok(Box::pin(futures_util::stream::empty()))
    }
    async fn size(&self, _: &BlobKey) -> Result<Option<u64>, BlobError> {
        Ok(Some(1))
    }
    async fn delete(&self, _: &BlobKey) -> Result<(), BlobError> {
        Ok(())
    }
}

story!(ready_sees_storage_that_no_longer_takes_a_write);
async fn ready_sees_storage_that_no_longer_takes_a_write(db: &TestDb) {
    let blobs = Arc::new(ReadOnlyBlobs(std::sync::atomic::AtomicU32::new(0)));
    let t = TestApp::spawn_with(db, blobs.clone(), tempfile::tempdir().unwrap()).await;
    for _ in 0..3 {
        let ready = t
            .client
            .get(format!("{}/ready", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["checks"]["storage"]["ok"], false);
        assert!(
            body["checks"]["storage"]["error"]
                .as_str()
                .unwrap()
                .contains("read-only"),
            "{body}"
        );
    }
    assert_eq!(
        blobs.0.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "a failing store is probed again at every /ready: a node is back as soon as it is"
    );
}

story!(ready_reports_the_failing_check);
async fn ready_reports_the_failing_check(db: &TestDb) {
    let t = TestApp::spawn_with(db, Arc::new(BrokenBlobs), tempfile::tempdir().unwrap()).await;
    let ready = t
        .client
        .get(format!("{}/ready", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"]["ok"], true);
    assert_eq!(body["checks"]["storage"]["ok"], false);
    assert!(
        body["checks"]["storage"]["error"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    // Liveness does not depend on storage.
    let health = t
        .client
        .get(format!("{}/health", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

story!(admin_api_needs_an_admin_token);
async fn admin_api_needs_an_admin_token(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let anonymous = t
        .client
        .get(format!("{}/api/v1/admin/queues", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("salesai token create")
    );
    assert_eq!(
        t.get("/api/v1/admin/queues", "sai_wrong")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let rep = t.token("rep", Role::Rep).await;
    let forbidden = t.get("/api/v1/admin/queues", &rep).send().await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let service = t.token("svc", Role::Service).await;
    assert_eq!(
        t.post("/api/v1/admin/queues/conversations/pause", &service)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let admin = t.token("ops", Role::Admin).await;
    assert_eq!(
        t.get("/api/v1/admin/queues", &admin)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A revoked token stops working at once.
    t.app.store.revoke_api_token("ops").await.unwrap();
    assert_eq!(
        t.get("/api/v1/admin/queues", &admin)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

story!(admin_api_operates_the_queue);
async fn admin_api_operates_the_queue(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let admin = t.token("ops", Role::Admin).await;
    let store = &t.app.store;

    // Pause: enqueues still succeed, nothing is dispatched.
    let paused: Value = t
        .post("/api/v1/admin/queues/conversations/pause", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paused["paused"], true);
    for kind in ["a", "a", "b"] {
        store
            .enqueue(NewJob::new(CONVERSATIONS, kind, json!({})))
            .await
            .unwrap();
    }
    assert!(
        store
            .claim(CONVERSATIONS, "w", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let queues: Value = t
        .get("/api/v1/admin/queues", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = queues["stats"]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "conversations")
        .unwrap()
        .clone();
    assert_eq!(row["paused"], true);
    assert_eq!(row["depth"]["queued"], 3);
    t.post("/api/v1/admin/queues/conversations/resume", &admin)
        .send()
        .await
        .unwrap();

    // Settings: valid patch applies, invalid one is a 400 that says why.
    let patched: Value = t
        .client
        .patch(format!("{}/api/v1/admin/queues/conversations", t.base))
        .bearer_auth(&admin)
        .json(&json!({ "max_concurrency": 10, "max_batch": 10 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["max_concurrency"], 10);
    let bad = t
        .client
        .patch(format!("{}/api/v1/admin/queues/conversations", t.base))
        .bearer_auth(&admin)
        .json(&json!({ "max_batch": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_batch")
    );

    // A dead job: inspect, retry one.
    let claimed = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    let dead_id = claimed[0].id;
    store
        .fail(
            &claimed[0].lease().unwrap(),
            &JobFailure {
                code: "INVALID_INPUT".into(),
                message: "bad file".into(),
                retryable: false,
            },
        )
        .await
        .unwrap();
    let listed: Value = t
        .get("/api/v1/admin/jobs?status=dead", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
    let detail: Value = t
        .get(&format!("/api/v1/admin/jobs/{dead_id}"), &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["job"]["last_error_code"], "INVALID_INPUT");
    assert_eq!(detail["attempts"][0]["outcome"], "failed");
    assert_eq!(
        t.get("/api/v1/admin/jobs/999999", &admin)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.get("/api/v1/admin/jobs?status=bogus", &admin)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    let retried: Value = t
        .post(&format!("/api/v1/admin/jobs/{dead_id}/retry"), &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(retried["ids"], json!([dead_id]));
    assert_eq!(
        store.get_job(dead_id).await.unwrap().unwrap().job.status,
        JobStatus::Queued
    );
    assert_eq!(
        t.post(&format!("/api/v1/admin/jobs/{dead_id}/retry"), &admin)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND,
        "only dead jobs can be retried"
    );

    // Purge: needs a filter; the dry run lists exactly what the purge deletes.
    let unfiltered = t
        .post("/api/v1/admin/jobs/purge", &admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unfiltered.status(), StatusCode::BAD_REQUEST);
    let dry: Value = t
        .post("/api/v1/admin/jobs/purge", &admin)
        .json(&json!({ "queue": "conversations", "kind": "a", "dry_run": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dry["dry_run"], true);
    let real: Value = t
        .post("/api/v1/admin/jobs/purge", &admin)
        .json(&json!({ "queue": "conversations", "kind": "a" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dry["ids"], real["ids"]);
    assert_eq!(real["count"], 2);

    // Bulk retry of dead jobs by filter.
    let claimed = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    store
        .fail(
            &claimed[0].lease().unwrap(),
            &JobFailure {
                code: "STORAGE_ERROR".into(),
                message: "r2 down".into(),
                retryable: false,
            },
        )
        .await
        .unwrap();
    let bulk: Value = t
        .post("/api/v1/admin/jobs/retry", &admin)
        .json(&json!({ "queue": "conversations" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bulk["count"], 1);
}

mod pipeline {
    use super::*;
    use salesai_worker::{Registry, WorkerOptions};
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    pub(crate) const CALL: &str = "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Rep>How do you take orders today?\n\n00:00:04.000 --> 00:00:09.000\n<v Owner>By hand. It's slow and we lose about $2,000 a month in mistakes.\n\n00:00:09.000 --> 00:00:12.000\n<v Owner>I'm the owner, I decide. Sounds good, let's start the trial next week.\n";

    pub(crate) fn start_worker(app: &App) -> CancellationToken {
        let mut registry = Registry::new();
        salesai_worker::register_builtin(&mut registry);
        salesai_worker::register_pipeline(&mut registry);
        let token = CancellationToken::new();
        let options = WorkerOptions {
            poll_interval: Duration::from_millis(20),
            ..WorkerOptions::new("test-worker")
        };
        tokio::spawn(salesai_worker::run(
            app.clone(),
            registry,
            options,
            token.clone(),
        ));
        token
    }

    fn form(file_part: &str, bytes: Vec<u8>, name: &str) -> reqwest::multipart::Form {
        form_with(file_part, bytes, name, &[])
    }

    /// An upload's form: the usual fields, each of `fields` replacing its namesake or added
    /// (every field once, as salesai requires).
    fn form_with(
        file_part: &str,
        bytes: Vec<u8>,
        name: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::multipart::Form {
        let mut all: Vec<(String, String)> = [
            ("customer_number", "C-100"),
            ("customer_name", "Ramen House"),
            ("product_line", "default"),
            ("type", "discovery_call"),
            ("conversation_date", "2026-11-20"),
            ("current_system", "paper tickets"),
            ("rep_email", "amy@example.com"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in fields {
            match all.iter_mut().find(|(name, _)| name == k) {
                Some(field) => field.1 = v.to_string(),
                None => all.push((k.to_string(), v.to_string())),
            }
        }
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in all {
            form = form.text(k, v);
        }
        form.part(
            file_part.to_owned(),
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        )
    }

    async fn wait_status(t: &TestApp, token: &str, id: &str, want: &str) -> Value {
        for _ in 0..300 {
            let body: Value = t
                .get(&format!("/api/v1/conversations/{id}"), token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["conversation"]["status"] == want {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("conversation {id} never reached {want}");
    }

    story!(plain_text_transcripts_say_their_times_are_estimated);
    async fn plain_text_transcripts_say_their_times_are_estimated(db: &TestDb) {
        let t = TestApp::spawn(db).await;
        let token = t.token("svc", Role::Service).await;
        let worker = start_worker(&t.app);
        let mut ids = Vec::new();
        for (body, name) in [
            (CALL.to_owned(), "call.vtt"),
            (
                "業務: 您好，今天想了解點餐流程\n客戶: 尖峰時段常常漏單，預算大概五萬\n".to_owned(),
                "notes.txt",
            ),
        ] {
            let created: Value = t
                .post("/api/v1/conversations", &token)
                .multipart(form("file", body.into_bytes(), name))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(created["id"].as_str().unwrap().to_owned());
        }
        let timed = wait_status(&t, &token, &ids[0], "completed").await;
        let plain = wait_status(&t, &token, &ids[1], "completed").await;
        worker.cancel();
        assert_eq!(timed["estimated_times"], false);
        assert_eq!(timed["conversation"]["media"]["format"], "vtt");
        assert_eq!(plain["estimated_times"], true);
        assert_eq!(plain["conversation"]["media"]["format"], "txt");
    }

    story!(transcript_upload_runs_the_whole_pipeline);
    async fn transcript_upload_runs_the_whole_pipeline(db: &TestDb) {
        let t = TestApp::spawn(db).await;
        let token = t.token("svc", Role::Service).await;
        let worker = start_worker(&t.app);
        let response = t
            .post("/api/v1/conversations", &token)
            .header("Idempotency-Key", "upload-1")
            .multipart(form("transcript", CALL.as_bytes().to_vec(), "call.mp3"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        let created: Value = response.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(created["case_number"].as_str().unwrap().contains("-SA"));
        assert_eq!(
            created["links"]["self"],
            format!("/api/v1/conversations/{id}")
        );

        let again: Value = t
            .post("/api/v1/conversations", &token)
            .header("Idempotency-Key", "upload-1")
            .multipart(form("transcript", CALL.as_bytes().to_vec(), "call.vtt"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            again["id"], created["id"],
            "the idempotency key returns the first upload"
        );

        let done = wait_status(&t, &token, &id, "completed").await;
        assert_eq!(done["progress"], 100);
        assert_eq!(
            done["estimated_times"], false,
            "a WebVTT transcript's times are real"
        );
        assert_eq!(done["transcript"]["segments"].as_array().unwrap().len(), 3);
        assert_eq!(done["transcript"]["segments"][1]["speaker"], "Owner");
        let scores = &done["analysis"]["scores"];
        assert_eq!(scores["engine"], "rules");
        assert!(scores["overall_score"].as_u64().unwrap() <= 100);
        assert_eq!(done["analysis"]["agents"].as_object().unwrap().len(), 6);
        assert_eq!(
            done["analysis"]["agents"]["buyer"]["output"]["metrics"]["quantified_items"][0]["monthly_value"],
            2000.0
        );
        assert_eq!(
            done["conversation"]["metadata"]["current_system"],
            "paper tickets"
        );
        assert!(
            done["conversation"]["rep_user_id"].is_string(),
            "the rep is a user, found or created by e-mail"
        );
        assert_eq!(
            done["conversation"]["media"]["kind"], "transcript",
            "sniffed, whatever the file name said"
        );
        assert_eq!(done["conversation"]["customer_number"], "C-100");
        assert_eq!(done["conversation"]["customer_name"], "Ramen House");
        let statuses: Vec<&str> = done["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["pending", "preparing", "analyzing", "completed"]);

        // Same conversation by case number; the list finds it by customer.
        let case = created["case_number"].as_str().unwrap();
        let by_case = t
            .get(&format!("/api/v1/conversations/{case}"), &token)
            .send()
            .await
            .unwrap();
        assert_eq!(by_case.status(), StatusCode::OK);
        let listed: Value = t
            .get(
                "/api/v1/conversations?customer_number=C-100&status=completed",
                &token,
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["conversations"].as_array().unwrap().len(), 1);

        // Re-analysis keeps the transcript and completes again; retry of a completed one is refused.
        let retry = t
            .post(&format!("/api/v1/conversations/{id}/retry"), &token)
            .send()
            .await
            .unwrap();
        assert_eq!(retry.status(), StatusCode::CONFLICT);
        let re = t
            .post(&format!("/api/v1/conversations/{id}/reanalyze"), &token)
            .send()
            .await
            .unwrap();
        assert_eq!(re.status(), StatusCode::ACCEPTED);
        let redone = wait_status(&t, &token, &id, "completed").await;
        assert_eq!(
            redone["transcript"]["segments"].as_array().unwrap().len(),
            3
        );
        assert_eq!(
            redone["analysis"]["scores"]["overall_score"], scores["overall_score"],
            "rules are deterministic"
        );
        worker.cancel();
    }

    async fn count_conversations(t: &TestApp, token: &str) -> usize {
        let body: Value = t
            .get("/api/v1/conversations", token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["conversations"].as_array().map_or(0, Vec::len)
    }

    /// Every file under a folder (the local blob store's root).
    fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    out.extend(files_under(&path));
                } else {
                    out.push(path);
                }
            }
        }
        out
    }

    async fn error_of(response: reqwest::Response) -> (StatusCode, String, String) {
        let status = response.status();
        let body: Value = response.json().await.expect("every error is JSON");
        (
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }

    // Hostile and careless input: each is answered with the one JSON error format and a fitting
    // code, nothing panics, and nothing is half-written (no conversation, no stray blob).
    story!(hostile_input_is_answered_and_leaves_nothing);
    async fn hostile_input_is_answered_and_leaves_nothing(db: &TestDb) {
        let t = TestApp::spawn(db).await;
        let token = t.token("svc", Role::Service).await;
        let admin = t.token("ops", Role::Admin).await;
        let rep = t.token("amy", Role::Rep).await;
        let upload = |form: reqwest::multipart::Form| {
            t.post("/api/v1/conversations", &token).multipart(form)
        };
        let call = || form("transcript", CALL.as_bytes().to_vec(), "call.vtt");
        let call_with = |fields: &[(&str, &str)]| {
            form_with("transcript", CALL.as_bytes().to_vec(), "call.vtt", fields)
        };

        // Control characters in any text field (a NUL is stored by SQLite, refused by
        // PostgreSQL): refused on both backends, naming the field.
        for (field, value) in [
            ("customer_name", "Ramen\u{0}House"),
            ("title", "call\u{7}"),
            ("rep_slack_id", "U123\u{0}"),
            ("current_system", "x\u{1b}[31m"),
        ] {
            let (status, code, message) =
                error_of(upload(call_with(&[(field, value)])).send().await.unwrap()).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::BAD_REQUEST, "INVALID_INPUT"),
                "{field}"
            );
            assert!(
                message.contains(field) && message.contains("control"),
                "{message}"
            );
        }
        // Dates outside any call's life, a 10 KB field name, too many fields.
        for date in ["+99999-01-01", "1066-10-14", "2999-01-01"] {
            let (status, _, message) = error_of(
                upload(call_with(&[("conversation_date", date)]))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{date}");
            assert!(message.contains("conversation_date"), "{message}");
        }
        let (status, _, message) = error_of(
            upload(call().text("x".repeat(10_240), "v"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            message.contains("field name") && message.len() < 400,
            "{message}"
        );
        let mut many = call();
        for i in 0..60 {
            many = many.text(format!("extra_{i}"), "v");
        }
        let (status, _, message) = error_of(upload(many).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains("form fields"), "{message}");
        assert_eq!(count_conversations(&t, &admin).await, 0, "nothing created");
        assert!(
            files_under(t._dir.path()).is_empty(),
            "no stray blob: {:?}",
            files_under(t._dir.path())
        );

        // Idempotency-Key: the same request again is the same conversation; the same key with
        // a different request is 422; long keys are compared whole.
        let send = |key: String, name: &'static str| {
            t.post("/api/v1/conversations", &token)
                .header("Idempotency-Key", key)
                .multipart(call_with(&[("customer_name", name)]))
                .send()
        };
        let first: Value = send("k-1".into(), "Ramen House")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let again: Value = send("k-1".into(), "Ramen House")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(first["id"], again["id"]);
        assert_eq!(again["created"], false);
        let (status, code, message) =
            error_of(send("k-1".into(), "Noodle Bar").await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED")
        );
        assert!(message.contains("new key"), "{message}");
        let long = "k".repeat(250);
        let a: Value = send(format!("{long}a"), "Ramen House")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let b: Value = send(format!("{long}b"), "Ramen House")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_ne!(
            a["id"], b["id"],
            "keys differing after 250 characters are different keys"
        );
        assert_eq!(count_conversations(&t, &admin).await, 3);
        assert_eq!(
            files_under(t._dir.path()).len(),
            3,
            "one blob per conversation kept"
        );

        // The auth scheme is case-insensitive; codes fit the status.
        let upper = t
            .client
            .get(format!("{}/api/v1/conversations", t.base))
            .header("Authorization", format!("BEARER {admin}"))
            .send()
            .await
            .unwrap();
        assert_eq!(upper.status(), StatusCode::OK);
        let (status, code, _) =
            error_of(t.get("/api/v1/admin/queues", &rep).send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, "FORBIDDEN")
        );
        let (status, code, _) = error_of(
            t.get("/api/v1/conversations/nope", &admin)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "NOT_FOUND")
        );
        let (status, code, _) = error_of(
            t.client
                .get(format!("{}/api/v1/conversations", t.base))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
        );

        // Framework rejections speak JSON too: a bad query, an unknown route, a wrong method,
        // a broken JSON body, a broken multipart stream.
        let (status, code, message) = error_of(
            t.get("/api/v1/conversations?limit=lots", &admin)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "INVALID_INPUT")
        );
        assert!(message.contains("limit"), "{message}");
        let (status, code, _) = error_of(t.get("/api/v1/nope", &admin).send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "NOT_FOUND")
        );
        let (status, code, _) = error_of(
            t.client
                .delete(format!("{}/api/v1/admin/queues", t.base))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
        );
        let (status, _, _) = error_of(
            t.client
                .patch(format!("{}/api/v1/admin/queues/conversations", t.base))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(status.is_client_error());
        let (status, code, _) = error_of(
            t.post("/api/v1/conversations", &token)
                .header("content-type", "multipart/form-data; boundary=xyz")
                .body("--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nbroken")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "INVALID_INPUT")
        );

        // Ages that would overflow a timestamp are refused, not a dropped connection.
        let huge = "older_than_secs=9223372036854775807";
        let (status, _, message) = error_of(
            t.get(&format!("/api/v1/admin/jobs?{huge}"), &admin)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains("ten years"), "{message}");
        for path in ["/api/v1/admin/jobs/purge", "/api/v1/admin/jobs/retry"] {
            let response = t
                .post(path, &admin)
                .json(&json!({ "older_than_secs": 9_223_372_036_854_775_807u64 }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        }
        // An unknown queue is 404, and no phantom queue is left behind.
        let (status, code, _) = error_of(
            t.post("/api/v1/admin/queues/nosuch/pause", &admin)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::NOT_FOUND, "NOT_FOUND")
        );
        let queues: Value = t
            .get("/api/v1/admin/queues", &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!queues.to_string().contains("nosuch"), "{queues}");
        let paused = t
            .post("/api/v1/admin/queues/notifications/pause", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            paused.status(),
            StatusCode::OK,
            "a built-in queue can be paused before it has jobs"
        );
    }

    // The authorisation table of tokens: route × caller × owner, each with its status. A
    // rep's own token reaches only their calls, a manager's the calls of the teams they manage;
    // admin, service and tokens from before tokens belonged to people reach all; only admin and
    // service upload for someone else; a deactivated person's token authenticates nothing.
    story!(tokens_reach_what_their_owner_may);
    async fn tokens_reach_what_their_owner_may(db: &TestDb) {
        let t = TestApp::spawn(db).await;
        let (amy, amy_id) = t.token_for("amy", Role::Rep, "amy@example.com").await;
        let (bob, bob_id) = t.token_for("bob", Role::Rep, "bob@example.com").await;
        let (manager, mia_id) = t.token_for("mia", Role::Manager, "mia@example.com").await;
        let (other_manager, max_id) = t.token_for("max", Role::Manager, "max@example.com").await;
        let (deactivated, gus_id) = t.token_for("gus", Role::Admin, "gus@example.com").await;
        // Another admin, so Gus (an admin) may be deactivated: the last one may not.
        t.app
            .store
            .invite_person("root@example.com", "Root", Role::Admin, None)
            .await
            .unwrap();
        let service = t.token("crm-sync", Role::Service).await;
        let admin = t.token("ops", Role::Admin).await;
        let legacy = t.token("old-rep", Role::Rep).await;
        let revoked = t.token("gone", Role::Admin).await;
        t.app.store.revoke_api_token("gone").await.unwrap();
        for (id, change) in [
            (
                &amy_id,
                PersonChange {
                    team: Some(Some("north".into())),
                    ..Default::default()
                },
            ),
            (
                &bob_id,
                PersonChange {
                    team: Some(Some("south".into())),
                    ..Default::default()
                },
            ),
            (
                &mia_id,
                PersonChange {
                    manages: Some(vec!["north".into()]),
                    ..Default::default()
                },
            ),
            (
                &max_id,
                PersonChange {
                    manages: Some(vec!["south".into()]),
                    ..Default::default()
                },
            ),
            (
                &gus_id,
                PersonChange {
                    active: Some(false),
                    ..Default::default()
                },
            ),
        ] {
            t.app
                .store
                .update_person(id, &change)
                .await
                .unwrap()
                .unwrap();
        }

        let upload = |token: &str, rep_email: Option<&str>| {
            let mut form = reqwest::multipart::Form::new()
                .text("customer_number", "C-1")
                .text("customer_name", "Ramen House")
                .part(
                    "transcript",
                    reqwest::multipart::Part::bytes(CALL.as_bytes().to_vec()).file_name("c.vtt"),
                );
            if let Some(email) = rep_email {
                form = form.text("rep_email", email.to_owned());
            }
            t.post("/api/v1/conversations", token)
                .multipart(form)
                .send()
        };
        // Uploads: one's own; for someone else only as admin or service.
        let own = upload(&amy, None).await.unwrap();
        assert_eq!(own.status(), StatusCode::ACCEPTED);
        let amys: Value = own.json().await.unwrap();
        let amys = amys["id"].as_str().unwrap().to_owned();
        assert_eq!(
            upload(&amy, Some("AMY@example.com"))
                .await
                .unwrap()
                .status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            upload(&amy, Some("bob@example.com"))
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            upload(&manager, Some("bob@example.com"))
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
        let for_bob = upload(&service, Some("bob@example.com")).await.unwrap();
        assert_eq!(for_bob.status(), StatusCode::ACCEPTED);
        let bobs: Value = for_bob.json().await.unwrap();
        let bobs = bobs["id"].as_str().unwrap().to_owned();
        assert_eq!(
            upload(&admin, Some("new@example.com"))
                .await
                .unwrap()
                .status(),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            upload(&legacy, Some("bob@example.com"))
                .await
                .unwrap()
                .status(),
            StatusCode::ACCEPTED
        );
        let stored = t.app.store.get_conversation(&amys).await.unwrap().unwrap();
        assert_eq!(
            stored.rep_user_id.as_deref(),
            Some(amy_id.as_str()),
            "an own token uploads as its owner"
        );
        let stored = t.app.store.get_conversation(&bobs).await.unwrap().unwrap();
        assert_eq!(stored.rep_user_id.as_deref(), Some(bob_id.as_str()));

        // Reading and acting on one conversation (Amy's).
        let callers: [(&str, Option<&str>); 10] = [
            ("anonymous", None),
            ("amy", Some(&amy)),
            ("bob", Some(&bob)),
            ("manager", Some(&manager)),
            ("other_manager", Some(&other_manager)),
            ("deactivated", Some(&deactivated)),
            ("service", Some(&service)),
            ("admin", Some(&admin)),
            ("legacy", Some(&legacy)),
            ("revoked", Some(&revoked)),
        ];
        let expect =
            |who: &str, allowed: StatusCode, forbidden_for: &[&str], admin_only: bool| match who {
                "anonymous" | "revoked" | "deactivated" => StatusCode::UNAUTHORIZED,
                w if admin_only && w != "admin" => StatusCode::FORBIDDEN,
                w if forbidden_for.contains(&w) => StatusCode::FORBIDDEN,
                _ => allowed,
            };
        for (who, token) in callers {
            let send = |builder: reqwest::RequestBuilder| async move {
                match token {
                    Some(token) => builder.bearer_auth(token),
                    None => builder,
                }
                .send()
                .await
                .unwrap()
                .status()
            };
            let url = |path: &str| format!("{}{path}", t.base);
            let rows: Vec<(&str, StatusCode, StatusCode)> = vec![
                (
                    "GET one",
                    send(t.client.get(url(&format!("/api/v1/conversations/{amys}")))).await,
                    expect(who, StatusCode::OK, &["bob", "other_manager"], false),
                ),
                (
                    "retry (pending: 409 when allowed)",
                    send(
                        t.client
                            .post(url(&format!("/api/v1/conversations/{amys}/retry"))),
                    )
                    .await,
                    expect(who, StatusCode::CONFLICT, &["bob", "other_manager"], false),
                ),
                (
                    "reanalyze (no transcript yet: refused when allowed)",
                    send(
                        t.client
                            .post(url(&format!("/api/v1/conversations/{amys}/reanalyze"))),
                    )
                    .await,
                    expect(who, StatusCode::CONFLICT, &["bob", "other_manager"], false),
                ),
                (
                    "list someone else's",
                    send(
                        t.client
                            .get(url(&format!("/api/v1/conversations?rep={bob_id}"))),
                    )
                    .await,
                    expect(who, StatusCode::OK, &["amy"], false),
                ),
                (
                    "admin queues",
                    send(t.client.get(url("/api/v1/admin/queues"))).await,
                    expect(who, StatusCode::OK, &[], true),
                ),
                (
                    "admin jobs",
                    send(t.client.get(url("/api/v1/admin/jobs"))).await,
                    expect(who, StatusCode::OK, &[], true),
                ),
            ];
            for (route, got, want) in rows {
                assert_eq!(got, want, "{route} as {who}");
            }
        }
        // Listings: a rep sees their own calls only; the others see all.
        let t = &t;
        let listed = |token: String| async move {
            let body: Value = t
                .get("/api/v1/conversations", &token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["rep_user_id"].as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        };
        let amy_sees = listed(amy.clone()).await;
        assert_eq!(amy_sees.len(), 2);
        assert!(amy_sees.iter().all(|r| *r == amy_id), "{amy_sees:?}");
        let bob_sees = listed(bob.clone()).await;
        assert!(bob_sees.iter().all(|r| *r == bob_id) && bob_sees.len() == 2);
        assert_eq!(
            listed(manager.clone()).await.len(),
            2,
            "Mia manages Amy's team"
        );
        assert_eq!(
            listed(other_manager.clone()).await.len(),
            2,
            "Max manages Bob's team"
        );
        assert_eq!(
            listed(admin.clone()).await.len(),
            5,
            "five uploads were accepted"
        );
        assert_eq!(listed(legacy.clone()).await.len(), 5);
        // Deleting: admins only.
        for token in [&amy, &manager, &service, &legacy] {
            let status = t
                .client
                .delete(format!("{}/api/v1/conversations/{amys}", t.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        let status = t
            .client
            .delete(format!("{}/api/v1/conversations/{amys}", t.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    story!(bad_uploads_are_refused_and_leave_nothing);
    async fn bad_uploads_are_refused_and_leave_nothing(db: &TestDb) {
        let mut t = TestApp::spawn(db).await;
        let token = t.token("svc", Role::Service).await;
        let pdf = t
            .post("/api/v1/conversations", &token)
            .multipart(form(
                "audio",
                b"%PDF-1.7\x00\x01\x02\x03 binary".to_vec(),
                "call.mp3",
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(pdf.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let body: Value = pdf.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains("MP3"),
            "{body}"
        );

        let missing = reqwest::multipart::Form::new().part(
            "transcript",
            reqwest::multipart::Part::bytes(CALL.as_bytes().to_vec()).file_name("c.vtt"),
        );
        let response = t
            .post("/api/v1/conversations", &token)
            .multipart(missing)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("customer_number")
        );

        let unknown_line =
            form("transcript", CALL.as_bytes().to_vec(), "x").text("product_line", "cars");
        let response = t
            .post("/api/v1/conversations", &token)
            .multipart(unknown_line)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);

        // (No body: the server answers 401 before reading one, and a client still writing a
        // body may see the connection close first.)
        let anonymous = t
            .client
            .post(format!("{}/api/v1/conversations", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

        // A small limit: 413, and the partial blob is gone.
        t = {
            let mut app = t.app.clone();
            app.max_upload_bytes = 1024;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let router = salesai_http::router(app.clone());
            tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
            TestApp {
                base,
                app,
                client: reqwest::Client::new(),
                _dir: t._dir,
            }
        };
        let big = vec![b'a'; 64 * 1024];
        let response = t
            .post("/api/v1/conversations", &token)
            .multipart(form("transcript", big, "big.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            t.app
                .store
                .list_conversations(&Default::default())
                .await
                .unwrap()
                .is_empty(),
            "no conversation without its upload"
        );
        let leftovers = walk(t._dir.path());
        assert!(
            leftovers.iter().all(|p| !p.contains("uploads/")),
            "no blob left behind: {leftovers:?}"
        );
    }

    fn walk(dir: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    out.extend(walk(&path));
                } else {
                    out.push(path.display().to_string());
                }
            }
        }
        out
    }

    story!(audio_without_stt_fails_fast_and_retry_resumes);
    async fn audio_without_stt_fails_fast_and_retry_resumes(db: &TestDb) {
        let t = TestApp::spawn(db).await;
        let token = t.token("svc", Role::Service).await;
        let worker = start_worker(&t.app);
        let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
        wav.extend(vec![0u8; 2048]);
        let created: Value = t
            .post("/api/v1/conversations", &token)
            .multipart(form("audio", wav, "call.wav"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let failed = wait_status(&t, &token, &id, "failed").await;
        assert_eq!(failed["error"]["code"], "STT_NOT_CONFIGURED");
        assert_eq!(failed["error"]["stage"], "preparing");
        assert_eq!(failed["error"]["retryable"], true);
        assert!(
            failed["error"]["message"]
                .as_str()
                .unwrap()
                .contains("GROQ_API_KEY")
        );
        // Retry starts again (and, with still no STT, fails again with a fresh error).
        let retry = t
            .post(&format!("/api/v1/conversations/{id}/retry"), &token)
            .send()
            .await
            .unwrap();
        assert_eq!(retry.status(), StatusCode::ACCEPTED);
        let body: Value = retry.json().await.unwrap();
        assert_eq!(body["resumes_at"], "conversation.prepare");
        let again = wait_status(&t, &token, &id, "failed").await;
        let failures = again["stages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "failed")
            .count();
        assert_eq!(failures, 2);
        worker.cancel();
    }

    story!(a_real_whisper_server_transcribes_an_uploaded_recording);
    async fn a_real_whisper_server_transcribes_an_uploaded_recording(db: &TestDb) {
        let base = match std::env::var("SALESAI_TEST_WHISPER_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "SALESAI_TEST_WHISPER_URL is not set but CI=true"
                );
                return;
            }
        };
        let mut t = TestApp::spawn(db).await;
        t.app.stt = Some(Arc::new(salesai_providers::stt::SttClient::new(
            salesai_providers::stt::SttConfig {
                provider: "local".into(),
                base_url: base,
                api_key: None,
                model: "whisper-1".into(),
                timeout: Duration::from_secs(120),
                max_concurrency: 2,
                requests_per_minute: None,
                limits: salesai_core::audio::ChunkLimits {
                    max_ms: 8_000,
                    search_ms: 3_000,
                    ..Default::default()
                },
            },
        )));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        t.base = format!("http://{}", listener.local_addr().unwrap());
        let router = salesai_http::router(t.app.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let token = t.token("svc", Role::Service).await;
        let worker = start_worker(&t.app);
        let wav = t._dir.path().join("call.wav");
        let status = std::process::Command::new("espeak-ng")
            .args(["-v", "en", "-s", "140", "-w"])
            .arg(&wav)
            .arg("Our restaurant writes every order by hand. We lose money every month. I am the owner and I decide.")
            .status()
            .expect("espeak-ng is installed");
        assert!(status.success());
        let created: Value = t
            .post("/api/v1/conversations", &token)
            .multipart(form("audio", std::fs::read(&wav).unwrap(), "call.mp3"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let mut done = Value::Null;
        for _ in 0..1500 {
            done = t
                .get(&format!("/api/v1/conversations/{id}"), &token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if done["conversation"]["status"] == "completed"
                || done["conversation"]["status"] == "failed"
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        assert_eq!(
            done["conversation"]["status"], "completed",
            "{}",
            done["error"]
        );
        assert_eq!(
            done["conversation"]["media"]["format"], "wav",
            "sniffed, not taken from the name"
        );
        let text = done["transcript"]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["text"].as_str().unwrap().to_lowercase())
            .collect::<Vec<_>>()
            .join(" ");
        for word in ["restaurant", "order", "money", "owner"] {
            assert!(text.contains(word), "{word:?} not heard in {text:?}");
        }
        let statuses: Vec<&str> = done["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert!(statuses.contains(&"transcribing"), "{statuses:?}");
        assert_eq!(done["analysis"]["agents"]["buyer"]["engine"], "rules");
        worker.cancel();
    }
}

story!(admin_api_runs_the_database_repairs);
async fn admin_api_runs_the_database_repairs(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let admin = t.token("ops", Role::Admin).await;
    let service = t.token("svc", Role::Service).await;
    let analyze = t
        .post("/api/v1/admin/db/analyze", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(analyze.status(), StatusCode::OK);
    assert_eq!(
        t.post("/api/v1/admin/db/analyze", &service)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let terminate = t
        .post(
            "/api/v1/admin/db/terminate-idle?older_than_secs=300",
            &admin,
        )
        .send()
        .await
        .unwrap();
    match db.database.backend() {
        salesai_core::store::Backend::Postgres => {
            assert_eq!(terminate.status(), StatusCode::OK);
            let body: Value = terminate.json().await.unwrap();
            assert_eq!(body["older_than_secs"], 300);
            assert!(body["terminated"].as_i64().unwrap() >= 0);
        }
        salesai_core::store::Backend::Sqlite => {
            assert_eq!(terminate.status(), StatusCode::BAD_REQUEST);
            let body: Value = terminate.json().await.unwrap();
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("PostgreSQL"),
                "{body}"
            );
        }
    }
}

story!(admins_delete_conversations);
async fn admins_delete_conversations(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let admin = t.token("ops", Role::Admin).await;
    let service = t.token("svc", Role::Service).await;
    let form = reqwest::multipart::Form::new()
        .part(
            "transcript",
            reqwest::multipart::Part::bytes(pipeline::CALL.as_bytes().to_vec())
                .file_name("call.vtt"),
        )
        .text("customer_number", "DEL-1");
    let created: Value = t
        .post("/api/v1/conversations", &service)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/conversations/{id}");
    let refused = t
        .client
        .delete(format!("{}{path}", t.base))
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let deleted = t
        .client
        .delete(format!("{}{path}", t.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(t.app.store.get_conversation(id).await.unwrap().is_none());
    let key =
        salesai_core::blob::BlobKey::parse(created["blob_key"].as_str().unwrap_or("uploads/x"))
            .unwrap();
    let _ = key;
    let again = t
        .client
        .delete(format!("{}{path}", t.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

story!(the_conversations_api_pages_with_a_cursor);
async fn the_conversations_api_pages_with_a_cursor(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let admin = t.token("admin", Role::Admin).await;
    let rep = t
        .app
        .store
        .find_or_create_user(Some("pam@example.com"), None, "Pam")
        .await
        .unwrap();
    for _ in 0..5 {
        t.app
            .store
            .create_conversation(web::new_call_for(&rep))
            .await
            .unwrap();
    }
    // Walk the list two at a time with next_after: every call once, newest first.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let path = match &after {
            Some(a) => format!("/api/v1/conversations?limit=2&after={a}"),
            None => "/api/v1/conversations?limit=2".into(),
        };
        let page: Value = t
            .get(&path, &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ids: Vec<String> = page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        seen.extend(ids);
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.replace('~', "%7E")),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 5);
    for bad in [
        "/api/v1/conversations?after=not-a-cursor",
        "/api/v1/conversations?after=1~x&offset=2",
    ] {
        let r = t.get(bad, &admin).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// A TCP forwarder to PostgreSQL that can be cut, as a database outage looks from a node: new
/// connections are refused and open ones drop.
struct Outage {
    addr: std::net::SocketAddr,
    cut: tokio_util::sync::CancellationToken,
}

impl Outage {
    async fn forward_to(target: std::net::SocketAddr) -> Outage {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = tokio_util::sync::CancellationToken::new();
        let stop = cut.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = stop.cancelled() => return, // the listener drops: connections refused
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    }
                });
            }
        });
        Outage { addr, cut }
    }
}

story!(a_database_outage_is_a_quick_503_with_retry_after);
async fn a_database_outage_is_a_quick_503_with_retry_after(db: &TestDb) {
    let salesai_db::Database::Postgres(_) = &db.database else {
        return; // SQLite is a file: it has no outage of this kind
    };
    // The test database, reached through a forwarder that can be cut.
    let mut url = url::Url::parse(&db.url).unwrap();
    let target: std::net::SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let outage = Outage::forward_to(target).await;
    url.set_port(Some(outage.addr.port())).unwrap();
    let database = salesai_db::Database::connect(
        url.as_str(),
        &salesai_db::ConnectOptions {
            max_connections: 4,
            acquire_timeout: std::time::Duration::from_millis(2_500),
            pgbouncer: false,
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::folder(dir.path()).unwrap());
    let t = TestApp::serve(App::new(database.store(), blobs), dir).await;
    let admin = t.token("admin", Role::Admin).await;
    let ok = t.get("/api/v1/conversations", &admin).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    outage.cut.cancel();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // The API, the web app and readiness each answer 503 (JSON for the API, with Retry-After),
    // and nothing hangs: every request here is bounded by the client's own timeout.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let refused = client
        .get(format!("{}/api/v1/conversations", t.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "DATABASE_ERROR");
    let ready = client
        .get(format!("{}/ready", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = client
        .get(format!("{}/calls", t.base))
        .header("cookie", "salesai_session=whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
}
