//! `salesai storage check`: the runbook's "test file access", for any configured storage.

use std::process::ExitCode;

use crate::cli::output::print_json;
use crate::config::Config;

/// Storage operations.
#[derive(clap::Subcommand, Debug)]
pub enum StorageCommand {
    /// Write, read back and delete a probe object, and report each step's latency
    Check {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// Runs a storage command.
pub async fn run(config: &Config, command: StorageCommand) -> anyhow::Result<ExitCode> {
    match command {
        StorageCommand::Check { json } => {
            let blobs = salesai_providers::blob::ObjectBlobStore::open(&config.blob)?;
            match salesai_providers::blob::probe(&blobs).await {
                Ok(report) => {
                    if json {
                        print_json(&report)?;
                    } else {
                        println!("storage  {}", report.storage);
                        println!(
                            "write    {:>8.2} ms  ({} bytes)",
                            report.write_ms, report.bytes
                        );
                        println!("read     {:>8.2} ms  (content verified)", report.read_ms);
                        println!("delete   {:>8.2} ms", report.delete_ms);
                        println!("ok");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => {
                    if json {
                        print_json(&serde_json::json!({
                            "storage": blobs_description(config),
                            "ok": false,
                            "error_code": "STORAGE_ERROR",
                            "error": err.to_string(),
                        }))?;
                    } else {
                        eprintln!(
                            "STORAGE_ERROR: {} failed the probe: {err}",
                            blobs_description(config)
                        );
                        eprintln!(
                            "check the SALESAI_BLOB_URL / SALESAI_S3_* settings, the credentials and that the bucket exists"
                        );
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn blobs_description(config: &Config) -> String {
    config.blob_url.clone()
}
