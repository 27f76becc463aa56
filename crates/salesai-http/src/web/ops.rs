//! Operations (admins): the runbook in the browser — the doctor's findings, each queue's depth
//! with pause and resume, dead letters with their attempts and a retry, and bulk retry and purge
//! behind the same confirmations as `salesai queue retry --all` and `salesai queue purge`
//! (a filter is required; the page shows what would change and asks before changing it).

use super::form::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use salesai_core::App;
use salesai_core::doctor::Severity;
use salesai_core::domain::Role;
use salesai_core::queue::{JobFilter, JobStatus};
use serde::Deserialize;

use super::i18n::{Lang, when};
use super::layout::{Nav, page};
use super::session::{PageError, Viewer};
use crate::auth::Authorize;

/// Dead letters listed on the page.
const DEAD_SHOWN: u32 = 50;

fn admins_only(viewer: &Viewer) -> Result<(), PageError> {
    let lang = viewer.lang;
    viewer.require(&[Role::Admin]).map_err(|_| {
        PageError::forbidden(
            lang,
            lang.pick(
                "Only an admin runs operations.",
                "只有管理員可以執行維運操作。",
            ),
        )
    })
}

#[derive(Debug, Deserialize)]
pub struct OpsQuery {
    /// What the last action did, shown once (`paused:conversations`, `retried:3`, …).
    done: Option<String>,
}

