//! `GET /calls/{id}`: the call page — what happened, the next action, the analysis, the notes,
//! the recording and transcript, the timeline — and its live status.
//!
//! Load → view → render: the handler loads the call's [`CallReport`] (the one read model the
//! API and the Slack card render too), [`CallPage`] adds what the page needs of the viewer and
//! the product line, and [`render`] is a pure function of it.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use salesai_core::App;
use salesai_core::domain::{ConversationStatus, UploadKind};
use salesai_core::i18n::{Label, fill};
use salesai_core::product_line::ProductLine;
use salesai_core::report::{AnalysisReport, Attitude, CallReport, DealStage};
use serde::Deserialize;

use super::super::chart;
use super::super::i18n::{Lang, clock, day, when};
use super::super::layout::{Nav, page};
use super::super::session::{PageError, Viewer};
use super::transcript::{talk_card, transcript_lines};
use super::*;

/// Upload metadata kept for the system, not shown as call details.
const INTERNAL_KEYS: &[&str] = &[
    "source",
    "rep_email",
    "rep_slack_id",
    "slack_file_id",
    "slack_user_id",
    "idempotency_key",
    "request_fingerprint",
    "conversation_type",
    "speaker_channels",
];

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    t: Option<u64>,
}

/// Everything the call page shows: the call's report and what the page needs of the viewer
/// and the product line.
pub struct CallPage<'a> {
    /// The call.
    pub report: &'a CallReport,
    /// Its product line.
    pub line: &'a ProductLine,
    /// The reader's language.
    pub lang: Lang,
    /// The team's time zone.
    pub tz: chrono_tz::Tz,
    /// The moment to open at (seconds), from a search hit or a shared link.
    pub at: Option<u64>,
    /// The session's CSRF token, for the page's forms.
    pub csrf: &'a str,
    /// An admin reads the technical details (the error's own words, the agents' engines) and
    /// may delete the call.
    pub is_admin: bool,
    /// Speech-to-text is configured now (a recording that failed for the lack of it may be
    /// retried only then).
    pub stt_configured: bool,
    /// While the analysis waits for its LLM (a provider's pause or `Retry-After`): until when,
    /// and whether that is its last attempt (then the rules engine stands in after it).
    pub waiting: Option<(chrono::DateTime<chrono::Utc>, bool)>,
}

/// `GET /calls/{id}`: the whole call on one page.
pub async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(sq): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let c = reachable(&app, &viewer, &id).await?;
    let report = CallReport::load(app.store.as_ref(), c, &app.talk_targets).await?;
    let c = &report.conversation;
    // The analysis waiting on its provider: its job queued for later after a rate limit or a
    // provider's pause.
    let waiting = if c.status == salesai_core::domain::ConversationStatus::Analyzing {
        app.store
            .list_jobs(&salesai_core::queue::JobFilter {
                conversation_id: Some(c.id.clone()),
                status: Some(salesai_core::queue::JobStatus::Queued),
                kind: Some(salesai_core::pipeline::ANALYZE.into()),
                limit: Some(1),
                ..Default::default()
            })
            .await?
            .into_iter()
            .find(|j| {
                j.run_at > chrono::Utc::now()
                    && j.last_error_code.as_deref()
                        == Some(salesai_core::ErrorCode::RateLimited.as_str())
            })
            .map(|j| (j.run_at, j.attempts + 1 >= j.max_attempts))
    } else {
        None
    };
    let view = CallPage {
        report: &report,
        line: app.product_line(&c.product_line),
        lang: viewer.lang,
        tz: app.time_zone,
        at: sq.t,
        csrf: &viewer.session.csrf_token,
        is_admin: viewer.principal.is_admin(),
        stt_configured: app.stt.is_some(),
        waiting,
    };
    let title = if c.customer_name.is_empty() {
        c.case_number.to_string()
    } else {
        c.customer_name.clone()
    };
    let here = format!("/calls/{}", c.id);
    Ok(page(&viewer, Nav::Calls, &here, &title, render(&view)).into_response())
}

