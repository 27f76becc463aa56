//! `salesai lines list|show|check`: the product lines this install serves (built-in, and the
//! files of `SALESAI_LINES_DIR`), one line's file, and a folder checked before it is deployed.

use std::path::PathBuf;
use std::process::ExitCode;

use salesai_core::product_line::{ProductLine, builtin, builtin_file, with_files};

use crate::cli::output::print_json;
use crate::config::Config;
use crate::runtime::read_line_files;

/// Product-line commands.
#[derive(clap::Subcommand, Debug)]
pub enum LinesCommand {
    /// List the product lines: id, name, case prefix, language, form, competitors, where each
    /// comes from
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one product line: its file (a copy of a built-in one is the way to start your own)
    Show {
        /// The line's id
        id: String,
        /// Print the line as resolved (defaults filled in) as JSON instead of its file
        #[arg(long)]
        json: bool,
    },
    /// Check a folder of product-line files (default SALESAI_LINES_DIR); exits 1 naming each
    /// bad file, line and reason
    Check {
        /// The folder
        dir: Option<PathBuf>,
    },
}

/// Where a line comes from.
fn source(line: &ProductLine, files: &[(String, String)], lines: &[ProductLine]) -> String {
    let from_file = files.iter().find(|(_, text)| {
        salesai_core::product_line::parse_line("", text).is_ok_and(|l| l.id == line.id)
    });
    match from_file {
        Some((path, _)) if builtin().iter().any(|b| b.id == line.id) => {
            format!("{path} (replaces the built-in line)")
        }
        Some((path, _)) => path.clone(),
        None if lines.iter().any(|l| l.id == line.id) => "built-in".into(),
        None => String::new(),
    }
}

/// Runs a product-line command.
pub async fn run(config: &Config, command: LinesCommand) -> anyhow::Result<ExitCode> {
    match command {
        LinesCommand::List { json } => {
            let lines = crate::runtime::product_lines(config)?;
            let files = match &config.lines_dir {
                Some(dir) => read_line_files(dir)?,
                None => Vec::new(),
            };
            if json {
                print_json(&lines)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<12} {:<16} {:<6} {:<6} {:>4} {:>11}  SOURCE",
                "ID", "NAME", "PREFIX", "LANG", "FORM", "COMPETITORS"
            );
            for line in &lines {
                println!(
                    "{:<12} {:<16} {:<6} {:<6} {:>4} {:>11}  {}",
                    line.id,
                    line.display_name,
                    line.case_prefix,
                    line.language,
                    line.form.len(),
                    line.competitors.len(),
                    source(line, &files, &lines)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        LinesCommand::Show { id, json } => {
            let lines = crate::runtime::product_lines(config)?;
            let Some(line) = lines.iter().find(|l| l.id == id) else {
                eprintln!(
                    "no product line {id:?}; known: {} (salesai lines list)",
                    lines
                        .iter()
                        .map(|l| l.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Ok(ExitCode::FAILURE);
            };
            if json {
                print_json(line)?;
                return Ok(ExitCode::SUCCESS);
            }
            let files = match &config.lines_dir {
                Some(dir) => read_line_files(dir)?,
                None => Vec::new(),
            };
            let text = files
                .iter()
                .find(|(_, text)| {
                    salesai_core::product_line::parse_line("", text).is_ok_and(|l| l.id == id)
                })
                .map(|(_, text)| text.clone())
                .or_else(|| builtin_file(&id).map(str::to_owned))
                .unwrap_or_default();
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        LinesCommand::Check { dir } => {
            let Some(dir) = dir.or_else(|| config.lines_dir.clone()) else {
                eprintln!(
                    "name a folder (salesai lines check DIR) or set SALESAI_LINES_DIR; with neither, only the built-in lines are served"
                );
                return Ok(ExitCode::FAILURE);
            };
            let files = read_line_files(&dir)?;
            match with_files(&files) {
                Ok(lines) => {
                    println!(
                        "ok: {} file(s) in {}; serving {} lines: {}",
                        files.len(),
                        dir.display(),
                        lines.len(),
                        lines
                            .iter()
                            .map(|l| l.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    eprintln!("{} problem(s); nothing was changed", errors.len());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
