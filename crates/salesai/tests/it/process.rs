//! Starting `salesai` processes with a clean environment.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every variable salesai reads, removed so the developer's own settings cannot leak in.
const SETTINGS: &[&str] = &[
    "DATABASE_URL",
    "SALESAI_CONFIG",
    "SALESAI_DATA_DIR",
    "SALESAI_DB_MAX_CONNECTIONS",
    "SALESAI_BLOB_URL",
    "SALESAI_S3_ENDPOINT",
    "SALESAI_S3_REGION",
    "SALESAI_S3_ACCESS_KEY_ID",
    "SALESAI_S3_SECRET_ACCESS_KEY",
    "SALESAI_S3_ALLOW_HTTP",
    "SALESAI_S3_VIRTUAL_HOSTED_STYLE",
    "SALESAI_BIND",
    "SALESAI_TIME_ZONE",
    "SALESAI_LOG_FORMAT",
    "SALESAI_LOG",
    "SALESAI_WORKER_ID",
    "SALESAI_WORKER_QUEUES",
    "SALESAI_WORKER_POLL_MS",
    "SALESAI_SHUTDOWN_GRACE_SECS",
    "SALESAI_MAX_UPLOAD_MB",
    "GROQ_API_KEY",
    "GEMINI_API_KEY",
    "SALESAI_LLM_BASE_URL",
    "SALESAI_LLM_API_KEY",
    "SALESAI_LLM_MODEL",
    "SALESAI_LLM_AGENT_MODELS",
    "SALESAI_LLM_TIMEOUT_SECS",
    "SALESAI_PROMPTS_DIR",
    "SALESAI_PUBLIC_URL",
    "SALESAI_BACKUP_AT",
    "SLACK_WEBHOOK_URL",
    "SALESAI_ALERT_INTERVAL_SECS",
    "SALESAI_ALERT_COOLDOWN_MINS",
    "SALESAI_ALERT_FAILURE_RATE",
    "SALESAI_ALERT_QUEUE_DEPTH",
    "SALESAI_ALERT_MAX_WAIT_MINS",
    "SALESAI_ALERT_SIGNATURE_FAILURES",
    "SALESAI_ALERT_SLOW_QUERY_MS",
    "SALESAI_DAILY_SUMMARY_AT",
    "SALESAI_PRUNE_COMPLETED_OLDER_THAN",
    "SALESAI_PRUNE_AUDIO_ONLY",
    "SALESAI_PRUNE_AT",
    "SALESAI_JOBS_KEEP_DAYS",
    "SALESAI_JOBS_PURGE_AT",
    "SALESAI_SMOKE_URL",
    "SALESAI_SMOKE_TOKEN",
    "SALESAI_BACKUP_DIR",
    "SALESAI_BACKUP_KEEP",
    "SLACK_SIGNING_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_API_URL",
    "SLACK_CHANNELS",
    "SLACK_DM_PRODUCT_LINE",
    "SLACK_MAX_DOWNLOAD_MB",
    "SALESAI_STT_BASE_URL",
    "SALESAI_STT_API_KEY",
    "SALESAI_STT_MODEL",
    "SALESAI_STT_CONCURRENCY",
    "SALESAI_STT_MAX_CHUNK_SECS",
    "SALESAI_STT_MAX_CHUNK_MB",
    "SALESAI_STT_TIMEOUT_SECS",
    "SALESAI_STT_REQUESTS_PER_MINUTE",
];

/// A `salesai` command in `dir` with a clean environment. The daily purge of completed jobs,
/// on by default, is off here so a test counts only its own jobs; tests of it turn it on.
pub fn salesai(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_salesai"));
    command.current_dir(dir);
    for name in SETTINGS {
        command.env_remove(name);
    }
    command.env("SALESAI_JOBS_KEEP_DAYS", "0");
    command
}

/// A salesai command in `dir` whose database exists (as after the first `salesai serve`
/// there): other commands refuse to create one.
pub fn salesai_ready(dir: &Path) -> Command {
    let out = run(salesai(dir).args(["migrate", "up"]));
    assert!(out.status.success(), "{}", stderr(&out));
    salesai(dir)
}

/// Runs a command to completion.
pub fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("run salesai")
}

/// The text of a command's stdout.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of a command's stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running salesai process whose stderr (the log) is collected line by line.
pub struct Running {
    /// The child.
    pub child: Child,
    /// Log lines so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts the command with stderr captured.
    pub fn start(mut command: Command) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start salesai");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running { child, log }
    }

    /// Sends a signal by name (TERM, KILL).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for exit, failing after `limit`.
    pub fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Let the reader thread drain the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "salesai did not exit within {limit:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log so far as one string.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The JSON log events so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `url` until it answers 200, failing after 30 s.
pub async fn wait_until_up(url: &str, running: &Running) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = client.get(url).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered; log:\n{}", running.log_text());
}