/// The call page.
pub fn render(v: &CallPage<'_>) -> Markup {
    let r = v.report;
    let c = &r.conversation;
    let lang = v.lang;
    let m = lang.t();
    let running = !matches!(
        c.status,
        ConversationStatus::Completed | ConversationStatus::Failed
    );
    let duration = r.transcript.last().map(|s| s.end_ms as i64);
    let is_audio = c.media.kind == Some(UploadKind::Audio) && c.blob_key.is_some();
    html! {
        @if running {
            // Without JavaScript the page reloads itself while the call is in the pipeline; with
            // it, app.js polls the status and reloads when it changes.
            noscript { meta http-equiv="refresh" content="10"; }
            div #live data-status-url={ "/calls/" (c.id) "/status" } data-status=(c.status.as_str()) {}
        }
        div.page-head.call-head {
            div {
                p.crumbs { a href="/calls" { (m.calls) } " / " (c.case_number) }
                h1 { (customer(c)) " " small.muted { (c.customer_number) } }
                p.meta {
                    (status_pill(lang, c.status))
                    span { (c.conversation_type.label(m)) }
                    span { (call_when(c, v.tz)) }
                    @if let Some(d) = duration { span { (clock(d)) } }
                    span { (r.rep.as_ref().map(|p| p.user.display_name.as_str()).unwrap_or("—")) }
                    span { (v.line.name_in(lang.0)) }
                }
                @if !c.title.is_empty() { p.title { (c.title) } }
            }
            @if let Some(a) = &r.analysis {
                div class=(format!("big-score tone-{}", chart::tone(a.scores.overall_score.value()))) {
                    span.big-number { (a.scores.overall_score.value()) }
                    span.big-label { (a.standing().map_or("—", |s| s.label(m))) }
                }
            }
        }
        @if !r.unreadable.is_empty() {
            p.notice.warn role="status" { (fill(m.unreadable_outputs, &[("agents", &r.unreadable.join(", "))])) }
        }
        div.call-grid {
            div.call-main {
                @if let Some(err) = &c.error { (failure(v, err)) }
                @if let Some(a) = &r.analysis {
                    (analysis(v, a))
                } @else if running {
                    section.card.progress {
                        h2 { (m.working_on_it) }
                        p { (m.salesai_is) (lang.status(c.status)) (m.this_page_updates_by_itself) }
                        @if let Some((until, last)) = v.waiting {
                            p.notice role="status" {
                                (fill(if last { m.waiting_for_the_llm_then_rules } else { m.waiting_for_the_llm_until }, &[("time", &when(until, v.tz))]))
                            }
                        }
                    }
                }
            }
            aside.call-side {
                @if is_audio {
                    section.card.player-card #player {
                        h2 { (m.recording) }
                        audio #audio controls preload="metadata" src={ "/calls/" (c.id) "/audio" @if let Some(t) = v.at { "#t=" (t) } } {
                            a href={ "/calls/" (c.id) "/audio" } { (m.download_recording) }
                        }
                    }
                }
                @if !r.transcript.is_empty() {
                    section.card.transcript-card {
                        h2 { (m.transcript) }
                        @if r.estimated_times() { p.muted { (m.times_are_estimated_uploaded_text_had) } }
                        ol.transcript #transcript { (transcript_lines(lang, &r.transcript, v.at)) }
                    }
                }
                (timeline(v))
                (details(v))
            }
        }
    }
}

/// A failed call: what it means and what to do, for whoever reads it; the error's own words for
/// admins only (they name settings and providers).
fn failure(v: &CallPage<'_>, err: &salesai_core::domain::StageError) -> Markup {
    let m = v.lang.t();
    // Retrying a recording while there is still no speech-to-text would fail the same way.
    let retry_helps = salesai_core::pipeline::retry_can_help(&err.code)
        && (err.code != salesai_core::ErrorCode::SttNotConfigured.as_str() || v.stt_configured);
    html! {
        section.card.failure role="alert" {
            h2 { (m.this_call_failed) }
            p.lead { (salesai_core::pipeline::explain(v.lang.0, &err.code)) }
            @if retry_helps {
                (post_button(v, "retry", m.retry, "primary"))
            } @else {
                p.muted { (m.failure_what_now) }
            }
            @if v.is_admin {
                details.technical {
                    summary { (m.technical_details) }
                    p.muted { (m.stage) " " (err.stage.label(m)) }
                    pre { code { (err.code) "\n" (err.message) } }
                }
            }
        }
    }
}

