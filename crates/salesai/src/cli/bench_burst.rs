//! `salesai bench burst`: what a rep feels when many calls arrive at once — the time until
//! each call's card — beside the throughput a team sees.
//!
//! One lone call runs first (its time is the floor for every card), then `calls` one-chunk
//! recordings are uploaded at once and worked by `nodes` in-process worker nodes (each with its
//! own worker id, claim loops and the conversations queue's concurrency), against stub
//! providers at fixed latencies. A card is counted when its call completes.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use salesai_core::App;
use salesai_core::domain::ConversationStatus;
use salesai_core::queue::CONVERSATIONS;
use serde::Serialize;

use crate::cli::output::{print_json, table};
use crate::config::Config;

/// What to run.
pub struct Burst {
    /// Calls in the burst.
    pub calls: u32,
    /// Speech-to-text latency, ms.
    pub stt_ms: u64,
    /// LLM latency per agent, ms.
    pub llm_ms: u64,
    /// Worker nodes.
    pub nodes: u32,
    /// A fresh database instead of a scratch SQLite file.
    pub database_url: Option<String>,
}

/// The figures.
#[derive(Debug, Serialize)]
struct Report {
    calls: u32,
    nodes: u32,
    concurrency_per_node: u32,
    stt_ms: u64,
    llm_ms: u64,
    /// A lone call's time to card.
    lone_ms: u64,
    first_ms: u64,
    p50_ms: u64,
    p95_ms: u64,
    last_ms: u64,
    /// The first card against a lone call's.
    first_vs_lone: f64,
    /// The ideal median: calls finish in groups of the nodes' concurrency, one slot-time of
    /// work (speech-to-text, then three agent waves) apart, the first group after a lone call.
    ideal_p50_ms: u64,
    p50_vs_ideal: f64,
    calls_per_min: f64,
    /// The concurrency bound: every slot always busy with a call's work.
    bound_calls_per_min: f64,
    throughput_vs_bound: f64,
    failed: u32,
}

