//! The commands of the runbook, run as an operator would.

use std::time::Duration;

use salesai_db::testing::TestDb;

use crate::{Running, free_port, run, salesai, salesai_ready, stderr, stdout, wait_until_up};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_nothing_configured() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = salesai(dir.path());
    command
        .arg("serve")
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"));
    let mut server = Running::start(command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/health"), &server).await;
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for queue in ["conversations", "notifications", "maintenance"] {
        assert!(
            metrics.contains(&format!(
                "salesai_queue_depth{{queue=\"{queue}\",status=\"queued\"}} 0"
            )),
            "{metrics}"
        );
    }
    assert!(
        dir.path().join("data/salesai.db").exists(),
        "embedded default database"
    );
    assert!(
        dir.path().join("data/blobs").is_dir(),
        "embedded default blob folder"
    );
    // A link printed by another command points where this server answers (not port 3000).
    let out = run(salesai(dir.path()).args(["users", "invite", "ann@example.com"]));
    assert!(
        stdout(&out).contains(&format!("http://127.0.0.1:{port}/login/link/")),
        "{}",
        stdout(&out)
    );
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());
    let log = server.log_text();
    for event in [
        "process.started",
        "http.listening",
        "worker.started",
        "worker.stopped",
        "process.stopped",
    ] {
        assert!(
            log.contains(&format!("\"event\":\"{event}\"")),
            "missing {event} in:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_and_s3() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let endpoint = match std::env::var("SALESAI_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "SALESAI_TEST_S3_ENDPOINT is not set but CI=true"
            );
            return;
        }
    };
    let bucket = format!("salesai-serve-{}", free_port());
    let client = reqwest::Client::new();
    assert!(
        client
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = salesai(dir.path());
    command
        .arg("serve")
        .env("SALESAI_BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &db.url)
        .env("SALESAI_BLOB_URL", format!("s3://{bucket}/salesai"))
        .env("SALESAI_S3_ENDPOINT", &endpoint)
        .env("SALESAI_S3_REGION", "us-east-1")
        .env("SALESAI_S3_ACCESS_KEY_ID", "test")
        .env("SALESAI_S3_SECRET_ACCESS_KEY", "test-secret-value")
        .env("SALESAI_S3_ALLOW_HTTP", "true");
    let mut server = Running::start(command);
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/health"), &server).await;
    let ready: serde_json::Value = client
        .get(format!("{base}/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["backend"], "postgres");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("salesai_queue_depth{queue=\"conversations\",status=\"queued\"} 0"));
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(30)).success());
    assert!(
        !dir.path().join("data/blobs").exists(),
        "no local folder when S3 is configured"
    );
    let log = server.log_text();
    assert!(
        !log.contains("test-secret-value"),
        "secrets never reach the log"
    );

    // The same storage answers `storage check`.
    let mut check = salesai(dir.path());
    check
        .args(["storage", "check", "--json"])
        .env("SALESAI_BLOB_URL", format!("s3://{bucket}/salesai"))
        .env("SALESAI_S3_ENDPOINT", &endpoint)
        .env("SALESAI_S3_REGION", "us-east-1")
        .env("SALESAI_S3_ACCESS_KEY_ID", "test")
        .env("SALESAI_S3_SECRET_ACCESS_KEY", "test-secret-value")
        .env("SALESAI_S3_ALLOW_HTTP", "true");
    let out = run(&mut check);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["bytes"], 65536);
}

