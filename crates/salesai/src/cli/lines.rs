//! `salesai lines list|show|check`: the product lines this install serves (built-in, and the
//! files of `SALESAI_LINES_DIR`), one line's file, and a folder checked before it is deployed.

use std::path::PathBuf;
use std::process::ExitCode;

use salesai_core::product_line::{builtin, builtin_file, with_files};

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

/// The folder's files as (id, path, text), each parsed once; a file that does not parse is
/// left out here (`salesai lines check` and the start-up report it).
fn files_by_id(config: &Config) -> anyhow::Result<Vec<(String, String, String)>> {
    let files = match &config.lines_dir {
        Some(dir) => read_line_files(dir)?,
        None => Vec::new(),
    };
    Ok(files
        .into_iter()
        .filter_map(|(path, text)| {
            let id = salesai_core::product_line::parse_line(&path, &text)
                .ok()?
                .id;
            Some((id, path, text))
        })
        .collect())
}

/// Runs a product-line command.
pub async fn run(config: &Config, command: LinesCommand) -> anyhow::Result<ExitCode> {
    match command {
        LinesCommand::List { json } => {
            let lines = crate::runtime::product_lines(config)?;
            if json {
                print_json(&lines)?;
                return Ok(ExitCode::SUCCESS);
            }
            let files = files_by_id(config)?;
            let builtin_ids: Vec<String> = builtin().into_iter().map(|l| l.id).collect();
            println!(
                "{:<12} {:<16} {:<6} {:<6} {:>4} {:>11}  SOURCE",
                "ID", "NAME", "PREFIX", "LANG", "FORM", "COMPETITORS"
            );
            for line in &lines {
                let source = match files.iter().find(|(id, _, _)| *id == line.id) {
                    Some((_, path, _)) if builtin_ids.contains(&line.id) => {
                        format!("{path} (replaces the built-in line)")
                    }
                    Some((_, path, _)) => path.clone(),
                    None => "built-in".into(),
                };
                println!(
                    "{:<12} {:<16} {:<6} {:<6} {:>4} {:>11}  {source}",
                    line.id,
                    line.name_in(line.rules_language()),
                    line.case_prefix,
                    line.language,
                    line.form.len(),
                    line.competitors.len(),
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
            let text = files_by_id(config)?
                .into_iter()
                .find(|(line_id, _, _)| *line_id == id)
                .map(|(_, _, text)| text)
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
