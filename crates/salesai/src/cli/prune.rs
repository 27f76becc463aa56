//! `salesai prune`: retention. Deletes completed conversations older than an age — whole, or
//! only their audio (`--audio-only` keeps transcript and analysis, which is what teams usually
//! want; the runbook deleted whole rows). Never touches a protected conversation. Works in small
//! batches; `--dry-run` lists exactly what a real run would delete.

use std::process::ExitCode;

use crate::cli::output::print_json;
use crate::config::Config;

/// Options of `prune`.
#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Age of the completed conversations to prune, e.g. 30d
    #[arg(long, value_parser = salesai_core::queue::parse_age)]
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
    /// Do not ask before pruning calls less than a day old (for scripts)
    #[arg(long)]
    pub yes: bool,
}

/// Runs `prune`.
pub async fn run(config: &Config, args: PruneArgs) -> anyhow::Result<ExitCode> {
    // Under a day reaches calls finished today (0d: every completed call at once): asked
    // first, since it cannot be undone.
    if !args.dry_run
        && args.completed_older_than < chrono::Duration::days(1)
        && !crate::cli::output::confirm(
            &format!(
                "--completed-older-than {}s reaches calls completed today ({} every completed call). Delete them?",
                args.completed_older_than.num_seconds(),
                if args.completed_older_than.is_zero() {
                    "that is"
                } else {
                    "up to"
                }
            ),
            args.yes,
        )?
    {
        eprintln!("nothing deleted");
        return Ok(ExitCode::FAILURE);
    }
    let (app, database) = crate::runtime::open_app(config).await?;
    let cases = crate::ops::prune::prune(
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
