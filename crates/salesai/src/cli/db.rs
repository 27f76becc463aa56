//! `salesai db terminate-idle|analyze`: the runbook's database repairs (scenario 3).

use std::process::ExitCode;

use crate::config::Config;

/// Database repairs.
#[derive(clap::Subcommand, Debug)]
pub enum DbCommand {
    /// PostgreSQL: terminate this database's connections idle for longer than the given age
    TerminateIdle {
        /// e.g. 5m
        #[arg(long, default_value = "5m", value_parser = salesai_core::queue::parse_age)]
        older_than: chrono::Duration,
    },
    /// Refresh planner statistics and reclaim space (VACUUM ANALYZE; ANALYZE on SQLite)
    Analyze,
}

/// Runs a db command.
pub async fn run(config: &Config, command: DbCommand) -> anyhow::Result<ExitCode> {
    let database = crate::database::connect(config).await?;
    let result = match command {
        DbCommand::TerminateIdle { older_than } => {
            let age = older_than.to_std().unwrap_or_default();
            database.terminate_idle(age).await.map(|n| {
                println!(
                    "terminated {n} idle connection(s) older than {}s",
                    age.as_secs()
                )
            })
        }
        DbCommand::Analyze => {
            let started = std::time::Instant::now();
            database
                .analyze()
                .await
                .map(|()| println!("analyzed in {:.1}s", started.elapsed().as_secs_f64()))
        }
    };
    database.close().await;
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!("{err}");
            Ok(ExitCode::FAILURE)
        }
    }
}
