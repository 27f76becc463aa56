//! Ops alerts. Every `serve`/`worker` process, each interval, flushes its Slack signature
//! failures to the database and enqueues `maintenance.monitor` keyed by the interval, so one
//! evaluation runs per interval across all nodes (the job's idempotency key is the lock). The
//! evaluation is `doctor`'s: every P0–P2 finding is an incident, announced once to
//! `SLACK_WEBHOOK_URL` when it opens and once more when it clears; a condition that clears and
//! returns within the cooldown is not announced again. A daily health summary goes to the same
//! webhook at a local time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use salesai_core::doctor::{Finding, Severity, Thresholds, diagnose};
use salesai_core::domain::ConversationStatus;
use salesai_core::queue::{Job, MAINTENANCE, NewJob};
use salesai_core::store::{ConversationFilter, Incident};
use salesai_core::{App, ErrorCode};
use salesai_worker::{Handler, JobError, Registry};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ops::doctor::{HEARTBEAT_COUNTER, SIGNATURE_COUNTER, gather_with};

/// One evaluation of the alert conditions.
pub const MONITOR: &str = "maintenance.monitor";
/// The daily health summary.
pub const SUMMARY: &str = "maintenance.daily_summary";

salesai_core::empty_job!(
    /// The payload of [`MONITOR`].
    MonitorRun = MONITOR, MAINTENANCE
);
salesai_core::empty_job!(
    /// The payload of [`SUMMARY`].
    SummaryRun = SUMMARY, MAINTENANCE
);

/// The incident key of a finding: its area and title without numbers, so "150 jobs waiting"
/// and "170 jobs waiting" are the same incident.
pub fn incident_key(f: &Finding) -> String {
    let title: String = f
        .title
        .chars()
        .filter(|c| !c.is_ascii_digit() && *c != '.' && *c != ',')
        .collect();
    format!(
        "{}:{}",
        f.area,
        title.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

/// What to announce after comparing the findings with the stored incidents.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Incidents to save.
    pub save: Vec<Incident>,
    /// Messages to post, in order.
    pub posts: Vec<String>,
}

/// Decides, purely, which incidents open, reopen, stay or resolve, and what to post.
pub fn plan(
    findings: &[Finding],
    incidents: &[Incident],
    now: chrono::DateTime<Utc>,
    cooldown: chrono::Duration,
) -> Plan {
    let mut out = Plan::default();
    let known: BTreeMap<&str, &Incident> = incidents.iter().map(|i| (i.key.as_str(), i)).collect();
    let mut firing = BTreeMap::new();
    for f in findings.iter().filter(|f| f.severity <= Severity::P2) {
        firing.entry(incident_key(f)).or_insert(f);
    }
    for (key, f) in &firing {
        let detail = format!("{}\n→ {}", f.evidence, f.action);
        // The team reads Traditional Chinese (the runbook's language): the title and what to
        // do in both, commands as typed.
        let alert = if f.title_zh.is_empty() {
            format!("🚨 [{:?}] salesai — {}\n{}", f.severity, f.title, detail)
        } else {
            format!(
                "🚨 [{:?}] salesai — {}\n{}\n{}\n→ {}",
                f.severity, f.title, f.title_zh, detail, f.action_zh
            )
        };
        match known.get(key.as_str()) {
            None => {
                out.posts.push(alert);
                out.save.push(Incident {
                    key: key.clone(),
                    severity: format!("{:?}", f.severity),
                    title: f.title.clone(),
                    detail,
                    opened_at: now,
                    resolved_at: None,
                    notified_at: Some(now),
                });
            }
            Some(i) if i.resolved_at.is_some() => {
                let quiet = i.notified_at.is_some_and(|n| now - n < cooldown);
                if !quiet {
                    out.posts.push(alert);
                }
                out.save.push(Incident {
                    severity: format!("{:?}", f.severity),
                    title: f.title.clone(),
                    detail,
                    opened_at: now,
                    resolved_at: None,
                    notified_at: if quiet { i.notified_at } else { Some(now) },
                    key: key.clone(),
                });
            }
            Some(_) => {}
        }
    }
    for i in incidents.iter().filter(|i| i.resolved_at.is_none()) {
        if firing.contains_key(&i.key) {
            continue;
        }
        let announced = i.notified_at.is_some_and(|n| n >= i.opened_at);
        if announced {
            let minutes = (now - i.opened_at).num_minutes().max(0);
            out.posts
                .push(format!("✅ resolved — {} (open {minutes} min)", i.title));
        }
        out.save.push(Incident {
            resolved_at: Some(now),
            ..i.clone()
        });
    }
    out
}

async fn post(webhook: &url::Url, text: &str) -> Result<(), JobError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| JobError::retryable(ErrorCode::Internal, e.to_string()))?;
    let response = client
        .post(webhook.clone())
        .json(&serde_json::json!({ "text": text }))
        .send()
        .await
        .map_err(|e| {
            JobError::retryable(
                ErrorCode::SlackApiError,
                format!("the alert webhook is unreachable: {e}"),
            )
        })?;
    if !response.status().is_success() {
        return Err(JobError::retryable(
            ErrorCode::SlackApiError,
            format!("the alert webhook answered HTTP {}", response.status()),
        ));
    }
    Ok(())
}

