//! `salesai bench queue`: enqueue and claim+complete throughput of the durable queue, on
//! whichever database is configured.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use salesai_core::queue::{JobFilter, JobStatus, NewJob};
use salesai_core::store::Store;
use serde::Serialize;

use crate::cli::output::{print_json, table};
use crate::config::Config;

/// Benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Audio preparation of one file: decode, 16 kHz mono, loudness, chunk plan, FLAC chunks
    /// (written to a temporary folder); measure its CPU time and memory from outside
    Audio {
        /// The recording
        file: std::path::PathBuf,
        /// Longest chunk, seconds
        #[arg(long, default_value_t = 600)]
        chunk_secs: u64,
        /// Also find the speaker turns (what the worker does for a mono recording), timed apart
        #[arg(long)]
        diarize: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Speaker turns on synthesised calls with known truth (stereo, one speaker per channel,
    /// mixed down to mono; English and Traditional Chinese, cross-talk, short turns): the
    /// diarization error rate per call and overall, and how much speaking time gets the right
    /// role (needs espeak-ng)
    Diarize {
        /// Calls to synthesise (at most 8)
        #[arg(long, default_value_t = 8)]
        calls: usize,
        /// Keep the stereo recordings in this folder
        #[arg(long)]
        keep: Option<std::path::PathBuf>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The whole pipeline on one recording with stub providers at fixed latencies, against the
    /// critical path (decoding, then each chunk to speech-to-text as soon as it is encoded,
    /// `concurrency` at a time, then 3 agent waves × LLM latency)
    Pipeline {
        /// The recording
        file: std::path::PathBuf,
        /// Speech-to-text latency per chunk, ms
        #[arg(long, default_value_t = 3000)]
        stt_ms: u64,
        /// LLM latency per agent, ms
        #[arg(long, default_value_t = 2000)]
        llm_ms: u64,
        /// Chunks transcribed at once
        #[arg(long, default_value_t = 4)]
        concurrency: u32,
    },
    /// A burst of one-chunk calls uploaded at once, worked by in-process worker nodes with stub
    /// providers at fixed latencies: time to each call's card (p50, p95, first, last) against
    /// the ideal for the nodes' concurrency, and throughput against its bound
    Burst {
        /// Calls in the burst
        #[arg(long, default_value_t = 60)]
        calls: u32,
        /// Speech-to-text latency per chunk, ms
        #[arg(long, default_value_t = 2000)]
        stt_ms: u64,
        /// LLM latency per agent, ms
        #[arg(long, default_value_t = 1000)]
        llm_ms: u64,
        /// Worker nodes (each with the conversations queue's default concurrency)
        #[arg(long, default_value_t = 1)]
        nodes: u32,
        /// A fresh database to run on instead of a scratch SQLite file (e.g. PostgreSQL)
        #[arg(long)]
        database_url: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// /slack/events acknowledgement latency under a fixed rate of signed events, and the
    /// server's memory while it downloads a large file from a fake Slack (built with
    /// `--features fake-slack`)
    #[cfg(feature = "fake-slack")]
    Slack {
        /// Signed events per second
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Seconds of load
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Size of the downloaded file, MB (0 skips the download)
        #[arg(long, default_value_t = 1024)]
        download_mb: u64,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The web app and API with many calls: list, filtered list, deep page, searches, call page
    /// and the API's pages, each timed over HTTP beside GET /health (seeds synthetic calls
    /// into the configured database first; `--clear` removes them)
    Web {
        /// Synthetic calls to have in the database
        #[arg(long, default_value_t = 100_000)]
        calls: u32,
        /// Transcript lines per call
        #[arg(long, default_value_t = 40)]
        lines: u32,
        /// Timed requests per endpoint
        #[arg(long, default_value_t = 50)]
        samples: u32,
        /// Remove the synthetic calls and stop
        #[arg(long)]
        clear: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Queue throughput with no-op jobs (uses the queue `bench`, emptied before and after)
    Queue {
        /// Jobs per measurement
        #[arg(long, default_value_t = 10_000)]
        jobs: u32,
        /// Batch sizes to measure, comma-separated
        #[arg(long, value_delimiter = ',', default_values_t = [1u32, 10])]
        batch: Vec<u32>,
        /// Concurrent clients (workers)
        #[arg(long, default_value_t = 8)]
        clients: u32,
        /// Batch 1 as two calls (claim, then complete) instead of the runner's one
        /// (complete-and-claim), to compare the two in one run
        #[arg(long)]
        two_calls: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// One batch size's figures.
#[derive(Debug, Serialize)]
struct BatchResult {
    batch: u32,
    enqueue_jobs_per_sec: f64,
    claim_complete_jobs_per_sec: f64,
}

const QUEUE: &str = "bench";

async fn empty_queue(store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let stuck = store
        .list_jobs(&JobFilter {
            queue: Some(QUEUE.into()),
            status: Some(JobStatus::Running),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    anyhow::ensure!(
        stuck.is_empty(),
        "queue {QUEUE} has running jobs; is another benchmark running?"
    );
    store
        .purge_jobs(
            &JobFilter {
                queue: Some(QUEUE.into()),
                ..Default::default()
            },
            false,
        )
        .await?;
    Ok(())
}

/// Runs a benchmark.
pub async fn run(config: &Config, command: BenchCommand) -> anyhow::Result<ExitCode> {
    let queue_args = match command {
        BenchCommand::Queue {
            jobs,
            batch,
            clients,
            two_calls,
            json,
        } => (jobs, batch, clients, two_calls, json),
        BenchCommand::Audio {
            file,
            chunk_secs,
            diarize,
            json,
        } => return audio(file, chunk_secs, diarize, json).await,
        BenchCommand::Diarize { calls, keep, json } => {
            return crate::cli::bench_diarize::run(calls, keep, json).await;
        }
        BenchCommand::Pipeline {
            file,
            stt_ms,
            llm_ms,
            concurrency,
        } => return pipeline(config, file, stt_ms, llm_ms, concurrency).await,
        BenchCommand::Burst {
            calls,
            stt_ms,
            llm_ms,
            nodes,
            database_url,
            json,
        } => {
            return crate::cli::bench_burst::run(
                config,
                crate::cli::bench_burst::Burst {
                    calls,
                    stt_ms,
                    llm_ms,
                    nodes,
                    database_url,
                },
                json,
            )
            .await;
        }
        #[cfg(feature = "fake-slack")]
        BenchCommand::Slack {
            rate,
            seconds,
            download_mb,
            json,
        } => return crate::cli::bench_slack::run(rate, seconds, download_mb, json).await,
        BenchCommand::Web {
            calls,
            lines,
            samples,
            clear,
            json,
        } => {
            anyhow::ensure!(
                calls > 0 && lines > 0 && samples > 0,
                "--calls, --lines and --samples must be positive"
            );
            return crate::cli::bench_web::run(config, calls, lines, samples, clear, json).await;
        }
    };
    let (jobs, batch, clients, two_calls, json) = queue_args;
    anyhow::ensure!(
        jobs > 0 && clients > 0,
        "--jobs and --clients must be positive"
    );
    // A connection per client (and two to spare), so the pool is not what is measured.
    let mut config = config.clone();
    config.db_max_connections = config.db_max_connections.max(clients + 2);
    let (app, database) = crate::runtime::open_app(&config).await?;
    let store = app.store.clone();
    let mut results = Vec::new();
    for &batch_size in &batch {
        anyhow::ensure!(
            (1..=1000).contains(&batch_size),
            "batch sizes must be 1 to 1000"
        );
        empty_queue(&store).await?;

        let started = Instant::now();
        let per_client = jobs.div_ceil(clients);
        let mut tasks = Vec::new();
        for client in 0..clients {
            let store = store.clone();
            let mine = per_client.min(jobs.saturating_sub(client * per_client));
            tasks.push(tokio::spawn(async move {
                let mut left = mine;
                while left > 0 {
                    let n = left.min(batch_size);
                    let new: Vec<NewJob> = (0..n)
                        .map(|_| NewJob::new(QUEUE, "maintenance.noop", serde_json::json!({})))
                        .collect();
                    if n == 1 {
                        store
                            .enqueue(new.into_iter().next().expect("one job"))
                            .await?;
                    } else {
                        store.enqueue_many(new).await?;
                    }
                    left -= n;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let enqueue_secs = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let mut tasks = Vec::new();
        for client in 0..clients {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let worker = format!("bench-{client}");
                let mut done = 0u64;
                // As the runner does: batch 1 completes each job and claims the next in one
                // call; larger batches claim, then complete the batch in one statement.
                let mut claimed = store.claim(QUEUE, &worker, batch_size).await?;
                while !claimed.is_empty() {
                    let leases: Vec<_> = claimed.iter().filter_map(|j| j.lease()).collect();
                    if leases.len() == 1 && batch_size == 1 && !two_calls {
                        let (completed, next) = store
                            .complete_and_claim(&leases[0], QUEUE, &worker, 1)
                            .await?;
                        anyhow::ensure!(completed, "a lease was lost");
                        claimed = next;
                    } else {
                        if leases.len() == 1 {
                            store.complete(&leases[0]).await?;
                        } else {
                            store.complete_many(&leases).await?;
                        }
                        claimed = store.claim(QUEUE, &worker, batch_size).await?;
                    }
                    done += leases.len() as u64;
                }
                Ok::<_, anyhow::Error>(done)
            }));
        }
        let mut done = 0;
        for task in tasks {
            done += task.await??;
        }
        let claim_secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(done == u64::from(jobs), "completed {done} of {jobs} jobs");
        let stats = store.queue_stats().await?;
        let completed = stats
            .queues
            .iter()
            .find(|q| q.queue == QUEUE)
            .and_then(|q| q.depth.get("completed").copied())
            .unwrap_or(0);
        anyhow::ensure!(
            completed == u64::from(jobs),
            "the database shows {completed} of {jobs} completed"
        );
        empty_queue(&store).await?;
        results.push(BatchResult {
            batch: batch_size,
            enqueue_jobs_per_sec: (f64::from(jobs) / enqueue_secs).round(),
            claim_complete_jobs_per_sec: (f64::from(jobs) / claim_secs).round(),
        });
    }
    let backend = store.backend().as_str();
    if json {
        print_json(
            &serde_json::json!({ "backend": backend, "jobs": jobs, "clients": clients, "results": results }),
        )?;
    } else {
        println!("backend {backend}, {jobs} no-op jobs, {clients} clients");
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|r| {
                vec![
                    r.batch.to_string(),
                    format!("{:.0}", r.enqueue_jobs_per_sec),
                    format!("{:.0}", r.claim_complete_jobs_per_sec),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["BATCH", "ENQUEUE JOBS/S", "CLAIM+COMPLETE JOBS/S"], &rows)
        );
    }
    database.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn audio(
    file: std::path::PathBuf,
    chunk_secs: u64,
    diarize: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let ext = file.extension().map(|e| e.to_string_lossy().into_owned());
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        let prepared = salesai_audio::prepare(&file, ext.as_deref())?;
        let decode_secs = started.elapsed().as_secs_f64();
        let limits = salesai_core::audio::ChunkLimits {
            max_ms: chunk_secs * 1000,
            ..Default::default()
        };
        let plan = salesai_core::audio::plan_chunks(
            prepared.duration_ms,
            salesai_audio::FRAME_MS,
            &prepared.energy,
            &limits,
        );
        let out = tempfile::tempdir()?;
        let mut bytes = Vec::new();
        for chunk in &plan {
            let flac = salesai_audio::encode_flac(&prepared, chunk.start_ms, chunk.end_ms)?;
            std::fs::write(out.path().join(format!("{:04}.flac", chunk.index)), &flac)?;
            bytes.push(flac.len());
        }
        let prepare_secs = started.elapsed().as_secs_f64();
        let voices = if diarize {
            let begun = Instant::now();
            let found = salesai_audio::diarize::diarize(&prepared)?;
            Some(serde_json::json!({
                "speakers": found.voices.len(),
                "turns": found.turns.len(),
                "unplaced_turns": found.turns.iter().filter(|t| t.speaker.is_none()).count(),
                "diarize_s": begun.elapsed().as_secs_f64(),
            }))
        } else {
            None
        };
        Ok(serde_json::json!({
            "diarization": voices,
            "prepare_s": prepare_secs,
            "codec": prepared.codec,
            "source_rate": prepared.source_rate,
            "source_channels": prepared.source_channels,
            "duration_s": prepared.duration_ms as f64 / 1000.0,
            "chunks": plan.len(),
            "chunk_bytes": bytes,
            "decode_resample_s": decode_secs,
            "total_s": started.elapsed().as_secs_f64(),
        }))
    })
    .await??;
    if json {
        print_json(&report)?;
    } else {
        println!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}

/// When the last chunk's transcription ends if each chunk goes to speech-to-text as soon as
/// it is encoded (chunks are encoded one after another after decoding), with `slots` requests
/// at once and each taking `stt_ms`: the best any scheduler can do with that preparation.
fn overlapped_critical_path(decode_ms: u64, encode_ms: &[u64], stt_ms: u64, slots: u64) -> u64 {
    let mut free = vec![0u64; slots.max(1) as usize];
    let mut ready = decode_ms;
    let mut end = ready;
    for encode in encode_ms {
        ready += encode;
        let slot = free.iter_mut().min().expect("at least one slot");
        *slot = (*slot).max(ready) + stt_ms;
        end = end.max(*slot);
    }
    end
}

async fn pipeline(
    config: &Config,
    file: std::path::PathBuf,
    stt_ms: u64,
    llm_ms: u64,
    concurrency: u32,
) -> anyhow::Result<ExitCode> {
    use salesai_core::domain::ConversationStatus;
    // 1. The preparation alone, measured first: decoding, then each chunk's encoding. With
    //    stages overlapped, a chunk can go to speech-to-text as soon as it is encoded.
    let ext = file.extension().map(|e| e.to_string_lossy().into_owned());
    let probe_file = file.clone();
    let started = Instant::now();
    let (decode_ms, encode_ms) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, Vec<u64>)> {
            let prepared = salesai_audio::prepare(&probe_file, ext.as_deref())?;
            let plan = salesai_core::audio::plan_chunks(
                prepared.duration_ms,
                salesai_audio::FRAME_MS,
                &prepared.energy,
                &Default::default(),
            );
            let decode_ms = started.elapsed().as_millis() as u64;
            let mut encode_ms = Vec::with_capacity(plan.len());
            for chunk in &plan {
                let t = Instant::now();
                salesai_audio::encode_flac(&prepared, chunk.start_ms, chunk.end_ms)?;
                encode_ms.push(t.elapsed().as_millis() as u64);
            }
            Ok((decode_ms, encode_ms))
        })
        .await??;
    let prepare_ms = started.elapsed().as_millis() as u64;
    let chunks = encode_ms.len();
    let critical_ms =
        overlapped_critical_path(decode_ms, &encode_ms, stt_ms, u64::from(concurrency))
            + 3 * llm_ms;
    let rounds = (chunks as u64).div_ceil(u64::from(concurrency));
    let sequential_ms = prepare_ms + rounds * stt_ms + 3 * llm_ms;

    // 2. The pipeline, in this process, on a scratch store.
    let (app, database, _scratch) =
        crate::cli::bench_stub::stub_app(config, None, stt_ms, llm_ms).await?;
    let mut settings = app
        .store
        .get_queue_settings(salesai_core::queue::CONVERSATIONS)
        .await?;
    settings.max_concurrency = concurrency.max(2);
    settings.max_batch = concurrency.max(2);
    app.store.put_queue_settings(&settings).await?;
    let key = salesai_core::blob::BlobKey::parse("uploads/bench/input").expect("valid key");
    let bytes = bytes::Bytes::from(tokio::fs::read(&file).await?);
    let head: Vec<u8> = bytes.iter().take(64).copied().collect();
    let kind =
        salesai_core::media::sniff(&head).ok_or_else(|| anyhow::anyhow!("not a recording"))?;
    app.blobs
        .put_stream(&key, Box::pin(futures_util::stream::iter([Ok(bytes)])))
        .await?;
    let token = tokio_util::sync::CancellationToken::new();
    let options = salesai_worker::WorkerOptions {
        poll_interval: std::time::Duration::from_millis(20),
        ..salesai_worker::WorkerOptions::new("bench")
    };
    let worker = tokio::spawn(salesai_worker::run(
        app.clone(),
        crate::ops::jobs::registry(None),
        options,
        token.clone(),
    ));
    let started = Instant::now();
    let created = app
        .store
        .create_conversation({
            use salesai_core::intake::{Intake, Source};
            let customer = salesai_core::domain::CustomerNumber::parse("BENCH")
                .map_err(|e| anyhow::anyhow!(e.0))?;
            let mut intake = Intake::new(Source::Bench, customer);
            intake.blob_key = Some(key.as_str().to_owned());
            intake.media = salesai_core::domain::Media::sniffed(kind, 0, None);
            let line = salesai_core::product_line::find(&app.product_lines, "default")
                .map_err(|e| anyhow::anyhow!(e.0))?;
            intake
                .conversation(line, chrono::Utc::now(), app.time_zone)
                .map_err(|e| anyhow::anyhow!(e.0))?
        })
        .await?;
    let status = loop {
        let c = app
            .store
            .get_conversation(&created.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("gone"))?;
        if matches!(
            c.status,
            ConversationStatus::Completed | ConversationStatus::Failed
        ) {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let wall_ms = started.elapsed().as_millis() as u64;
    token.cancel();
    let _ = worker.await;
    database.close().await;
    anyhow::ensure!(
        status.status == ConversationStatus::Completed,
        "the pipeline failed: {:?}",
        status.error
    );
    print_json(&serde_json::json!({
        "chunks": chunks,
        "stt_ms": stt_ms,
        "llm_ms": llm_ms,
        "concurrency": concurrency,
        "prepare_ms": prepare_ms,
        "decode_ms": decode_ms,
        "critical_path_ms": critical_ms,
        "critical_path_without_overlap_ms": sequential_ms,
        "wall_ms": wall_ms,
        "ratio": (wall_ms as f64 / critical_ms as f64 * 100.0).round() / 100.0,
    }))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::overlapped_critical_path;

    #[test]
    fn the_overlapped_critical_path_waits_for_encoding_and_slots() {
        // Decoding 1 s, chunks encoded in 0.5 s each, 3 s each to transcribe.
        let encode = [500; 6];
        // Four slots: chunks 1–4 start as they are ready (1.5, 2, 2.5, 3 s); chunk 5 (ready at
        // 3.5 s) waits for the first slot (4.5 s), chunk 6 (4 s) for the second (5 s).
        assert_eq!(overlapped_critical_path(1_000, &encode, 3_000, 4), 8_000);
        // One slot: one after another from the first chunk's readiness.
        assert_eq!(
            overlapped_critical_path(1_000, &encode, 3_000, 1),
            1_500 + 18_000
        );
        // No chunks: decoding alone.
        assert_eq!(overlapped_critical_path(1_000, &[], 3_000, 4), 1_000);
    }
}
