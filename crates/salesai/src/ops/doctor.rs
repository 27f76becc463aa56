//! Gathering the doctor's facts: what the database, the queue, the storage and the providers
//! say, for `salesai doctor` and the ops-alert monitor. The rules that judge them are
//! `salesai_core::doctor`'s; printing is the CLI's.

use chrono::Utc;
use salesai_core::doctor::Facts;
use salesai_core::domain::{ConversationStatus, Role};
use salesai_core::store::ConversationFilter;
use salesai_db::Database;

use crate::config::Config;

/// The counter Slack signature failures are flushed to (see `monitor`).
pub const SIGNATURE_COUNTER: &str = "slack_signature_failures";
/// The counter every process bumps each alert interval: the nodes alive.
pub const HEARTBEAT_COUNTER: &str = "node_heartbeat";

/// Everything `doctor` looks at, over the failure-rate window `since` (`10m`, `1h`, `24h`),
/// on a connection of its own.
pub async fn gather(config: &Config, since: &str) -> Facts {
    match crate::database::connect(config).await {
        Err(err) => {
            let mut facts = new_facts(config, since);
            facts.database_error = Some(format!("{err:#}"));
            finish(config, facts).await
        }
        Ok(database) => {
            let mut facts = gather_with(config, since, &database).await;
            // Bounded: doctor reports, it does not wait, when the table is locked (a lock wait
            // is one of the things it diagnoses). A read still waiting holds its connection,
            // so the pool is then dropped rather than closed.
            let tokens = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                database.store().list_api_tokens(),
            )
            .await;
            match tokens {
                Ok(Ok(tokens)) => {
                    facts.unowned_tokens = unowned_tokens(&tokens);
                    database.close().await;
                }
                Ok(Err(_)) => database.close().await,
                Err(_) => drop(database),
            }
            facts
        }
    }
}

/// Live rep and manager tokens that belong to no person, as doctor names them.
fn unowned_tokens(tokens: &[salesai_core::store::ApiToken]) -> Vec<String> {
    tokens
        .iter()
        .filter(|t| {
            t.revoked_at.is_none()
                && t.user_id.is_none()
                && matches!(t.role, Role::Rep | Role::Manager)
        })
        .map(|t| format!("{} ({})", t.name, t.role.as_str()))
        .collect()
}

/// `gather` over an open database (the monitor's, which runs every interval).
pub async fn gather_with(config: &Config, since: &str, database: &Database) -> Facts {
    let mut facts = new_facts(config, since);
    read_database(config, database, &mut facts).await;
    finish(config, facts).await
}

fn new_facts(config: &Config, since: &str) -> Facts {
    Facts {
        window: since.to_owned(),
        stt_configured: config.stt.is_some(),
        llm_configured: config.llm.is_some(),
        now: Utc::now(),
        backups_scheduled: config.backup_at.is_some(),
        last_backup_hours: salesai_db::backup::list(&config.backup_dir)
            .first()
            .map(|m| (Utc::now() - m.created_at).num_hours()),
        ..Default::default()
    }
}

/// The storage probe and the providers' checks.
async fn finish(config: &Config, mut facts: Facts) -> Facts {
    match salesai_providers::blob::ObjectBlobStore::open(&config.blob) {
        Ok(blobs) => {
            if let Err(err) = salesai_providers::blob::probe(&blobs).await {
                facts.storage_error = Some(err.to_string());
            }
        }
        Err(err) => facts.storage_error = Some(err.to_string()),
    }
    facts.providers = check_providers(config).await;
    facts
}

/// What the database says about itself, the queue and the conversations in progress.
async fn read_database(config: &Config, database: &Database, facts: &mut Facts) {
    let migrator = database.migrator();
    if let Err(err) = migrator.check().await {
        facts.database_error = Some(err.to_string());
    }
    if let Ok(current) = migrator.current_version().await {
        facts.pending_migrations = (migrator.latest_known() - current).max(0) as u64;
    }
    match database.diagnostics().await {
        Ok(d) => {
            facts.database = Some(salesai_core::doctor::DatabaseFacts {
                backend: d.backend.clone(),
                connections: d.connections_by_state.iter().map(|(_, n)| n).sum(),
                max_connections: d.max_connections,
                pool_max: config.db_max_connections,
                lock_waits: d
                    .lock_waits
                    .iter()
                    .map(|w| {
                        format!(
                            "pid {} ({}) waits on pid {} ({})",
                            w.blocked_pid,
                            clip(&w.blocked_query),
                            w.blocking_pid,
                            clip(&w.blocking_query)
                        )
                    })
                    .collect(),
                slow_statements: d.slow_statements.map(|s| {
                    s.iter()
                        .filter(|s| s.mean_ms > config.alerts.thresholds.slow_query_ms)
                        .map(|s| format!("{:.0} ms × {}: {}", s.mean_ms, s.calls, clip(&s.query)))
                        .collect()
                }),
                needs_vacuum: d.needs_vacuum,
                integrity: d.integrity,
                wal_bytes: d.wal_bytes,
            })
        }
        Err(err) => facts.database_error = Some(err.to_string()),
    }
    let store = database.store();
    if facts.pending_migrations > 0 {
        // Tables may not exist yet: nothing more to read until the schema is current.
        return;
    }
    match store.queue_stats().await {
        Ok(stats) => facts.queue = Some(stats),
        Err(err) => facts.database_error = Some(err.to_string()),
    }
    for status in [
        ConversationStatus::Pending,
        ConversationStatus::Preparing,
        ConversationStatus::Transcribing,
        ConversationStatus::Analyzing,
    ] {
        let filter = ConversationFilter {
            status: Some(status),
            limit: 500,
            ..Default::default()
        };
        if let Ok(rows) = store.list_conversations(&filter).await {
            facts.in_progress.extend(rows);
        }
    }
    let minute = Utc::now().timestamp() / 60;
    // A process of this host that is gone (restarted) stops counting at once, not when its
    // last heartbeat leaves the five-minute window.
    facts.nodes = store
        .counter_nodes(HEARTBEAT_COUNTER, minute - 5)
        .await
        .unwrap_or_default();
    facts
        .nodes
        .retain(|node| !salesai_worker::is_gone_here(node));
    for provider in [salesai_core::breaker::STT, salesai_core::breaker::LLM] {
        if let Ok(n) = store
            .sum_counter(&salesai_core::breaker::counter_name(provider), minute - 9)
            .await
            && n > 0
        {
            facts
                .provider_pauses_10m
                .push((provider.to_owned(), n as u64));
        }
    }
    facts.signature_failures_10m = store
        .sum_counter(SIGNATURE_COUNTER, minute - 9)
        .await
        .ok()
        .map(|n| n.max(0) as u64);
}

