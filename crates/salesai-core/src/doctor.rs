//! The runbook's diagnoses as rules over measured facts. Gathering the facts is IO and lives in
//! the binary (`salesai doctor`); deciding what they mean is here, so every threshold of the
//! monitoring guide is one tested line.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::Conversation;
use crate::queue::QueueStats;

/// How bad a finding is (the runbook's severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Severity {
    /// Service down.
    P0,
    /// Core function affected.
    P1,
    /// Part of the service degraded.
    P2,
    /// Worth knowing.
    P3,
}

/// One diagnosis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// `database`, `queue`, `processing`, `storage`, `providers`, `configuration`.
    pub area: String,
    /// What is wrong, in a line.
    pub title: String,
    /// The numbers behind it.
    pub evidence: String,
    /// What to do.
    pub action: String,
    /// `title` in Traditional Chinese, for the operations page in zh-TW (empty: use `title`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title_zh: String,
    /// `action` in Traditional Chinese (commands and settings stay as they are typed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action_zh: String,
    /// `evidence` in Traditional Chinese, where it is prose (empty: use `evidence`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evidence_zh: String,
}

impl Finding {
    /// The same finding, said in Traditional Chinese too.
    fn zh(mut self, title: impl Into<String>, action: &str) -> Finding {
        self.title_zh = title.into();
        self.action_zh = action.into();
        self
    }

    /// The evidence in Traditional Chinese, where it is prose (data, errors and lists of
    /// names stay as they are).
    fn zh_evidence(mut self, evidence: impl Into<String>) -> Finding {
        self.evidence_zh = evidence.into();
        self
    }

    /// The evidence in `lang`.
    pub fn evidence_in(&self, lang: crate::language::Language) -> &str {
        match lang {
            crate::language::Language::ZhTw if !self.evidence_zh.is_empty() => &self.evidence_zh,
            _ => &self.evidence,
        }
    }

    /// The title in `lang`.
    pub fn title_in(&self, lang: crate::language::Language) -> &str {
        match lang {
            crate::language::Language::ZhTw if !self.title_zh.is_empty() => &self.title_zh,
            _ => &self.title,
        }
    }

    /// What to do, in `lang`.
    pub fn action_in(&self, lang: crate::language::Language) -> &str {
        match lang {
            crate::language::Language::ZhTw if !self.action_zh.is_empty() => &self.action_zh,
            _ => &self.action,
        }
    }
}

/// The thresholds of the monitoring guide (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Failure rate above this is P1 (5 %).
    pub failure_rate: f64,
    /// Queued jobs above this are P2 (100).
    pub queue_depth: u64,
    /// A job waiting longer than this, or a conversation stuck in a stage longer, is P2 (20 min).
    pub max_wait_secs: u64,
    /// Slack signature failures in 10 minutes above this are P2 (20): a wrong signing secret,
    /// a skewed clock, or someone probing the endpoints.
    pub signature_failures: u64,
    /// Statements averaging longer than this are slow (P2) (500 ms).
    pub slow_query_ms: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            failure_rate: 0.05,
            queue_depth: 100,
            max_wait_secs: 20 * 60,
            signature_failures: 20,
            slow_query_ms: 500.0,
        }
    }
}

/// What the database reported about itself.
#[derive(Debug, Clone, Default)]
pub struct DatabaseFacts {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Connections to this database (PostgreSQL).
    pub connections: i64,
    /// The server's connection limit (PostgreSQL).
    pub max_connections: Option<i64>,
    /// The most connections each node's pool may open (this process's setting, which nodes
    /// normally share).
    pub pool_max: u32,
    /// Lock waits, one line each: who waits on whom, and their queries.
    pub lock_waits: Vec<String>,
    /// Statements slower than the threshold on average; `None` when `pg_stat_statements` is
    /// missing.
    pub slow_statements: Option<Vec<String>>,
    /// Tables that need VACUUM, with their dead rows.
    pub needs_vacuum: Vec<(String, i64)>,
    /// SQLite's integrity check.
    pub integrity: Option<String>,
    /// SQLite's WAL size, bytes.
    pub wal_bytes: Option<u64>,
}

/// The facts `doctor` gathered.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The queue's numbers, or the error reading them.
    pub queue: Option<QueueStats>,
    /// Which stats window to judge the failure rate on (`10m`, `1h`, `24h`).
    pub window: String,
    /// Conversations in a processing stage.
    pub in_progress: Vec<Conversation>,
    /// The database's own diagnostics.
    pub database: Option<DatabaseFacts>,
    /// The database could not be reached: its error.
    pub database_error: Option<String>,
    /// The storage probe failed: its error.
    pub storage_error: Option<String>,
    /// Speech-to-text is configured.
    pub stt_configured: bool,
    /// An LLM is configured.
    pub llm_configured: bool,
    /// The configured providers' cheap authenticated calls.
    pub providers: Vec<ProviderCheck>,
    /// Migrations this binary would apply (the schema is behind; tables may be missing).
    pub pending_migrations: u64,
    /// salesai processes seen in the last 5 minutes (their heartbeats), when known.
    pub nodes: Vec<String>,
    /// Daily backups are scheduled (`SALESAI_BACKUP_AT`).
    pub backups_scheduled: bool,
    /// Live rep or manager API tokens that belong to no person (created before tokens did):
    /// they keep working as service tokens, reaching every conversation.
    pub unowned_tokens: Vec<String>,
    /// The newest backup's age in hours, when there is one in the backup folder.
    pub last_backup_hours: Option<i64>,
    /// Slack requests refused for their signature in the last 10 minutes (all nodes), when
    /// known.
    pub signature_failures_10m: Option<u64>,
    /// Providers that paused themselves after failing broadly in the last 10 minutes (all
    /// nodes), with how many pauses: `(provider, pauses)`.
    pub provider_pauses_10m: Vec<(String, u64)>,
    /// Now.
    pub now: DateTime<Utc>,
}

