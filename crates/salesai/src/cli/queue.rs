//! `salesai queue …`: the runbook's queue scenarios as commands.

use std::process::ExitCode;

use chrono::Utc;
use salesai_core::queue::{JobFilter, JobStatus, QueueSettingsPatch, parse_queue_name};

use crate::cli::output::{clip, print_json, table};
use crate::config::Config;

/// Queue operations.
#[derive(clap::Subcommand, Debug)]
pub enum QueueCommand {
    /// Depth, oldest wait, settings and recent outcomes of every queue
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List jobs, newest first
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One job with its payload and attempt history
    Show {
        /// The job id
        id: i64,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop dispatching a queue on every node (jobs are still accepted; running ones finish)
    Pause {
        /// The queue
        queue: String,
    },
    /// Resume dispatching a paused queue
    Resume {
        /// The queue
        queue: String,
    },
    /// Change a queue's settings on every node
    Set {
        /// The queue
        queue: String,
        /// Jobs per claim
        #[arg(long)]
        max_batch: Option<u32>,
        /// Jobs run at once per node
        #[arg(long)]
        max_concurrency: Option<u32>,
        /// Attempts before dead
        #[arg(long)]
        max_attempts: Option<u32>,
        /// First retry delay in ms
        #[arg(long)]
        backoff_base_ms: Option<u64>,
        /// Longest retry delay in ms
        #[arg(long)]
        backoff_max_ms: Option<u64>,
        /// Lease duration in seconds
        #[arg(long)]
        lease_secs: Option<u64>,
    },
    /// Delete jobs that match (never running ones); --dry-run lists them instead
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Only show what would be deleted
        #[arg(long)]
        dry_run: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Queue dead jobs again with fresh attempts: one by id, or all that match with --all
    Retry {
        /// The dead job to retry
        id: Option<i64>,
        #[command(flatten)]
        filter: FilterArgs,
        /// Retry every dead job matching the filter
        #[arg(long)]
        all: bool,
        /// Do not ask before retrying every dead job of every queue (for scripts)
        #[arg(long)]
        yes: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Job selection flags.
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// Only this queue
    #[arg(long)]
    pub queue: Option<String>,
    /// Only this status: queued, running, completed or dead
    #[arg(long)]
    pub status: Option<String>,
    /// Only this job kind
    #[arg(long)]
    pub kind: Option<String>,
    /// Only jobs unchanged for longer than this (e.g. 90s, 30m, 12h, 7d)
    #[arg(long, value_parser = salesai_core::queue::parse_age)]
    pub older_than: Option<chrono::Duration>,
}

impl FilterArgs {
    fn to_filter(&self, limit: Option<u32>) -> anyhow::Result<JobFilter> {
        Ok(JobFilter {
            queue: self
                .queue
                .as_deref()
                .map(parse_queue_name)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e.0))?,
            status: self
                .status
                .as_deref()
                .map(JobStatus::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e.0))?,
            kind: self.kind.clone(),
            older_than: self.older_than.map(|age| Utc::now() - age),
            ids: None,
            conversation_id: None,
            limit,
        })
    }

    fn is_empty(&self) -> bool {
        self.queue.is_none()
            && self.status.is_none()
            && self.kind.is_none()
            && self.older_than.is_none()
    }
}

fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// Runs a queue command.
pub async fn run(config: &Config, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let (app, database) = crate::runtime::open_app(config).await?;
    let store = &app.store;
    let code = match command {
        QueueCommand::Status { json } => {
            let settings = store.queue_settings().await?;
            let stats = store.queue_stats().await?;
            if json {
                print_json(&serde_json::json!({ "settings": settings, "stats": stats }))?;
            } else {
                let rows: Vec<Vec<String>> = stats
                    .queues
                    .iter()
                    .map(|q| {
                        let s = settings.iter().find(|s| s.name == q.queue);
                        let n = |k: &str| q.depth.get(k).copied().unwrap_or(0).to_string();
                        vec![
                            q.queue.clone(),
                            if q.paused {
                                "PAUSED".into()
                            } else {
                                "running".into()
                            },
                            n("queued"),
                            n("running"),
                            n("completed"),
                            n("dead"),
                            age(q.oldest_waiting_secs as i64),
                            q.expired_leases.to_string(),
                            s.map_or("-".into(), |s| {
                                format!("{}/{}/{}", s.max_batch, s.max_concurrency, s.max_attempts)
                            }),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "QUEUE",
                            "STATE",
                            "QUEUED",
                            "RUNNING",
                            "COMPLETED",
                            "DEAD",
                            "OLDEST WAIT",
                            "EXPIRED LEASES",
                            "BATCH/CONC/ATTEMPTS"
                        ],
                        &rows
                    )
                );
                println!();
                let rows: Vec<Vec<String>> = stats
                    .windows
                    .iter()
                    .map(|w| {
                        let failed: u64 = w.failures_by_code.values().sum();
                        let codes = w
                            .failures_by_code
                            .iter()
                            .map(|(c, n)| format!("{c}={n}"))
                            .collect::<Vec<_>>()
                            .join(" ");
                        vec![
                            w.window.clone(),
                            w.completed.to_string(),
                            failed.to_string(),
                            codes,
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &["WINDOW", "COMPLETED", "FAILED ATTEMPTS", "BY ERROR CODE"],
                        &rows
                    )
                );
            }
            ExitCode::SUCCESS
        }
        QueueCommand::List {
            filter,
            limit,
            json,
        } => {
            let jobs = store.list_jobs(&filter.to_filter(Some(limit))?).await?;
            if json {
                print_json(&jobs)?;
            } else {
                let now = Utc::now();
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.id.to_string(),
                            j.queue.clone(),
                            j.kind.clone(),
                            j.status.as_str().into(),
                            format!("{}/{}", j.attempts, j.max_attempts),
                            age((now - j.updated_at).num_seconds()),
                            j.last_error_code.clone().unwrap_or_default(),
                            clip(j.last_error_message.as_deref().unwrap_or_default(), 60),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "ID",
                            "QUEUE",
                            "KIND",
                            "STATUS",
                            "ATTEMPTS",
                            "AGE",
                            "LAST ERROR",
                            "MESSAGE"
                        ],
                        &rows
                    )
                );
            }
            ExitCode::SUCCESS
        }
        QueueCommand::Show { id, json } => match store.get_job(id).await? {
            Some(detail) => {
                if json {
                    print_json(&detail)?;
                } else {
                    let j = &detail.job;
                    println!("job {} ({}) on queue {}", j.id, j.kind, j.queue);
                    println!(
                        "status      {} (attempt {}/{})",
                        j.status.as_str(),
                        j.attempts,
                        j.max_attempts
                    );
                    println!("run at      {}", j.run_at);
                    println!("created     {}", j.created_at);
                    if let Some(c) = &j.conversation_id {
                        println!("conversation {c}");
                    }
                    if let Some(code) = &j.last_error_code {
                        println!(
                            "last error  {code}: {}",
                            j.last_error_message.as_deref().unwrap_or_default()
                        );
                    }
                    println!("payload     {}", serde_json::to_string(&j.payload)?);
                    if !detail.attempts.is_empty() {
                        println!();
                        let rows: Vec<Vec<String>> = detail
                            .attempts
                            .iter()
                            .map(|a| {
                                vec![
                                    a.attempt.to_string(),
                                    a.finished_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                                    a.outcome.clone(),
                                    a.error_code.clone().unwrap_or_default(),
                                    clip(a.error_message.as_deref().unwrap_or_default(), 70),
                                    a.worker_id.clone().unwrap_or_default(),
                                ]
                            })
                            .collect();
                        print!(
                            "{}",
                            table(
                                &["ATTEMPT", "ENDED", "OUTCOME", "CODE", "MESSAGE", "WORKER"],
                                &rows
                            )
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no job {id}; `salesai queue list` shows the jobs");
                ExitCode::FAILURE
            }
        },
        QueueCommand::Pause { queue } | QueueCommand::Resume { queue }
            if parse_queue_name(&queue).is_err() =>
        {
            anyhow::bail!("{}", parse_queue_name(&queue).unwrap_err().0)
        }
        QueueCommand::Pause { .. } | QueueCommand::Resume { .. } | QueueCommand::Set { .. }
            if !is_known_queue(&app, queue_of(&command)).await? =>
        {
            let name = queue_of(&command);
            database.close().await;
            anyhow::bail!(
                "no queue {name:?}; queues: {} (salesai queue status)",
                salesai_core::queue::BUILTIN_QUEUES.join(", ")
            )
        }
        QueueCommand::Pause { queue } => {
            let mut settings = store.get_queue_settings(&queue).await?;
            settings.paused = true;
            store.put_queue_settings(&settings).await?;
            println!(
                "paused {queue}: no node dispatches its jobs until `salesai queue resume {queue}`; new jobs are still accepted"
            );
            ExitCode::SUCCESS
        }
        QueueCommand::Resume { queue } => {
            let mut settings = store.get_queue_settings(&queue).await?;
            settings.paused = false;
            store.put_queue_settings(&settings).await?;
            println!("resumed {queue}");
            ExitCode::SUCCESS
        }
        QueueCommand::Set {
            queue,
            max_batch,
            max_concurrency,
            max_attempts,
            backoff_base_ms,
            backoff_max_ms,
            lease_secs,
        } => {
            let queue = parse_queue_name(&queue).map_err(|e| anyhow::anyhow!(e.0))?;
            let current = store.get_queue_settings(&queue).await?;
            let next = QueueSettingsPatch {
                max_batch,
                max_concurrency,
                max_attempts,
                backoff_base_ms,
                backoff_max_ms,
                lease_secs,
            }
            .apply(&current)
            .map_err(|e| anyhow::anyhow!(e.0))?;
            store.put_queue_settings(&next).await?;
            println!(
                "{queue}: batch {}, concurrency {} per node, {} attempts, backoff {}–{} ms, lease {} s (applies to every node within seconds)",
                next.max_batch,
                next.max_concurrency,
                next.max_attempts,
                next.backoff_base_ms,
                next.backoff_max_ms,
                next.lease_secs
            );
            ExitCode::SUCCESS
        }
        QueueCommand::Purge {
            filter,
            dry_run,
            json,
        } => {
            anyhow::ensure!(
                !filter.is_empty(),
                "purge needs at least one of --queue, --status, --kind or --older-than"
            );
            let ids = store.purge_jobs(&filter.to_filter(None)?, dry_run).await?;
            if json {
                print_json(
                    &serde_json::json!({ "dry_run": dry_run, "count": ids.len(), "ids": ids }),
                )?;
            } else if dry_run {
                println!("would delete {} job(s): {}", ids.len(), preview(&ids));
                println!("run again without --dry-run to delete them");
            } else {
                println!("deleted {} job(s): {}", ids.len(), preview(&ids));
            }
            ExitCode::SUCCESS
        }
        QueueCommand::Retry {
            id,
            filter,
            all,
            yes,
            json,
        } => {
            let mut job_filter = filter.to_filter(None)?;
            match (id, all) {
                (Some(id), _) => job_filter.ids = Some(vec![id]),
                (None, true) if filter.is_empty() => {
                    let dead = store
                        .list_jobs(&JobFilter {
                            status: Some(JobStatus::Dead),
                            limit: Some(10_000),
                            ..Default::default()
                        })
                        .await?
                        .len();
                    if !crate::cli::output::confirm(
                        &format!(
                            "--all with no filter retries every dead job of every queue ({dead}{}).",
                            if dead == 10_000 { " or more" } else { "" }
                        ),
                        yes,
                    )? {
                        database.close().await;
                        eprintln!("nothing retried");
                        return Ok(ExitCode::FAILURE);
                    }
                }
                (None, true) => {}
                (None, false) => anyhow::bail!(
                    "give a job id, or --all to retry every dead job that matches the filter"
                ),
            }
            job_filter.status = Some(JobStatus::Dead);
            let ids = store.retry_jobs(&job_filter).await?;
            if json {
                print_json(&serde_json::json!({ "count": ids.len(), "ids": ids }))?;
            } else if ids.is_empty() {
                println!("no dead job matched; `salesai queue list --status dead` shows them");
            } else {
                println!("queued {} job(s) again: {}", ids.len(), preview(&ids));
            }
            if id.is_some() && ids.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    };
    database.close().await;
    Ok(code)
}

/// The queue a pause, resume or set names.
fn queue_of(command: &QueueCommand) -> &str {
    match command {
        QueueCommand::Pause { queue }
        | QueueCommand::Resume { queue }
        | QueueCommand::Set { queue, .. } => queue,
        _ => "",
    }
}

/// A queue this installation knows: a built-in one, one with settings, or one holding jobs
/// (the API's rule): changing any other would create a phantom queue.
async fn is_known_queue(app: &salesai_core::App, name: &str) -> anyhow::Result<bool> {
    let name = name.trim();
    Ok(salesai_core::queue::BUILTIN_QUEUES.contains(&name)
        || app
            .store
            .queue_settings()
            .await?
            .iter()
            .any(|s| s.name == name)
        || app
            .store
            .queue_stats()
            .await?
            .queues
            .iter()
            .any(|q| q.queue == name))
}

fn preview(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(|i| i.to_string()).collect();
    if ids.len() > 20 {
        format!("{} …", shown.join(" "))
    } else {
        shown.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use salesai_core::queue::parse_age;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("90s").unwrap(), chrono::Duration::seconds(90));
        assert_eq!(parse_age("7d").unwrap(), chrono::Duration::days(7));
        assert!(parse_age("7 days").is_err());
        assert!(parse_age("h").is_err());
        // Ages a timestamp could not subtract are refused when read, not panicked on later.
        for huge in [
            "999999999d",
            "9223372036854775807s",
            "99999999999999999999d",
            "3661d",
        ] {
            assert!(parse_age(huge).unwrap_err().contains("ten years"), "{huge}");
        }
        assert_eq!(parse_age("3660d").unwrap(), chrono::Duration::days(3660));
    }
}