#[test]
fn tokens_are_shown_once_and_stored_hashed() {
    let dir = tempfile::tempdir().unwrap();
    // In a folder where salesai never ran, a command does not make a new empty database and
    // work on it: it says where it looked and what to do, and leaves nothing behind.
    let out = run(salesai(dir.path()).args(["token", "list"]));
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(
        said.contains("there is no salesai database at")
            && said.contains("data/salesai.db")
            && said.contains("--init"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "one sentence: {said}");
    assert!(!dir.path().join("data/salesai.db").exists());
    let out = run(salesai(dir.path()).args([
        "token", "create", "--name", "ops", "--role", "admin", "--init",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = stdout(&out).trim().to_owned();
    assert!(secret.starts_with("sai_") && secret.len() == 68, "{secret}");
    assert!(stderr(&out).contains("shown only now"));
    let db = std::fs::read(dir.path().join("data/salesai.db")).unwrap();
    let db_text = String::from_utf8_lossy(&db);
    assert!(!db_text.contains(&secret), "only the hash is stored");

    let dup = run(salesai(dir.path()).args(["token", "create", "--name", "ops", "--role", "rep"]));
    assert!(!dup.status.success());
    assert!(stderr(&dup).contains("already exists"), "{}", stderr(&dup));
    let bad_role =
        run(salesai(dir.path()).args(["token", "create", "--name", "x", "--role", "root"]));
    assert!(!bad_role.status.success());
    assert!(stderr(&bad_role).contains("admin, manager, service or rep"));

    let list = stdout(&run(salesai(dir.path()).args(["token", "list"])));
    assert!(
        list.contains("ops") && list.contains("admin") && list.contains("live"),
        "{list}"
    );
    assert!(!list.contains(&secret));
    assert!(
        run(salesai(dir.path()).args(["token", "revoke", "ops"]))
            .status
            .success()
    );
    let list = stdout(&run(salesai(dir.path()).args(["token", "list", "--json"])));
    let tokens: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert!(tokens[0]["revoked_at"].is_string());
    assert!(
        !run(salesai(dir.path()).args(["token", "revoke", "ops"]))
            .status
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_commands_operate_the_queue() {
    use salesai_core::queue::{CONVERSATIONS, JobFailure, NewJob};
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite().await;
    let url = db.url.clone();
    let q = |args: &[&str]| {
        let mut command = salesai(dir.path());
        command
            .args(args)
            .env("DATABASE_URL", &url)
            .env("SALESAI_DATA_DIR", dir.path());
        run(&mut command)
    };
    let store = db.store();
    for kind in ["a", "a", "b", "c"] {
        store
            .enqueue(NewJob::new(CONVERSATIONS, kind, serde_json::json!({})))
            .await
            .unwrap();
    }

    let out = q(&["queue", "pause", "conversations"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        store
            .claim(CONVERSATIONS, "w", 10)
            .await
            .unwrap()
            .is_empty(),
        "paused"
    );
    let status = stdout(&q(&["queue", "status"]));
    assert!(status.contains("conversations  PAUSED   4"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&q(&["queue", "status", "--json"]))).unwrap();
    assert_eq!(json["stats"]["queues"][0]["depth"]["queued"], 4);
    assert!(q(&["queue", "resume", "conversations"]).status.success());
    assert!(!q(&["queue", "pause", "No Such"]).status.success());

    let out = q(&[
        "queue",
        "set",
        "conversations",
        "--max-concurrency",
        "10",
        "--max-batch",
        "10",
    ]);
    assert!(stdout(&out).contains("concurrency 10"), "{}", stderr(&out));
    let out = q(&["queue", "set", "conversations", "--max-attempts", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("max_attempts"));

    // One job dies; show, list and retry it.
    let claimed = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
    store
        .fail(
            &claimed[0].lease().unwrap(),
            &JobFailure {
                code: "GROQ_API_ERROR".into(),
                message: "quota exceeded".into(),
                retryable: false,
            },
        )
        .await
        .unwrap();
    let id = claimed[0].id.to_string();
    let list = stdout(&q(&["queue", "list", "--status", "dead"]));
    assert!(
        list.contains("GROQ_API_ERROR") && list.contains("quota exceeded"),
        "{list}"
    );
    let show = stdout(&q(&["queue", "show", &id]));
    assert!(
        show.contains("last error  GROQ_API_ERROR: quota exceeded"),
        "{show}"
    );
    assert!(show.contains("failed"), "{show}");
    assert!(!q(&["queue", "show", "99999"]).status.success());
    assert!(
        !q(&["queue", "retry"]).status.success(),
        "retry needs an id or --all"
    );
    let out = q(&["queue", "retry", &id]);
    assert!(
        stdout(&out).contains("queued 1 job(s) again"),
        "{}",
        stdout(&out)
    );

    // Purge: a filter is required; the dry run lists exactly what is then deleted.
    assert!(!q(&["queue", "purge"]).status.success());
    let dry: serde_json::Value = serde_json::from_str(&stdout(&q(&[
        "queue",
        "purge",
        "--kind",
        "a",
        "--dry-run",
        "--json",
    ])))
    .unwrap();
    let real: serde_json::Value =
        serde_json::from_str(&stdout(&q(&["queue", "purge", "--kind", "a", "--json"]))).unwrap();
    assert_eq!(dry["ids"], real["ids"]);
    assert_eq!(real["count"], 2);
    let remaining = stdout(&q(&["queue", "list", "--json"]));
    let remaining: serde_json::Value = serde_json::from_str(&remaining).unwrap();
    assert_eq!(remaining.as_array().unwrap().len(), 2);
}

#[test]
fn storage_check_reports_latency_and_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(salesai(dir.path()).args(["storage", "check"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("write")
            && text.contains("read")
            && text.contains("delete")
            && text.contains("ok"),
        "{text}"
    );

    let out = run(salesai(dir.path())
        .args(["storage", "check"])
        .env("SALESAI_BLOB_URL", "s3://missing/x")
        .env("SALESAI_S3_ENDPOINT", "http://127.0.0.1:9")
        .env("SALESAI_S3_ALLOW_HTTP", "true")
        .env("SALESAI_S3_ACCESS_KEY_ID", "a")
        .env("SALESAI_S3_SECRET_ACCESS_KEY", "b"));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("STORAGE_ERROR"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_and_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    // Before any database exists: status says so (it creates nothing); `--init` makes an empty
    // one whose migrations are all pending; `migrate up` applies them.
    let out = run(salesai(dir.path()).args(["migrate", "status"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no salesai database"),
        "{}",
        stderr(&out)
    );
    let out = run(salesai(dir.path()).args(["migrate", "status", "--init"]));
    assert!(stdout(&out).contains("pending"), "{}", stdout(&out));
    assert!(
        run(salesai(dir.path()).args(["migrate", "up"]))
            .status
            .success()
    );
    let status = stdout(&run(salesai(dir.path()).args(["migrate", "status"])));
    assert!(
        status.contains("applied")
            && status.contains(&format!(
                "schema at {}",
                salesai_db::migrate::SQLITE_MIGRATIONS.len()
            )),
        "{status}"
    );
    // Each step rolls back and forward again.
    assert!(
        run(salesai(dir.path()).args(["migrate", "down", "--to", "1"]))
            .status
            .success()
    );
    let status = stdout(&run(salesai(dir.path()).args(["migrate", "status"])));
    assert!(
        status
            .lines()
            .any(|l| l.contains("slack_messages") && l.trim_end().ends_with("pending"))
            && status.contains("schema at 1"),
        "{status}"
    );
    assert!(
        run(salesai(dir.path()).args(["migrate", "up"]))
            .status
            .success()
    );

    // A release that migrated further: this binary refuses to run.
    let newest = salesai_db::migrate::SQLITE_MIGRATIONS.len() as i64;
    let url = format!("sqlite://{}", dir.path().join("data/salesai.db").display());
    let database = salesai_db::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    if let salesai_db::Database::Sqlite(s) = &database {
        sqlx::query("INSERT INTO salesai_migrations (version, name, checksum, applied_at) VALUES ($1, 'future', 'x', 0)")
            .bind(newest + 1)
            .execute(s.pool())
            .await
            .unwrap();
    }
    database.close().await;
    let out = run(salesai(dir.path()).args(["serve", "--bind", "127.0.0.1:0"]));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("schema is at version {}", newest + 1))
            && err.contains(&format!("only knows up to {newest}")),
        "{err}"
    );
    let status = stdout(&run(salesai(dir.path()).args(["migrate", "status"])));
    assert!(status.contains("applied by a newer salesai"), "{status}");

    assert!(
        !run(salesai(dir.path()).args(["migrate", "down", "--to", "0"]))
            .status
            .success(),
        "cannot roll back a migration this binary does not know"
    );
}

#[test]
fn bad_configuration_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(salesai(dir.path())
        .args(["queue", "status"])
        .env("DATABASE_URL", "mysql://x"));
    assert!(
        stderr(&out).contains("sqlite:// or postgres://"),
        "{}",
        stderr(&out)
    );
    std::fs::write(dir.path().join("salesai.toml"), "bind = 3000\n").unwrap();
    let out = run(salesai(dir.path()).args(["config"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("salesai.toml is not valid"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("salesai.toml"),
        "bind = \"127.0.0.1:4000\"\n",
    )
    .unwrap();
    let out = run(salesai(dir.path())
        .args(["config", "--worker-poll-ms", "99"])
        .env("DATABASE_URL", "postgres://u:hunter2@db/x")
        .env("GROQ_API_KEY", "gsk-secret-value"));
    let text = stdout(&out);
    assert!(
        !text.contains("hunter2") && !text.contains("gsk-secret"),
        "{text}"
    );
    let row = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("salesai config lists {key}:\n{text}"))
    };
    assert_eq!(row("bind"), "file 127.0.0.1:4000");
    assert_eq!(row("database_url"), "env postgres://u:***@db/x");
    assert_eq!(row("worker_poll_ms"), "flag 99");
    assert_eq!(row("groq_api_key"), "env (set, hidden)");
    assert_eq!(row("stt_concurrency"), "default 4");

    // Every setting is listed once in `salesai help settings` and has a row in `salesai config`.
    let settings = stdout(&run(salesai(dir.path()).args(["help", "settings"])));
    let listed: Vec<&str> = settings
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter(|l| l.ends_with(')') && !l.contains('<'))
        .collect();
    assert!(listed.len() >= 60, "{settings}");
    for line in &listed {
        let key = line.rsplit('(').next().unwrap().trim_end_matches(')');
        row(key);
    }
    for env in [
        "DATABASE_URL",
        "SALESAI_BLOB_URL",
        "SALESAI_S3_ENDPOINT",
        "SALESAI_BIND",
        "SALESAI_WORKER_QUEUES",
    ] {
        assert!(settings.contains(env), "help settings lists {env}");
    }
    // A command's help is about that command: its own flags and a pointer to the settings.
    let help = stdout(&run(salesai(dir.path()).args(["token", "create", "--help"])));
    assert!(help.lines().count() <= 30, "one screen:\n{help}");
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        !help.contains("DATABASE_URL") && words.contains("`salesai help settings`"),
        "{help}"
    );
}

#[test]
fn analyze_a_transcript_with_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let call = dir.path().join("call.srt");
    std::fs::write(
        &call,
        "1\n00:00:00,000 --> 00:00:03,000\n店長：我們現在都是手寫點單，常常漏單，很麻煩。\n\n\
         2\n00:00:03,000 --> 00:00:06,000\n業務：這樣每個月大概損失多少？\n\n\
         3\n00:00:06,000 --> 00:00:09,000\n店長：大概三萬元吧，我是老闆，我決定。\n\n\
         4\n00:00:09,000 --> 00:00:12,000\n業務：要不要先試用一週？\n",
    )
    .unwrap();
    let out = run(salesai(dir.path()).args(["analyze", "call.srt", "--product-line", "ichef"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    for expected in [
        "-IC0001",
        "總分",
        "PDCM",
        "SPIN",
        "主要痛點",
        "[0:00] “我們現在都是手寫點單",
        "下一步",
        "教練建議",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in:\n{report}"
        );
    }
    assert!(stderr(&out).contains("completed"));
    assert!(
        !dir.path().join("data").exists(),
        "a temporary store unless DATABASE_URL is set"
    );

    let out = run(salesai(dir.path()).args(["analyze", "call.srt", "--json", "--language", "en"]));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["status"], "completed");
    assert_eq!(json["scores"]["engine"], "rules");
    assert_eq!(
        json["agents"]["buyer"]["metrics"]["quantified_items"][0]["monthly_value"],
        30000.0
    );
    assert_eq!(json["agents"]["buyer"]["decision"]["has_authority"], true);
    assert!(
        json["agents"]["summary"]["meeting_notes_markdown"]
            .as_str()
            .unwrap()
            .contains("## What we heard")
    );

    std::fs::write(dir.path().join("x.pdf"), b"%PDF-1.7\x00\x01").unwrap();
    let out = run(salesai(dir.path()).args(["analyze", "x.pdf"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("MP3"), "{}", stderr(&out));

    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend(vec![0u8; 1024]);
    std::fs::write(dir.path().join("call.wav"), wav).unwrap();
    let out = run(salesai(dir.path()).args(["analyze", "call.wav"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("STT_NOT_CONFIGURED") && stderr(&out).contains("GROQ_API_KEY"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn conversations_commands_show_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend(vec![0u8; 1024]);
    std::fs::write(dir.path().join("call.wav"), wav).unwrap();
    let db = format!("sqlite://{}", dir.path().join("keep.db").display());
    let with_db = |args: &[&str]| {
        let mut command = salesai(dir.path());
        command.args(args).env("DATABASE_URL", &db);
        run(&mut command)
    };
    let out = with_db(&["analyze", "call.wav"]);
    assert!(!out.status.success());
    let list = stdout(&with_db(&["conversations", "list"]));
    assert!(
        list.contains("failed") && list.contains("STT_NOT_CONFIGURED"),
        "{list}"
    );
    let case = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let show = stdout(&with_db(&["conversations", "show", &case]));
    assert!(
        show.contains("error STT_NOT_CONFIGURED at preparing"),
        "{show}"
    );
    let retry = with_db(&["conversations", "retry", &case]);
    assert!(retry.status.success(), "{}", stderr(&retry));
    assert!(stdout(&retry).contains("restarts at pending"));
    let again = with_db(&["conversations", "retry", &case]);
    assert!(
        !again.status.success(),
        "a pending conversation cannot be retried"
    );
    assert!(
        stderr(&again).contains("only a failed conversation")
            && stderr(&again).contains("still has work queued"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_each_condition_with_its_severity() {
    use salesai_core::queue::{CONVERSATIONS, JobFailure, NewJob, QueueSettings};
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite().await;
    let doctor = |extra: &[(&str, &str)]| {
        let mut command = salesai(dir.path());
        command
            .args(["doctor", "--json"])
            .env("DATABASE_URL", &db.url)
            .env("SALESAI_DATA_DIR", dir.path())
            .env("SALESAI_BACKUP_AT", "03:00");
        for (k, v) in extra {
            command.env(k, v);
        }
        let out = run(&mut command);
        let json: serde_json::Value =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|_| panic!("{}", stderr(&out)));
        (out.status.success(), json)
    };
    let (ok, healthy) = doctor(&[]);
    assert!(ok, "{healthy}");
    assert!(
        healthy["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "P3"),
        "{healthy}"
    );

    // A rep token from before tokens belonged to people is named, with the re-issue command;
    // a person's own token and a service token are not.
    let store = db.store();
    for (name, role, owner) in [
        ("old-rep", salesai_core::domain::Role::Rep, None),
        ("crm", salesai_core::domain::Role::Service, None),
        (
            "amy",
            salesai_core::domain::Role::Rep,
            Some(
                store
                    .find_or_create_user(Some("amy@example.com"), None, "Amy")
                    .await
                    .unwrap(),
            ),
        ),
    ] {
        store
            .create_api_token(salesai_core::store::NewApiToken {
                name: name.into(),
                role,
                token_hash: salesai_core::token::hash_token(name),
                user_id: owner,
            })
            .await
            .unwrap();
    }
    let (_, report) = doctor(&[]);
    let tokens = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["title"].as_str().unwrap().contains("belong to no person"))
        .unwrap_or_else(|| panic!("no token finding in {report}"));
    assert_eq!(tokens["evidence"], "old-rep (rep)");
    assert!(tokens["action"].as_str().unwrap().contains("--for"));

    // Failures of several codes, a backlog, a paused queue, an expired lease, a stuck conversation.
    store
        .put_queue_settings(&QueueSettings {
            lease_secs: 1,
            max_attempts: 1,
            ..QueueSettings::defaults_for(CONVERSATIONS)
        })
        .await
        .unwrap();
    for code in ["GROQ_API_ERROR", "GROQ_API_ERROR", "DATABASE_ERROR"] {
        store
            .enqueue(NewJob::new(CONVERSATIONS, "x", serde_json::json!({})))
            .await
            .unwrap();
        let job = store.claim(CONVERSATIONS, "w", 1).await.unwrap().remove(0);
        store
            .fail(
                &job.lease().unwrap(),
                &JobFailure {
                    code: code.into(),
                    message: "boom".into(),
                    retryable: true,
                },
            )
            .await
            .unwrap();
    }
    store
        .enqueue(NewJob::new(CONVERSATIONS, "held", serde_json::json!({})))
        .await
        .unwrap();
    store.claim(CONVERSATIONS, "gone-worker", 1).await.unwrap();
    let jobs: Vec<NewJob> = (0..120)
        .map(|_| NewJob::new(CONVERSATIONS, "y", serde_json::json!({})))
        .collect();
    store.enqueue_many(jobs).await.unwrap();
    let mut settings = store.get_queue_settings(CONVERSATIONS).await.unwrap();
    settings.paused = true;
    store.put_queue_settings(&settings).await.unwrap();
    let created = store
        .create_conversation(salesai_core::domain::NewConversation {
            customer_number: salesai_core::domain::CustomerNumber::parse("C1").unwrap(),
            customer_name: "x".into(),
            product_line: "default".into(),
            case_prefix: salesai_core::domain::CasePrefix::parse("SA").unwrap(),
            case_period: salesai_core::domain::CasePeriod::at(
                chrono::Utc::now(),
                chrono_tz::Asia::Taipei,
            ),
            conversation_type: salesai_core::domain::ConversationType::Demo,
            title: String::new(),
            conversation_date: None,
            rep_user_id: None,
            blob_key: None,
            media: Default::default(),
            metadata: serde_json::json!({}),
            first_job: NewJob::new("maintenance", "maintenance.noop", serde_json::json!({})),
            idempotency_key: None,
            slack: None,
        })
        .await
        .unwrap();
    if let salesai_db::Database::Sqlite(s) = &db.database {
        sqlx::query("UPDATE conversations SET status = 'analyzing', updated_at = updated_at - 3600000 WHERE id = ?")
            .bind(&created.id)
            .execute(s.pool())
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    let (ok, sick) = doctor(&[]);
    assert!(!ok, "a P1 fails the run");
    let findings = sick["findings"].as_array().unwrap();
    let has = |severity: &str, needle: &str| {
        findings
            .iter()
            .any(|f| f["severity"] == severity && f["title"].as_str().unwrap().contains(needle))
    };
    assert!(has("P1", "of job attempts failed"), "{sick}");
    assert!(
        findings.iter().any(|f| f["evidence"]
            .as_str()
            .unwrap()
            .contains("2 GROQ_API_ERROR, 1 DATABASE_ERROR")),
        "{sick}"
    );
    assert!(has("P2", "jobs waiting"), "{sick}");
    assert!(has("P2", "is paused"), "{sick}");
    assert!(has("P2", "stopped renewing"), "{sick}");
    assert!(has("P2", "stuck in a stage"), "{sick}");
    assert!(has("P3", "dead jobs"), "{sick}");

    let (ok, outage) = doctor(&[
        ("SALESAI_BLOB_URL", "s3://missing/x"),
        ("SALESAI_S3_ENDPOINT", "http://127.0.0.1:9"),
        ("SALESAI_S3_ALLOW_HTTP", "true"),
        ("SALESAI_S3_ACCESS_KEY_ID", "a"),
        ("SALESAI_S3_SECRET_ACCESS_KEY", "b"),
    ]);
    assert!(!ok);
    assert!(
        outage["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["severity"] == "P1" && f["area"] == "storage"),
        "{outage}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_sees_a_lock_wait_and_db_repairs_work_on_postgres() {
    use sqlx::Connection;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let mut command = salesai(dir.path());
        command
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("SALESAI_DATA_DIR", dir.path());
        run(&mut command)
    };
    // A holds a lock in an open transaction; B waits for it.
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE;")
        .execute(&mut holder)
        .await
        .unwrap();
    let url = db.url.clone();
    let waiter = tokio::spawn(async move {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM api_tokens")
            .execute(&mut conn)
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let out = cli(&["doctor", "--json"]);
    let report: serde_json::Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|_| panic!("{}", stderr(&out)));
    let lock = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["title"].as_str().unwrap().contains("waiting on locks"))
        .unwrap_or_else(|| panic!("no lock finding in {report}"));
    assert_eq!(lock["severity"], "P2");
    assert!(
        lock["evidence"]
            .as_str()
            .unwrap()
            .contains("SELECT COUNT(*) FROM api_tokens"),
        "{lock}"
    );
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    waiter.await.unwrap().unwrap();

    // An idle connection older than a second is terminated; this one is not.
    let mut idle = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut idle).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let out = cli(&["db", "terminate-idle", "--older-than", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("terminated"), "{}", stdout(&out));
    assert!(
        sqlx::query("SELECT 1").execute(&mut idle).await.is_err(),
        "the idle connection is gone"
    );
    let out = cli(&["db", "analyze"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_repairs_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(salesai(dir.path()).args(["migrate", "up"]))
            .status
            .success()
    );
    let out = run(salesai(dir.path()).args(["db", "analyze"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(salesai(dir.path()).args(["db", "terminate-idle"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PostgreSQL"), "{}", stderr(&out));
    let out = run(salesai(dir.path()).args(["doctor", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(report["ok"].as_bool().unwrap(), "{report}");
}

salesai_db::story!(prune_removes_exactly_what_the_dry_run_listed);
async fn prune_removes_exactly_what_the_dry_run_listed(db: &TestDb) {
    use salesai_core::blob::{BlobKey, BlobStore, ByteStream};
    use salesai_core::domain::ConversationStatus;
    use salesai_core::queue::NewJob;
    let dir = tempfile::tempdir().unwrap();
    let store = db.store();
    let blobs = salesai_providers::blob::ObjectBlobStore::open(
        &salesai_providers::blob::BlobConfig::Local {
            root: dir.path().join("blobs"),
        },
    )
    .unwrap();
    let mut ids = Vec::new();
    for (i, (status, days_old, protected)) in [
        ("completed", 40, false),
        ("completed", 40, true),
        ("completed", 2, false),
        ("analyzing", 40, false),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("uploads/test/{i}.wav");
        let stream: ByteStream = Box::pin(futures_util::stream::iter([Ok(
            bytes::Bytes::from_static(b"RIFF...."),
        )]));
        blobs
            .put_stream(&BlobKey::parse(&key).unwrap(), stream)
            .await
            .unwrap();
        let created = store
            .create_conversation(salesai_core::domain::NewConversation {
                customer_number: salesai_core::domain::CustomerNumber::parse(&format!("P{i}"))
                    .unwrap(),
                customer_name: "x".into(),
                product_line: "default".into(),
                case_prefix: salesai_core::domain::CasePrefix::parse("SA").unwrap(),
                case_period: salesai_core::domain::CasePeriod::at(
                    chrono::Utc::now(),
                    chrono_tz::Asia::Taipei,
                ),
                conversation_type: salesai_core::domain::ConversationType::Demo,
                title: String::new(),
                conversation_date: None,
                rep_user_id: None,
                blob_key: Some(key),
                media: Default::default(),
                metadata: serde_json::json!({}),
                first_job: NewJob::new("maintenance", "maintenance.noop", serde_json::json!({})),
                idempotency_key: None,
                slack: None,
            })
            .await
            .unwrap();
        store
            .save_transcript(
                &created.id,
                &[salesai_core::transcript::Segment {
                    speaker: None,
                    start_ms: 0,
                    end_ms: 1,
                    text: "hi".into(),
                    ..Default::default()
                }],
            )
            .await
            .unwrap();
        let status = ConversationStatus::parse(status).unwrap();
        store
            .set_conversation_status(&created.id, status, None)
            .await
            .unwrap();
        match &db.database {
            salesai_db::Database::Sqlite(s) => {
                sqlx::query("UPDATE conversations SET created_at = created_at - ? * 86400000, protected = ? WHERE id = ?")
                    .bind(days_old as i64)
                    .bind(i64::from(protected))
                    .bind(&created.id)
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
            salesai_db::Database::Postgres(s) => {
                sqlx::query("UPDATE conversations SET created_at = created_at - make_interval(days => $1), protected = $2 WHERE id = $3")
                    .bind(days_old)
                    .bind(protected)
                    .bind(&created.id)
                    .execute(s.pool())
                    .await
                    .unwrap();
            }
        }
        ids.push((created.id, created.case_number.to_string()));
    }
    let prune = |extra: &[&str]| {
        let mut command = salesai(dir.path());
        command
            .args([
                "prune",
                "--completed-older-than",
                "30d",
                "--json",
                "--batch",
                "1",
            ])
            .args(extra)
            .env("DATABASE_URL", &db.url)
            .env("SALESAI_DATA_DIR", dir.path());
        let out = run(&mut command);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let dry = prune(&["--dry-run"]);
    assert_eq!(
        dry["case_numbers"],
        serde_json::json!([ids[0].1]),
        "old, completed, unprotected only"
    );
    assert!(
        dir.path().join("blobs/uploads/test/0.wav").exists(),
        "a dry run deletes nothing"
    );

    let audio = prune(&["--audio-only"]);
    assert_eq!(audio["case_numbers"], dry["case_numbers"]);
    assert!(
        !dir.path().join("blobs/uploads/test/0.wav").exists(),
        "the audio is gone"
    );
    let kept = store.get_conversation(&ids[0].0).await.unwrap().unwrap();
    assert_eq!(kept.blob_key, None);
    assert_eq!(
        store.get_transcript(&ids[0].0).await.unwrap().len(),
        1,
        "the transcript stays"
    );
    assert_eq!(
        prune(&["--audio-only", "--dry-run"])["count"],
        0,
        "no audio left to prune"
    );

    let whole = prune(&[]);
    assert_eq!(whole["case_numbers"], dry["case_numbers"]);
    assert!(store.get_conversation(&ids[0].0).await.unwrap().is_none());
    assert!(
        store.get_transcript(&ids[0].0).await.unwrap().is_empty(),
        "its rows went with it"
    );
    for (id, _) in &ids[1..] {
        assert!(
            store.get_conversation(id).await.unwrap().is_some(),
            "protected, recent and unfinished stay"
        );
    }
    assert!(dir.path().join("blobs/uploads/test/1.wav").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_create_verify_restore_as_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let _ = salesai_ready(dir.path());
    let cli = |args: &[&str]| run(salesai(dir.path()).args(args));
    // Some data: a token and a transcript conversation analysed in-process.
    assert!(
        cli(&["token", "create", "--name", "ops", "--role", "admin"])
            .status
            .success()
    );
    let out = cli(&["backup", "create", "--keep", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = stdout(&out).split_whitespace().next().unwrap().to_owned();
    assert!(
        file.contains("data/backups/backup_") && file.ends_with(".jsonl.gz"),
        "{file}"
    );
    let listed = stdout(&cli(&["backup", "list"]));
    assert!(
        listed.contains("backup_")
            && listed.contains(&format!(
                "sqlite schema {}",
                salesai_db::migrate::SQLITE_MIGRATIONS.len()
            )),
        "{listed}"
    );

    let out = cli(&["backup", "verify", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("ok: checksum matches, test restore of"),
        "{}",
        stdout(&out)
    );

    // Restore into a fresh SQLite file, then refuse to restore over it without --force.
    let target = format!("sqlite://{}", dir.path().join("restored.db").display());
    let out = cli(&["backup", "restore", &file, "--database-url", &target]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("restored backup_"),
        "{}",
        stdout(&out)
    );
    let out = cli(&["backup", "restore", &file, "--database-url", &target]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("RESTORE_FAILED") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert!(
        cli(&[
            "backup",
            "restore",
            &file,
            "--database-url",
            &target,
            "--force"
        ])
        .status
        .success()
    );
    // Into PostgreSQL: the path for a team that outgrows one machine.
    if let Some(pg) = TestDb::postgres().await {
        let out = cli(&["backup", "restore", &file, "--database-url", &pg.url]);
        assert!(out.status.success(), "{}", stderr(&out));
        let tokens = run(salesai(dir.path())
            .args(["token", "list"])
            .env("DATABASE_URL", &pg.url));
        assert!(stdout(&tokens).contains("ops"), "{}", stdout(&tokens));
    }

    // With the recordings: an uploaded call's blob is copied, verified and put back.
    std::fs::create_dir_all(dir.path().join("data/blobs/uploads/2026/11")).unwrap();
    std::fs::write(
        dir.path().join("data/blobs/uploads/2026/11/call-1"),
        b"ID3 a recording",
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.path().join("data/salesai.db").display());
    let database = salesai_db::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    let mut new = cli_new_conversation("C-BLOB");
    new.blob_key = Some("uploads/2026/11/call-1".into());
    database.store().create_conversation(new).await.unwrap();
    database.close().await;
    let out = cli(&["backup", "create", "--with-blobs"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("blobs  1 recordings"),
        "{}",
        stdout(&out)
    );
    let with_blobs = stdout(&out).split_whitespace().next().unwrap().to_owned();
    assert!(cli(&["backup", "verify", &with_blobs]).status.success());
    let fresh = tempfile::tempdir().unwrap();
    let target = format!("sqlite://{}", fresh.path().join("r.db").display());
    let out = run(salesai(fresh.path()).args([
        "backup",
        "restore",
        dir.path().join(&with_blobs).to_str().unwrap(),
        "--database-url",
        &target,
        "--with-blobs",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("put back 1 recordings"),
        "{}",
        stdout(&out)
    );
    let blob_files = walk(&fresh.path().join("data/blobs"));
    assert_eq!(blob_files, 1, "the recording is back in storage");
    // A tampered recording fails verify.
    let blobs_dir = dir.path().join(with_blobs.replace(".jsonl.gz", ".blobs"));
    let tampered = first_file(&blobs_dir);
    std::fs::write(&tampered, b"not the recording").unwrap();
    let out = cli(&["backup", "verify", &with_blobs]);
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );

    // A corrupted file fails verify with a clear message.
    let path = dir.path().join(&file);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = cli(&["backup", "verify", &file]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("BACKUP_INVALID: checksum mismatch"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_backup_and_retention_run_once_across_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let node = || {
        let mut command = salesai(dir.path());
        command
            .arg("worker")
            .env("SALESAI_BACKUP_AT", "00:00")
            .env("SALESAI_PRUNE_COMPLETED_OLDER_THAN", "90d")
            .env("SALESAI_PRUNE_AUDIO_ONLY", "true")
            .env("SALESAI_PRUNE_AT", "00:00")
            .env("SALESAI_JOBS_KEEP_DAYS", "7")
            .env("SALESAI_JOBS_PURGE_AT", "00:00")
            .env("SALESAI_WORKER_POLL_MS", "50");
        crate::Running::start(command)
    };
    // Job history: a completed job from a month ago goes, a fresh one stays.
    assert!(
        run(salesai(dir.path()).args(["migrate", "up"]))
            .status
            .success()
    );
    let url = format!("sqlite://{}", dir.path().join("data/salesai.db").display());
    let database = salesai_db::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    if let salesai_db::Database::Sqlite(s) = &database {
        let now = chrono::Utc::now().timestamp_millis();
        for (kind, at) in [("old.job", now - 30 * 86_400_000), ("fresh.job", now)] {
            sqlx::query(
                "INSERT INTO jobs (queue, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at, finished_at) \
                 VALUES ('maintenance', ?, '{}', 'completed', 1, 3, ?, ?, ?, ?)",
            )
            .bind(kind)
            .bind(at)
            .bind(at)
            .bind(at)
            .bind(at)
            .execute(s.pool())
            .await
            .unwrap();
        }
    }
    database.close().await;
    let mut a = node();
    let mut b = node();
    let backups = dir.path().join("data/backups");
    let manifests = || {
        std::fs::read_dir(&backups)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".manifest.json"))
                    .count()
            })
            .unwrap_or(0)
    };
    let started = std::time::Instant::now();
    while manifests() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no backup; logs:\n{}\n{}",
            a.log_text(),
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Two processes on one SQLite database: doctor says so (their heartbeats).
    let doctor = stdout(&run(salesai(dir.path()).args(["doctor", "--json"])));
    assert!(
        doctor.contains("2 salesai processes share a SQLite database"),
        "{doctor}"
    );
    a.signal("TERM");
    b.signal("TERM");
    a.wait(Duration::from_secs(20));
    b.wait(Duration::from_secs(20));
    assert_eq!(
        manifests(),
        1,
        "one backup for the day, whichever node ran it"
    );
    let created: usize = [&a, &b]
        .iter()
        .map(|n| {
            n.events()
                .iter()
                .filter(|e| e["event"] == "backup.created")
                .count()
        })
        .sum();
    assert_eq!(created, 1);
    let pruned: usize = [&a, &b]
        .iter()
        .map(|n| {
            n.events()
                .iter()
                .filter(|e| e["event"] == "prune.completed")
                .count()
        })
        .sum();
    assert_eq!(pruned, 1, "one retention run for the day");
    let jobs = stdout(&run(
        salesai(dir.path()).args(["queue", "list", "--json", "--limit", "1000"])
    ));
    assert!(
        !jobs.contains("old.job"),
        "a month-old completed job is purged"
    );
    assert!(jobs.contains("fresh.job"), "a fresh one stays");
    let out = run(salesai(dir.path()).args(["backup", "list"]));
    assert!(stdout(&out).contains("backup_"), "{}", stdout(&out));
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn first_file(dir: &std::path::Path) -> std::path::PathBuf {
    let entry = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap_or_else(|| panic!("no file under {}", dir.display()));
    if entry.path().is_dir() {
        first_file(&entry.path())
    } else {
        entry.path()
    }
}

fn cli_new_conversation(customer: &str) -> salesai_core::domain::NewConversation {
    use salesai_core::domain::*;
    NewConversation {
        customer_number: CustomerNumber::parse(customer).unwrap(),
        customer_name: "Cafe".into(),
        product_line: "default".into(),
        case_prefix: CasePrefix::parse("SA").unwrap(),
        case_period: CasePeriod::at(chrono::Utc::now(), chrono_tz::Asia::Taipei),
        conversation_type: ConversationType::DiscoveryCall,
        title: String::new(),
        conversation_date: None,
        rep_user_id: None,
        blob_key: None,
        media: Default::default(),
        metadata: serde_json::json!({}),
        first_job: salesai_core::queue::NewJob::new(
            "maintenance",
            "maintenance.noop",
            serde_json::json!({}),
        ),
        idempotency_key: None,
        slack: None,
    }
}

/// The shipped labelled set is measured with the offline engine and must stay above the
/// analysis-quality floors (80 % of labelled facts, 85 % pairwise ordering) with prompts for a
/// 60-minute call at most four transcripts' worth; a broken labels file is an error naming it.
#[test]
fn eval_on_the_shipped_labelled_calls_meets_the_floors() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for set in ["eval/calls", "eval/holdout", "eval/holdout2"] {
        let dir = tempfile::tempdir().unwrap();
        let out = run(salesai(dir.path()).args([
            "eval",
            root.join(set).to_str().unwrap(),
            "--engine",
            "rules",
            "--min-facts",
            "0.8",
            "--min-order",
            "0.85",
            "--max-prompt-ratio",
            "4.0",
            "--json",
        ]));
        assert!(out.status.success(), "{set}: {}", stderr(&out));
        let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(report["engine"], "rules");
        assert!(report["facts_total"].as_u64().unwrap() >= 40, "{report}");
        assert_eq!(
            report["schema_valid"],
            report["calls"].as_array().unwrap().len()
        );
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "Rep: hi\nCustomer: hello").unwrap();
    std::fs::write(dir.path().join("a.toml"), "strength = 9\n").unwrap();
    let out = run(salesai(dir.path()).args(["eval", "."]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a.toml") && stderr(&out).contains("strength"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        dir.path().join("a.toml"),
        "strength = 3\n[facts]\npain = true\nbudgt = 5\n",
    )
    .unwrap();
    let out = run(salesai(dir.path()).args(["eval", "."]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("budgt"),
        "a misspelt label is named: {}",
        stderr(&out)
    );
}

/// A product line added from a folder works end to end in the binary: listed and checked,
/// uploaded with (its case prefix), its configured competitor found and its own product not
/// reported as one; a bad file stops `serve` naming the file, line and reason.
#[test]
fn a_product_line_from_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("lines");
    std::fs::create_dir(&lines).unwrap();
    std::fs::write(
        lines.join("fitness.toml"),
        "id = \"fitness\"\ndisplay_name = \"FitDesk\"\ncase_prefix = \"FT\"\nlanguage = \"en\"\n\
         vocabulary = \"FitDesk, GymPro, Zumba\"\ncompetitors = [\"GymPro\"]\n\
         [lexicon]\nown_products = [\"FitDesk\"]\n\
         [[form]]\nid = \"member_count\"\nlabel = \"Members\"\nrequired = true\n",
    )
    .unwrap();
    let with_lines = |args: &[&str]| {
        let mut command = salesai(dir.path());
        command.env("SALESAI_LINES_DIR", &lines).args(args);
        run(&mut command)
    };
    let out = with_lines(&["lines", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("fitness") && stdout(&out).contains("fitness.toml"),
        "{}",
        stdout(&out)
    );
    assert!(with_lines(&["lines", "check"]).status.success());
    let shown = stdout(&with_lines(&["lines", "show", "ichef"]));
    assert!(
        shown.contains("case_prefix = \"IC\""),
        "a built-in line shows its file: {shown}"
    );

    std::fs::write(
        dir.path().join("call.txt"),
        "Rep: How do you run member check-ins today?\n\
         Owner: On paper. It's slow and we lose track of who paid, maybe 900 dollars a month.\n\
         Rep: Have you looked at anything else?\n\
         Owner: We use GymPro for billing but it's clunky. FitDesk looks simpler.\n\
         Rep: Can we set up a trial next Monday?\n\
         Owner: Monday works.",
    )
    .unwrap();
    let out = with_lines(&["analyze", "call.txt", "--product-line", "fitness", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        json["case_number"].as_str().unwrap().contains("-FT0001"),
        "{}",
        json["case_number"]
    );
    let competitors: Vec<&str> = json["agents"]["buyer"]["competitors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(competitors, ["GymPro"], "FitDesk is the line's own product");

    std::fs::write(
        lines.join("broken.toml"),
        "id = \"broken\"\ncase_prefix = \"b-1\"\nlanguage = \"en\"\n",
    )
    .unwrap();
    let out = with_lines(&["lines", "check"]);
    assert!(!out.status.success());
    let out = with_lines(&["serve", "--bind", "127.0.0.1:0"]);
    assert!(
        !out.status.success(),
        "a bad line file stops the server at start"
    );
    let err = stderr(&out);
    assert!(
        err.contains("broken.toml:2") && err.contains("case prefix"),
        "{err}"
    );
}

/// `salesai eval` through a configured LLM: a stub speaking OpenAI's chat-completions format
/// answers every agent with a schema-valid output (for a call it does not read) and token
/// usage; the report names the LLM engine, counts the tokens and checks every output's schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_runs_through_a_configured_llm() {
    use axum::Json;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(|Json(body): Json<serde_json::Value>| async move {
            Json(crate::stubs::agent_completion(&body))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let calls = root.join("eval/holdout");
    let mut command = salesai(dir.path());
    command
        .env("SALESAI_LLM_BASE_URL", &base)
        .env("SALESAI_LLM_MODEL", "stub")
        .args(["eval", calls.to_str().unwrap(), "--json"]);
    let out = tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["engine"], "llm");
    let calls = report["calls"].as_array().unwrap().len() as i64;
    assert_eq!(report["schema_valid"].as_i64(), Some(calls));
    assert_eq!(
        report["tokens"].as_i64(),
        Some(calls * 6 * 120),
        "six agents, 120 tokens each"
    );
}

/// A run that must end with a message, never a panic or a backtrace.
fn no_panic(out: &std::process::Output) {
    let said = stderr(out);
    assert!(
        !said.contains("panicked")
            && !said.contains("RUST_BACKTRACE")
            && !said.contains("stack backtrace"),
        "a panic: {said}"
    );
}

/// The command-line cases of issue #25: ages that would overflow, dangerous defaults, a broken
/// pipe, a typo'd queue, a token wider than its person, one sentence per error.
#[test]
fn the_cli_refuses_bad_input_with_a_sentence_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let _ = salesai_ready(dir.path());
    let cli = |args: &[&str]| run(salesai(dir.path()).args(args));

    // Ages past ten years: refused as the argument is read (exit 2, clap's usage error).
    for args in [
        &["prune", "--completed-older-than", "999999999d", "--dry-run"][..],
        &[
            "queue",
            "purge",
            "--status",
            "dead",
            "--older-than",
            "999999999d",
            "--dry-run",
        ],
        &["queue", "list", "--older-than", "999999999d"],
        &["queue", "list", "--older-than", "99999999999999999999999s"],
    ] {
        let out = cli(args);
        no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("ten years"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // The same age as a setting: `serve` and `preflight` stop at start, naming it.
    for command in ["serve", "preflight"] {
        let out = run(salesai(dir.path())
            .arg(command)
            .env("SALESAI_PRUNE_COMPLETED_OLDER_THAN", "999999999d")
            .env("SALESAI_BIND", "127.0.0.1:0"));
        no_panic(&out);
        assert!(!out.status.success());
        let said = stderr(&out);
        assert!(
            said.contains("SALESAI_PRUNE_COMPLETED_OLDER_THAN") && said.contains("ten years"),
            "{command}: {said}"
        );
    }
    // A numeric setting that would overflow a duration.
    let out = run(salesai(dir.path())
        .args(["doctor"])
        .env("SALESAI_ALERT_COOLDOWN_MINS", "99999999999999999"));
    no_panic(&out);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "SALESAI_ALERT_COOLDOWN_MINS is 99999999999999999; give a number from 0 to 10080"
        ),
        "{}",
        stderr(&out)
    );

    // Pruning everything completed today asks first; a script must say --yes.
    let out = cli(&["prune", "--completed-older-than", "0d"]);
    no_panic(&out);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let out = cli(&["prune", "--completed-older-than", "0d", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Retrying every dead job of every queue asks too; a filter does not.
    let out = cli(&["queue", "retry", "--all"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(cli(&["queue", "retry", "--all", "--yes"]).status.success());
    assert!(
        cli(&["queue", "retry", "--all", "--queue", "conversations"])
            .status
            .success()
    );
    // A queue that does not exist is not created by naming it.
    let out = cli(&["queue", "set", "nope", "--max-batch", "2"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no queue \"nope\""),
        "{}",
        stderr(&out)
    );
    let status = stdout(&cli(&["queue", "status", "--json"]));
    assert!(!status.contains("\"nope\""), "{status}");

    // A token reaches at most its person's role.
    assert!(
        cli(&["users", "invite", "ann@example.com", "--role", "rep"])
            .status
            .success()
    );
    let out = cli(&[
        "token",
        "create",
        "--name",
        "ann",
        "--for",
        "ann@example.com",
        "--role",
        "admin",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("can only narrow"), "{}", stderr(&out));
    assert!(
        cli(&[
            "token",
            "create",
            "--name",
            "ann",
            "--for",
            "ann@example.com"
        ])
        .status
        .success()
    );
    // The hint for a service "person" names a command that exists.
    let out = cli(&["users", "invite", "bot@example.com", "--role", "service"]);
    assert!(stderr(&out).contains("salesai token create --name NAME --role service"));
    // Inviting again with a name renames.
    assert!(
        cli(&["users", "invite", "ann@example.com", "--name", "Ann Lin"])
            .status
            .success()
    );
    assert!(stdout(&cli(&["users", "list"])).contains("Ann Lin"));
    // The only admin cannot be demoted.
    assert!(
        cli(&["users", "invite", "ada@example.com", "--role", "admin"])
            .status
            .success()
    );
    let out = cli(&["users", "role", "ada@example.com", "rep"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only active admin"),
        "{}",
        stderr(&out)
    );
    // A name with a line break is refused.
    let out = cli(&[
        "users",
        "invite",
        "cr@example.com",
        "--name",
        "Eve\r\nAdmin",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("one line"), "{}", stderr(&out));

    // `serve --help` names its address setting.
    let help = stdout(&cli(&["serve", "--help"]));
    assert!(
        help.contains("SALESAI_BIND") && help.contains("--bind"),
        "{help}"
    );

    // A closed pipe (`salesai … | head`) ends the command quietly.
    std::fs::write(
        dir.path().join("call.txt"),
        "Rep: How do you take orders?\nOwner: On paper, we lose ten a week.\n",
    )
    .unwrap();
    let mut child = salesai(dir.path())
        .args(["analyze", "call.txt", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    no_panic(&out);
    assert!(
        matches!(out.status.code(), Some(141) | Some(0)),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );

    // A recording with no speech-to-text: one sentence, no log lines, no "retry".
    let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    wav.extend(vec![0u8; 1024]);
    std::fs::write(dir.path().join("call.wav"), wav).unwrap();
    let out = cli(&["analyze", "call.wav"]);
    assert!(!out.status.success());
    let errors: Vec<String> = stderr(&out)
        .lines()
        .filter(|l| !l.starts_with('['))
        .map(str::to_owned)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("error: ")
            && errors[0].contains("GROQ_API_KEY")
            && !errors[0].contains("then retry")
            && !errors[0].contains('{'),
        "{errors:?}"
    );
}
