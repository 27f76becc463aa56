//! `GET /calls/{id}`: the call page — what happened, the next action, the analysis, the notes,
//! the recording and transcript, the timeline — and its live status.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use salesai_core::App;
use salesai_core::analysis::derive::DerivedScores;
use salesai_core::analysis::{
    BuyerOutput, CoachOutput, ContextOutput, CrmOutput, SellerOutput, Strategy, SummaryOutput,
};
use salesai_core::domain::{ConversationStatus, UploadKind};
use salesai_core::store::AgentRun;
use serde::Deserialize;

use super::super::chart;
use super::super::i18n::{Lang, clock, day, when};
use super::super::layout::{Nav, page};
use super::super::session::{PageError, Viewer};

use super::transcript::{talk_card, transcript_lines};
use super::*;

/// Upload metadata kept for the system, not shown as call details.
pub(super) const INTERNAL_KEYS: &[&str] = &[
    "source",
    "rep_email",
    "rep_slack_id",
    "slack_file_id",
    "idempotency_key",
];

/// A file size for people.
pub(super) fn file_size(bytes: u64) -> String {
    match bytes {
        0..1_024 => format!("{bytes} B"),
        1_024..1_048_576 => format!("{:.0} KB", bytes as f64 / 1_024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

/// Decodes one agent's saved output.
pub(super) fn output<T: serde::de::DeserializeOwned>(runs: &[AgentRun], agent: &str) -> Option<T> {
    runs.iter()
        .find(|r| r.agent == agent)
        .and_then(|r| serde_json::from_value(r.output.clone()).ok())
}

pub(super) fn strategy_label(lang: Lang, s: Strategy) -> &'static str {
    match s {
        Strategy::CloseNow => lang.t().close_now,
        Strategy::SmallStep => lang.t().secure_small_step,
        Strategy::KeepWarm => lang.t().keep_warm,
    }
}

pub(super) fn quote(quote: &str, start_ms: u64) -> Markup {
    html! {
        blockquote {
            a.seek href={ "?t=" (start_ms / 1000) "#player" } data-seek=(start_ms) { span.ts { (clock(start_ms as i64)) } }
            " " (quote)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    t: Option<u64>,
}

/// `GET /calls/{id}`: the whole call on one page.
pub async fn show(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(sq): Query<ShowQuery>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let c = reachable(&app, &viewer, &id).await?;
    let (events, transcript, analysis, runs) = (
        app.store.stage_events(&c.id).await?,
        app.store.get_transcript(&c.id).await?,
        app.store.get_analysis(&c.id).await?,
        app.store.get_agent_outputs(&c.id).await?,
    );
    let rep = match &c.rep_user_id {
        Some(id) => app.store.person(id).await?,
        None => None,
    };
    let line = app.product_line(&c.product_line);
    let derived: Option<DerivedScores> = analysis
        .as_ref()
        .and_then(|a| serde_json::from_value(a.result.clone()).ok());
    let buyer: Option<BuyerOutput> = output(&runs, "buyer");
    let seller: Option<SellerOutput> = output(&runs, "seller");
    let context: Option<ContextOutput> = output(&runs, "context");
    let crm: Option<CrmOutput> = output(&runs, "crm");
    let summary: Option<SummaryOutput> = output(&runs, "summary");
    let edited = app.store.meeting_notes(&c.id).await?;
    let coach: Option<CoachOutput> = output(&runs, "coach");
    let duration = transcript.last().map(|s| s.end_ms as i64);
    let is_audio = c.media.kind == Some(UploadKind::Audio) && c.blob_key.is_some();
    let estimated_times = c.media.times_estimated();
    let running = !matches!(
        c.status,
        ConversationStatus::Completed | ConversationStatus::Failed
    );
    let csrf = &viewer.session.csrf_token;
    let action = |path: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action={ "/calls/" (c.id) "/" (path) } {
                input type="hidden" name="csrf" value=(csrf);
                button class=(class) type="submit" { (label) }
            }
        }
    };
    let here = format!("/calls/{}", c.id);
    let body = html! {
        @if running {
            // Without JavaScript the page reloads itself while the call is in the pipeline; with
            // it, app.js polls the status and reloads when it changes.
            noscript { meta http-equiv="refresh" content="10"; }
            div #live data-status-url={ "/calls/" (c.id) "/status" } data-status=(c.status.as_str()) {}
        }
        div.page-head.call-head {
            div {
                p.crumbs { a href="/calls" { (lang.t().calls) } " / " (c.case_number) }
                h1 { (customer(&c)) " " small.muted { (c.customer_number) } }
                p.meta {
                    (status_pill(lang, c.status))
                    span { (lang.call_type(c.conversation_type.as_str())) }
                    span { (call_when(&c, app.time_zone)) }
                    @if let Some(d) = duration { span { (clock(d)) } }
                    span { (rep.as_ref().map(|p| p.user.display_name.as_str()).unwrap_or("—")) }
                    span { (line.display_name) }
                }
                @if !c.title.is_empty() { p.title { (c.title) } }
            }
            @if let Some(a) = &analysis {
                div class=(format!("big-score tone-{}", chart::tone(a.overall_score.value()))) {
                    span.big-number { (a.overall_score.value()) }
                    span.big-label { (lang.qualification(&a.qualification)) }
                }
            }
        }
        @if let Some(err) = &c.error {
            section.card.failure role="alert" {
                h2 { (lang.t().this_call_failed) }
                p { (salesai_core::pipeline::explain(lang.0, &err.code)) }
                p.muted { code { (err.code) } " · " (lang.t().stage) " " (err.stage.as_str()) " · " (err.message) }
                @if salesai_core::pipeline::retry_can_help(&err.code) { (action("retry", lang.t().retry, "primary")) }
            }
        }
        div.call-grid {
            div.call-main {
                @if let (Some(a), Some(d)) = (&analysis, &derived) {
                    section.card #analysis {
                        h2 { (lang.t().what_happened) }
                        @if let Some(s) = &seller {
                            div.next-action {
                                h3 { (lang.t().next_action) " · " span.strategy { (strategy_label(lang, s.strategy)) } }
                                p.lead { (s.next_action.action) }
                                @if let Some(dl) = &s.next_action.deadline { p.muted { (lang.t().when) (dl) } }
                                @if let Some(script) = &s.next_action.script {
                                    p.script { "“" (script.trim().trim_matches(|c| matches!(c, '"' | '“' | '”' | '「' | '」'))) "”" }
                                }
                            }
                        }
                        @if let Some(b) = &buyer {
                            @if b.pain.main_pain.is_some() || !b.pain.evidence.is_empty() {
                                h3 { (lang.t().customer_s_pain) }
                                @if let Some(p) = &b.pain.main_pain { p { (p) } }
                                @if let Some(l) = &b.pain.quantified_loss { p.muted { (lang.t().loss) (l) } }
                                @for e in b.pain.evidence.iter().take(4) { (quote(&e.quote, e.start_ms)) }
                            }
                            @if !b.competitors.is_empty() {
                                h3 { (lang.t().competitors) }
                                @for m in &b.competitors {
                                    div.competitor { strong { (m.name) } " · " span.muted { (m.attitude) } (quote(&m.quote, m.start_ms)) }
                                }
                            }
                        }
                        div.charts {
                            figure {
                                (chart::radar("PDCM", &[
                                    (lang.t().pain, a.pain_score.value()),
                                    (lang.t().decision, a.decision_score.value()),
                                    (lang.t().champion, a.champion_score.value()),
                                    (lang.t().metrics, a.metrics_score.value()),
                                ]))
                                figcaption { "PDCM" }
                            }
                            div {
                                (chart::bars("PDCM", &[
                                    (lang.t().pain, a.pain_score.value()),
                                    (lang.t().decision, a.decision_score.value()),
                                    (lang.t().champion, a.champion_score.value()),
                                    (lang.t().metrics, a.metrics_score.value()),
                                ]))
                                @if let Some(s) = &seller {
                                    h4 { "SPIN" }
                                    (chart::bars("SPIN", &[
                                        (lang.t().situation, s.spin.situation.value()),
                                        (lang.t().problem, s.spin.problem.value()),
                                        (lang.t().implication, s.spin.implication.value()),
                                        (lang.t().need_payoff, s.spin.need_payoff.value()),
                                    ]))
                                }
                            }
                        }
                        @if !d.risks.is_empty() {
                            h3 { (lang.t().risks) }
                            ul.risks { @for r in &d.risks { li class=(format!("sev-{:?}", r.severity).to_lowercase()) { (r.message) } } }
                        }
                    }
                    @if let Some(s) = &seller {
                        section.card {
                            h2 { (lang.t().coaching) }
                            div.two {
                                div { h3 { (lang.t().went_well) }
                                    @if s.strengths.is_empty() { p.muted { (lang.t().nothing_stood_out_on_this_call) } }
                                    @else { ul { @for x in &s.strengths { li { (x) } } } } }
                                div { h3 { (lang.t().to_improve) }
                                    @if s.improvements.is_empty() { p.muted { (lang.t().nothing_to_change) } }
                                    @else { ul { @for x in &s.improvements { li { (x) } } } } }
                            }
                            @if let Some(co) = &coach {
                                // The coach often restates the seller's improvements: only what it adds.
                                @let added: Vec<&String> = co.coaching_notes.iter().filter(|n| !s.improvements.contains(n) && !s.strengths.contains(n)).collect();
                                @if !added.is_empty() {
                                    h3 { (lang.t().coach_s_notes) }
                                    ul.notes { @for n in added { li { (n) } } }
                                }
                                @if !co.objections.is_empty() {
                                    h3 { (lang.t().objections) }
                                    @for o in &co.objections {
                                        div.objection {
                                            span class=(if o.handled { "pill ok" } else { "pill warn" }) { (if o.handled { lang.t().answered } else { lang.t().not_answered }) }
                                            (quote(&o.objection, o.start_ms))
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if !transcript.is_empty() { (talk_card(lang, &app, &c, csrf, &transcript)) }
                    @if summary.is_some() || edited.is_some() {
                        @let generated = summary.as_ref().map(|s| s.meeting_notes_markdown.as_str()).unwrap_or_default();
                        @let shown = edited.as_ref().map(|e| e.markdown.as_str()).unwrap_or(generated);
                        section.card.notes-card #notes {
                            h2 { (lang.t().meeting_notes) }
                            div.markdown { (super::super::markdown::render(shown)) }
                            @if let Some(e) = &edited {
                                p.muted.edited {
                                    (lang.t().edited_by)
                                    (e.edited_by_name.as_deref().unwrap_or(lang.t().someone))
                                    " · " (when(e.edited_at, app.time_zone))
                                }
                            }
                            details.edit-notes {
                                summary { (lang.t().edit_notes) }
                                form.stack method="post" action={ "/calls/" (c.id) "/notes" } {
                                    input type="hidden" name="csrf" value=(viewer.session.csrf_token);
                                    label { (lang.t().markdown_headings_lists_bold_html_is)
                                        textarea name="markdown" rows="14" maxlength="20000" { (shown) }
                                    }
                                    div.actions {
                                        button.primary type="submit" name="action" value="save" { (lang.t().save_notes) }
                                        @if edited.is_some() && summary.is_some() {
                                            button type="submit" name="action" value="restore" { (lang.t().restore_generated_notes) }
                                        }
                                    }
                                }
                            }
                            @if let Some(sum) = &summary && !sum.follow_up_message.is_empty() {
                                h3 { (lang.t().follow_up_message) }
                                p.script { (sum.follow_up_message) }
                            }
                        }
                    }
                    details.card {
                        summary { h2 { (lang.t().crm_fields_and_meddic) } }
                        dl.fields {
                            @if let Some(k) = &crm {
                                dt { (lang.t().stage_2) } dd { (k.stage) " (" (k.stage_confidence.value()) ")" }
                                dt { (lang.t().budget) } dd { (k.budget.as_deref().unwrap_or("—")) }
                                dt { (lang.t().decision_makers) } dd { (if k.decision_makers.is_empty() { "—".to_owned() } else { k.decision_makers.join(", ") }) }
                                dt { (lang.t().timeline) } dd { (k.timeline.as_deref().unwrap_or("—")) }
                                dt { (lang.t().next_steps) } dd { (if k.next_steps.is_empty() { "—".to_owned() } else { k.next_steps.join("; ") }) }
                            }
                            @if let Some(x) = &context {
                                dt { (lang.t().urgency) } dd { (x.urgency.map(|u| format!("{u:?}")).unwrap_or_else(|| "—".into())) }
                                dt { (lang.t().deadline) } dd { (x.deadline.as_deref().unwrap_or("—")) }
                            }
                            @if let Some(b) = &buyer {
                                dt { (lang.t().deal_probability) } dd { (b.deal_probability.value()) "%" }
                            }
                        }
                        h3 { "MEDDIC" }
                        (chart::bars("MEDDIC", &[
                            ("Metrics", d.meddic.metrics.value()),
                            ("Economic buyer", d.meddic.economic_buyer.value()),
                            ("Decision criteria", d.meddic.decision_criteria.value()),
                            ("Decision process", d.meddic.decision_process.value()),
                            ("Identify pain", d.meddic.identify_pain.value()),
                            ("Champion", d.meddic.champion.value()),
                        ]))
                    }
                    @if viewer.principal.is_admin() {
                        details.card {
                            summary { h2 { (lang.t().how_it_was_analysed) } }
                            table.agents {
                                thead { tr { th { (lang.t().agent) } th { (lang.t().engine) } th { (lang.t().model) } th.num { (lang.t().tokens) } th.num { (lang.t().time) } } }
                                tbody { @for r in &runs { tr {
                                    td { (r.agent) }
                                    td { (r.engine) @if let Some(f) = &r.fallback { br; small.muted { (f) } } }
                                    td { (r.model.as_deref().unwrap_or("—")) }
                                    td.num { (r.prompt_tokens.unwrap_or(0) + r.completion_tokens.unwrap_or(0)) }
                                    td.num { (r.latency_ms.map(|l| format!("{l} ms")).unwrap_or_else(|| "—".into())) }
                                } } }
                            }
                        }
                    }
                } @else if running {
                    section.card.progress {
                        h2 { (lang.t().working_on_it) }
                        p { (lang.t().salesai_is) (lang.status(c.status)) (lang.t().this_page_updates_by_itself) }
                    }
                }
            }
            aside.call-side {
                @if is_audio {
                    section.card.player-card #player {
                        h2 { (lang.t().recording) }
                        audio #audio controls preload="metadata" src={ "/calls/" (c.id) "/audio" @if let Some(t) = sq.t { "#t=" (t) } } {
                            a href={ "/calls/" (c.id) "/audio" } { (lang.t().download_recording) }
                        }
                    }
                }
                @if !transcript.is_empty() {
                    section.card.transcript-card {
                        h2 { (lang.t().transcript) }
                        @if estimated_times { p.muted { (lang.t().times_are_estimated_uploaded_text_had) } }
                        ol.transcript #transcript { (transcript_lines(lang, &transcript, sq.t)) }
                    }
                }
                section.card {
                    h2 { (lang.t().timeline_2) }
                    ol.timeline {
                        li { span { (lang.t().uploaded) } span.took {} time { (when(c.created_at, app.time_zone)) } }
                        @for (i, e) in events.iter().enumerate() {
                            li {
                                span { (lang.status(e.status)) }
                                span.took {
                                    @if let Some(next) = events.get(i + 1) {
                                        (format!("{:.1} s", (next.at - e.at).num_milliseconds() as f64 / 1000.0))
                                    }
                                }
                                time { (when(e.at, app.time_zone)) }
                            }
                        }
                    }
                }
                section.card {
                    h2 { (lang.t().details) }
                    dl.fields {
                        dt { (lang.t().case) } dd { (c.case_number) }
                        dt { (lang.t().customer_number) } dd { (c.customer_number) }
                        dt { (lang.t().uploaded_2) } dd { (day(c.created_at, app.time_zone)) }
                        @if let Some(name) = &c.media.file_name { dt { (lang.t().file) } dd { (name) } }
                        @if let Some(bytes) = c.media.bytes { dt { (lang.t().size) } dd { (file_size(bytes)) } }
                        @if let Some(fields) = c.metadata.as_object() {
                            @for (k, v) in fields.iter().filter(|(k, _)| !INTERNAL_KEYS.contains(&k.as_str())) {
                                @if let Some(text) = v.as_str().filter(|t| !t.is_empty()) {
                                    dt { (line.form.iter().find(|f| &f.id == k).map(|f| f.label.as_str()).unwrap_or(k)) } dd { (text) }
                                }
                            }
                        }
                    }
                    div.actions {
                        @if c.status == ConversationStatus::Completed { (action("reanalyze", lang.t().analyse_again, "")) }
                        @if viewer.principal.is_admin() {
                            details.danger {
                                summary { (lang.t().delete) }
                                p { (lang.t().call_its_recording_transcript_and_analysis) }
                                (action("delete", lang.t().yes_delete_this_call, "danger"))
                            }
                        }
                    }
                }
            }
        }
    };
    let title = if c.customer_name.is_empty() {
        c.case_number.to_string()
    } else {
        c.customer_name.clone()
    };
    Ok(page(&viewer, Nav::Calls, &here, &title, body).into_response())
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
