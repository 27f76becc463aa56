//! `salesai`: the one binary. Thin: it parses the command line, reads configuration, picks the
//! implementations (SQLite or PostgreSQL, a folder or S3) and hands them to the library crates.

mod cli;
mod config;
mod database;
mod ops;
mod runtime;

use clap::FromArgMatches;

fn main() -> std::process::ExitCode {
    let matches = cli::command().get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, matches)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
