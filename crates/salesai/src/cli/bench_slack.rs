//! `salesai bench slack`: the Slack endpoints under load, and a large download from Slack.
//!
//! Starts `salesai serve` as a child process (SQLite and a local folder in a scratch
//! directory, workers on) against an in-process fake Slack, then
//! 1. sends signed `file_shared` events at a fixed rate (open loop: a request leaves every
//!    1/rate seconds whatever the previous ones are doing) and reports the acknowledgement
//!    latency percentiles — the load generator and the server share the machine;
//! 2. shares a large file, submits its form, and reads the server's peak RSS (VmHWM) once the
//!    download has landed in storage.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use salesai_slack::fake::{FakeContent, FakeFile, FakeSlack, signed_headers};
use serde::Serialize;
use serde_json::json;

const SECRET: &str = "bench-signing-secret";
const TOKEN: &str = "xoxb-bench";
const CHANNEL: &str = "C0BENCH";

/// What was measured.
#[derive(Debug, Serialize)]
struct Report {
    rate_per_sec: u32,
    seconds: u64,
    requests: usize,
    errors: usize,
    achieved_per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    baseline_health_p50_ms: f64,
    baseline_health_p99_ms: f64,
    idle_rss_mb: f64,
    after_load_rss_mb: f64,
    download_mb: u64,
    download_secs: Option<f64>,
    download_peak_rss_mb: Option<f64>,
}

fn vm_hwm_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_files(dir: &Path, out: &mut Vec<(std::path::PathBuf, u64)>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                find_files(&path, out);
            } else if let Ok(meta) = e.metadata() {
                out.push((path, meta.len()));
            }
        }
    }
}

