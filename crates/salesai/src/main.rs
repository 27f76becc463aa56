//! `salesai`: the one binary. Thin: it parses the command line, reads configuration, picks the
//! implementations (SQLite or PostgreSQL, a folder or S3) and hands them to the library crates.

mod cli;
mod config;
mod database;
mod ops;
mod runtime;

use clap::FromArgMatches;

/// The exit status of a command whose output pipe closed (`salesai … | head`): what a shell
/// reports for a process ended by SIGPIPE (128 + 13).
const BROKEN_PIPE_EXIT: i32 = 141;

/// Whether a failure is the reader of our output going away.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so `println!` into a closed pipe panics with a backtrace: end
    // quietly instead, as command-line tools do. Every other panic is reported as before.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("Broken pipe") || text.contains("os error 32") {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        report(info)
    }));
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
        Err(err) if is_broken_pipe(&err) => std::process::ExitCode::from(BROKEN_PIPE_EXIT as u8),
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