/// One configured provider's check.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProviderCheck {
    /// `speech-to-text`, `llm` or `slack`.
    pub provider: String,
    /// What it is (`groq`, a URL, the Slack team).
    pub target: String,
    /// Why the call failed; `None` when it passed.
    pub error: Option<String>,
    /// Something to fix that does not stop it working (e.g. missing Slack scopes).
    pub warning: Option<String>,
}

/// Failure codes that are not the system failing: a provider's rate limit (a wait) and a
/// setting that is missing (its own finding, saying which).
const NOT_FAILURES: &[&str] = &["RATE_LIMITED", "STT_NOT_CONFIGURED"];

fn finding(
    severity: Severity,
    area: &str,
    title: String,
    evidence: String,
    action: &str,
) -> Finding {
    Finding {
        severity,
        area: area.into(),
        title,
        evidence,
        action: action.into(),
        title_zh: String::new(),
        action_zh: String::new(),
        evidence_zh: String::new(),
    }
}

/// Turns facts into findings, worst first.
pub fn diagnose(facts: &Facts, t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(err) = &facts.database_error {
        out.push(finding(Severity::P0, "database", "the database cannot be reached".into(), err.clone(),
            "check DATABASE_URL and that the server is up (runbook scenario 3); nothing works without it")
                .zh("無法連線到資料庫", "檢查 DATABASE_URL 以及資料庫伺服器是否運作（手冊情境 3）；沒有資料庫什麼都無法運作"));
    }
    if let Some(db) = &facts.database {
        if let Some(integrity) = db.integrity.as_deref().filter(|i| *i != "ok") {
            out.push(finding(Severity::P0, "database", "SQLite's integrity check failed".into(), integrity.chars().take(300).collect(),
                "stop salesai, restore the latest verified backup, and move to PostgreSQL if this was a multi-node setup")
                .zh("SQLite 完整性檢查失敗", "停止 salesai，還原最近一份驗證過的備份；若是多節點部署，請改用 PostgreSQL"));
        }
        if !db.lock_waits.is_empty() {
            out.push(finding(Severity::P2, "database", format!("{} sessions are waiting on locks", db.lock_waits.len()),
                db.lock_waits.iter().take(3).cloned().collect::<Vec<_>>().join(" | "),
                "find what the blocking session is doing; if it is an idle transaction, `salesai db terminate-idle --older-than 5m` (runbook scenario 3)")
                .zh(format!("{} 個連線正在等待鎖定", db.lock_waits.len()), "查明造成阻塞的連線在做什麼；若是閒置交易，執行 `salesai db terminate-idle --older-than 5m`（手冊情境 3）"));
        }
        if let Some(max) = db.max_connections
            && max > 0
            && db.connections * 10 >= max * 8
        {
            out.push(finding(Severity::P2, "database", format!("{} of {max} connections in use", db.connections),
                "80 % of the server's limit".into(), "lower SALESAI_DB_MAX_CONNECTIONS per node or raise max_connections; `salesai db terminate-idle` frees idle ones")
                .zh(format!("已使用 {} / {max} 個連線", db.connections), "調低每個節點的 SALESAI_DB_MAX_CONNECTIONS 或提高 max_connections；`salesai db terminate-idle` 可釋放閒置連線").zh_evidence("已達伺服器上限的 80 %"));
        }
        // Headroom across nodes: what every live node's pool may open at once, against the
        // server's limit less its reserved superuser slots.
        if let Some(max) = db.max_connections
            && db.backend == "postgres"
            && db.pool_max > 0
        {
            let nodes = facts.nodes.len().max(1) as i64;
            let worst = nodes * i64::from(db.pool_max);
            let usable = (max - 3).max(1);
            if worst > usable {
                out.push(finding(Severity::P3, "database",
                    format!("{nodes} nodes' pools may open {worst} connections; PostgreSQL allows {usable}"),
                    format!("{nodes} live nodes × SALESAI_DB_MAX_CONNECTIONS={} (pools open connections on demand and close them after 30 s unused; {} are open now)", db.pool_max, db.connections),
                    "put PgBouncer in transaction mode in front of PostgreSQL (docs/RUNBOOK.md, section Many nodes) or lower SALESAI_DB_MAX_CONNECTIONS; raising max_connections also works")
                .zh(format!("{nodes} 個節點的連線池最多可能開 {worst} 個連線；PostgreSQL 只允許 {usable} 個"), "在 PostgreSQL 前以交易模式架設 PgBouncer（docs/RUNBOOK.md 的 Many nodes 一節），或調低 SALESAI_DB_MAX_CONNECTIONS；提高 max_connections 也可以").zh_evidence(format!("{nodes} 個運作中的節點 × SALESAI_DB_MAX_CONNECTIONS={}（連線池依需要開啟連線，閒置 30 秒後關閉；目前開啟 {} 個）", db.pool_max, db.connections)));
            }
        }
        match &db.slow_statements {
            None if db.backend == "postgres" => out.push(finding(Severity::P3, "database", "slow statements cannot be listed".into(),
                "pg_stat_statements is not installed or not preloaded".into(),
                "add pg_stat_statements to shared_preload_libraries, restart PostgreSQL, then CREATE EXTENSION pg_stat_statements")
                .zh("無法列出慢查詢", "把 pg_stat_statements 加入 shared_preload_libraries 並重新啟動 PostgreSQL，再執行 CREATE EXTENSION pg_stat_statements").zh_evidence("未安裝或未預先載入 pg_stat_statements")),
            Some(slow) if !slow.is_empty() => out.push(finding(Severity::P2, "database", format!("{} statements average over {:.0} ms", slow.len(), t.slow_query_ms),
                slow.iter().take(3).cloned().collect::<Vec<_>>().join(" | "),
                "EXPLAIN ANALYZE the slowest; `salesai db analyze` refreshes planner statistics (runbook scenario 3)")
                .zh(format!("{} 個 SQL 語句平均超過 {:.0} ms", slow.len(), t.slow_query_ms), "對最慢的語句執行 EXPLAIN ANALYZE；`salesai db analyze` 會更新查詢規劃的統計（手冊情境 3）")),
            _ => {}
        }
        if !db.needs_vacuum.is_empty() {
            out.push(
                finding(
                    Severity::P3,
                    "database",
                    format!("{} tables need VACUUM", db.needs_vacuum.len()),
                    db.needs_vacuum
                        .iter()
                        .map(|(t, n)| format!("{t}: {n} dead rows"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    "run `salesai db analyze` (VACUUM ANALYZE)",
                )
                .zh(
                    format!("{} 個資料表需要 VACUUM", db.needs_vacuum.len()),
                    "執行 `salesai db analyze`（VACUUM ANALYZE）",
                )
                .zh_evidence(
                    db.needs_vacuum
                        .iter()
                        .map(|(t, n)| format!("{t}：{n} 筆無效資料列"))
                        .collect::<Vec<_>>()
                        .join("、"),
                ),
            );
        }
        if let Some(wal) = db.wal_bytes
            && wal > 256 * 1024 * 1024
        {
            out.push(
                finding(
                    Severity::P3,
                    "database",
                    format!("the SQLite WAL is {} MB", wal / 1_048_576),
                    "it is checkpointed when no reader holds it".into(),
                    "restart salesai at a quiet moment, or run `salesai db analyze`",
                )
                .zh(
                    format!("SQLite WAL 檔已達 {} MB", wal / 1_048_576),
                    "在離峰時重新啟動 salesai，或執行 `salesai db analyze`",
                )
                .zh_evidence("沒有讀取者佔用時才會寫回（checkpoint）"),
            );
        }
    }
    if let Some(err) = &facts.storage_error {
        out.push(finding(Severity::P1, "storage", "blob storage failed the write/read/delete probe".into(), err.clone(),
            "run `salesai storage check`; check SALESAI_BLOB_URL, the S3 endpoint, credentials and bucket (runbook scenario 1, cause 3)")
                .zh("檔案儲存的寫入／讀取／刪除測試失敗", "執行 `salesai storage check`；檢查 SALESAI_BLOB_URL、S3 端點、憑證與 bucket（手冊情境 1，原因 3）"));
    }
    if let Some(stats) = &facts.queue {
        if let Some(window) = stats.windows.iter().find(|w| w.window == facts.window) {
            // Rate limits are waits, not failures; a missing setting is a finding of its own
            // (below), not a sign that providers, the database or storage are failing.
            let failed: u64 = window
                .failures_by_code
                .iter()
                .filter(|(code, _)| !NOT_FAILURES.contains(&code.as_str()))
                .map(|(_, n)| n)
                .sum();
            let total = failed + window.completed;
            if total > 0 {
                let rate = failed as f64 / total as f64;
                let mut codes: Vec<(&String, &u64)> = window
                    .failures_by_code
                    .iter()
                    .filter(|(code, _)| !NOT_FAILURES.contains(&code.as_str()))
                    .collect();
                codes.sort_by(|a, b| b.1.cmp(a.1));
                let by_code = codes
                    .iter()
                    .map(|(c, n)| format!("{n} {c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if rate > t.failure_rate {
                    out.push(finding(Severity::P1, "processing",
                        format!("{:.1} % of job attempts failed in the last {}", rate * 100.0, window.window),
                        format!("{failed} failed, {} completed; by code: {by_code}", window.completed),
                        "look at the top code: GROQ_API_ERROR → provider quota (`salesai queue pause conversations` while it lasts); DATABASE_ERROR → connections; STORAGE_ERROR/FILE_DOWNLOAD_FAILED → `salesai storage check` (runbook scenario 1)")
                .zh(format!("最近 {} 內有 {:.1} % 的工作嘗試失敗", window.window, rate * 100.0), "先看最多的錯誤代碼：GROQ_API_ERROR → 供應商額度（期間內執行 `salesai queue pause conversations`）；DATABASE_ERROR → 連線數；STORAGE_ERROR/FILE_DOWNLOAD_FAILED → `salesai storage check`（手冊情境 1）").zh_evidence(format!("{failed} 次失敗、{} 次完成；依錯誤代碼：{by_code}", window.completed)));
                } else if failed > 0 {
                    out.push(finding(Severity::P3, "processing",
                        format!("{failed} failed attempts in the last {} ({:.1} %)", window.window, rate * 100.0),
                        by_code, "below the 5 % threshold; `salesai queue list --status dead` shows any that gave up")
                .zh(format!("最近 {} 內有 {failed} 次失敗的嘗試（{:.1} %）", window.window, rate * 100.0), "低於 5 % 門檻；`salesai queue list --status dead` 會列出已放棄的工作"));
                }
            }
        }
        for q in &stats.queues {
            let queued = q.depth.get("queued").copied().unwrap_or(0);
            let dead = q.depth.get("dead").copied().unwrap_or(0);
            if queued > t.queue_depth {
                out.push(finding(Severity::P2, "queue", format!("queue {} has {queued} jobs waiting", q.queue),
                    format!("threshold {}; oldest waiting {} s", t.queue_depth, q.oldest_waiting_secs),
                    "check workers are running and not failing; raise throughput with `salesai queue set QUEUE --max-concurrency N` or start another `salesai worker` (runbook scenario 2)")
                .zh(format!("佇列 {} 有 {queued} 個工作在等待", q.queue), "確認 worker 都在執行且沒有一直失敗；用 `salesai queue set QUEUE --max-concurrency N` 提高處理量，或再啟動一個 `salesai worker`（手冊情境 2）").zh_evidence(format!("門檻 {}；最久已等待 {} 秒", t.queue_depth, q.oldest_waiting_secs)));
            }
            if q.oldest_waiting_secs > t.max_wait_secs {
                out.push(finding(Severity::P2, "queue", format!("a job in {} has waited {} min", q.queue, q.oldest_waiting_secs / 60),
                    format!("threshold {} min", t.max_wait_secs / 60),
                    "no worker is taking this queue's jobs fast enough: check `salesai queue status` and the workers' logs")
                .zh(format!("佇列 {} 中有工作已等待 {} 分鐘", q.queue, q.oldest_waiting_secs / 60), "沒有 worker 夠快地處理這個佇列：檢查 `salesai queue status` 與 worker 的日誌").zh_evidence(format!("門檻 {} 分鐘", t.max_wait_secs / 60)));
            }
            if q.paused {
                out.push(
                    finding(
                        Severity::P2,
                        "queue",
                        format!("queue {} is paused", q.queue),
                        format!("{queued} jobs waiting"),
                        "resume it when the cause is fixed: `salesai queue resume QUEUE`",
                    )
                    .zh(
                        format!("佇列 {} 已暫停", q.queue),
                        "問題解決後恢復：`salesai queue resume QUEUE`",
                    )
                    .zh_evidence(format!("{queued} 個工作在等待")),
                );
            }
            if q.expired_leases > 0 {
                out.push(finding(Severity::P2, "queue", format!("{} jobs in {} are held by a worker that stopped renewing", q.expired_leases, q.queue),
                    "their leases have run out".into(), "a worker died or hangs; running nodes return the jobs within seconds — if they do not, no worker is running")
                .zh(format!("{} 中有 {} 個工作被已停止續約的 worker 佔住", q.queue, q.expired_leases), "有 worker 當掉或卡住；運作中的節點會在幾秒內收回這些工作——若沒有，表示沒有任何 worker 在執行").zh_evidence("它們的租約已到期"));
            }
            if dead > 0 {
                out.push(finding(Severity::P3, "queue", format!("{dead} dead jobs in {}", q.queue),
                    "attempts spent or failure terminal".into(),
                    "inspect with `salesai queue list --status dead`, retry with `salesai queue retry --all --queue QUEUE` once the cause is fixed, or purge")
                .zh(format!("{} 中有 {dead} 個失敗的工作", q.queue), "用 `salesai queue list --status dead` 檢視，問題解決後用 `salesai queue retry --all --queue QUEUE` 重試，或清除").zh_evidence("重試次數已用盡，或屬於無法重試的失敗"));
            }
        }
    }
    let stuck: Vec<&Conversation> = facts
        .in_progress
        .iter()
        .filter(|c| (facts.now - c.updated_at).num_seconds() > t.max_wait_secs as i64)
        .collect();
    if !stuck.is_empty() {
        let sample = stuck
            .iter()
            .take(5)
            .map(|c| {
                format!(
                    "{} ({}, {} min)",
                    c.case_number,
                    c.status.as_str(),
                    (facts.now - c.updated_at).num_minutes()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push(finding(Severity::P2, "processing", format!("{} conversations stuck in a stage for over {} min", stuck.len(), t.max_wait_secs / 60),
            sample, "a stage still running slowly needs nothing; check with `salesai queue list`. One whose jobs are all dead (from before dead jobs failed their conversation) resumes with `salesai conversations retry CASE`; retry refuses while work is still queued or running")
                .zh(format!("{} 通對話卡在同一階段超過 {} 分鐘", stuck.len(), t.max_wait_secs / 60), "仍在慢慢處理的階段不需處理，用 `salesai queue list` 確認。若它的工作全部失敗（來自失敗工作還不會讓對話失敗的舊版本），用 `salesai conversations retry CASE` 繼續；仍有工作排隊或執行中時，重試會被拒絕"));
    }
    let sqlite = facts
        .database
        .as_ref()
        .is_some_and(|d| d.backend == "sqlite");
    if sqlite && facts.nodes.len() > 1 {
        out.push(finding(
            Severity::P2,
            "configuration",
            format!("{} salesai processes share a SQLite database", facts.nodes.len()),
            facts.nodes.join(", "),
            "SQLite has one writer and lives on one machine: use PostgreSQL (DATABASE_URL=postgres://…) for several nodes; `salesai backup create` then `salesai backup restore FILE --database-url postgres://…` moves the data",
        )
                .zh(format!("{} 個 salesai 程序共用同一個 SQLite 資料庫", facts.nodes.len()), "SQLite 只有一個寫入者且只在一台機器上：多節點請用 PostgreSQL（DATABASE_URL=postgres://…）；先 `salesai backup create`，再 `salesai backup restore FILE --database-url postgres://…` 即可搬移資料"));
    }
    if !facts.unowned_tokens.is_empty() {
        out.push(finding(
            Severity::P3,
            "security",
            format!(
                "{} rep or manager API tokens belong to no person and act as service tokens",
                facts.unowned_tokens.len()
            ),
            facts.unowned_tokens.join(", "),
            "re-issue each for its person with `salesai token create --name NAME --for EMAIL`, then `salesai token revoke NAME`; a person's token reaches only what they may",
        )
                .zh(format!("{} 個業務或主管的 API 權杖不屬於任何人，會被當成服務權杖", facts.unowned_tokens.len()), "用 `salesai token create --name NAME --for EMAIL` 為各自的人重新發行，再執行 `salesai token revoke NAME`；個人的權杖只能存取本人可看的資料"));
    }
    match (facts.backups_scheduled, facts.last_backup_hours) {
        (false, None) => out.push(finding(
            Severity::P2,
            "configuration",
            "no backups: none taken and none scheduled".into(),
            "the backup folder is empty and SALESAI_BACKUP_AT is not set".into(),
            "set SALESAI_BACKUP_AT=03:00 (daily, once across nodes) and take one now with `salesai backup create`",
        )
                .zh("沒有備份：從未備份，也沒有排程", "設定 SALESAI_BACKUP_AT=03:00（每天一次，多節點也只執行一次），並立即執行 `salesai backup create`").zh_evidence("備份資料夾是空的，且未設定 SALESAI_BACKUP_AT")),
        (false, Some(_)) => out.push(finding(
            Severity::P3,
            "configuration",
            "backups are not scheduled".into(),
            "SALESAI_BACKUP_AT is not set".into(),
            "set SALESAI_BACKUP_AT=03:00",
        )
                .zh("沒有排程備份", "設定 SALESAI_BACKUP_AT=03:00").zh_evidence("未設定 SALESAI_BACKUP_AT")),
        (true, Some(h)) if h > 26 => out.push(finding(
            Severity::P2,
            "backups",
            format!("the last backup is {h} hours old"),
            "daily backups are scheduled but none succeeded in the last 26 hours".into(),
            "check the log for backup.created / maintenance.backup failures (runbook scenario 5); `salesai backup create` by hand",
        )
                .zh(format!("最近一次備份已是 {h} 小時前"), "查看日誌中 backup.created／maintenance.backup 的失敗（手冊情境 5）；手動執行 `salesai backup create`").zh_evidence("已排程每日備份，但最近 26 小時內沒有一次成功")),
        _ => {}
    }
    if facts.pending_migrations > 0 {
        out.push(finding(
            Severity::P3,
            "database",
            format!("{} migrations pending", facts.pending_migrations),
            "the schema is older than this binary; queue and processing checks are skipped until it is current".into(),
            "`salesai migrate up` (salesai serve applies them on start); `salesai migrate status` lists them",
        )
                .zh(format!("有 {} 個資料庫遷移尚未套用", facts.pending_migrations), "`salesai migrate up`（salesai serve 啟動時會自動套用）；`salesai migrate status` 會列出").zh_evidence("資料庫結構比這個版本舊；更新前會略過佇列與處理的檢查"));
    }
    for (provider, pauses) in &facts.provider_pauses_10m {
        out.push(finding(
            Severity::P1,
            provider,
            format!("{provider} failed broadly and paused itself"),
            format!("{pauses} automatic pause(s) in the last 10 minutes: most calls in a minute failed (5xx, timeouts, 429s); calls resume by themselves after each pause and waiting jobs keep their attempts"),
            "check the provider's status page and its key; `salesai queue pause conversations` holds everything longer, the log events are provider.paused and provider.resumed",
        )
                .zh(format!("{provider} 大量失敗並已自動暫停"), "檢查供應商的狀態頁與金鑰；`salesai queue pause conversations` 可暫停更久，相關日誌事件為 provider.paused 與 provider.resumed").zh_evidence(format!("最近 10 分鐘內自動暫停 {pauses} 次：一分鐘內多數呼叫失敗（5xx、逾時、429）；每次暫停後會自動恢復，等待中的工作不會耗用重試次數")));
    }
    if let Some(n) = facts.signature_failures_10m
        && n > t.signature_failures
    {
        out.push(finding(
            Severity::P2,
            "slack",
            "Slack signature failures are spiking".into(),
            format!("{n} requests refused for their signature in the last 10 minutes (threshold {})", t.signature_failures),
            "check SLACK_SIGNING_SECRET against the app's Basic Information page and the host clock (runbook scenario 4); the log event is slack.signature_invalid",
        )
                .zh("Slack 簽章驗證失敗暴增", "比對 SLACK_SIGNING_SECRET 與 Slack 應用程式 Basic Information 頁面，並檢查主機時鐘（手冊情境 4）；日誌事件為 slack.signature_invalid").zh_evidence(format!("最近 10 分鐘內有 {n} 個請求因簽章不符被拒絕（門檻 {}）", t.signature_failures)));
    }
    for p in &facts.providers {
        let action = match p.provider.as_str() {
            "speech-to-text" => {
                "check GROQ_API_KEY (or SALESAI_STT_BASE_URL / SALESAI_STT_API_KEY) and the provider's status page; recordings wait in the queue meanwhile"
            }
            "llm" => {
                "check GEMINI_API_KEY (or SALESAI_LLM_BASE_URL / SALESAI_LLM_API_KEY) and the provider's status page"
            }
            "slack" => {
                "run `salesai slack check`; check SLACK_BOT_TOKEN and the app at https://api.slack.com/apps (Request URLs, reinstall after scope changes)"
            }
            _ => "check the provider's settings",
        };
        let action_zh = match p.provider.as_str() {
            "speech-to-text" => {
                "檢查 GROQ_API_KEY（或 SALESAI_STT_BASE_URL / SALESAI_STT_API_KEY）與供應商狀態頁；錄音會在佇列中等待"
            }
            "llm" => {
                "檢查 GEMINI_API_KEY（或 SALESAI_LLM_BASE_URL / SALESAI_LLM_API_KEY）與供應商狀態頁"
            }
            "slack" => {
                "執行 `salesai slack check`；檢查 SLACK_BOT_TOKEN 與 https://api.slack.com/apps 上的應用程式（Request URL；變更權限範圍後需重新安裝）"
            }
            _ => "檢查該供應商的設定",
        };
        if let Some(err) = &p.error {
            out.push(
                finding(
                    Severity::P1,
                    "providers",
                    format!("{} ({}) is configured but failing", p.provider, p.target),
                    err.clone(),
                    action,
                )
                .zh(
                    format!("{}（{}）已設定但失敗", p.provider, p.target),
                    action_zh,
                ),
            );
        } else if let Some(warning) = &p.warning {
            out.push(
                finding(
                    Severity::P2,
                    "providers",
                    format!("{} ({}) works but needs attention", p.provider, p.target),
                    warning.clone(),
                    action,
                )
                .zh(
                    format!("{}（{}）可運作但需要注意", p.provider, p.target),
                    action_zh,
                ),
            );
        }
    }
    if !facts.stt_configured {
        // Recordings that already failed for it make it urgent; otherwise it is a choice (a
        // team that uploads transcripts only needs none).
        let waiting: u64 = facts
            .queue
            .as_ref()
            .and_then(|q| q.windows.iter().find(|w| w.window == facts.window))
            .and_then(|w| w.failures_by_code.get("STT_NOT_CONFIGURED").copied())
            .unwrap_or(0);
        let (severity, evidence, evidence_zh) = if waiting > 0 {
            (
                Severity::P2,
                format!(
                    "{waiting} recording(s) failed with STT_NOT_CONFIGURED in the last {}; transcripts still work",
                    facts.window
                ),
                format!(
                    "最近 {} 內有 {waiting} 個錄音以 STT_NOT_CONFIGURED 失敗；逐字稿仍可使用",
                    facts.window
                ),
            )
        } else {
            (
                Severity::P3,
                "recordings would fail with STT_NOT_CONFIGURED; transcripts work".to_owned(),
                "錄音會以 STT_NOT_CONFIGURED 失敗；逐字稿仍可使用".to_owned(),
            )
        };
        out.push(
            finding(
                severity,
                "configuration",
                "no speech-to-text provider".into(),
                evidence,
                "set GROQ_API_KEY, or SALESAI_STT_BASE_URL for another OpenAI-compatible server; then `salesai conversations retry` the failed recordings",
            )
            .zh(
                "沒有設定語音轉文字供應商",
                "設定 GROQ_API_KEY，或為其他 OpenAI 相容伺服器設定 SALESAI_STT_BASE_URL；再以 `salesai conversations retry` 重試失敗的錄音",
            )
            .zh_evidence(evidence_zh),
        );
    }
    if !facts.llm_configured {
        out.push(
            finding(
                Severity::P3,
                "configuration",
                "no LLM: the offline rules engine analyses".into(),
                "analyses are marked engine: rules".into(),
                "set GEMINI_API_KEY, or SALESAI_LLM_BASE_URL and SALESAI_LLM_MODEL",
            )
            .zh(
                "沒有 LLM：由離線規則引擎分析",
                "設定 GEMINI_API_KEY，或設定 SALESAI_LLM_BASE_URL 與 SALESAI_LLM_MODEL",
            )
            .zh_evidence("分析結果標示為 engine: rules"),
        );
    }
    out.sort_by_key(|f| f.severity);
    out
}

/// Gathers this deployment's facts and judges them: what `salesai doctor` prints, for the web
/// app's operations page. The binary provides it (it knows the configuration and the database);
/// a process without one shows no findings.
#[async_trait::async_trait]
pub trait Doctor: Send + Sync {
    /// The findings, worst first (empty: all clear).
    async fn findings(&self) -> Vec<Finding>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{QueueStatsRow, WindowStats};

    #[test]
    fn connection_headroom_across_nodes() {
        let mut f = facts();
        f.database = Some(DatabaseFacts {
            backend: "postgres".into(),
            connections: 12,
            max_connections: Some(100),
            pool_max: 4,
            slow_statements: Some(Vec::new()),
            ..Default::default()
        });
        let short = |f: &Facts| {
            diagnose(f, &Thresholds::default())
                .into_iter()
                .find(|x| x.title.contains("pools may open"))
        };
        f.nodes = (0..24).map(|n| format!("node-{n}")).collect();
        assert!(short(&f).is_none(), "24 × 4 = 96 fits in 97");
        f.nodes = (0..25).map(|n| format!("node-{n}")).collect();
        let finding = short(&f).expect("25 × 4 = 100 does not");
        assert_eq!(finding.severity, Severity::P3);
        assert_eq!(
            finding.title,
            "25 nodes' pools may open 100 connections; PostgreSQL allows 97"
        );
        assert!(finding.action.contains("PgBouncer"), "{}", finding.action);
    }

    #[test]
    fn unsafe_production_defaults_are_findings() {
        let mut f = facts();
        f.backups_scheduled = false;
        f.database = Some(DatabaseFacts {
            backend: "sqlite".into(),
            ..Default::default()
        });
        f.nodes = vec!["a-1".into(), "b-2".into()];
        let found = diagnose(&f, &Thresholds::default());
        let titles: Vec<(Severity, &str)> = found
            .iter()
            .map(|x| (x.severity, x.title.as_str()))
            .collect();
        assert!(titles.contains(&(Severity::P2, "2 salesai processes share a SQLite database")));
        assert!(titles.contains(&(Severity::P2, "no backups: none taken and none scheduled")));
        f.backups_scheduled = true;
        f.last_backup_hours = Some(30);
        f.nodes.pop();
        let found = diagnose(&f, &Thresholds::default());
        assert!(
            found
                .iter()
                .any(|x| x.title == "the last backup is 30 hours old")
        );
        assert!(!found.iter().any(|x| x.title.contains("share a SQLite")));
    }

    #[test]
    fn a_provider_that_paused_itself_is_p1() {
        let mut f = facts();
        f.provider_pauses_10m = vec![("speech-to-text".into(), 2)];
        let found = diagnose(&f, &Thresholds::default());
        let paused = found
            .iter()
            .find(|x| x.title == "speech-to-text failed broadly and paused itself")
            .expect("a finding");
        assert_eq!(paused.severity, Severity::P1);
        assert!(
            paused.evidence.starts_with("2 automatic pause(s)"),
            "{}",
            paused.evidence
        );
        f.provider_pauses_10m.clear();
        assert!(
            !diagnose(&f, &Thresholds::default())
                .iter()
                .any(|x| x.title.contains("paused itself"))
        );
    }

    #[test]
    fn failing_providers_are_p1_and_warnings_p2() {
        let mut f = facts();
        f.providers = vec![
            ProviderCheck {
                provider: "slack".into(),
                target: "Acme".into(),
                error: Some("invalid_auth".into()),
                warning: None,
            },
            ProviderCheck {
                provider: "speech-to-text".into(),
                target: "groq".into(),
                error: None,
                warning: Some("slow".into()),
            },
            ProviderCheck {
                provider: "llm".into(),
                target: "gemini".into(),
                error: None,
                warning: None,
            },
        ];
        let found = diagnose(&f, &Thresholds::default());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].severity, Severity::P1);
        assert!(
            found[0]
                .title
                .contains("slack (Acme) is configured but failing")
        );
        assert!(found[0].action.contains("salesai slack check"));
        assert_eq!(found[1].severity, Severity::P2);
    }

    fn facts() -> Facts {
        Facts {
            window: "1h".into(),
            stt_configured: true,
            llm_configured: true,
            backups_scheduled: true,
            now: Utc::now(),
            ..Default::default()
        }
    }

    #[test]
    fn every_finding_is_said_in_traditional_chinese_too() {
        use crate::language::Language;
        // Everything wrong at once that needs no queue or conversation rows.
        let mut f = facts();
        f.database_error = Some("connection refused".into());
        f.storage_error = Some("bucket gone".into());
        f.database = Some(DatabaseFacts {
            backend: "postgres".into(),
            connections: 95,
            max_connections: Some(100),
            pool_max: 20,
            lock_waits: vec!["pid 1 waits on pid 2".into()],
            slow_statements: None,
            needs_vacuum: vec![("jobs".into(), 90_000)],
            integrity: Some("page 3 is corrupt".into()),
            wal_bytes: Some(512 * 1024 * 1024),
        });
        f.nodes = (0..10).map(|n| format!("node-{n}")).collect();
        f.unowned_tokens = vec!["old (rep)".into()];
        f.backups_scheduled = false;
        f.pending_migrations = 2;
        f.provider_pauses_10m = vec![("llm".into(), 1)];
        f.signature_failures_10m = Some(500);
        f.stt_configured = false;
        f.llm_configured = false;
        f.providers = vec![ProviderCheck {
            provider: "slack".into(),
            target: "Acme".into(),
            error: Some("invalid_auth".into()),
            warning: None,
        }];
        let found = diagnose(&f, &Thresholds::default());
        assert!(found.len() >= 15, "{found:?}");
        for finding in &found {
            let title = finding.title_in(Language::ZhTw);
            assert!(
                title.chars().any(crate::transcript::is_cjk),
                "untranslated title: {title}"
            );
            let action = finding.action_in(Language::ZhTw);
            assert!(
                action.chars().any(crate::transcript::is_cjk) && action != finding.action,
                "untranslated action: {action}"
            );
            assert_eq!(finding.title_in(Language::En), finding.title);
            assert_eq!(finding.action_in(Language::En), finding.action);
            assert_eq!(finding.evidence_in(Language::En), finding.evidence);
        }
        // Prose evidence is said in Chinese too; data (errors, names, samples) stays as it is.
        let evidence_zh = |title: &str| {
            let x = found.iter().find(|x| x.title.starts_with(title)).unwrap();
            x.evidence_in(Language::ZhTw).to_owned()
        };
        for title in [
            "no backups",
            "2 migrations pending",
            "no speech-to-text",
            "no LLM",
            "Slack signature failures",
            "the SQLite WAL",
            "1 tables need VACUUM",
            "95 of 100 connections",
            "llm failed broadly",
        ] {
            let zh = evidence_zh(title);
            assert!(
                zh.chars().any(crate::transcript::is_cjk),
                "{title}: untranslated evidence: {zh}"
            );
        }
        assert_eq!(
            evidence_zh("the database cannot be reached"),
            "connection refused"
        );
        // Commands stay as they are typed.
        let backups = found
            .iter()
            .find(|x| x.title.starts_with("no backups"))
            .unwrap();
        assert!(
            backups
                .action_in(Language::ZhTw)
                .contains("`salesai backup create`")
        );
    }

    #[test]
    fn tokens_without_a_person_are_named() {
        let mut f = facts();
        f.last_backup_hours = Some(1);
        f.unowned_tokens = vec!["old-rep (rep)".into()];
        let found = diagnose(&f, &Thresholds::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::P3);
        assert!(found[0].evidence.contains("old-rep") && found[0].action.contains("--for"));
    }

    #[test]
    fn a_healthy_system_has_no_findings() {
        let mut f = facts();
        let mut w = WindowStats {
            window: "1h".into(),
            seconds: 3600,
            completed: 100,
            ..Default::default()
        };
        w.failures_by_code.insert("GROQ_API_ERROR".into(), 5);
        w.failures_by_code.insert("RATE_LIMITED".into(), 50);
        f.queue = Some(QueueStats {
            queues: vec![QueueStatsRow {
                queue: "conversations".into(),
                ..Default::default()
            }],
            windows: vec![w],
        });
        let found = diagnose(&f, &Thresholds::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].severity,
            Severity::P3,
            "5 of 105 is under 5 %, and rate limits are not failures"
        );
    }

    #[test]
    fn a_missing_setting_is_its_own_finding_not_a_failure_rate() {
        // One recording uploaded with no speech-to-text, ten transcripts analysed.
        let mut f = facts();
        f.stt_configured = false;
        let mut w = WindowStats {
            window: "1h".into(),
            seconds: 3600,
            completed: 10,
            ..Default::default()
        };
        w.failures_by_code.insert("STT_NOT_CONFIGURED".into(), 1);
        f.queue = Some(QueueStats {
            queues: vec![],
            windows: vec![w],
        });
        let found = diagnose(&f, &Thresholds::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::P2, "a recording waits for it");
        assert_eq!(found[0].title, "no speech-to-text provider");
        assert!(found[0].evidence.contains("1 recording(s) failed"));
        assert!(found[0].action.contains("GROQ_API_KEY"));
        // Nothing waiting: a choice, P3.
        f.queue = None;
        assert_eq!(
            diagnose(&f, &Thresholds::default())[0].severity,
            Severity::P3
        );
    }

    #[test]
    fn thresholds_raise_the_right_severity() {
        let mut f = facts();
        let mut w = WindowStats {
            window: "1h".into(),
            seconds: 3600,
            completed: 90,
            ..Default::default()
        };
        w.failures_by_code.insert("GROQ_API_ERROR".into(), 8);
        w.failures_by_code.insert("DATABASE_ERROR".into(), 2);
        let mut row = QueueStatsRow {
            queue: "conversations".into(),
            paused: true,
            oldest_waiting_secs: 1500,
            expired_leases: 2,
            ..Default::default()
        };
        row.depth.insert("queued".into(), 150);
        row.depth.insert("dead".into(), 3);
        f.queue = Some(QueueStats {
            queues: vec![row],
            windows: vec![w],
        });
        f.storage_error = Some("connection refused".into());
        let found = diagnose(&f, &Thresholds::default());
        let titles: Vec<(Severity, &str)> = found
            .iter()
            .map(|x| (x.severity, x.title.as_str()))
            .collect();
        assert_eq!(found[0].severity, Severity::P1);
        assert!(
            titles.contains(&(Severity::P1, "10.0 % of job attempts failed in the last 1h")),
            "{titles:?}"
        );
        assert!(
            found
                .iter()
                .any(|x| x.evidence.contains("8 GROQ_API_ERROR, 2 DATABASE_ERROR"))
        );
        assert!(titles.contains(&(Severity::P2, "queue conversations has 150 jobs waiting")));
        assert!(titles.contains(&(Severity::P2, "queue conversations is paused")));
        assert!(titles.contains(&(Severity::P2, "a job in conversations has waited 25 min")));
        assert!(
            titles
                .iter()
                .any(|(s, t)| *s == Severity::P2 && t.contains("stopped renewing"))
        );
        assert!(titles.contains(&(Severity::P3, "3 dead jobs in conversations")));
        assert!(titles.contains(&(
            Severity::P1,
            "blob storage failed the write/read/delete probe"
        )));
        f.database_error = Some("refused".into());
        assert_eq!(
            diagnose(&f, &Thresholds::default())[0].severity,
            Severity::P0
        );
    }
}
