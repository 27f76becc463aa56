//! `salesai doctor`: every diagnosis of the runbook in one run, each finding with a severity,
//! its evidence and the action to take. Exits non-zero on a P0 or P1, so it can gate a deploy.

use std::process::ExitCode;

use salesai_core::doctor::{Severity, diagnose};

use crate::cli::output::print_json;
use crate::config::Config;
use crate::ops::doctor::gather;

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
    let facts = gather(config, &args.since).await;
    let findings = diagnose(&facts, &config.alerts.thresholds);
    report(&findings, &args)
}

fn report(
    findings: &[salesai_core::doctor::Finding],
    args: &DoctorArgs,
) -> anyhow::Result<ExitCode> {
    let failing = findings.iter().any(|f| f.severity <= Severity::P1);
    if args.json {
        print_json(
            &serde_json::json!({ "ok": !failing, "window": args.since, "findings": findings }),
        )?;
    } else if findings.is_empty() {
        println!("no findings: database, queue, processing and storage look healthy");
    } else {
        for f in findings {
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
