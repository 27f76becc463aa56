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
    let (jobs, batch, clients, json) = match command {
        BenchCommand::Queue {
            jobs,
            batch,
            clients,
            json,
        } => (jobs, batch, clients, json),
        BenchCommand::Audio {
            file,
            chunk_secs,
            json,
        } => return audio(file, chunk_secs, json).await,
    };
    anyhow::ensure!(
        jobs > 0 && clients > 0,
        "--jobs and --clients must be positive"
    );
    let (app, database) = crate::runtime::open_app(config).await?;
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
                loop {
                    let claimed = store.claim(QUEUE, &worker, batch_size).await?;
                    if claimed.is_empty() {
                        break;
                    }
                    let leases: Vec<_> = claimed.iter().filter_map(|j| j.lease()).collect();
                    if leases.len() == 1 {
                        store.complete(&leases[0]).await?;
                    } else {
                        store.complete_many(&leases).await?;
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

async fn audio(file: std::path::PathBuf, chunk_secs: u64, json: bool) -> anyhow::Result<ExitCode> {
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
        Ok(serde_json::json!({
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
