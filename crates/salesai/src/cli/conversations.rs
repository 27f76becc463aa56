//! `salesai conversations list|show|retry|reanalyze`.

use std::process::ExitCode;

use salesai_core::domain::ConversationStatus;
use salesai_core::pipeline::RestartError;
use salesai_core::store::ConversationFilter;

use crate::cli::output::{clip, print_json, table};
use crate::config::Config;

/// Conversation operations.
#[derive(clap::Subcommand, Debug)]
pub enum ConversationsCommand {
    /// List conversations, newest first
    List {
        /// Only this status
        #[arg(long)]
        status: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One conversation with its stages and scores
    Show {
        /// Id or case number
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Resume a failed conversation at its first unfinished step
    Retry {
        /// Id or case number
        id: String,
    },
    /// Run the analysis again on the saved transcript
    Reanalyze {
        /// Id or case number
        id: String,
    },
}

/// Runs a conversations command.
pub async fn run(config: &Config, command: ConversationsCommand) -> anyhow::Result<ExitCode> {
    let (app, database) = crate::runtime::open_app(config).await?;
    let store = app.store.as_ref();
    let find = |id: String| async move {
        salesai_core::pipeline::find(store, &id)
            .await?
            .ok_or_else(|| {
                anyhow::anyhow!("no conversation {id:?}; `salesai conversations list` shows them")
            })
    };
    let restart =
        |r: Result<salesai_core::pipeline::Restarted, RestartError>| -> anyhow::Result<ExitCode> {
            match r {
                Ok(r) => {
                    println!(
                        "{} restarts at {} (job {})",
                        r.id,
                        r.status.as_str(),
                        r.job_id
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(RestartError::Conflict(msg) | RestartError::Invalid(msg)) => {
                    eprintln!("{msg}");
                    Ok(ExitCode::FAILURE)
                }
                Err(RestartError::Store(e)) => Err(e.into()),
            }
        };
    let code = match command {
        ConversationsCommand::List {
            status,
            limit,
            json,
        } => {
            let filter = ConversationFilter {
                status: status
                    .as_deref()
                    .map(ConversationStatus::parse)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!(e.0))?,
                limit,
                ..Default::default()
            };
            let rows = store.list_conversations(&filter).await?;
            if json {
                print_json(&rows)?;
            } else {
                let table_rows: Vec<Vec<String>> = rows
                    .iter()
                    .map(|c| {
                        vec![
                            c.case_number.to_string(),
                            c.status.as_str().into(),
                            clip(&format!("{} {}", c.customer_number, c.customer_name), 32),
                            c.product_line.clone(),
                            c.error.as_ref().map(|e| e.code.clone()).unwrap_or_default(),
                            clip(&c.title, 40),
                            c.created_at.format("%Y-%m-%d %H:%M").to_string(),
                            c.id.clone(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(
                        &[
                            "CASE", "STATUS", "CUSTOMER", "LINE", "ERROR", "TITLE", "CREATED", "ID"
                        ],
                        &table_rows
                    )
                );
            }
            ExitCode::SUCCESS
        }
        ConversationsCommand::Show { id, json } => {
            let c = find(id).await?;
            let events = store.stage_events(&c.id).await?;
            let analysis = store.get_analysis(&c.id).await?;
            if json {
                print_json(
                    &serde_json::json!({ "conversation": c, "stages": events, "analysis": analysis }),
                )?;
            } else {
                println!("{} ({}) — {}", c.case_number, c.id, c.status.as_str());
                println!("customer {} · {}", c.customer_number, c.customer_name);
                for e in &events {
                    println!(
                        "  {}  {}",
                        e.at.format("%Y-%m-%d %H:%M:%S%.3f"),
                        e.status.as_str()
                    );
                }
                if let Some(error) = &c.error {
                    println!(
                        "error {} at {}: {} (retryable: {})",
                        error.code,
                        error.stage.as_str(),
                        error.message,
                        error.retryable
                    );
                }
                if let Some(a) = analysis {
                    println!(
                        "overall {} ({}) · pain {} · decision {} · champion {} · metrics {} · engine {}",
                        a.overall_score.value(),
                        a.qualification,
                        a.pain_score.value(),
                        a.decision_score.value(),
                        a.champion_score.value(),
                        a.metrics_score.value(),
                        a.engine
                    );
                }
            }
            ExitCode::SUCCESS
        }
        ConversationsCommand::Retry { id } => {
            let c = find(id).await?;
            restart(salesai_core::pipeline::retry(store, &c).await)?
        }
        ConversationsCommand::Reanalyze { id } => {
            let c = find(id).await?;
            restart(salesai_core::pipeline::reanalyze(store, &c).await)?
        }
    };
    database.close().await;
    Ok(code)
}