fn clip(text: &str) -> String {
    crate::ops::clip(&text.split_whitespace().collect::<Vec<_>>().join(" "), 80)
}

/// One cheap authenticated call per configured provider, concurrently, each bounded by 10 s.
async fn check_providers(config: &Config) -> Vec<salesai_core::doctor::ProviderCheck> {
    use salesai_core::doctor::ProviderCheck;
    let timeout = std::time::Duration::from_secs(10);
    let stt = async {
        let c = config.stt.as_ref()?;
        Some(ProviderCheck {
            provider: "speech-to-text".into(),
            target: format!("{} {}", c.provider, c.base_url),
            error: salesai_providers::probe_models(
                &c.base_url,
                c.api_key.as_ref(),
                "audio/transcriptions",
                timeout,
            )
            .await
            .err(),
            warning: None,
        })
    };
    let llm = async {
        let c = config.llm.as_ref()?;
        Some(ProviderCheck {
            provider: "llm".into(),
            target: format!("{} {}", c.provider, c.base_url),
            error: salesai_providers::probe_models(
                &c.base_url,
                c.api_key.as_ref(),
                "chat/completions",
                timeout,
            )
            .await
            .err(),
            warning: None,
        })
    };
    let slack = async {
        let c = config.slack.clone()?;
        let target = c.api_url.to_string();
        let report = match salesai_slack::web_client(&c) {
            Ok(client) => tokio::time::timeout(timeout, salesai_slack::check::check(&client, &c))
                .await
                .ok(),
            Err(_) => None,
        };
        let Some(report) = report else {
            return Some(ProviderCheck {
                provider: "slack".into(),
                target,
                error: Some("auth.test did not answer within 10 s".into()),
                warning: None,
            });
        };
        let mut warnings = Vec::new();
        if !report.missing_scopes.is_empty() {
            warnings.push(format!(
                "missing scopes: {}",
                report.missing_scopes.join(", ")
            ));
        }
        for c in report
            .channels
            .iter()
            .filter(|c| !c.reachable || c.member == Some(false))
        {
            warnings.push(format!(
                "channel {} ({}): {}",
                c.channel,
                c.product_line,
                c.error
                    .clone()
                    .unwrap_or_else(|| "the bot is not a member; /invite @salesai".into())
            ));
        }
        Some(ProviderCheck {
            provider: "slack".into(),
            target: report.team.clone().unwrap_or(target),
            error: report.auth_error.clone(),
            warning: (!warnings.is_empty()).then(|| warnings.join("; ")),
        })
    };
    let (stt, llm, slack) = tokio::join!(stt, llm, slack);
    [stt, llm, slack].into_iter().flatten().collect()
}

/// The doctor of a running process, over its own database: the web app's operations page shows
/// its findings (the same facts and rules as `salesai doctor`, failure rate over the last hour).
/// Gathering writes a storage probe and calls every configured provider, so findings are kept
/// for [`LiveDoctor::FRESH_FOR`]: reloading the page, or several admins at once, cost one round.
pub struct LiveDoctor {
    config: Config,
    database: Database,
    last: tokio::sync::Mutex<Option<(std::time::Instant, Vec<salesai_core::doctor::Finding>)>>,
}

impl LiveDoctor {
    /// How long findings are reused.
    pub const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(30);

    /// The doctor of this process.
    pub fn new(config: Config, database: Database) -> LiveDoctor {
        LiveDoctor {
            config,
            database,
            last: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl salesai_core::doctor::Doctor for LiveDoctor {
    async fn findings(&self) -> Vec<salesai_core::doctor::Finding> {
        // Held while gathering: concurrent page loads wait for one round instead of each
        // starting their own.
        let mut last = self.last.lock().await;
        if let Some((at, findings)) = last.as_ref()
            && at.elapsed() < Self::FRESH_FOR
        {
            return findings.clone();
        }
        let facts = gather_with(&self.config, "1h", &self.database).await;
        let findings = salesai_core::doctor::diagnose(&facts, &self.config.alerts.thresholds);
        *last = Some((std::time::Instant::now(), findings.clone()));
        findings
    }
}
