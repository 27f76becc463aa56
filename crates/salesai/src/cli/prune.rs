//! `salesai prune`: retention. Deletes completed conversations older than an age — whole, or
//! only their audio (`--audio-only` keeps transcript and analysis, which is what teams usually
//! want; the runbook deleted whole rows). Never touches a protected conversation. Works in small
//! batches; `--dry-run` lists exactly what a real run would delete.

use std::process::ExitCode;

use chrono::Utc;
use salesai_core::blob::BlobKey;

use crate::cli::output::print_json;
use crate::config::Config;

/// Options of `prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Age of the completed conversations to prune, e.g. 30d
    #[arg(long, value_parser = crate::cli::queue::parse_age)]
    pub completed_older_than: chrono::Duration,
    /// Delete the audio only; keep transcript and analysis
    #[arg(long)]
    pub audio_only: bool,
    /// Only list what would be deleted
    #[arg(long)]
    pub dry_run: bool,
    /// Conversations per batch
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Runs `prune`.
pub async fn run(config: &Config, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let (app, database) = crate::runtime::open_app(config).await?;
    let cases = prune(
        &app,
        args.completed_older_than,
        args.audio_only,
        args.dry_run,
        args.batch,
    )
    .await;
    database.close().await;
    let cases = cases?;
    let what = if args.audio_only { "the audio of " } else { "" };
    if args.json {
        print_json(
            &serde_json::json!({ "dry_run": args.dry_run, "audio_only": args.audio_only, "count": cases.len(), "case_numbers": cases }),
        )?;
    } else if args.dry_run {
        println!(
            "would delete {what}{} conversation(s): {}",
            cases.len(),
            cases.join(" ")
        );
    } else {
        println!(
            "deleted {what}{} conversation(s): {}",
            cases.len(),
            cases.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Retention: completed, unprotected conversations created more than `older_than` ago lose
/// their audio (`audio_only`) or everything, in batches; with `dry_run`, only listed. Returns
/// their case numbers. Shared by `salesai prune` and the scheduled `maintenance.prune`.
pub async fn prune(
    app: &salesai_core::App,
    older_than: chrono::Duration,
    audio_only: bool,
    dry_run: bool,
    batch: u32,
) -> anyhow::Result<Vec<String>> {
    let before = Utc::now() - older_than;
    let mut cases = Vec::new();
    loop {
        // A dry run reads everything at once (nothing changes between batches).
        let limit = if dry_run {
            u32::MAX / 2
        } else {
            batch.clamp(1, 10_000)
        };
        let batch = app
            .store
            .prune_candidates(before, audio_only, limit)
            .await?;
        if batch.is_empty() {
            break;
        }
        for candidate in &batch {
            cases.push(candidate.case_number.clone());
            if dry_run {
                continue;
            }
            let mut keys: Vec<String> = candidate.blob_key.iter().cloned().collect();
            keys.extend(candidate.chunks.iter().map(|(channel, index)| {
                format!("chunks/{}/{channel}-{index:04}.flac", candidate.id)
            }));
            for key in keys {
                if let Ok(key) = BlobKey::parse(&key) {
                    app.blobs.delete(&key).await?;
                }
            }
            if audio_only {
                app.store.forget_audio(&candidate.id).await?;
            } else {
                app.store.delete_conversation(&candidate.id).await?;
            }
        }
        if dry_run {
            break;
        }
    }
    Ok(cases)
}
