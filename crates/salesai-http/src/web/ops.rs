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
    viewer
        .require(&[Role::Admin])
        .map_err(|_| PageError::forbidden(lang, lang.t().only_admin_runs_operations))
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
            h1 { (lang.t().operations) }
            p.muted { (super::i18n::with_code(lang.t().what_salesai_doctor_and_salesai_queue, &[("doctor", "salesai doctor"), ("queue", "salesai queue")]))
                " " a href="/api" { (lang.t().api_reference) } }
        }
        @if let Some(done) = &q.done { (notice(lang, done)) }
        section.card {
            h2 { (lang.t().health) }
            @match &findings {
                None => p.muted { (super::i18n::with_code(lang.t().doctor_does_not_run_in_this, &[("doctor", "salesai doctor")])) },
                Some(f) if f.is_empty() => p.all-clear { "✓ " (lang.t().all_clear_nothing_needs_attention) },
                Some(f) => ul.findings {
                    @for finding in f {
                        li {
                            span class={ "pill sev-" (severity(finding.severity)) } { (severity(finding.severity)) }
                            " " span.muted { (area(lang.0, &finding.area)) }
                            div.finding-title { strong { (finding.title_in(lang.0)) } }
                            @if !finding.evidence.is_empty() { div.sub { (finding.evidence_in(lang.0)) } }
                            div.finding-action { (lang.t().do_) code { (finding.action_in(lang.0).replace('`', "")) } }
                        }
                    }
                },
            }
        }
        section.card {
            h2 { (lang.t().queues) }
            table.ops {
                thead { tr {
                    th { (lang.t().queue) }
                    th.num { (lang.t().waiting) }
                    th.num { (lang.t().running) }
                    th.num { (lang.t().dead) }
                    th.num { (lang.t().oldest_wait) }
                    th {}
                } }
                tbody {
                    @for name in &queues {
                        @let row = stats.queues.iter().find(|r| &r.queue == name);
                        @let paused = settings.iter().find(|s| &s.name == name).is_some_and(|s| s.paused);
                        @let depth = |s: &str| row.and_then(|r| r.depth.get(s).copied()).unwrap_or(0);
                        tr {
                            td.main data-label=(lang.t().queue) {
                                strong { (queue_label(lang, name)) }
                                @if paused { " " span.pill.warn { (lang.t().paused) } }
                                @if let Some(r) = row && r.expired_leases > 0 {
                                    " " span.pill.warn { (r.expired_leases) (lang.t().expired_leases) }
                                }
                            }
                            td.num data-label=(lang.t().waiting) { (depth("queued")) }
                            td.num data-label=(lang.t().running) { (depth("running")) }
                            td.num data-label=(lang.t().dead) { (depth("dead")) }
                            td.num data-label=(lang.t().oldest_wait) { (duration(row.map(|r| r.oldest_waiting_secs).unwrap_or(0))) }
                            td {
                                form.inline method="post" action={ "/ops/queues/" (name) (if paused { "/resume" } else { "/pause" }) } {
                                    input type="hidden" name="csrf" value=(csrf);
                                    @if paused {
                                        button.primary type="submit" { (lang.t().resume) }
                                    } @else {
                                        button type="submit" { (lang.t().pause) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(w) = stats.windows.iter().find(|w| w.window == "1h") {
                p.muted {
                    (lang.t().last_hour)
                    (w.completed) (lang.t().completed)
                    @for (code, n) in &w.failures_by_code { " · " code { (code) } " × " (n) }
                }
            }
        }
        section.card #dead {
            h2 { (lang.t().dead_letters) " " span.muted { "(" (dead.len()) @if dead.len() as u32 == DEAD_SHOWN { "+" } ")" } }
            @if dead.is_empty() {
                p.muted { (lang.t().no_dead_jobs) }
            } @else {
                table.ops.dead {
                    thead { tr {
                        th { (lang.t().job) }
                        th { (lang.t().error) }
                        th.num { (lang.t().attempts) }
                        th { (lang.t().when_2) }
                        th {}
                    } }
                    tbody {
                        @for job in &dead {
                            tr {
                                td.main data-label=(lang.t().job) {
                                    strong { "#" (job.id) " " code { (job.kind) } }
                                    div.sub { (queue_label(lang, &job.queue))
                                        @if let Some(c) = &job.conversation_id { " · " a href={ "/calls/" (c) } { (lang.t().call) } }
                                    }
                                }
                                td data-label=(lang.t().error) {
                                    @if let Some(code) = &job.last_error_code {
                                        div { (salesai_core::pipeline::explain(lang.0, code)) }
                                        div.sub { code { (code) } }
                                    }
                                    @if let Some(msg) = &job.last_error_message {
                                        details.technical { summary { (lang.t().technical_details) } code { (clip(msg, 240)) } }
                                    }
                                }
                                td.num data-label=(lang.t().attempts) { (job.attempts) "/" (job.max_attempts) }
                                td data-label=(lang.t().when_2) { (when(job.updated_at, tz)) }
                                td {
                                    form.inline method="post" action={ "/ops/jobs/" (job.id) "/retry" } {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" { (lang.t().retry) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { (lang.t().retry_or_purge_many) }
            p.muted { (lang.t().choose_at_least_one_filter_you) }
            form.stack.bulk method="post" action="/ops/jobs" {
                input type="hidden" name="csrf" value=(csrf);
                div.ops-filters {
                    label { (lang.t().queue)
                        select name="queue" {
                            option value="" { (lang.t().any_2) }
                            @for name in &queues { option value=(name) { (queue_label(lang, name)) } }
                        }
                    }
                    label { (lang.t().status)
                        select name="status" {
                            option value="" { (lang.t().any_2) }
                            @for (s, label) in [("dead", lang.t().job_status_dead), ("completed", lang.t().job_status_completed), ("queued", lang.t().job_status_queued)] { option value=(s) { (label) } }
                        }
                    }
                    label { (lang.t().kind) input name="kind" maxlength="100" placeholder="conversation.analyze"; }
                    label { (lang.t().unchanged_for_hours) input type="number" name="older_than_hours" min="0" max="87600"; }
                }
                div.actions {
                    button type="submit" name="action" value="retry" { (lang.t().retry_dead_jobs) }
                    button.danger type="submit" name="action" value="purge" { (lang.t().purge) }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Ops, "/ops", lang.t().operations, body).into_response())
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
        "paused" => format!("{}{n}", lang.t().paused_2),
        "resumed" => format!("{}{n}", lang.t().resumed),
        "retried" => format!("{}{n}", lang.t().jobs_queued_again),
        "purged" => format!("{}{n}", lang.t().jobs_deleted),
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
            lang.t().no_such_dead_job_only_dead,
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
                            lang.t().hours_must_be_whole_number_up,
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
                lang.t().choose_retry_or_purge,
            ));
        }
    };
    if filter.selects_everything() {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            Some(lang),
            lang.t().choose_at_least_one_of_queue,
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
        lang.t().purge_jobs
    } else {
        lang.t().retry_dead_jobs_2
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
                p { (lang.t().no_job_matches_nothing_would_change) }
                p { a.button href="/ops" { (lang.t().back_to_operations) } }
            } @else {
                p {
                    strong { (affected.len()) }
                    @if purge { (lang.t().job_s_would_be_deleted_for) }
                    @else { (lang.t().dead_job_s_would_be_queued) }
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
                            button.danger type="submit" { (lang.t().delete_them) }
                        } @else {
                            button.primary type="submit" { (lang.t().retry_them) }
                        }
                        a href="/ops" { (lang.t().cancel) }
                    }
                }
            }
        }
    };
    Ok(page(&viewer, Nav::Ops, "/ops", title, body).into_response())
}

/// A queue's name for people (a queue salesai does not know keeps its name).
fn queue_label(lang: Lang, name: &str) -> String {
    let m = lang.t();
    match name {
        "conversations" => m.queue_conversations.to_owned(),
        "notifications" => m.queue_notifications.to_owned(),
        "maintenance" => m.queue_maintenance.to_owned(),
        other => other.to_owned(),
    }
}

/// A doctor finding's area in the page's language (a provider's name stays as it is).
fn area(lang: salesai_core::language::Language, area: &str) -> String {
    let m = lang.t();
    match area {
        "database" => m.area_database,
        "queue" => m.area_queue,
        "processing" => m.area_processing,
        "storage" => m.area_storage,
        "providers" => m.area_providers,
        "configuration" => m.area_configuration,
        "security" => m.area_security,
        "backups" => m.area_backups,
        other => other,
    }
    .to_owned()
}
