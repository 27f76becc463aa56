//! `salesai preflight` (the deployment checklist) and `salesai smoke` (the post-deploy check).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use salesai_core::doctor::{Severity, diagnose};
use serde_json::Value;

use crate::config::Config;

/// Options of `smoke`.
#[derive(clap::Args, Debug)]
pub struct SmokeArgs {
    /// The deployed salesai, e.g. https://salesai.example.com
    #[arg(long, env = "SALESAI_SMOKE_URL")]
    pub url: String,
    /// An admin API token (the test conversation is deleted afterwards)
    #[arg(long, env = "SALESAI_SMOKE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Seconds to wait for the test conversation to complete
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

struct Checklist {
    failed: bool,
}

impl Checklist {
    fn ok(&self, what: &str, detail: &str) {
        println!("ok    {what:<22} {detail}");
    }
    fn warn(&self, what: &str, detail: &str) {
        println!("WARN  {what:<22} {detail}");
    }
    fn fail(&mut self, what: &str, detail: &str) {
        self.failed = true;
        println!("FAIL  {what:<22} {detail}");
    }
}

/// `salesai preflight`: configuration complete, database reachable, pending migrations listed,
/// last backup age, and `doctor` without P0/P1. Applies nothing. Exit 1 on any FAIL.
pub async fn preflight(config: &Config) -> anyhow::Result<ExitCode> {
    let mut c = Checklist { failed: false };
    // Configuration.
    match &config.stt {
        Some(stt) => c.ok(
            "speech-to-text",
            &format!("{} {}", stt.provider, stt.base_url),
        ),
        None => c.warn(
            "speech-to-text",
            "not configured: recordings fail with STT_NOT_CONFIGURED (set GROQ_API_KEY)",
        ),
    }
    match &config.llm {
        Some(llm) => c.ok("llm", &format!("{} {}", llm.provider, llm.model)),
        None => c.warn(
            "llm",
            "not configured: the offline rules engine analyses (set GEMINI_API_KEY)",
        ),
    }
    match (&config.slack, &config.public_url) {
        (Some(_), Some(url)) => c.ok("slack", &format!("configured; cards link to {url}")),
        (Some(_), None) => c.warn(
            "slack",
            "configured, but SALESAI_PUBLIC_URL is not set: cards have no report link",
        ),
        (None, _) => c.warn(
            "slack",
            "not configured (SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN)",
        ),
    }
    if config.alerts.webhook.is_none() {
        c.warn(
            "ops alerts",
            "SLACK_WEBHOOK_URL is not set: nobody is told when something breaks",
        );
    } else {
        c.ok("ops alerts", "SLACK_WEBHOOK_URL set");
    }
    // Database and migrations (nothing applied).
    match crate::database::connect(config).await {
        Err(err) => c.fail("database", &format!("{err:#}")),
        Ok(database) => {
            c.ok(
                "database",
                &format!("{} reachable", database.backend().as_str()),
            );
            match database.migrator().status().await {
                Ok(states) => {
                    let pending: Vec<String> = states
                        .iter()
                        .filter(|s| s.applied_at.is_none())
                        .map(|s| format!("{} {}", s.version, s.name))
                        .collect();
                    if states.iter().any(|s| !s.known) {
                        c.fail("migrations", "the database has migrations this binary does not know (a newer release ran); deploy that release or roll back with it");
                    } else if pending.is_empty() {
                        c.ok("migrations", "none pending");
                    } else {
                        c.ok(
                            "migrations",
                            &format!(
                                "pending (applied on start or by `salesai migrate up`): {}",
                                pending.join(", ")
                            ),
                        );
                    }
                }
                Err(err) => c.fail("migrations", &err.to_string()),
            }
            database.close().await;
        }
    }
    // Backups.
    match salesai_db::backup::list(&config.backup_dir).first() {
        Some(last) => {
            let age = chrono::Utc::now() - last.created_at;
            let detail = format!(
                "{} is {} h old ({})",
                last.name,
                age.num_hours(),
                config.backup_dir.display()
            );
            if age > chrono::Duration::hours(26) {
                c.warn(
                    "last backup",
                    &format!("{detail}; take one with `salesai backup create`"),
                );
            } else {
                c.ok("last backup", &detail);
            }
        }
        None => c.warn(
            "last backup",
            &format!(
                "none in {}; take one with `salesai backup create` (deploy.sh does)",
                config.backup_dir.display()
            ),
        ),
    }
    if config.backup_at.is_none() {
        c.warn("scheduled backups", "SALESAI_BACKUP_AT is not set");
    }
    // Doctor.
    let facts = crate::ops::doctor::gather(config, "1h").await;
    let findings = diagnose(&facts, &config.alerts.thresholds);
    let serious: Vec<_> = findings
        .iter()
        .filter(|f| f.severity <= Severity::P1)
        .collect();
    if serious.is_empty() {
        c.ok(
            "doctor",
            &format!("no P0/P1 findings ({} lower)", findings.len()),
        );
    } else {
        for f in serious {
            c.fail(
                "doctor",
                &format!(
                    "{:?} {}: {} → {}",
                    f.severity, f.title, f.evidence, f.action
                ),
            );
        }
    }
    println!(
        "{}",
        if c.failed {
            "preflight FAILED"
        } else {
            "preflight passed"
        }
    );
    Ok(if c.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

const SMOKE_TRANSCRIPT: &str = "WEBVTT\n\n00:00.000 --> 00:05.000\n<v Rep>This is the salesai smoke test. How do you take orders today?\n\n00:05.000 --> 00:10.000\n<v Customer>On paper, and we lose orders every week.\n";

/// `salesai smoke --url URL --token T`: health, readiness, and a tiny transcript uploaded end to
/// end through the API, then deleted. Exit 1 on any failure.
pub async fn smoke(args: SmokeArgs) -> anyhow::Result<ExitCode> {
    let base = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut c = Checklist { failed: false };
    for path in ["/health", "/ready"] {
        match http.get(format!("{base}{path}")).send().await {
            Ok(r) if r.status().is_success() => c.ok(path, "200"),
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                c.fail(
                    path,
                    &format!(
                        "HTTP {status}: {}",
                        body.chars().take(300).collect::<String>()
                    ),
                );
            }
            Err(e) => c.fail(path, &format!("unreachable: {e}")),
        }
    }
    if c.failed {
        println!("smoke FAILED");
        return Ok(ExitCode::FAILURE);
    }
    let customer = format!("SMOKE-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
    let form = reqwest::multipart::Form::new()
        .part(
            "transcript",
            reqwest::multipart::Part::bytes(SMOKE_TRANSCRIPT.as_bytes().to_vec())
                .file_name("smoke.vtt"),
        )
        .text("customer_number", customer.clone())
        .text("customer_name", "salesai smoke test")
        .text("product_line", "default");
    let created: Option<Value> = match http
        .post(format!("{base}/api/v1/conversations"))
        .bearer_auth(&args.token)
        .multipart(form)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json().await.ok(),
        Ok(r) => {
            c.fail(
                "upload",
                &format!(
                    "HTTP {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ),
            );
            None
        }
        Err(e) => {
            c.fail("upload", &e.to_string());
            None
        }
    };
    if let Some(created) = created {
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        c.ok(
            "upload",
            &format!(
                "{} {}",
                created["case_number"].as_str().unwrap_or_default(),
                id
            ),
        );
        let started = Instant::now();
        loop {
            let status = http
                .get(format!("{base}/api/v1/conversations/{id}"))
                .bearer_auth(&args.token)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            let body: Value = match status {
                Some(r) => r.json().await.unwrap_or(Value::Null),
                None => Value::Null,
            };
            match body["stage"].as_str() {
                Some("completed") => {
                    c.ok(
                        "analysis",
                        &format!(
                            "completed in {:.1} s, overall {}",
                            started.elapsed().as_secs_f64(),
                            body["analysis"]["scores"]["overall_score"]
                        ),
                    );
                    break;
                }
                Some("failed") => {
                    c.fail("analysis", &format!("failed: {}", body["error"]));
                    break;
                }
                _ if started.elapsed() > Duration::from_secs(args.timeout_secs) => {
                    c.fail(
                        "analysis",
                        &format!(
                            "not completed within {} s (stage {}); are workers running?",
                            args.timeout_secs, body["stage"]
                        ),
                    );
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        match http
            .delete(format!("{base}/api/v1/conversations/{id}"))
            .bearer_auth(&args.token)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => c.ok("cleanup", "test conversation deleted"),
            Ok(r) => c.fail(
                "cleanup",
                &format!("HTTP {} (the token needs the admin role)", r.status()),
            ),
            Err(e) => c.fail("cleanup", &e.to_string()),
        }
    }
    println!(
        "{}",
        if c.failed {
            "smoke FAILED"
        } else {
            "smoke passed"
        }
    );
    Ok(if c.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