/// Runs the benchmark.
pub async fn run(
    rate: u32,
    seconds: u64,
    download_mb: u64,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        rate > 0 && seconds > 0,
        "--rate and --seconds must be positive"
    );
    let work = tempfile::tempdir()?;
    let fake = FakeSlack::start(TOKEN).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let exe = std::env::current_exe().context("cannot find the salesai binary")?;
    let child = std::process::Command::new(exe)
        .arg("serve")
        .current_dir(work.path())
        .env("SALESAI_DATA_DIR", work.path().join("data"))
        .env("SALESAI_BIND", format!("127.0.0.1:{port}"))
        .env("SALESAI_LOG", "warn")
        .env("SLACK_SIGNING_SECRET", SECRET)
        .env("SLACK_BOT_TOKEN", TOKEN)
        .env("SLACK_API_URL", fake.api_url().as_str())
        .env("SLACK_CHANNELS", format!("{CHANNEL}=default"))
        .env("SLACK_MAX_DOWNLOAD_MB", (download_mb + 16).to_string())
        .env_remove("DATABASE_URL")
        .env_remove("SALESAI_BLOB_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(work.path().join("server.log"))?)
        .spawn()
        .context("cannot start salesai serve")?;
    let child = Child(child);
    let pid = child.0.id();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let started = Instant::now();
    while http.get(format!("{base}/health")).send().await.is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "salesai serve did not start; see its log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle_rss_mb = vm_hwm_mb(pid);

    // 1. Events at a fixed rate.
    let total = (u64::from(rate) * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let mut tasks = Vec::with_capacity(total);
    let load_started = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(load_started + interval * i as u32).await;
        let http = http.clone();
        let url = format!("{base}/slack/events");
        tasks.push(tokio::spawn(async move {
            let file = format!("FBENCH{i:07}");
            let body = json!({
                "type": "event_callback", "event_id": format!("EvBench{i}"), "team_id": "T0",
                "event": { "type": "file_shared", "file_id": file, "user_id": "U0BENCH",
                           "channel_id": CHANNEL, "event_ts": "1700000000.000100" },
            })
            .to_string();
            let mut request = http.post(url).header("content-type", "application/json");
            for (k, v) in signed_headers(SECRET, body.as_bytes()) {
                request = request.header(k, v);
            }
            let sent = Instant::now();
            let ok = match request.body(body).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (sent.elapsed().as_secs_f64() * 1000.0, ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for t in tasks {
        let (ms, ok) = t.await?;
        latencies.push(ms);
        errors += usize::from(!ok);
    }
    let elapsed = load_started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let after_load_rss_mb = vm_hwm_mb(pid);

    // Baseline: the same load generator against GET /health (the HTTP stack with no signature
    // check and no database write), at the same rate.
    let mut tasks = Vec::with_capacity(total);
    let base_started = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(base_started + interval * i as u32).await;
        let request = http.get(format!("{base}/health"));
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let _ = request.send().await.map(|r| r.bytes());
            sent.elapsed().as_secs_f64() * 1000.0
        }));
    }
    let mut baseline = Vec::with_capacity(total);
    for t in tasks {
        baseline.push(t.await?);
    }
    baseline.sort_by(f64::total_cmp);

    // 2. A large download: share, click, submit; wait for the blob to land.
    let (mut download_secs, mut download_peak_rss_mb) = (None, None);
    if download_mb > 0 {
        fake.add_file(
            "F0BIG",
            FakeFile {
                name: "big.mp3".into(),
                mimetype: "audio/mpeg".into(),
                filetype: "mp3".into(),
                content: FakeContent::Generated(download_mb * 1024 * 1024),
            },
            CHANNEL,
            "1700000000.999999",
        );
        let form_body = |payload: serde_json::Value| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("payload", &payload.to_string())
                .finish()
        };
        let send = |path: &str, body: String, content_type: &str| {
            let mut request = http
                .post(format!("{base}{path}"))
                .header("content-type", content_type.to_owned());
            for (k, v) in signed_headers(SECRET, body.as_bytes()) {
                request = request.header(k, v);
            }
            request.body(body).send()
        };
        let event = json!({ "type": "event_callback", "event_id": "EvBig",
            "event": { "type": "file_shared", "file_id": "F0BIG", "user_id": "U0BENCH", "channel_id": CHANNEL } });
        send("/slack/events", event.to_string(), "application/json").await?;
        fake.wait_until(
            "the prompt for the large file",
            Duration::from_secs(120),
            |calls| {
                calls
                    .iter()
                    .any(|c| c.method == "chat.postMessage" && c.body.to_string().contains("F0BIG"))
            },
        )
        .await;
        let prompt = fake
            .calls_of("chat.postMessage")
            .into_iter()
            .find(|c| c.body.to_string().contains("F0BIG"))
            .expect("prompt");
        let meta = prompt.body["blocks"][1]["elements"][0]["value"].clone();
        let values = json!({
            "customer_number": { "value": { "value": "BENCH-BIG" } },
            "customer_name": { "value": { "value": "Bench" } },
            "decision_maker_present": { "value": { "selected_option": { "value": "yes" } } },
        });
        let submitted = Instant::now();
        send(
            "/slack/interactions",
            form_body(json!({ "type": "view_submission", "user": { "id": "U0BENCH", "name": "bench" },
                "view": { "callback_id": "salesai_upload", "private_metadata": meta, "state": { "values": values } } })),
            "application/x-www-form-urlencoded",
        )
        .await?;
        let want = download_mb * 1024 * 1024;
        let uploads = work.path().join("data/blobs/uploads");
        loop {
            let mut files = Vec::new();
            find_files(&uploads, &mut files);
            if files.iter().any(|(_, len)| *len >= want) {
                download_secs = Some(submitted.elapsed().as_secs_f64());
                download_peak_rss_mb = Some(vm_hwm_mb(pid));
                break;
            }
            anyhow::ensure!(
                submitted.elapsed() < Duration::from_secs(900),
                "the download did not finish in 15 minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let report = Report {
        rate_per_sec: rate,
        seconds,
        requests: total,
        errors,
        achieved_per_sec: total as f64 / elapsed.max(1e-9),
        p50_ms: percentile(&latencies, 50.0),
        p90_ms: percentile(&latencies, 90.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        baseline_health_p50_ms: percentile(&baseline, 50.0),
        baseline_health_p99_ms: percentile(&baseline, 99.0),
        idle_rss_mb,
        after_load_rss_mb,
        download_mb,
        download_secs,
        download_peak_rss_mb,
    };
    if json_out {
        crate::cli::output::print_json(&report)?;
    } else {
        println!(
            "/slack/events at {rate}/s for {seconds} s: {} requests ({:.1}/s achieved), {} errors",
            report.requests, report.achieved_per_sec, report.errors
        );
        println!(
            "ack latency  p50 {:.2} ms · p90 {:.2} ms · p99 {:.2} ms · max {:.2} ms",
            report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms
        );
        println!(
            "baseline GET /health at the same rate: p50 {:.2} ms · p99 {:.2} ms",
            report.baseline_health_p50_ms, report.baseline_health_p99_ms
        );
        println!(
            "server peak RSS  idle {idle_rss_mb:.1} MB · after the load {after_load_rss_mb:.1} MB"
        );
        if let (Some(secs), Some(rss)) = (download_secs, download_peak_rss_mb) {
            println!(
                "download of {download_mb} MB from the fake Slack: {secs:.1} s, server peak RSS {rss:.1} MB"
            );
        }
    }
    Ok(if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
