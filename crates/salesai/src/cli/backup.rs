//! `salesai backup create|list|verify|restore`: the runbook's scenario 5 (database backup
//! failed) as commands, with the "test restore" step automated.

use std::path::PathBuf;
use std::process::ExitCode;

use salesai_db::backup;

use crate::cli::output::print_json;
use crate::config::Config;

/// Backup commands.
#[derive(clap::Subcommand, Debug)]
pub enum BackupCommand {
    /// Take a consistent backup while salesai runs: compressed, with a manifest of row counts,
    /// digests and the SHA-256 of the file; older backups beyond --keep are deleted
    Create {
        /// Folder for backups [default: SALESAI_BACKUP_DIR, <data_dir>/backups]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Backups to keep in the folder
        #[arg(long, default_value_t = 7)]
        keep: usize,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The backups in a folder, newest first
    List {
        /// Folder [default: <data_dir>/backups]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check a backup's checksum, restore it into a scratch database and compare every table
    /// with the manifest
    Verify {
        /// The backup's .jsonl.gz (or its .manifest.json)
        file: PathBuf,
    },
    /// Restore a backup into a database (SQLite or PostgreSQL, whichever it was taken from)
    Restore {
        /// The backup's .jsonl.gz (or its .manifest.json)
        file: PathBuf,
        /// The database to restore into: sqlite://PATH or postgres://…
        #[arg(long)]
        database_url: String,
        /// Replace the contents of a database that is not empty
        #[arg(long)]
        force: bool,
    },
}

fn default_dir(config: &Config) -> PathBuf {
    config.backup_dir.clone()
}

/// Runs a backup command.
pub async fn run(config: &Config, command: BackupCommand) -> anyhow::Result<ExitCode> {
    match command {
        BackupCommand::Create { out, keep, json } => {
            let dir = out.unwrap_or_else(|| default_dir(config));
            let (_, database) = crate::runtime::open_app(config).await?;
            let started = std::time::Instant::now();
            let manifest = backup::create(&database, &dir, keep).await;
            database.close().await;
            let manifest = manifest.map_err(|e| {
                anyhow::anyhow!(
                    "BACKUP_FAILED: {e}; check free space and permissions on {}",
                    dir.display()
                )
            })?;
            if json {
                print_json(&manifest)?;
            } else {
                let rows: u64 = manifest.tables.iter().map(|t| t.rows).sum();
                println!(
                    "{}  {} rows in {} tables, {:.1} MB, {:.1} s",
                    dir.join(&manifest.data_file).display(),
                    rows,
                    manifest.tables.len(),
                    manifest.bytes as f64 / 1_048_576.0,
                    started.elapsed().as_secs_f64()
                );
                println!("sha256 {}", manifest.data_sha256);
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::List { dir } => {
            let dir = dir.unwrap_or_else(|| default_dir(config));
            let all = backup::list(&dir);
            if all.is_empty() {
                println!(
                    "no backups in {}; take one with `salesai backup create`",
                    dir.display()
                );
            }
            for m in all {
                let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
                println!(
                    "{}  {}  {:>8} rows  {:>8.1} MB  {} schema {}",
                    m.name,
                    m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    rows,
                    m.bytes as f64 / 1_048_576.0,
                    m.backend,
                    m.schema_version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Verify { file } => {
            let scratch_dir = tempfile::tempdir()?;
            let url = format!(
                "sqlite://{}",
                scratch_dir.path().join("verify.db").display()
            );
            let scratch = salesai_db::Database::connect(&url, &Default::default()).await?;
            let result = backup::verify(&file, &scratch).await;
            scratch.close().await;
            match result {
                Ok(m) => {
                    let rows: u64 = m.tables.iter().map(|t| t.rows).sum();
                    println!(
                        "ok: checksum matches, test restore of {} rows in {} tables matches the manifest ({} from {}, schema {})",
                        rows,
                        m.tables.len(),
                        m.name,
                        m.backend,
                        m.schema_version
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("BACKUP_INVALID: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        BackupCommand::Restore {
            file,
            database_url,
            force,
        } => {
            let database =
                salesai_db::Database::connect(&database_url, &Default::default()).await?;
            let result = backup::restore(&file, &database, force).await;
            database.close().await;
            match result {
                Ok((m, counts)) => {
                    let rows: u64 = counts.iter().map(|(_, n)| n).sum();
                    println!(
                        "restored {} ({} rows in {} tables, taken on {} at schema {}) into {}",
                        m.name,
                        rows,
                        counts.len(),
                        m.backend,
                        m.schema_version,
                        salesai_db::redact_url(&database_url)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("RESTORE_FAILED: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