struct Monitor {
    config: Arc<Config>,
    /// The process's database: an evaluation every interval reuses its pool.
    database: salesai_db::Database,
}

#[async_trait]
impl Handler for Monitor {
    type Kind = MonitorRun;

    async fn run(&self, app: &App, _job: &Job, _: MonitorRun) -> Result<(), JobError> {
        let settings = &self.config.alerts;
        let Some(webhook) = &settings.webhook else {
            return Ok(());
        };
        let facts = gather_with(&self.config, "10m", &self.database).await;
        let findings = diagnose(&facts, &settings.thresholds);
        let incidents = app
            .store
            .list_incidents()
            .await
            .map_err(|e| JobError::retryable(ErrorCode::DatabaseError, e.to_string()))?;
        let plan = plan(&findings, &incidents, Utc::now(), settings.cooldown);
        // Counters older than two days, and the evaluations' own finished jobs older than a day
        // (one per interval), are no longer read by anything.
        let _ = app
            .store
            .prune_counters(Utc::now().timestamp() / 60 - 2 * 24 * 60)
            .await;
        let _ = app
            .store
            .purge_jobs(
                &salesai_core::queue::JobFilter {
                    queue: Some(MAINTENANCE.into()),
                    kind: Some(MONITOR.into()),
                    status: Some(salesai_core::queue::JobStatus::Completed),
                    older_than: Some(Utc::now() - chrono::Duration::days(1)),
                    ..Default::default()
                },
                false,
            )
            .await;
        for text in &plan.posts {
            post(webhook, text).await?;
        }
        for incident in &plan.save {
            app.store
                .save_incident(incident)
                .await
                .map_err(|e| JobError::retryable(ErrorCode::DatabaseError, e.to_string()))?;
            let state = if incident.resolved_at.is_some() {
                "resolved"
            } else {
                "open"
            };
            tracing::warn!(event = "alert.incident", key = %incident.key, state, severity = %incident.severity, "{}", incident.title);
        }
        Ok(())
    }
}

