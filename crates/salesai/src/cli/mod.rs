//! The command line: one subcommand per operation of the runbook.

mod analyze;
mod backup;
mod bench;
mod bench_burst;
mod bench_diarize;
#[cfg(feature = "fake-slack")]
mod bench_slack;
mod bench_stub;
mod bench_web;
mod conversations;
mod db;
mod deploy;
pub(crate) mod doctor;
mod eval;
mod lines;
mod migrate;
mod output;
pub(crate) mod prune;
pub(crate) mod queue;
mod serve;
mod slack;
mod storage;
mod token;
mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigArgs};

/// salesai: sales-call intelligence server. Every setting can come from salesai.toml, an
/// environment variable or a flag (in increasing priority).
#[derive(Parser, Debug)]
#[command(name = "salesai", version, about, long_about = None, max_term_width = 110)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Create a new, empty database when none exists where the settings point (serve, worker
    /// and `migrate up` always may; other commands stop and say where they looked)
    #[arg(long, global = true)]
    init: bool,
    #[command(flatten)]
    settings: ConfigArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server and the workers in one process (the default deployment); it
    /// listens on --bind / SALESAI_BIND (default 127.0.0.1:3000; 0.0.0.0:3000 for every
    /// interface)
    Serve(serve::ServeArgs),
    /// Run workers only: a scale-out node sharing the database and storage
    Worker,
    /// Show or change the database schema version
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Inspect and operate the job queues (status, dead letters, pause, purge, retry)
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Check blob storage
    #[command(subcommand)]
    Storage(storage::StorageCommand),
    /// Manage API tokens
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Analyse a recording or transcript in this process and print the report
    Analyze(analyze::AnalyzeArgs),
    /// Measure the analysis on a folder of labelled calls: facts found, ordering by deal
    /// strength, schema validity, tokens, prompt size (docs/EVAL.md)
    Eval(eval::EvalArgs),
    /// Product lines: list them, show one's file, check a folder of line files
    #[command(subcommand)]
    Lines(lines::LinesCommand),
    /// Inspect and retry conversations
    #[command(subcommand)]
    Conversations(conversations::ConversationsCommand),
    /// Database repairs: terminate idle connections, VACUUM ANALYZE
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Diagnose database, queue, processing and storage; exits non-zero on a P0 or P1 finding
    Doctor(doctor::DoctorArgs),
    /// Retention: delete completed conversations (or only their audio) older than an age
    Prune(prune::PruneArgs),
    /// Backups: create (consistent, compressed, with a manifest), list, verify (checksum and a
    /// test restore), restore (into SQLite or PostgreSQL)
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Slack app set-up: check the token, scopes and channels; print the app manifest
    #[command(subcommand)]
    Slack(slack::SlackCommand),
    /// People: invite with a one-time sign-in link, list, set role, deactivate
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// The deployment checklist: configuration, database, pending migrations, last backup,
    /// doctor without P0/P1; applies nothing, exits 1 on a failure
    Preflight,
    /// The post-deploy check: health, ready, a tiny transcript end to end through the API (deleted after)
    Smoke(deploy::SmokeArgs),
    /// Measure performance
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print every setting's resolved value and where it came from (flag, env, file,
    /// default); secrets are never printed
    Config,
    /// Every shared setting: flag, environment variable, salesai.toml key, default
    Settings,
}

/// Every command's help ends with this.
const SETTINGS_POINTER: &str = "Settings (database, storage, speech-to-text, LLM, Slack, alerts, schedules, \
     workers, logs) are shared by every command as flags, environment variables or salesai.toml keys: \
     `salesai help settings` lists them, `salesai config` shows their values.";

/// The command line as clap sees it: the derived commands, with the settings pointer under
/// every command's help and the settings table under `salesai help settings`.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    fn point(cmd: clap::Command) -> clap::Command {
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        let mut cmd = cmd.after_help(SETTINGS_POINTER);
        for name in names {
            cmd = cmd.mut_subcommand(name, point);
        }
        cmd
    }
    point(Cli::command())
        .mut_subcommand("settings", |c| c.after_help(crate::config::settings_help()))
}

/// Which source gave a setting on this command line: `flag` or `env`.
pub fn given_by(matches: &clap::ArgMatches) -> impl Fn(&str) -> Option<&'static str> + '_ {
    move |key| {
        let mut m = matches;
        // A global setting is recorded where it was given: at the top or in a subcommand.
        loop {
            match m.value_source(key) {
                Some(clap::parser::ValueSource::CommandLine) => return Some("flag"),
                Some(clap::parser::ValueSource::EnvVariable) => return Some("env"),
                _ => {}
            }
            m = m.subcommand()?.1;
        }
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli, matches: clap::ArgMatches) -> anyhow::Result<ExitCode> {
    if let Command::Settings = cli.command {
        print!("{}", crate::config::settings_help());
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = Config::load(&cli.settings)?;
    config.create_database = cli.init
        || matches!(
            cli.command,
            Command::Serve(_)
                | Command::Worker
                | Command::Migrate(migrate::MigrateCommand::Up)
                | Command::Bench(_)
        );
    let config = config;
    match cli.command {
        Command::Serve(args) => {
            crate::runtime::init_logging(&config, "info");
            serve::serve(&config, !args.no_workers, true).await
        }
        Command::Worker => {
            crate::runtime::init_logging(&config, "info");
            serve::serve(&config, true, false).await
        }
        Command::Migrate(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            migrate::run(&config, cmd).await
        }
        Command::Queue(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            queue::run(&config, cmd).await
        }
        Command::Storage(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            storage::run(&config, cmd).await
        }
        Command::Token(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            token::run(&config, cmd).await
        }
        Command::Analyze(args) => {
            // The report and one sentence on failure: the workers' log lines stay out of it
            // (SALESAI_LOG turns them on).
            crate::runtime::init_logging(&config, "off");
            analyze::run(&config, args).await
        }
        Command::Eval(args) => {
            crate::runtime::init_logging(&config, "error");
            eval::run(&config, args).await
        }
        Command::Lines(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            lines::run(&config, cmd).await
        }
        Command::Conversations(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            conversations::run(&config, cmd).await
        }
        Command::Db(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            db::run(&config, cmd).await
        }
        Command::Prune(args) => {
            crate::runtime::init_logging(&config, "warn");
            prune::run(&config, args).await
        }
        Command::Doctor(args) => {
            crate::runtime::init_logging(&config, "error");
            doctor::run(&config, args).await
        }
        Command::Backup(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            backup::run(&config, cmd).await
        }
        Command::Slack(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            slack::run(&config, cmd).await
        }
        Command::Users(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            users::run(&config, cmd).await
        }
        Command::Preflight => {
            crate::runtime::init_logging(&config, "error");
            deploy::preflight(&config).await
        }
        Command::Smoke(args) => {
            crate::runtime::init_logging(&config, "warn");
            deploy::smoke(args).await
        }
        Command::Bench(cmd) => {
            crate::runtime::init_logging(&config, "warn");
            bench::run(&config, cmd).await
        }
        Command::Config => {
            print!("{}", cli.settings.report(given_by(&matches))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Settings => unreachable!("answered before the configuration is loaded"),
    }
}
