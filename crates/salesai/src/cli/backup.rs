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
        /// Copy the recordings too, into <name>.blobs/ beside the backup
        #[arg(long)]
        with_blobs: bool,
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
        /// Put the backup's recordings back into the configured blob storage
        #[arg(long)]
        with_blobs: bool,
    },
}

fn default_dir(config: &Config) -> PathBuf {
    config.backup_dir.clone()
}

/// Runs a backup command.
pub async fn run(config: &Config, command: BackupCommand) -> anyhow::Result<ExitCode> {
    match command {
        BackupCommand::Create {
            out,
            keep,
            with_blobs,
            json,
        } => {
            let dir = out.unwrap_or_else(|| default_dir(config));
            let (app, database) = crate::runtime::open_app(config).await?;
            let started = std::time::Instant::now();
            let mut manifest = backup::create(&database, &dir, keep).await;
            if with_blobs && let Ok(m) = &mut manifest {
                m.blobs = copy_blobs_out(&app, &backup::blobs_dir(&dir, &m.name)).await?;
                backup::save_manifest(&dir, m)?;
            }
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
                if with_blobs {
                    let bytes: u64 = manifest.blobs.iter().map(|b| b.bytes).sum();
                    println!(
                        "blobs  {} recordings, {:.1} MB in {}",
                        manifest.blobs.len(),
                        bytes as f64 / 1_048_576.0,
                        backup::blobs_dir(&dir, &manifest.name).display()
                    );
                }
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
            with_blobs,
        } => {
            let database =
                salesai_db::Database::connect(&database_url, &Default::default()).await?;
            let result = backup::restore(&file, &database, force).await;
            database.close().await;
            if with_blobs && let Ok((m, _)) = &result {
                let dir = backup::manifest_path(&file)
                    .parent()
                    .map(std::path::Path::to_path_buf)
                    .unwrap_or_default();
                let blobs = salesai_providers::blob::ObjectBlobStore::open(&config.blob)?;
                let n = copy_blobs_in(&blobs, &backup::blobs_dir(&dir, &m.name), &m.blobs).await?;
                println!(
                    "put back {n} recordings into {}",
                    salesai_core::blob::BlobStore::describe(&blobs)
                );
            }
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

/// Copies every recording the database references into `dir/<key>`, hashing as it goes.
async fn copy_blobs_out(
    app: &salesai_core::App,
    dir: &std::path::Path,
) -> anyhow::Result<Vec<backup::BlobEntry>> {
    use futures_util::StreamExt;
    use sha2::Digest;
    use tokio::io::AsyncWriteExt;
    let mut keys = std::collections::BTreeSet::new();
    let mut offset = 0;
    loop {
        let page = app
            .store
            .list_conversations(&salesai_core::store::ConversationFilter {
                limit: 1000,
                offset,
                ..Default::default()
            })
            .await?;
        if page.is_empty() {
            break;
        }
        offset += page.len() as u32;
        keys.extend(page.into_iter().filter_map(|c| c.blob_key));
    }
    let mut entries = Vec::new();
    for key in keys {
        let Ok(blob_key) = salesai_core::blob::BlobKey::parse(&key) else {
            continue;
        };
        let mut stream = match app.blobs.get_stream(&blob_key).await {
            Ok(s) => s,
            Err(salesai_core::blob::BlobError::NotFound(_)) => {
                eprintln!("note: {key} is referenced but missing from storage; skipped");
                continue;
            }
            Err(e) => anyhow::bail!("cannot read {key}: {e}"),
        };
        let path = dir.join(&key);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let mut file = tokio::fs::File::create(&path).await?;
        let mut hasher = sha2::Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        entries.push(backup::BlobEntry {
            key,
            bytes,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    Ok(entries)
}

/// Puts a backup's recordings back into blob storage.
async fn copy_blobs_in(
    blobs: &dyn salesai_core::blob::BlobStore,
    dir: &std::path::Path,
    entries: &[backup::BlobEntry],
) -> anyhow::Result<usize> {
    for entry in entries {
        let key =
            salesai_core::blob::BlobKey::parse(&entry.key).map_err(|e| anyhow::anyhow!(e.0))?;
        let file = tokio::fs::File::open(dir.join(&entry.key)).await?;
        let stream: salesai_core::blob::ByteStream = Box::pin(futures_util::StreamExt::map(
            tokio_util::io::ReaderStream::new(file),
            |r| r.map_err(|e| salesai_core::blob::BlobError::Source(e.to_string())),
        ));
        blobs
            .put_stream(&key, stream)
            .await
            .map_err(|e| anyhow::anyhow!("cannot store {}: {e}", entry.key))?;
    }
    Ok(entries.len())
}