/// A form with one button that posts to `/calls/{id}/{path}`.
fn post_button(v: &CallPage<'_>, path: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/calls/" (v.report.conversation.id) "/" (path) } {
            input type="hidden" name="csrf" value=(v.csrf);
            button class=(class) type="submit" { (label) }
        }
    }
}

/// A quote that jumps to its moment in the call.
pub(super) fn quote(quote: &str, start_ms: u64) -> Markup {
    html! {
        blockquote {
            a.seek href={ "?t=" (start_ms / 1000) "#player" } data-seek=(start_ms) { span.ts { (clock(start_ms as i64)) } }
            " " (quote)
        }
    }
}

/// What happened, the coaching, how the call was run, the notes, CRM and MEDDIC, the engines.
fn analysis(v: &CallPage<'_>, a: &AnalysisReport) -> Markup {
    let r = v.report;
    let c = &r.conversation;
    let lang = v.lang;
    let m = lang.t();
    let s = &a.scores;
    html! {
        section.card #analysis {
            h2 { (m.what_happened) }
            @if let Some(seller) = &a.seller {
                div.next-action {
                    h3 { (m.next_action) " · " span.strategy { (seller.strategy.label(m)) } }
                    p.lead { (seller.next_action.action) }
                    @if let Some(dl) = &seller.next_action.deadline { p.muted { (m.when) (dl) } }
                    @if let Some(script) = &seller.next_action.script {
                        p.script { "“" (script.trim().trim_matches(|c| matches!(c, '"' | '“' | '”' | '「' | '」'))) "”" }
                    }
                }
            }
            @if let Some(b) = &a.buyer {
                @if b.pain.main_pain.is_some() || !b.pain.evidence.is_empty() {
                    h3 { (m.customer_s_pain) }
                    @if let Some(p) = &b.pain.main_pain { p { (p) } }
                    @if let Some(l) = &b.pain.quantified_loss { p.muted { (m.loss) (l) } }
                    @for e in b.pain.evidence.iter().take(4) { (quote(&e.quote, e.start_ms)) }
                }
                @if !b.competitors.is_empty() {
                    h3 { (m.competitors) }
                    @for mention in &b.competitors {
                        div.competitor {
                            strong { (mention.name) }
                            @if let Some(att) = Attitude::parse(&mention.attitude) { " · " span.muted { (att.label(m)) } }
                            (quote(&mention.quote, mention.start_ms))
                        }
                    }
                }
            }
            div.charts {
                figure {
                    (chart::radar("PDCM", &[
                        (m.pain, s.pain_score.value()),
                        (m.decision, s.decision_score.value()),
                        (m.champion, s.champion_score.value()),
                        (m.metrics, s.metrics_score.value()),
                    ]))
                    figcaption { "PDCM" }
                }
                div {
                    (chart::bars("PDCM", &[
                        (m.pain, s.pain_score.value()),
                        (m.decision, s.decision_score.value()),
                        (m.champion, s.champion_score.value()),
                        (m.metrics, s.metrics_score.value()),
                    ]))
                    @if let Some(seller) = &a.seller {
                        h4 { "SPIN" }
                        (chart::bars("SPIN", &[
                            (m.situation, seller.spin.situation.value()),
                            (m.problem, seller.spin.problem.value()),
                            (m.implication, seller.spin.implication.value()),
                            (m.need_payoff, seller.spin.need_payoff.value()),
                        ]))
                    }
                }
            }
            @if let Some(d) = &a.derived && !d.risks.is_empty() {
                h3 { (m.risks) }
                ul.risks { @for risk in &d.risks { li class=(format!("sev-{}", risk.severity.as_str())) { (risk.message) } } }
            }
        }
        @if let Some(seller) = &a.seller {
            section.card {
                h2 { (m.coaching) }
                div.two {
                    div { h3 { (m.went_well) }
                        @if seller.strengths.is_empty() { p.muted { (m.nothing_stood_out_on_this_call) } }
                        @else { ul { @for x in &seller.strengths { li { (x) } } } } }
                    div { h3 { (m.to_improve) }
                        @if seller.improvements.is_empty() { p.muted { (m.nothing_to_change) } }
                        @else { ul { @for x in &seller.improvements { li { (x) } } } } }
                }
                @if let Some(co) = &a.coach {
                    // The coach often restates the seller's improvements: only what it adds.
                    @let added: Vec<&String> = co.coaching_notes.iter().filter(|n| !seller.improvements.contains(n) && !seller.strengths.contains(n)).collect();
                    @if !added.is_empty() {
                        h3 { (m.coach_s_notes) }
                        ul.notes { @for n in added { li { (n) } } }
                    }
                    @if !co.objections.is_empty() {
                        h3 { (m.objections) }
                        @for o in &co.objections {
                            div.objection {
                                span class=(if o.handled { "pill ok" } else { "pill warn" }) { (if o.handled { m.answered } else { m.not_answered }) }
                                (quote(&o.objection, o.start_ms))
                            }
                        }
                    }
                }
            }
        }
        @if !r.transcript.is_empty() { (talk_card(lang, c, v.csrf, &r.transcript, r.talk.as_ref())) }
        @if let Some(shown) = r.notes_markdown() {
            section.card.notes-card #notes {
                h2 { (m.meeting_notes) }
                div.markdown { (super::super::markdown::render(shown)) }
                @if let Some(e) = &r.notes {
                    p.muted.edited {
                        (m.edited_by)
                        (e.edited_by_name.as_deref().unwrap_or(m.someone))
                        " · " (when(e.edited_at, v.tz))
                    }
                }
                details.edit-notes {
                    summary { (m.edit_notes) }
                    form.stack method="post" action={ "/calls/" (c.id) "/notes" } {
                        input type="hidden" name="csrf" value=(v.csrf);
                        label { (m.markdown_headings_lists_bold_html_is)
                            textarea name="markdown" rows="14" maxlength="20000" { (shown) }
                        }
                        div.actions {
                            button.primary type="submit" name="action" value="save" { (m.save_notes) }
                            @if r.notes.is_some() && a.summary.is_some() {
                                button type="submit" name="action" value="restore" { (m.restore_generated_notes) }
                            }
                        }
                    }
                }
                @if let Some(sum) = &a.summary && !sum.follow_up_message.is_empty() {
                    h3 { (m.follow_up_message) }
                    p.script { (sum.follow_up_message) }
                }
            }
        }
        details.card {
            summary { h2 { (m.crm_fields_and_meddic) } }
            dl.fields {
                @if let Some(k) = &a.crm {
                    dt { (m.stage_2) }
                    dd { (DealStage::parse(&k.stage).map_or("—", |st| st.label(m))) " · " small.muted { (fill(m.confidence_percent, &[("n", &k.stage_confidence.value())])) } }
                    dt { (m.budget) } dd { (k.budget.as_deref().unwrap_or("—")) }
                    dt { (m.decision_makers) } dd { (if k.decision_makers.is_empty() { "—".to_owned() } else { k.decision_makers.join(", ") }) }
                    dt { (m.timeline) } dd { (k.timeline.as_deref().unwrap_or("—")) }
                    dt { (m.next_steps) } dd { (if k.next_steps.is_empty() { "—".to_owned() } else { k.next_steps.join("; ") }) }
                }
                @if let Some(x) = &a.context {
                    dt { (m.urgency) } dd { (x.urgency.map_or("—", |u| u.label(m))) }
                    dt { (m.deadline) } dd { (x.deadline.as_deref().unwrap_or("—")) }
                }
                @if let Some(b) = &a.buyer {
                    dt { (m.deal_probability) } dd { (b.deal_probability.value()) "%" }
                }
            }
            @if let Some(d) = &a.derived {
                h3 { "MEDDIC" }
                (chart::bars("MEDDIC", &[
                    (m.meddic_metrics, d.meddic.metrics.value()),
                    (m.meddic_economic_buyer, d.meddic.economic_buyer.value()),
                    (m.meddic_decision_criteria, d.meddic.decision_criteria.value()),
                    (m.meddic_decision_process, d.meddic.decision_process.value()),
                    (m.meddic_identify_pain, d.meddic.identify_pain.value()),
                    (m.meddic_champion, d.meddic.champion.value()),
                ]))
            }
        }
        @if v.is_admin {
            details.card {
                summary { h2 { (m.how_it_was_analysed) } }
                table.agents {
                    thead { tr { th { (m.agent) } th { (m.engine) } th { (m.model) } th.num { (m.tokens) } th.num { (m.time) } } }
                    tbody { @for run in &r.runs { tr {
                        td { (run.agent) }
                        td { (run.engine) @if let Some(f) = &run.fallback { br; small.muted { (f) } } }
                        td { (run.model.as_deref().unwrap_or("—")) }
                        td.num { (run.prompt_tokens.unwrap_or(0) + run.completion_tokens.unwrap_or(0)) }
                        td.num { (run.latency_ms.map(|l| format!("{l} ms")).unwrap_or_else(|| "—".into())) }
                    } } }
                }
            }
        }
    }
}