/// The daily summary's text: the last 24 hours.
pub async fn summary_text(app: &App, thresholds: &Thresholds) -> Result<String, JobError> {
    let now = Utc::now();
    let db = |e: salesai_core::store::StoreError| {
        JobError::retryable(ErrorCode::DatabaseError, e.to_string())
    };
    let recent = app
        .store
        .list_conversations(&ConversationFilter {
            from: Some(now - chrono::Duration::hours(24)),
            limit: 10_000,
            ..Default::default()
        })
        .await
        .map_err(db)?;
    let completed: Vec<_> = recent
        .iter()
        .filter(|c| c.status == ConversationStatus::Completed)
        .collect();
    let mut failed_by_code: BTreeMap<String, u64> = BTreeMap::new();
    for c in recent
        .iter()
        .filter(|c| c.status == ConversationStatus::Failed)
    {
        let code = c
            .error
            .as_ref()
            .map_or("UNKNOWN".into(), |e| e.code.clone());
        *failed_by_code.entry(code).or_default() += 1;
    }
    let failed: u64 = failed_by_code.values().sum();
    let finished = completed.len() as u64 + failed;
    let rate = if finished == 0 {
        100.0
    } else {
        completed.len() as f64 * 100.0 / finished as f64
    };
    let avg_secs = if completed.is_empty() {
        0
    } else {
        completed
            .iter()
            .map(|c| (c.updated_at - c.created_at).num_seconds().max(0))
            .sum::<i64>()
            / completed.len() as i64
    };
    let stuck = recent
        .iter()
        .filter(|c| {
            !matches!(
                c.status,
                ConversationStatus::Completed | ConversationStatus::Failed
            )
        })
        .filter(|c| (now - c.updated_at).num_seconds() as u64 > thresholds.max_wait_secs)
        .count();
    let codes = if failed_by_code.is_empty() {
        "none".to_owned()
    } else {
        failed_by_code
            .iter()
            .map(|(c, n)| format!("{c} × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(format!(
        "📊 salesai daily health — last 24 h ({})\ncompleted {} · failed {} ({codes}) · success rate {rate:.1} %\naverage processing time {} min {} s · stuck over {} min: {stuck}",
        now.with_timezone(&app.time_zone)
            .format("%Y-%m-%d %H:%M %Z"),
        completed.len(),
        failed,
        avg_secs / 60,
        avg_secs % 60,
        thresholds.max_wait_secs / 60,
    ))
}

struct Summary {
    config: Arc<Config>,
}

#[async_trait]
impl Handler for Summary {
    type Kind = SummaryRun;

    async fn run(&self, app: &App, _job: &Job, _: SummaryRun) -> Result<(), JobError> {
        let Some(webhook) = &self.config.alerts.webhook else {
            return Ok(());
        };
        let text = summary_text(app, &self.config.alerts.thresholds).await?;
        post(webhook, &text).await?;
        tracing::info!(
            event = "alert.daily_summary",
            "posted the daily health summary"
        );
        Ok(())
    }
}

/// Registers the monitor's jobs.
pub fn register(registry: &mut Registry, config: &Config, database: salesai_db::Database) {
    let config = Arc::new(config.clone());
    registry
        .add(Monitor {
            config: config.clone(),
            database,
        })
        .add(Summary { config });
}

/// Every interval: flush this node's signature failures, enqueue the evaluation and, when due,
/// the day's summary. Runs until `stop`.
pub async fn run_schedule(app: App, config: Config, stop: CancellationToken) {
    let settings = config.alerts.clone();
    let interval = settings.interval.max(Duration::from_secs(1));
    let mut flushed = 0u64;
    // Pauses of each provider's breaker already flushed to the per-node counters.
    let mut pauses_flushed: std::collections::HashMap<&'static str, u64> = Default::default();
    let mut outage = Outage::default();
    loop {
        let now = Utc::now();
        // The heartbeat: `doctor` counts the nodes alive (SQLite shared by several is a finding).
        // It is also this node's database probe: with the database down there is no queue to
        // elect an evaluator, so each node announces the outage itself.
        let heartbeat = app
            .store
            .add_counter(
                &config.worker_id,
                HEARTBEAT_COUNTER,
                now.timestamp() / 60,
                1,
            )
            .await;
        if let Err(err) = &heartbeat {
            tracing::warn!(event = "alert.heartbeat_failed", error = %err, "could not record the heartbeat");
        }
        let error = heartbeat.as_ref().err().map(ToString::to_string);
        if let (Some(text), Some(webhook)) = (
            outage.observe(error.as_deref(), &config.worker_id),
            &settings.webhook,
        ) && let Err(err) = post(webhook, &text).await
        {
            tracing::error!(event = "alert.post_failed", error = ?err, "could not post the database outage alert");
        }
        if heartbeat.is_err() {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            continue;
        }
        let total = app.metrics.slack_signature_failures_total();
        if total > flushed {
            let minute = now.timestamp() / 60;
            match app
                .store
                .add_counter(
                    &config.worker_id,
                    SIGNATURE_COUNTER,
                    minute,
                    (total - flushed) as i64,
                )
                .await
            {
                Ok(()) => flushed = total,
                Err(err) => {
                    tracing::warn!(event = "alert.counter_failed", error = %err, "could not record signature failures")
                }
            }
        }
        for breaker in salesai_core::breaker::all() {
            let total = breaker.opened_total();
            let done = pauses_flushed.get(breaker.name()).copied().unwrap_or(0);
            if total > done {
                let counter = salesai_core::breaker::counter_name(breaker.name());
                match app
                    .store
                    .add_counter(
                        &config.worker_id,
                        &counter,
                        now.timestamp() / 60,
                        (total - done) as i64,
                    )
                    .await
                {
                    Ok(()) => {
                        pauses_flushed.insert(breaker.name(), total);
                    }
                    Err(err) => {
                        tracing::warn!(event = "alert.counter_failed", error = %err, "could not record a provider pause")
                    }
                }
            }
        }
        if settings.webhook.is_some() {
            let bucket = now.timestamp() / interval.as_secs() as i64;
            let job = NewJob::of(&MonitorRun {})
                .idempotency_key(format!("monitor:{}:{bucket}", interval.as_secs()));
            if let Err(err) = app.store.enqueue(job).await {
                tracing::warn!(event = "alert.schedule_failed", error = %err, "could not queue the alert evaluation");
            }
            if let Some(at) = settings.summary_at
                && let Some(key) = crate::ops::period::due_key(SUMMARY, now, app.time_zone, at)
            {
                let job = NewJob::of(&SummaryRun {}).idempotency_key(key);
                if let Err(err) = app.store.enqueue(job).await {
                    tracing::warn!(event = "alert.schedule_failed", error = %err, "could not queue the daily summary");
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Consecutive failed database probes before a node announces an outage on its own.
const OUTAGE_AFTER: u32 = 3;

/// One node's view of the database: the P0 the elected evaluator cannot report, because with
/// the database down nothing can be elected.
#[derive(Debug, Default)]
pub struct Outage {
    failures: u32,
    announced: bool,
}

impl Outage {
    /// Records one probe (`error` when it failed); returns a message to post when the outage
    /// opens (after `OUTAGE_AFTER` failures in a row) or, once announced, when it ends.
    pub fn observe(&mut self, error: Option<&str>, node: &str) -> Option<String> {
        match error {
            Some(err) => {
                self.failures += 1;
                if self.failures >= OUTAGE_AFTER && !self.announced {
                    self.announced = true;
                    return Some(format!(
                        "🚨 [P0] salesai — node {node} cannot reach the database\n{err}\n→ check DATABASE_URL and the database server (runbook scenario 3); jobs wait until it is back"
                    ));
                }
                None
            }
            None => {
                let was = self.announced;
                self.failures = 0;
                self.announced = false;
                was.then(|| format!("✅ resolved — node {node} reaches the database again"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_outage_is_announced_after_three_failures_and_once_when_over() {
        let mut o = Outage::default();
        assert_eq!(o.observe(None, "n1"), None);
        assert_eq!(o.observe(Some("refused"), "n1"), None);
        assert_eq!(o.observe(Some("refused"), "n1"), None);
        let alert = o.observe(Some("refused"), "n1").unwrap();
        assert!(alert.starts_with("🚨 [P0] salesai — node n1 cannot reach the database"));
        assert_eq!(o.observe(Some("refused"), "n1"), None, "once per outage");
        assert_eq!(
            o.observe(None, "n1").as_deref(),
            Some("✅ resolved — node n1 reaches the database again")
        );
        assert_eq!(o.observe(None, "n1"), None);
        // A blip shorter than three probes is not an outage.
        assert_eq!(o.observe(Some("x"), "n1"), None);
        assert_eq!(o.observe(None, "n1"), None);
    }

    fn finding(severity: Severity, title: &str) -> Finding {
        Finding {
            severity,
            area: "queue".into(),
            title: title.into(),
            evidence: "e".into(),
            action: "a".into(),
            title_zh: String::new(),
            action_zh: String::new(),
            evidence_zh: String::new(),
        }
    }

    #[test]
    fn an_incident_is_announced_once_then_once_resolved_and_quiet_in_its_cooldown() {
        let t0 = Utc::now();
        let cooldown = chrono::Duration::minutes(30);
        let f = [finding(
            Severity::P2,
            "queue conversations has 150 jobs waiting",
        )];
        let first = plan(&f, &[], t0, cooldown);
        assert_eq!(first.posts.len(), 1);
        assert!(
            first.posts[0]
                .starts_with("🚨 [P2] salesai — queue conversations has 150 jobs waiting")
        );
        let open = first.save.clone();
        // Said in Traditional Chinese too when the finding has it.
        let mut zh = f[0].clone();
        zh.title_zh = "佇列 conversations 有 150 個工作在等待".into();
        zh.action_zh = "確認 worker 都在執行".into();
        let both = plan(&[zh], &[], t0, cooldown);
        assert_eq!(
            both.posts[0],
            "🚨 [P2] salesai — queue conversations has 150 jobs waiting\n佇列 conversations 有 150 個工作在等待\ne\n→ a\n→ 確認 worker 都在執行"
        );
        // Still firing with another number: same incident, nothing posted.
        let f2 = [finding(
            Severity::P2,
            "queue conversations has 170 jobs waiting",
        )];
        assert_eq!(
            plan(&f2, &open, t0 + chrono::Duration::minutes(1), cooldown)
                .posts
                .len(),
            0
        );
        // P3 findings are not alerts.
        let p3 = [finding(Severity::P3, "3 dead jobs in conversations")];
        let cleared = plan(&p3, &open, t0 + chrono::Duration::minutes(5), cooldown);
        assert_eq!(
            cleared.posts,
            vec!["✅ resolved — queue conversations has 150 jobs waiting (open 5 min)".to_owned()]
        );
        let resolved = cleared.save.clone();
        // Back within the cooldown: reopened quietly; its next resolution is quiet too.
        let back = plan(&f, &resolved, t0 + chrono::Duration::minutes(10), cooldown);
        assert!(back.posts.is_empty());
        let quiet_clear = plan(
            &[],
            &back.save,
            t0 + chrono::Duration::minutes(12),
            cooldown,
        );
        assert!(quiet_clear.posts.is_empty());
        // Back after the cooldown: announced again.
        let later = plan(
            &f,
            &quiet_clear.save,
            t0 + chrono::Duration::minutes(45),
            cooldown,
        );
        assert_eq!(later.posts.len(), 1);
    }

    #[test]
    fn keys_ignore_numbers() {
        assert_eq!(
            incident_key(&finding(
                Severity::P1,
                "10.0 % of job attempts failed in the last 1h"
            )),
            incident_key(&finding(
                Severity::P1,
                "7.5 % of job attempts failed in the last 1h"
            ))
        );
    }
}