/// Runs the burst and prints the report.
pub async fn run(config: &Config, burst: Burst, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(burst.calls > 0, "--calls must be at least 1");
    anyhow::ensure!(
        (1..=64).contains(&burst.nodes),
        "--nodes must be between 1 and 64"
    );
    let (app, database, _scratch) = crate::cli::bench_stub::stub_app(
        config,
        burst.database_url.as_deref(),
        burst.stt_ms,
        burst.llm_ms,
    )
    .await?;
    let concurrency = app
        .store
        .get_queue_settings(CONVERSATIONS)
        .await?
        .max_concurrency;
    let token = tokio_util::sync::CancellationToken::new();
    let workers: Vec<_> = (0..burst.nodes)
        .map(|n| {
            tokio::spawn(salesai_worker::run(
                app.clone(),
                crate::ops::jobs::registry(None),
                salesai_worker::WorkerOptions::new(format!("bench-node-{n}")),
                token.clone(),
            ))
        })
        .collect();
    let result = measure(&app, &burst, concurrency).await;
    token.cancel();
    for worker in workers {
        let _ = worker.await;
    }
    database.close().await;
    let report = result?;
    if json {
        print_json(&report)?;
    } else {
        let ms = |v: u64| format!("{:.1} s", v as f64 / 1000.0);
        println!(
            "{} calls on {} node(s) × concurrency {}, stub STT {} ms, LLM {} ms per agent\n",
            report.calls, report.nodes, report.concurrency_per_node, report.stt_ms, report.llm_ms
        );
        let rows = table(
            &["measure", "value", "against"],
            &[
                vec!["lone call".into(), ms(report.lone_ms), String::new()],
                vec![
                    "first card".into(),
                    ms(report.first_ms),
                    format!("{:.2}× lone", report.first_vs_lone),
                ],
                vec![
                    "median card".into(),
                    ms(report.p50_ms),
                    format!(
                        "{:.2}× ideal {}",
                        report.p50_vs_ideal,
                        ms(report.ideal_p50_ms)
                    ),
                ],
                vec!["p95 card".into(), ms(report.p95_ms), String::new()],
                vec!["last card".into(), ms(report.last_ms), String::new()],
                vec![
                    "throughput".into(),
                    format!("{:.1} calls/min", report.calls_per_min),
                    format!(
                        "{:.0} % of {:.1}",
                        report.throughput_vs_bound * 100.0,
                        report.bound_calls_per_min
                    ),
                ],
                vec!["failed".into(), report.failed.to_string(), String::new()],
            ],
        );
        print!("{rows}");
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn measure(app: &App, burst: &Burst, concurrency: u32) -> anyhow::Result<Report> {
    let lone = upload(app, 0).await?;
    let lone_ms = finish(app, std::slice::from_ref(&lone)).await?[0].0;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(burst.calls as usize);
    for n in 1..=burst.calls {
        ids.push(upload(app, n).await?);
    }
    let done = finish(app, &ids).await?;
    let wall = started.elapsed();
    let failed = done.iter().filter(|(_, ok)| !ok).count() as u32;
    let mut times: Vec<u64> = done.iter().map(|(ms, _)| *ms).collect();
    times.sort_unstable();
    let pick = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    let slots = u64::from(concurrency * burst.nodes).max(1);
    let slot_ms = burst.stt_ms + 3 * burst.llm_ms;
    let median_rank = u64::from(burst.calls).div_ceil(2);
    let ideal_p50_ms = lone_ms + (median_rank - 1) / slots * slot_ms;
    let calls_per_min = f64::from(burst.calls) * 60.0 / wall.as_secs_f64();
    let bound_calls_per_min = slots as f64 * 60_000.0 / slot_ms as f64;
    let round = |v: f64| (v * 100.0).round() / 100.0;
    Ok(Report {
        calls: burst.calls,
        nodes: burst.nodes,
        concurrency_per_node: concurrency,
        stt_ms: burst.stt_ms,
        llm_ms: burst.llm_ms,
        lone_ms,
        first_ms: pick(0.0),
        p50_ms: pick(0.5),
        p95_ms: pick(0.95),
        last_ms: pick(1.0),
        first_vs_lone: round(pick(0.0) as f64 / lone_ms as f64),
        ideal_p50_ms,
        p50_vs_ideal: round(pick(0.5) as f64 / ideal_p50_ms as f64),
        calls_per_min: round(calls_per_min),
        bound_calls_per_min: round(bound_calls_per_min),
        throughput_vs_bound: round(calls_per_min / bound_calls_per_min),
        failed,
    })
}

/// Uploads the `n`th call: an 8-second tone (its own pitch), one chunk.
async fn upload(app: &App, n: u32) -> anyhow::Result<String> {
    let rate = 16_000u32;
    let hz = 180.0 + n as f32;
    let samples: Vec<u8> = (0..rate * 8)
        .flat_map(|i| {
            let t = i as f32 / rate as f32;
            (((t * hz * std::f32::consts::TAU).sin() * 8000.0) as i16).to_le_bytes()
        })
        .collect();
    let wav = bytes::Bytes::from(salesai_audio::pcm16_wav(1, rate, &samples));
    let key = salesai_core::blob::BlobKey::parse(&format!("uploads/bench-burst/{n}.wav"))
        .map_err(|e| anyhow::anyhow!(e.0))?;
    let size = wav.len() as u64;
    app.blobs
        .put_stream(&key, Box::pin(futures_util::stream::iter([Ok(wav)])))
        .await?;
    use salesai_core::intake::{Intake, Source};
    let customer = salesai_core::domain::CustomerNumber::parse(&format!("BURST-{n}"))
        .map_err(|e| anyhow::anyhow!(e.0))?;
    let mut intake = Intake::new(Source::Bench, customer);
    intake.blob_key = Some(key.as_str().to_owned());
    intake.media = salesai_core::domain::Media::sniffed(
        salesai_core::media::MediaKind::Wav,
        size,
        Some(format!("call-{n}.wav")),
    );
    let line = salesai_core::product_line::find(&app.product_lines, "default")
        .map_err(|e| anyhow::anyhow!(e.0))?;
    let new = intake
        .conversation(line, chrono::Utc::now(), app.time_zone)
        .map_err(|e| anyhow::anyhow!(e.0))?;
    Ok(app.store.create_conversation(new).await?.id)
}

/// Waits for every call to end; each call's time from upload to its end, and whether it
/// completed.
async fn finish(app: &App, ids: &[String]) -> anyhow::Result<Vec<(u64, bool)>> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut open: Vec<&String> = ids.iter().collect();
    while !open.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} calls unfinished after an hour",
            open.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut still = Vec::new();
        for id in open {
            let c = app
                .store
                .get_conversation(id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("{id} is gone"))?;
            if !matches!(
                c.status,
                ConversationStatus::Completed | ConversationStatus::Failed
            ) {
                still.push(id);
            }
        }
        open = still;
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let c = app
            .store
            .get_conversation(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("{id} is gone"))?;
        let events = app.store.stage_events(id).await?;
        let end = events.last().map(|e| e.at).unwrap_or(c.updated_at);
        let ms = (end - c.created_at).num_milliseconds().max(0) as u64;
        out.push((ms, c.status == ConversationStatus::Completed));
    }
    Ok(out)
}
