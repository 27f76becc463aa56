//! `salesai slack check|manifest` and `salesai users role`, as an operator runs them, against a
//! fake Slack.

use salesai_slack::fake::FakeSlack;

use crate::{run, salesai, stderr, stdout};

async fn run_async(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_check_reports_token_scopes_and_channels() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start("xoxb-good").await;
    let with = |token: &str, channels: &str| {
        let mut c = salesai(dir.path());
        c.args(["slack", "check"])
            .env("SLACK_SIGNING_SECRET", "s")
            .env("SLACK_BOT_TOKEN", token)
            .env("SLACK_API_URL", fake.api_url().as_str())
            .env("SLACK_CHANNELS", channels);
        c
    };
    let out = run_async(with("xoxb-good", "C0SALES=ichef")).await;
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("auth.test   ok")
            && text.contains("scopes      ok")
            && text.contains("channel     ok      C0SALES (ichef)"),
        "{text}"
    );
    assert_eq!(fake.calls_of("auth.test").len(), 1);

    let out = run_async(with("xoxb-wrong", "C0SALES=ichef")).await;
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("invalid_auth") && stdout(&out).contains("SLACK_BOT_TOKEN"),
        "{}",
        stdout(&out)
    );

    let out = run_async(with("xoxb-good", "X0NOPE=ichef")).await;
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("channel_not_found"),
        "{}",
        stdout(&out)
    );

    // Configuration mistakes say what to do.
    let mut half = salesai(dir.path());
    half.args(["slack", "check"])
        .env("SLACK_SIGNING_SECRET", "s");
    let out = run_async(half).await;
    assert!(
        stderr(&out).contains("SLACK_BOT_TOKEN is not"),
        "{}",
        stderr(&out)
    );
    let out = run_async(with("xoxb-good", "C0SALES=pizza")).await;
    assert!(
        stderr(&out).contains("unknown product line \"pizza\""),
        "{}",
        stderr(&out)
    );
    let mut none = salesai(dir.path());
    none.args(["slack", "check"]);
    let out = run_async(none).await;
    assert!(
        stderr(&out).contains("Slack is not configured"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_manifest_points_at_our_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(salesai(dir.path()).args([
        "slack",
        "manifest",
        "--base-url",
        "https://sa.example.com/",
    ]));
    assert!(out.status.success());
    let manifest = stdout(&out);
    for path in ["/slack/events", "/slack/commands", "/slack/interactions"] {
        assert!(
            manifest.contains(&format!("https://sa.example.com{path}")),
            "{manifest}"
        );
    }
    for command in ["/analyze", "/opportunity", "/report", "/salesai"] {
        assert!(manifest.contains(&format!("command: {command}")));
    }
    for scope in salesai_slack::check::REQUIRED_SCOPES {
        assert!(
            manifest.contains(&format!("- {scope}\n")),
            "{scope} missing from the manifest"
        );
    }
    let out = run(salesai(dir.path()).args(["slack", "manifest"]));
    assert!(stderr(&out).contains("--base-url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_role_names_managers() {
    let dir = tempfile::tempdir().unwrap();
    let _ = crate::salesai_ready(dir.path());
    let out = run(salesai(dir.path()).args(["users", "role", "boss@example.com", "manager"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no user"), "{}", stderr(&out));
    let url = format!("sqlite://{}", dir.path().join("data/salesai.db").display());
    let database = salesai_db::Database::connect(&url, &Default::default())
        .await
        .unwrap();
    database
        .store()
        .find_or_create_user(Some("boss@example.com"), Some("U0BOSS"), "Boss")
        .await
        .unwrap();
    database.close().await;
    let out = run(salesai(dir.path()).args(["users", "role", "U0BOSS", "manager"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Boss (boss@example.com) is now manager"),
        "{}",
        stdout(&out)
    );
    let out = run(salesai(dir.path()).args(["users", "role", "U0BOSS", "emperor"]));
    assert!(
        stderr(&out).contains("use admin, manager, service or rep"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_each_configured_provider() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start("xoxb-good").await;
    let doctor = |token: &str, stt: Option<&str>| {
        let mut c = salesai(dir.path());
        c.args(["doctor", "--json"])
            .env("SALESAI_DATA_DIR", dir.path().join("data"))
            .env("SLACK_SIGNING_SECRET", "s")
            .env("SLACK_BOT_TOKEN", token)
            .env("SLACK_API_URL", fake.api_url().as_str())
            .env("SLACK_CHANNELS", "C0SALES=ichef");
        if let Some(url) = stt {
            c.env("SALESAI_STT_BASE_URL", url);
        }
        c
    };
    let mut migrate = salesai(dir.path());
    migrate
        .args(["migrate", "up"])
        .env("SALESAI_DATA_DIR", dir.path().join("data"));
    assert!(run_async(migrate).await.status.success());
    let out = run_async(doctor("xoxb-good", None)).await;
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(out.status.success(), "{json}");
    assert!(
        !json["findings"].to_string().contains("providers"),
        "a working Slack is not a finding: {json}"
    );

    // A rejected token and an unreachable speech-to-text server are P1: the deploy gate fails.
    let out = run_async(doctor("xoxb-revoked", Some("http://127.0.0.1:9/v1"))).await;
    assert!(!out.status.success());
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let providers: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["area"] == "providers")
        .collect();
    assert_eq!(providers.len(), 2, "{json}");
    assert!(providers.iter().all(|f| f["severity"] == "P1"));
    let text = json.to_string();
    assert!(
        text.contains("invalid_auth") && text.contains("salesai slack check"),
        "{text}"
    );
    assert!(text.contains("127.0.0.1:9/v1/models unreachable"), "{text}");
}

/// The runbook's scenario 4 greps the log for these lines; a served Slack app writes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_what_the_runbook_greps_for() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start("xoxb-good").await;
    let port = crate::free_port();
    let mut command = salesai(dir.path());
    command
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("SLACK_SIGNING_SECRET", "right-secret")
        .env("SLACK_BOT_TOKEN", "xoxb-good")
        .env("SLACK_API_URL", fake.api_url().as_str());
    let mut server = crate::Running::start(command);
    let base = format!("http://127.0.0.1:{port}");
    crate::wait_until_up(&format!("{base}/health"), &server).await;
    let body = r#"{"type":"url_verification","challenge":"x"}"#;
    let mut request = reqwest::Client::new()
        .post(format!("{base}/slack/events"))
        .body(body);
    for (k, v) in salesai_slack::fake::signed_headers("wrong-secret", body.as_bytes()) {
        request = request.header(k, v);
    }
    assert_eq!(request.send().await.unwrap().status(), 401);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "salesai_slack_signature_failures_total{endpoint=\"events\",reason=\"mismatch\"} 1"
        ),
        "{metrics}"
    );
    server.signal("TERM");
    server.wait(std::time::Duration::from_secs(20));
    let line = server
        .events()
        .into_iter()
        .find(|e| e["event"] == "slack.signature_invalid")
        .unwrap_or_else(|| panic!("no slack.signature_invalid in:\n{}", server.log_text()));
    assert!(line.to_string().contains("Invalid signature"), "{line}");
    let started = server
        .events()
        .into_iter()
        .find(|e| e["event"] == "process.started")
        .unwrap();
    assert_eq!(started["slack"], true);
}

/// Two nodes, one evaluator: a paused queue is announced once, its resume once, and the daily
/// summary once, to a local fake webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_alerts_post_once_per_incident_across_two_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start("xoxb-unused").await;
    let hook = fake.hook_url("ops");
    let node = || {
        let mut command = salesai(dir.path());
        command
            .arg("worker")
            .env("SLACK_WEBHOOK_URL", &hook)
            .env("SALESAI_ALERT_INTERVAL_SECS", "1")
            .env("SALESAI_DAILY_SUMMARY_AT", "00:00")
            .env("SALESAI_WORKER_POLL_MS", "50");
        crate::Running::start(command)
    };
    let mut a = node();
    let mut b = node();
    let posts = |needle: &str| -> Vec<String> {
        fake.calls_of("hook:ops")
            .into_iter()
            .filter_map(|c| c.body["text"].as_str().map(str::to_owned))
            .filter(|t| t.contains(needle))
            .collect()
    };
    let wait_for = |needle: &'static str| {
        let fake = fake.clone();
        async move {
            fake.wait_until(needle, std::time::Duration::from_secs(30), |calls| {
                calls.iter().any(|c| {
                    c.method == "hook:ops"
                        && c.body["text"].as_str().is_some_and(|t| t.contains(needle))
                })
            })
            .await
        }
    };
    wait_for("daily health").await;
    let q = |args: &[&str]| run(salesai(dir.path()).args(args));
    assert!(q(&["queue", "pause", "notifications"]).status.success());
    wait_for("queue notifications is paused").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(q(&["queue", "resume", "notifications"]).status.success());
    wait_for("✅ resolved — queue notifications is paused").await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    a.signal("TERM");
    b.signal("TERM");
    a.wait(std::time::Duration::from_secs(20));
    b.wait(std::time::Duration::from_secs(20));
    let alerts = posts("🚨 [P2] salesai — queue notifications is paused");
    assert_eq!(
        alerts.len(),
        1,
        "one alert per incident: {:?}",
        fake.calls_of("hook:ops")
            .iter()
            .map(|c| &c.body["text"])
            .collect::<Vec<_>>()
    );
    assert!(alerts[0].contains("salesai queue resume"), "{}", alerts[0]);
    assert_eq!(posts("✅ resolved").len(), 1, "one message on resolve");
    let summaries = posts("daily health");
    assert_eq!(summaries.len(), 1, "one summary a day across nodes");
    assert!(summaries[0].contains("success rate"), "{}", summaries[0]);
}

/// With the database down nothing can be elected: each node announces the outage itself, once,
/// and once more when the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_announced_by_the_node_itself() {
    use sqlx::Connection;
    let Some(db) = salesai_db::testing::TestDb::postgres().await else {
        return;
    };
    let admin_url = std::env::var(salesai_db::testing::POSTGRES_ENV).unwrap();
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeSlack::start("xoxb-unused").await;
    let mut command = salesai(dir.path());
    command
        .arg("worker")
        .env("DATABASE_URL", &db.url)
        .env("SALESAI_WORKER_ID", "node-a")
        .env("SLACK_WEBHOOK_URL", fake.hook_url("ops"))
        .env("SALESAI_ALERT_INTERVAL_SECS", "1");
    let mut node = crate::Running::start(command);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let exec = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    exec(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    exec(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    let posted = |needle: &'static str| {
        move |calls: &[salesai_slack::fake::Call]| {
            calls.iter().any(|c| {
                c.method == "hook:ops"
                    && c.body["text"].as_str().is_some_and(|t| t.contains(needle))
            })
        }
    };
    fake.wait_until(
        "the outage alert",
        std::time::Duration::from_secs(90),
        posted("node node-a cannot reach the database"),
    )
    .await;
    exec(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    fake.wait_until(
        "the recovery",
        std::time::Duration::from_secs(60),
        posted("node node-a reaches the database again"),
    )
    .await;
    node.signal("TERM");
    node.wait(std::time::Duration::from_secs(30));
    let texts: Vec<String> = fake
        .calls_of("hook:ops")
        .iter()
        .filter_map(|c| c.body["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("cannot reach the database"))
            .count(),
        1,
        "{texts:?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("reaches the database again"))
            .count(),
        1,
        "{texts:?}"
    );
}
