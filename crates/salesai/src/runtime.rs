//! Wiring shared by the commands: logging, opening the database and storage, building the
//! `App`, and the shutdown signal.

use std::sync::Arc;

use anyhow::Context;
use salesai_core::App;
use salesai_core::metrics::Metrics;
use salesai_db::Database;
use salesai_providers::blob::ObjectBlobStore;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Starts logging to stderr. `default_filter` applies when no filter is configured.
pub fn init_logging(config: &Config, default_filter: &str) {
    let mut filter = EnvFilter::try_new(config.log.as_deref().unwrap_or(default_filter))
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    if config.db_pgbouncer {
        // Behind PgBouncer each use of a connection is wrapped in a transaction, so a store
        // transaction inside it draws PostgreSQL's harmless "already / no transaction in
        // progress" warnings; they are not news.
        if let Ok(quiet) = "sqlx::postgres::notice=error".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// Connects, applies pending migrations (refusing a schema newer than this binary) and opens
/// blob storage.
pub async fn open_app(config: &Config) -> anyhow::Result<(App, Database)> {
    let (database, applied) = crate::database::connect(config)
        .await?
        .migrate()
        .await
        .context("failed to bring the database schema up to date")?;
    if !applied.is_empty() {
        tracing::info!(event = "db.migrated", versions = ?applied, "applied migrations");
    }
    let blobs = ObjectBlobStore::open(&config.blob).context("failed to open blob storage")?;
    let app = App {
        store: database.store(),
        blobs: Arc::new(blobs),
        metrics: Arc::new(Metrics::new()),
        time_zone: config.time_zone,
        product_lines: Arc::new(product_lines(config)?),
        // Configured providers sit behind a breaker that pauses calls to a provider failing
        // broadly (salesai_core::breaker).
        analyzer: match &config.llm {
            Some(llm) => Arc::new(salesai_core::breaker::GuardedAnalyzer::new(
                Arc::new(salesai_providers::llm::LlmAnalyzer::new(
                    llm.clone(),
                    load_prompts(config)?,
                )),
                salesai_core::breaker::Breaker::of(salesai_core::breaker::LLM),
            )),
            None => Arc::new(salesai_core::analysis::engine::RulesAnalyzer),
        },
        stt: config.stt.clone().map(|c| {
            Arc::new(salesai_core::breaker::GuardedStt::new(
                Arc::new(salesai_providers::stt::SttClient::new(c)),
                salesai_core::breaker::Breaker::of(salesai_core::breaker::STT),
            )) as Arc<dyn salesai_core::stt::SpeechToText>
        }),
        max_upload_bytes: config.max_upload_mb.saturating_mul(1024 * 1024),
        talk_targets: config.talk_targets.clone(),
        public_url: config.public_url.as_ref().map(|u| u.to_string()),
        storage_probe: Arc::default(),
        sign_in: Arc::new(config.sign_in.clone()),
        trusted_proxies: Arc::new(config.trusted_proxies.clone()),
        doctor: Some(Arc::new(crate::ops::doctor::LiveDoctor::new(
            config.clone(),
            database.clone(),
        ))),
    };
    Ok((app, database))
}

/// The product lines this process serves: the built-in ones, with the files of
/// `SALESAI_LINES_DIR` (`<id>.toml`) added or replacing them. A bad file stops the process at
/// start, naming every file, line and reason.
pub fn product_lines(
    config: &Config,
) -> anyhow::Result<Vec<salesai_core::product_line::ProductLine>> {
    let files = match &config.lines_dir {
        Some(dir) => read_line_files(dir)?,
        None => Vec::new(),
    };
    salesai_core::product_line::with_files(&files).map_err(|errors| {
        anyhow::anyhow!(
            "product-line files in SALESAI_LINES_DIR cannot be used (fix them, or check with `salesai lines check`):\n{}",
            errors
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// The `*.toml` files of a product-lines folder, sorted by name: (path as shown, text).
pub fn read_line_files(dir: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "SALESAI_LINES_DIR {} cannot be read; point it at a folder of <id>.toml files",
            dir.display()
        )
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some("toml") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            files.push((path.display().to_string(), text));
        }
    }
    files.sort();
    Ok(files)
}

/// The embedded prompts with the overrides found in `SALESAI_PROMPTS_DIR`.
pub fn load_prompts(config: &Config) -> anyhow::Result<salesai_core::analysis::prompts::Prompts> {
    let mut prompts = salesai_core::analysis::prompts::Prompts::embedded();
    let Some(dir) = &config.prompts_dir else {
        return Ok(prompts);
    };
    anyhow::ensure!(
        dir.is_dir(),
        "SALESAI_PROMPTS_DIR {} is not a folder",
        dir.display()
    );
    let mut groups: Vec<String> = ["en", "zh-TW", "lines"].map(String::from).to_vec();
    groups.extend(
        salesai_core::product_line::builtin()
            .into_iter()
            .map(|l| l.id),
    );
    for group in &groups {
        let Ok(entries) = std::fs::read_dir(dir.join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "md")
                && let Some(name) = path.file_stem().and_then(|n| n.to_str())
            {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read prompt {}", path.display()))?;
                prompts = prompts.with_override(group, name, text);
            }
        }
    }
    Ok(prompts)
}

/// A token cancelled on SIGTERM or ctrl-c.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        trigger.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!(event = "process.shutdown_requested", "shutdown requested");
        trigger.cancel();
    });
    token
}
