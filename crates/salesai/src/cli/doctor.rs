//! `salesai doctor`: every diagnosis of the runbook in one run, each finding with a severity,
//! its evidence and the action to take. Exits non-zero on a P0 or P1, so it can gate a deploy.

use std::process::ExitCode;

use chrono::Utc;
use salesai_core::doctor::{Facts, Severity, Thresholds, diagnose};
use salesai_core::domain::ConversationStatus;
use salesai_core::store::ConversationFilter;

use crate::cli::output::print_json;
use crate::config::Config;

/// Options of `doctor`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Window for failure rates: 10m, 1h or 24h
    #[arg(long, default_value = "1h", value_parser = ["10m", "1h", "24h"])]
    pub since: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Runs `doctor`.
pub async fn run(config: &Config, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut facts = Facts {
        window: args.since.clone(),
        stt_configured: config.stt.is_some(),
        llm_configured: config.llm.is_some(),
        now: Utc::now(),
        ..Default::default()
    };
    match crate::runtime::connect(config).await {
        Err(err) => facts.database_error = Some(format!("{err:#}")),
        Ok(database) => {
            if let Err(err) = database.migrator().check().await {
                facts.database_error = Some(err.to_string());
            }
            match database.diagnostics().await {
                Ok(d) => {
                    facts.database = Some(salesai_core::doctor::DatabaseFacts {
                        backend: d.backend.clone(),
                        connections: d.connections_by_state.iter().map(|(_, n)| n).sum(),
                        max_connections: d.max_connections,
                        lock_waits: d
                            .lock_waits
                            .iter()
                            .map(|w| {
                                format!(
                                    "pid {} ({}) waits on pid {} ({})",
                                    w.blocked_pid,
                                    clip(&w.blocked_query),
                                    w.blocking_pid,
                                    clip(&w.blocking_query)
                                )
                            })
                            .collect(),
                        slow_statements: d.slow_statements.map(|s| {
                            s.iter()
                                .filter(|s| s.mean_ms > 500.0)
                                .map(|s| {
                                    format!("{:.0} ms × {}: {}", s.mean_ms, s.calls, clip(&s.query))
                                })
                                .collect()
                        }),
                        needs_vacuum: d.needs_vacuum,
                        integrity: d.integrity,
                        wal_bytes: d.wal_bytes,
                    })
                }
                Err(err) => facts.database_error = Some(err.to_string()),
            }
            let store = database.store();
            match store.queue_stats().await {
                Ok(stats) => facts.queue = Some(stats),
                Err(err) => facts.database_error = Some(err.to_string()),
            }
            for status in [
                ConversationStatus::Pending,
                ConversationStatus::Preparing,
                ConversationStatus::Transcribing,
                ConversationStatus::Analyzing,
            ] {
                let filter = ConversationFilter {
                    status: Some(status),
                    limit: 500,
                    ..Default::default()
                };
                if let Ok(rows) = store.list_conversations(&filter).await {
                    facts.in_progress.extend(rows);
                }
            }
            database.close().await;
        }
    }
    match salesai_providers::blob::ObjectBlobStore::open(&config.blob) {
        Ok(blobs) => {
            if let Err(err) = salesai_providers::blob::probe(&blobs).await {
                facts.storage_error = Some(err.to_string());
            }
        }
        Err(err) => facts.storage_error = Some(err.to_string()),
    }
    let findings = diagnose(&facts, &Thresholds::default());
    let failing = findings.iter().any(|f| f.severity <= Severity::P1);
    if args.json {
        print_json(
            &serde_json::json!({ "ok": !failing, "window": args.since, "findings": findings }),
        )?;
    } else if findings.is_empty() {
        println!("no findings: database, queue, processing and storage look healthy");
    } else {
        for f in &findings {
            println!("{:?}  {:<13} {}", f.severity, f.area, f.title);
            println!("    evidence: {}", f.evidence);
            println!("    action:   {}", f.action);
        }
    }
    Ok(if failing {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn clip(text: &str) -> String {
    crate::cli::output::clip(&text.split_whitespace().collect::<Vec<_>>().join(" "), 80)
}
