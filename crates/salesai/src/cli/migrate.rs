//! `salesai migrate status|up|down --to N`.

use std::process::ExitCode;

use crate::cli::output::{print_json, table};
use crate::config::Config;

/// Schema operations.
#[derive(clap::Subcommand, Debug)]
pub enum MigrateCommand {
    /// List migrations and whether each is applied
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Apply pending migrations
    Up,
    /// Undo migrations newer than version N (roll back before deploying an older release)
    Down {
        /// The version to go back to (0 empties the database)
        #[arg(long)]
        to: i64,
    },
}

/// Runs a migrate command.
pub async fn run(config: &Config, command: MigrateCommand) -> anyhow::Result<ExitCode> {
    let database = crate::database::connect(config).await?;
    let migrator = database.migrator();
    match command {
        MigrateCommand::Status { json } => {
            if json {
                print_json(&migrator.status_json().await?)?;
            } else {
                let states = migrator.status().await?;
                let rows: Vec<Vec<String>> = states
                    .iter()
                    .map(|s| {
                        vec![
                            s.version.to_string(),
                            s.name.clone(),
                            match (&s.applied_at, s.known) {
                                (Some(at), true) => {
                                    format!("applied {}", at.format("%Y-%m-%d %H:%M:%S UTC"))
                                }
                                (Some(_), false) => "applied by a newer salesai".into(),
                                (None, _) => "pending".into(),
                            },
                        ]
                    })
                    .collect();
                print!("{}", table(&["VERSION", "NAME", "STATE"], &rows));
                println!(
                    "backend {}, schema at {}, this salesai knows up to {}",
                    database.backend().as_str(),
                    migrator.current_version().await?,
                    migrator.latest_known()
                );
            }
            migrator.check().await?;
        }
        MigrateCommand::Up => {
            let applied = migrator.up().await?;
            if applied.is_empty() {
                println!("schema already at version {}", migrator.latest_known());
            } else {
                println!(
                    "applied {applied:?}; schema at version {}",
                    migrator.latest_known()
                );
            }
        }
        MigrateCommand::Down { to } => {
            anyhow::ensure!(to >= 0, "--to must be 0 or a migration version");
            let undone = migrator.down_to(to).await?;
            if undone.is_empty() {
                println!(
                    "nothing to undo; schema at version {}",
                    migrator.current_version().await?
                );
            } else {
                println!("undid {undone:?}; schema at version {to}");
            }
        }
    }
    database.close().await;
    Ok(ExitCode::SUCCESS)
}