/// When each stage happened and how long it took.
fn timeline(v: &CallPage<'_>) -> Markup {
    let r = v.report;
    let lang = v.lang;
    html! {
        section.card {
            h2 { (lang.t().timeline_2) }
            ol.timeline {
                li { span { (lang.t().uploaded) } span.took {} time { (when(r.conversation.created_at, v.tz)) } }
                @for (i, e) in r.events.iter().enumerate() {
                    li {
                        span { (lang.status(e.status)) }
                        span.took {
                            @if let Some(next) = r.events.get(i + 1) {
                                (format!("{:.1} s", (next.at - e.at).num_milliseconds() as f64 / 1000.0))
                            }
                        }
                        time { (when(e.at, v.tz)) }
                    }
                }
            }
        }
    }
}

/// The call's details: case, customer, file, the answers of the product line's form (each by
/// its label and its choice's label), and the actions on the call.
fn details(v: &CallPage<'_>) -> Markup {
    let c = &v.report.conversation;
    let lang = v.lang;
    let m = lang.t();
    let answers: Vec<(&str, String)> = c
        .metadata
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !INTERNAL_KEYS.contains(&k.as_str()) && !k.starts_with('_'))
        .filter_map(|(k, value)| {
            let text = value.as_str().filter(|t| !t.is_empty())?;
            Some(match v.line.form.iter().find(|f| &f.id == k) {
                Some(field) => (
                    field.label.get(lang.code()),
                    field
                        .options
                        .iter()
                        .find(|o| o.value == text)
                        .map_or(text.to_owned(), |o| o.label.get(lang.code()).to_owned()),
                ),
                None => match k.as_str() {
                    "contact_name" => (m.slack_contact_name, text.to_owned()),
                    "contact_phone" => (m.slack_contact_phone, text.to_owned()),
                    "contact_email" => (m.slack_contact_email, text.to_owned()),
                    // Another line's question (the call moved lines): its own words.
                    _ => (k.as_str(), text.to_owned()),
                },
            })
        })
        .collect();
    html! {
        section.card {
            h2 { (m.details) }
            dl.fields {
                dt { (m.case) } dd { (c.case_number) }
                dt { (m.customer_number) } dd { (c.customer_number) }
                dt { (m.uploaded_2) } dd { (day(c.created_at, v.tz)) }
                @if let Some(name) = &c.media.file_name { dt { (m.file) } dd { (name) } }
                @if let Some(bytes) = c.media.bytes { dt { (m.size) } dd { (file_size(bytes)) } }
                @for (label, value) in &answers { dt { (label) } dd { (value) } }
            }
            div.actions {
                @if c.status == ConversationStatus::Completed { (post_button(v, "reanalyze", m.analyse_again, "")) }
                @if v.is_admin {
                    details.danger {
                        summary { (m.delete) }
                        p { (m.call_its_recording_transcript_and_analysis) }
                        (post_button(v, "delete", m.yes_delete_this_call, "danger"))
                    }
                }
            }
        }
    }
}

/// A file size for people.
fn file_size(bytes: u64) -> String {
    match bytes {
        0..1_024 => format!("{bytes} B"),
        1_024..1_048_576 => format!("{:.0} KB", bytes as f64 / 1_024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

/// `GET /calls/{id}/status`: the status as JSON, for the page's live update.
pub async fn status(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let c = reachable(&app, &viewer, &id).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "status": c.status })),
    )
        .into_response())
}