/// `GET /ops`.
pub async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<OpsQuery>,
) -> Result<Response, PageError> {
    admins_only(&viewer)?;
    let lang = viewer.lang;
    let csrf = &viewer.session.csrf_token;
    let findings = match &app.doctor {
        Some(doctor) => Some(doctor.findings().await),
        None => None,
    };
    let stats = app.store.queue_stats().await?;
    let settings = salesai_core::queue::complete_settings(
        app.store.queue_settings().await?,
        stats.queues.iter().map(|q| q.queue.clone()),
    );
    let dead = app
        .store
        .list_jobs(&JobFilter {
            status: Some(JobStatus::Dead),
            limit: Some(DEAD_SHOWN),
            ..Default::default()
        })
        .await?;
    let queues: Vec<String> = settings.iter().map(|s| s.name.clone()).collect();
    let tz = app.time_zone;
    let body = html! {
        div.page-head {
            h1 { (lang.pick("Operations", "維運")) }
            p.muted { (lang.pick(
                "What salesai doctor and salesai queue show, with the same actions.",
                "與 salesai doctor、salesai queue 相同的資訊與操作。"))
                " " a href="/api" { (lang.pick("API reference", "API 參考")) } }
        }
        @if let Some(done) = &q.done { (notice(lang, done)) }
        section.card {
            h2 { (lang.pick("Health", "健康檢查")) }
            @match &findings {
                None => p.muted { (lang.pick(
                    "The doctor does not run in this process; use salesai doctor.",
                    "此程序未提供健康檢查；請執行 salesai doctor。")) },
                Some(f) if f.is_empty() => p.all-clear { "✓ " (lang.pick("All clear: nothing needs attention.", "一切正常，沒有需要處理的事項。")) },
                Some(f) => ul.findings {
                    @for finding in f {
                        li {
                            span class={ "pill sev-" (severity(finding.severity)) } { (severity(finding.severity)) }
                            " " span.muted { (area(lang.0, &finding.area)) }
                            div.finding-title { strong { (finding.title_in(lang.0)) } }
                            @if !finding.evidence.is_empty() { div.sub { (finding.evidence_in(lang.0)) } }
                            div.finding-action { (lang.pick("Do: ", "處理：")) code { (finding.action_in(lang.0).replace('`', "")) } }
                        }
                    }
                },
            }
        }
        section.card {
            h2 { (lang.pick("Queues", "佇列")) }
            table.ops {
                thead { tr {
                    th { (lang.pick("Queue", "佇列")) }
                    th.num { (lang.pick("Waiting", "等待中")) }
                    th.num { (lang.pick("Running", "執行中")) }
                    th.num { (lang.pick("Dead", "失敗")) }
                    th.num { (lang.pick("Oldest wait", "最久等待")) }
                    th {}
                } }
                tbody {
                    @for name in &queues {
                        @let row = stats.queues.iter().find(|r| &r.queue == name);
                        @let paused = settings.iter().find(|s| &s.name == name).is_some_and(|s| s.paused);
                        @let depth = |s: &str| row.and_then(|r| r.depth.get(s).copied()).unwrap_or(0);
                        tr {
                            td.main data-label=(lang.pick("Queue", "佇列")) {
                                strong { (name) }
                                @if paused { " " span.pill.warn { (lang.pick("paused", "已暫停")) } }
                                @if let Some(r) = row && r.expired_leases > 0 {
                                    " " span.pill.warn { (r.expired_leases) (lang.pick(" expired leases", " 個租約逾時")) }
                                }
                            }
                            td.num data-label=(lang.pick("Waiting", "等待中")) { (depth("queued")) }
                            td.num data-label=(lang.pick("Running", "執行中")) { (depth("running")) }
                            td.num data-label=(lang.pick("Dead", "失敗")) { (depth("dead")) }
                            td.num data-label=(lang.pick("Oldest wait", "最久等待")) { (duration(row.map(|r| r.oldest_waiting_secs).unwrap_or(0))) }
                            td {
                                form.inline method="post" action={ "/ops/queues/" (name) (if paused { "/resume" } else { "/pause" }) } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    @if paused {
                                        button.primary type="submit" { (lang.pick("Resume", "恢復")) }
                                    } @else {
                                        button type="submit" { (lang.pick("Pause", "暫停")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(w) = stats.windows.iter().find(|w| w.window == "1h") {
                p.muted {
                    (lang.pick("Last hour: ", "過去一小時："))
                    (w.completed) (lang.pick(" completed", " 完成"))
                    @for (code, n) in &w.failures_by_code { " · " code { (code) } " × " (n) }
                }
            }
        }
        section.card #dead {
            h2 { (lang.pick("Dead letters", "失敗的工作")) " " span.muted { "(" (dead.len()) @if dead.len() as u32 == DEAD_SHOWN { "+" } ")" } }
            @if dead.is_empty() {
                p.muted { (lang.pick("No dead jobs.", "沒有失敗的工作。")) }
            } @else {
                table.ops.dead {
                    thead { tr {
                        th { (lang.pick("Job", "工作")) }
                        th { (lang.pick("Error", "錯誤")) }
                        th.num { (lang.pick("Attempts", "嘗試")) }
                        th { (lang.pick("When", "時間")) }
                        th {}
                    } }
                    tbody {
                        @for job in &dead {
                            tr {
                                td.main data-label=(lang.pick("Job", "工作")) {
                                    strong { "#" (job.id) " " (job.kind) }
                                    div.sub { (job.queue)
                                        @if let Some(c) = &job.conversation_id { " · " a href={ "/calls/" (c) } { (lang.pick("the call", "該通話")) } }
                                    }
                                }
                                td data-label=(lang.pick("Error", "錯誤")) {
                                    @if let Some(code) = &job.last_error_code { code { (code) } }
                                    @if let Some(msg) = &job.last_error_message { div.sub { (clip(msg, 240)) } }
                                }
                                td.num data-label=(lang.pick("Attempts", "嘗試")) { (job.attempts) "/" (job.max_attempts) }
                                td data-label=(lang.pick("When", "時間")) { (when(job.updated_at, tz)) }
                                td {
                                    form.inline method="post" action={ "/ops/jobs/" (job.id) "/retry" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" { (lang.pick("Retry", "重試")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { (lang.pick("Retry or purge many", "批次重試或清除")) }
            p.muted { (lang.pick(
                "Choose at least one filter. You will see what would change before anything does.",
                "請至少選擇一個條件。實際變更前會先顯示將受影響的工作。")) }
            form.stack.bulk method="post" action="/ops/jobs" {
                input type="hidden" name="csrf" value=(csrf);
                div.filters {
                    label { (lang.pick("Queue", "佇列"))
                        select name="queue" {
                            option value="" { (lang.pick("any", "全部")) }
                            @for name in &queues { option value=(name) { (name) } }
                        }
                    }
                    label { (lang.pick("Status", "狀態"))
                        select name="status" {
                            option value="" { (lang.pick("any", "全部")) }
                            @for s in ["dead", "completed", "queued"] { option value=(s) { (s) } }
                        }
                    }
                    label { (lang.pick("Kind", "種類")) input name="kind" maxlength="100" placeholder="conversation.analyze"; }
                    label { (lang.pick("Unchanged for (hours)", "多久未變動（小時）")) input type="number" name="older_than_hours" min="0" max="87600"; }
                }
                div.actions {
                    button type="submit" name="action" value="retry" { (lang.pick("Retry dead jobs…", "重試失敗的工作…")) }
                    button.danger type="submit" name="action" value="purge" { (lang.pick("Purge…", "清除…")) }
                }
            }
        }
    };
    Ok(page(
        &viewer,
        Nav::Ops,
        "/ops",
        lang.pick("Operations", "維運"),
        body,
    )
    .into_response())
}

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::P0 => "P0",
        Severity::P1 => "P1",
        Severity::P2 => "P2",
        Severity::P3 => "P3",
    }
}

fn duration(secs: u64) -> String {
    match secs {
        0 => "—".into(),
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn notice(lang: Lang, done: &str) -> Markup {
    let (what, n) = done.split_once(':').unwrap_or((done, ""));
    let text = match what {
        "paused" => format!("{}{n}", lang.pick("Paused ", "已暫停 ")),
        "resumed" => format!("{}{n}", lang.pick("Resumed ", "已恢復 ")),
        "retried" => format!(
            "{}{n}",
            lang.pick("Jobs queued again: ", "已重新排入的工作：")
        ),
        "purged" => format!("{}{n}", lang.pick("Jobs deleted: ", "已刪除的工作：")),
        _ => return html! {},
    };
    html! { section.card.notice role="status" { p { (text) } } }
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// `POST /ops/queues/{name}/pause` and `…/resume`: what `salesai queue pause|resume` and the
/// admin API do (`routes::admin::pause_or_resume`: unknown queues are 404, never created).
pub async fn set_paused(
    State(app): State<App>,
    viewer: Viewer,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    admins_only(&viewer)?;
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return Err(PageError::not_found(lang)),
    };
    let settings =
        crate::routes::admin::pause_or_resume(&app, &name, paused, &viewer.principal.name)
            .await
            .map_err(|e| PageError::from_api(lang, e))?;
    let done = if paused { "paused" } else { "resumed" };
    Ok(Redirect::to(&format!("/ops?done={done}:{}", settings.name)).into_response())
}

/// `POST /ops/jobs/{id}/retry`: one dead job, queued again with fresh attempts.
pub async fn retry_one(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<i64>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    admins_only(&viewer)?;
    viewer.check_csrf(&form.csrf)?;
    let ids = app
        .store
        .retry_jobs(&JobFilter {
            ids: Some(vec![id]),
            ..Default::default()
        })
        .await?;
    if ids.is_empty() {
        let lang = viewer.lang;
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            Some(lang),
            lang.pick(
                "No such dead job: only dead jobs can be retried (it may have been retried already).",
                "找不到此失敗工作：只有失敗的工作可以重試（可能已被重試）。",
            ),
        ));
    }
    tracing::info!(event = "queue.retried", count = 1, by = %viewer.principal.name, "dead job retried");
    Ok(Redirect::to("/ops?done=retried:1").into_response())
}

#[derive(Debug, Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    older_than_hours: String,
    /// Set by the confirmation page's button: do it.
    #[serde(default)]
    confirm: String,
}

impl BulkForm {
    /// The selection, read like the admin API's (`FilterParams`), the age given in hours.
    fn filter(&self, lang: Lang) -> Result<JobFilter, PageError> {
        let pick = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let older_than_secs = match pick(&self.older_than_hours) {
            None => None,
            Some(h) => Some(
                h.parse::<u64>()
                    .ok()
                    .filter(|h| *h <= 87_600)
                    .ok_or_else(|| {
                        PageError::new(
                            StatusCode::BAD_REQUEST,
                            Some(lang),
                            lang.pick(
                                "Hours must be a whole number up to 87600 (ten years).",
                                "小時數必須是 0 到 87600（十年）之間的整數。",
                            ),
                        )
                    })?
                    * 3600,
            ),
        };
        crate::routes::admin::FilterParams {
            queue: pick(&self.queue),
            status: pick(&self.status),
            kind: pick(&self.kind),
            older_than_secs,
            ..Default::default()
        }
        .to_filter()
        .map_err(|e| PageError::from_api(lang, e))
    }
}

/// `POST /ops/jobs`: bulk retry or purge. Without `confirm`, shows what would change (the
/// CLI's dry run) with the button that does it; with it, does it.
pub async fn bulk(
    State(app): State<App>,
    viewer: Viewer,
    Form(form): Form<BulkForm>,
) -> Result<Response, PageError> {
    admins_only(&viewer)?;
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    let mut filter = form.filter(lang)?;
    let purge = match form.action.as_str() {
        "purge" => true,
        "retry" => false,
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                Some(lang),
                lang.pick("Choose retry or purge.", "請選擇重試或清除。"),
            ));
        }
    };
    if filter.selects_everything() {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            Some(lang),
            lang.pick(
                "Choose at least one of queue, status, kind or age: an empty filter would touch every job.",
                "請至少選擇佇列、狀態、種類或時間其中一項：空白條件會影響所有工作。",
            ),
        ));
    }
    if !purge {
        // Only dead jobs are retried, as `salesai queue retry` does.
        filter.status = Some(JobStatus::Dead);
    }
    if form.confirm == "yes" {
        let ids = if purge {
            app.store.purge_jobs(&filter, false).await?
        } else {
            app.store.retry_jobs(&filter).await?
        };
        let done = if purge { "purged" } else { "retried" };
        tracing::info!(event = if purge { "queue.purged" } else { "queue.retried" }, count = ids.len(), by = %viewer.principal.name, "jobs {done} from the operations page");
        return Ok(Redirect::to(&format!("/ops?done={done}:{}", ids.len())).into_response());
    }
    let affected = if purge {
        app.store.purge_jobs(&filter, true).await?
    } else {
        let mut f = filter.clone();
        f.limit = Some(10_000);
        app.store
            .list_jobs(&f)
            .await?
            .iter()
            .map(|j| j.id)
            .collect()
    };
    let csrf = &viewer.session.csrf_token;
    let title = if purge {
        lang.pick("Purge jobs?", "清除工作？")
    } else {
        lang.pick("Retry dead jobs?", "重試失敗的工作？")
    };
    let preview: Vec<String> = affected
        .iter()
        .take(20)
        .map(|id| format!("#{id}"))
        .collect();
    let body = html! {
        div.page-head { h1 { (title) } }
        section.card {
            @if affected.is_empty() {
                p { (lang.pick("No job matches: nothing would change.", "沒有符合條件的工作，不會有任何變更。")) }
                p { a.button href="/ops" { (lang.pick("Back to operations", "回到維運")) } }
            } @else {
                p {
                    strong { (affected.len()) }
                    @if purge { (lang.pick(" job(s) would be deleted for good: ", " 個工作將被永久刪除：")) }
                    @else { (lang.pick(" dead job(s) would be queued again with fresh attempts: ", " 個失敗工作將重新排入並重新計算嘗試次數：")) }
                    (preview.join(", ")) @if affected.len() > 20 { " …" }
                }
                form method="post" action="/ops/jobs" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="action" value=(form.action);
                    input type="hidden" name="queue" value=(form.queue);
                    input type="hidden" name="status" value=(form.status);
                    input type="hidden" name="kind" value=(form.kind);
                    input type="hidden" name="older_than_hours" value=(form.older_than_hours);
                    input type="hidden" name="confirm" value="yes";
                    div.actions {
                        @if purge {
                            button.danger type="submit" { (lang.pick("Delete them", "確定刪除")) }
                        } @else {
                            button.primary type="submit" { (lang.pick("Retry them", "確定重試")) }
                        }
                        a href="/ops" { (lang.pick("Cancel", "取消")) }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Ops, "/ops", title, body).into_response())
}

/// A doctor finding's area in the page's language (a provider's name stays as it is).
fn area(lang: salesai_core::language::Language, area: &str) -> String {
    let zh = match area {
        "database" => "資料庫",
        "queue" => "佇列",
        "processing" => "處理",
        "storage" => "檔案儲存",
        "providers" => "供應商",
        "configuration" => "設定",
        "security" => "安全",
        "backups" => "備份",
        other => other,
    };
    lang.pick(area, zh).to_owned()
}
