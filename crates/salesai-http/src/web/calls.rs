//! The pages about calls: home, the calls list with search, the call page with its player,
//! transcript and analysis, the audio stream, and the actions on a call.

use super::form::Form;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use maud::{Markup, PreEscaped, html};
use salesai_core::App;
use salesai_core::analysis::derive::DerivedScores;
use salesai_core::analysis::{
    BuyerOutput, CoachOutput, ContextOutput, CrmOutput, SellerOutput, Strategy, SummaryOutput,
};
use salesai_core::blob::BlobKey;
use salesai_core::domain::{Conversation, ConversationStatus, ConversationType, Role, UploadKind};
use salesai_core::store::{
    AgentRun, CallCursor, CallRow, CallSort, ConversationFilter, Person, StoreError,
};
use serde::Deserialize;

use super::chart;
use super::i18n::{Lang, clock, day, when};
use super::layout::{Nav, page};
use super::session::{CsrfForm, PageError, Viewer, encode};
use crate::auth::Authorize;

const PAGE_SIZE: u32 = 25;

/// A call the viewer may open, or the reason they may not.
async fn reachable(app: &App, viewer: &Viewer, id: &str) -> Result<Conversation, PageError> {
    let lang = viewer.lang;
    let found = match uuid::Uuid::parse_str(id) {
        Ok(_) => app.store.get_conversation(id).await?,
        Err(_) => salesai_core::pipeline::find(app.store.as_ref(), id).await?,
    };
    let conversation = found.ok_or_else(|| PageError::not_found(lang))?;
    viewer
        .may_reach(app, conversation.rep_user_id.as_deref())
        .await
        .map_err(|_| PageError::forbidden(lang, lang.t().this_call_belongs_to_rep_outside))?;
    Ok(conversation)
}

fn status_pill(lang: Lang, status: ConversationStatus) -> Markup {
    html! { span class=(format!("pill status-{}", status.as_str())) { (lang.status(status)) } }
}

fn score_badge(lang: Lang, score: Option<u8>, band: Option<&str>) -> Markup {
    html! {
        @match score {
            Some(s) => span class=(format!("score tone-{}", chart::tone(s))) title=(band.map(|b| lang.qualification(b)).unwrap_or("")) {
                strong { (s) } @if let Some(b) = band { " " small { (lang.qualification(b)) } }
            },
            None => span.score.none { "—" },
        }
    }
}

fn customer(c: &Conversation) -> Markup {
    html! {
        span.customer {
            @if c.customer_name.is_empty() { (c.customer_number) } @else { (c.customer_name) }
        }
    }
}

/// The calls as a table on wide screens and as cards on phones (the same markup).
fn call_table(lang: Lang, app: &App, calls: &[CallRow], search: Option<&str>) -> Markup {
    html! {
        @if calls.is_empty() {
            p.empty { (lang.t().no_calls_here_yet) }
        } @else {
            table.calls {
                thead { tr {
                    th { (lang.t().date) }
                    th { (lang.t().customer) }
                    th { (lang.t().rep) }
                    th.num { (lang.t().length) }
                    th { (lang.t().status) }
                    th.num { (lang.t().score) }
                } }
                tbody {
                    @for row in calls {
                        @let c = &row.conversation;
                        tr {
                            td data-label=(lang.t().date) { (call_when(c, app.time_zone)) }
                            td.main data-label=(lang.t().customer) {
                                a href={ "/calls/" (c.id) } { (customer(c)) }
                                div.sub { (c.case_number) " · " (lang.call_type(c.conversation_type.as_str())) }
                                @if let (Some(hit), Some(term)) = (&row.hit, search) {
                                    a.hit href={ "/calls/" (c.id) "?t=" (hit.start_ms / 1000) "#hit" } {
                                        span.ts { (clock(hit.start_ms)) } " " (highlight(&hit.text, term))
                                    }
                                }
                            }
                            td data-label=(lang.t().rep) { (row.rep_name.as_deref().unwrap_or("—")) }
                            td.num data-label=(lang.t().length) { (row.duration_ms.map(clock).unwrap_or_else(|| "—".into())) }
                            td data-label=(lang.t().status) { (status_pill(lang, c.status)) }
                            td.num data-label=(lang.t().score) { (score_badge(lang, row.score, row.qualification.as_deref())) }
                        }
                    }
                }
            }
        }
    }
}

/// `text` with each case-insensitive occurrence of `term` marked, escaped, shortened around the
/// first match.
fn highlight(text: &str, term: &str) -> Markup {
    let term = term.trim();
    let lower = text.to_lowercase();
    let needle = term.to_lowercase();
    // Lower-casing can change byte lengths (rare letters): then show the line unmarked.
    if needle.is_empty() || lower.len() != text.len() {
        return html! { (text) };
    }
    let first = lower.find(&needle).unwrap_or(0);
    let start = text
        .char_indices()
        .map(|(i, _)| i)
        .filter(|&i| i <= first)
        .rev()
        .nth(40)
        .unwrap_or(0);
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    let mut at = start;
    let shown_end = text
        .char_indices()
        .map(|(i, _)| i)
        .nth(text[..start].chars().count() + 160)
        .unwrap_or(text.len());
    while at < shown_end {
        match lower[at..shown_end].find(&needle) {
            Some(rel) => {
                let hit = at + rel;
                out.push_str(&maud::html! { (&text[at..hit]) }.into_string());
                out.push_str("<mark>");
                out.push_str(&maud::html! { (&text[hit..hit + needle.len()]) }.into_string());
                out.push_str("</mark>");
                at = hit + needle.len();
            }
            None => {
                out.push_str(&maud::html! { (&text[at..shown_end]) }.into_string());
                at = shown_end;
            }
        }
    }
    if shown_end < text.len() {
        out.push('…');
    }
    PreEscaped(out)
}

/// `GET /`: my recent calls, what needs attention, the week in numbers.
pub async fn home(State(app): State<App>, viewer: Viewer) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let reach = viewer.reach();
    let week_ago = Utc::now() - chrono::Duration::days(7);
    let stats = app.store.call_stats(&reach, week_ago).await?;
    let recent = app
        .store
        .list_calls(&ConversationFilter {
            reach: Some(reach.clone()),
            limit: 8,
            ..Default::default()
        })
        .await?;
    let failed = app
        .store
        .list_calls(&ConversationFilter {
            reach: Some(reach.clone()),
            status: Some(ConversationStatus::Failed),
            from: Some(Utc::now() - chrono::Duration::days(14)),
            limit: 5,
            ..Default::default()
        })
        .await?;
    let low = app
        .store
        .list_calls(&ConversationFilter {
            reach: Some(reach.clone()),
            score_max: Some(49),
            from: Some(Utc::now() - chrono::Duration::days(14)),
            limit: 5,
            ..Default::default()
        })
        .await?;
    let mine = matches!(reach, salesai_core::access::Reach::Own(_));
    let first_name = viewer.principal.name.clone();
    let body = html! {
        div.page-head {
            h1 { (lang.t().hi) (first_name) }
            a.button.primary href="/calls" { (lang.t().all_calls) }
        }
        section.stats aria-label=(lang.t().last_7_days) {
            h2.visually-hidden { (lang.t().last_7_days) }
            div.stat { span.stat-value { (stats.total) } span.stat-label { (lang.t().calls_in_7_days) } }
            div.stat { span.stat-value { (stats.completed) } span.stat-label { (lang.t().analysed) } }
            div.stat { span.stat-value { (stats.in_progress) } span.stat-label { (lang.t().in_progress) } }
            div.stat { span.stat-value { (stats.failed) } span.stat-label { (lang.t().failed) } }
            div.stat {
                span.stat-value { (stats.average_score.map(|s| format!("{s:.0}")).unwrap_or_else(|| "—".into())) }
                span.stat-label { (lang.t().average_score) }
            }
        }
        @if !failed.is_empty() || !low.is_empty() {
            section.card.attention {
                h2 { (lang.t().needs_attention) }
                @if !failed.is_empty() {
                    h3 { (lang.t().failed_retry_or_check_file) }
                    (call_table(lang, &app, &failed, None))
                }
                @if !low.is_empty() {
                    h3 { (lang.t().low_scores_worth_look) }
                    (call_table(lang, &app, &low, None))
                }
            }
        }
        section.card {
            h2 { (if mine { lang.t().my_recent_calls } else { lang.t().recent_calls }) }
            (call_table(lang, &app, &recent, None))
            p { a href="/calls" { (lang.t().see_all_calls) } }
        }
    };
    Ok(page(&viewer, Nav::Home, "/", lang.t().home, body).into_response())
}

/// The calls list's query string.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    rep: Option<String>,
    team: Option<String>,
    line: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    qual: Option<String>,
    min: Option<String>,
    max: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    sort: Option<String>,
}

fn some(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ListQuery {
    /// The query string without the page cursor, for the next page's link.
    fn without_cursor(&self) -> String {
        let pairs = [
            ("q", &self.q),
            ("status", &self.status),
            ("rep", &self.rep),
            ("team", &self.team),
            ("line", &self.line),
            ("type", &self.kind),
            ("qual", &self.qual),
            ("min", &self.min),
            ("max", &self.max),
            ("from", &self.from),
            ("to", &self.to),
            ("sort", &self.sort),
        ];
        pairs
            .iter()
            .filter_map(|(k, v)| some(v).map(|v| format!("{k}={}", encode(v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A day in the team's time zone as the UTC instant it starts.
fn day_start(raw: &str, tz: chrono_tz::Tz) -> Option<chrono::DateTime<Utc>> {
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok()?;
    if !(2000..=2100).contains(&chrono::Datelike::year(&date)) {
        return None;
    }
    tz.from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// `GET /calls`: filters, search, keyset pages.
pub async fn list(
    State(app): State<App>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let bad = |what: &str| PageError::new(StatusCode::BAD_REQUEST, Some(lang), what);
    let score = |v: &Option<String>| -> Result<Option<u8>, PageError> {
        some(v)
            .map(|s| s.parse::<u8>().ok().filter(|n| *n <= 100))
            .map(|n| n.ok_or_else(|| bad(lang.t().score_is_number_from_0_to)))
            .transpose()
    };
    let date = |v: &Option<String>| -> Result<Option<chrono::DateTime<Utc>>, PageError> {
        some(v)
            .map(|s| {
                day_start(s, app.time_zone).ok_or_else(|| bad(lang.t().dates_look_like_2026_11_29))
            })
            .transpose()
    };
    let search = some(&q.q).map(|s| s.chars().take(200).collect::<String>());
    let sort = match some(&q.sort) {
        None => CallSort::Newest,
        Some(raw) => {
            CallSort::parse(raw).ok_or_else(|| bad(lang.t().sort_by_newest_oldest_score_high))?
        }
    };
    let filter = ConversationFilter {
        reach: Some(viewer.reach()),
        status: some(&q.status).and_then(|s| ConversationStatus::parse(s).ok()),
        rep_user_id: some(&q.rep).map(Into::into),
        team: some(&q.team).map(Into::into),
        product_line: some(&q.line).map(Into::into),
        conversation_type: some(&q.kind).and_then(|s| ConversationType::parse(s).ok()),
        qualification: some(&q.qual).map(Into::into),
        score_min: score(&q.min)?,
        score_max: score(&q.max)?,
        from: date(&q.from)?,
        to: date(&q.to)?.map(|t| t + chrono::Duration::days(1)),
        search: search.clone(),
        after: some(&q.after).and_then(CallCursor::decode),
        limit: PAGE_SIZE,
        sort,
        ..Default::default()
    };
    let calls = app.store.list_calls(&filter).await?;
    let next = (calls.len() as u32 == PAGE_SIZE).then(|| {
        let last_row = &calls[calls.len() - 1];
        let last = &last_row.conversation;
        let cursor = CallCursor {
            created_at: last.created_at,
            id: last.id.clone(),
            score: last_row.score.filter(|_| sort.by_score()),
        }
        .encode();
        let rest = q.without_cursor();
        format!(
            "/calls?{}{}after={}",
            rest,
            if rest.is_empty() { "" } else { "&" },
            encode(&cursor)
        )
    });
    // Whom the viewer may filter by: the people they reach.
    let people: Vec<Person> = if viewer.principal.role == Role::Rep {
        Vec::new()
    } else {
        let all = app.store.people().await?;
        let mut reachable = Vec::new();
        for p in all
            .into_iter()
            .filter(|p| matches!(p.user.role, Role::Rep | Role::Manager))
        {
            if viewer.principal.may_reach(Some(&p)).is_ok() {
                reachable.push(p);
            }
        }
        reachable
    };
    let mut teams: Vec<String> = people.iter().filter_map(|p| p.team.clone()).collect();
    teams.sort();
    teams.dedup();
    let selected = |v: &Option<String>, option: &str| some(v) == Some(option);
    let here = format!("/calls?{}", q.without_cursor());
    let body = html! {
        div.page-head {
            h1 { (lang.t().calls) }
        }
        form.filters method="get" action="/calls" role="search" {
            div.search-row {
                label.grow {
                    span.visually-hidden { (lang.t().search) }
                    input type="search" name="q" value=[search.as_deref()] maxlength="200"
                        placeholder=(lang.t().search_transcripts_customers_titles);
                }
                button.primary type="submit" { (lang.t().search) }
            }
            details.more-filters open[q.status.is_some() || q.rep.is_some() || q.qual.is_some() || q.min.is_some() || q.from.is_some()] {
                summary { (lang.t().filters) }
                div.filter-grid {
                    label { (lang.t().status)
                        select name="status" {
                            option value="" { (lang.t().any) }
                            @for s in [ConversationStatus::Completed, ConversationStatus::Failed, ConversationStatus::Pending, ConversationStatus::Preparing, ConversationStatus::Transcribing, ConversationStatus::Analyzing] {
                                option value=(s.as_str()) selected[selected(&q.status, s.as_str())] { (lang.status(s)) }
                            }
                        }
                    }
                    @if !people.is_empty() {
                        label { (lang.t().rep)
                            select name="rep" {
                                option value="" { (lang.t().anyone) }
                                @for p in &people {
                                    option value=(p.user.id) selected[selected(&q.rep, &p.user.id)] { (p.user.display_name) }
                                }
                            }
                        }
                    }
                    @if !teams.is_empty() {
                        label { (lang.t().team)
                            select name="team" {
                                option value="" { (lang.t().any) }
                                @for t in &teams { option value=(t) selected[selected(&q.team, t)] { (t) } }
                            }
                        }
                    }
                    label { (lang.t().product_line)
                        select name="line" {
                            option value="" { (lang.t().any) }
                            @for l in app.product_lines.iter() { option value=(l.id) selected[selected(&q.line, &l.id)] { (l.display_name) } }
                        }
                    }
                    label { (lang.t().type_)
                        select name="type" {
                            option value="" { (lang.t().any) }
                            @for t in ["discovery_call", "demo", "follow_up", "negotiation", "closing", "support"] {
                                option value=(t) selected[selected(&q.kind, t)] { (lang.call_type(t)) }
                            }
                        }
                    }
                    label { (lang.t().qualification)
                        select name="qual" {
                            option value="" { (lang.t().any) }
                            @for b in ["strong", "medium", "weak", "atrisk"] {
                                option value=(b) selected[selected(&q.qual, b)] { (lang.qualification(b)) }
                            }
                        }
                    }
                    label { (lang.t().score_from)
                        input type="number" name="min" min="0" max="100" inputmode="numeric" value=[some(&q.min)]; }
                    label { (lang.t().score_to)
                        input type="number" name="max" min="0" max="100" inputmode="numeric" value=[some(&q.max)]; }
                    label { (lang.t().from)
                        input type="date" name="from" value=[some(&q.from)]; }
                    label { (lang.t().to)
                        input type="date" name="to" value=[some(&q.to)]; }
                    label { (lang.t().sort)
                        select name="sort" {
                            @for (value, label) in [
                                ("newest", lang.t().sort_newest_first),
                                ("oldest", lang.t().sort_oldest_first),
                                ("score_low", lang.t().sort_lowest_score_first),
                                ("score_high", lang.t().sort_highest_score_first),
                            ] {
                                option value=(value) selected[selected(&q.sort, value)] { (label) }
                            }
                        }
                    }
                }
                div.actions {
                    button type="submit" { (lang.t().apply) }
                    a href="/calls" { (lang.t().clear) }
                }
            }
        }
        section.card {
            (call_table(lang, &app, &calls, search.as_deref()))
            nav.pager aria-label=(lang.t().pages) {
                @if q.after.is_some() { a href=(here) { (lang.t().first_page) } }
                @if let Some(next) = &next { a.button href=(next) rel="next" { (lang.t().older_calls) } }
            }
        }
    };
    Ok(page(&viewer, Nav::Calls, &here, lang.t().calls, body).into_response())
}

/// Upload metadata kept for the system, not shown as call details.
const INTERNAL_KEYS: &[&str] = &[
    "source",
    "rep_email",
    "rep_slack_id",
    "slack_file_id",
    "idempotency_key",
];

/// A file size for people.
fn file_size(bytes: u64) -> String {
    match bytes {
        0..1_024 => format!("{bytes} B"),
        1_024..1_048_576 => format!("{:.0} KB", bytes as f64 / 1_024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

/// Decodes one agent's saved output.
fn output<T: serde::de::DeserializeOwned>(runs: &[AgentRun], agent: &str) -> Option<T> {
    runs.iter()
        .find(|r| r.agent == agent)
        .and_then(|r| serde_json::from_value(r.output.clone()).ok())
}

fn strategy_label(lang: Lang, s: Strategy) -> &'static str {
    match s {
        Strategy::CloseNow => lang.t().close_now,
        Strategy::SmallStep => lang.t().secure_small_step,
        Strategy::KeepWarm => lang.t().keep_warm,
    }
}

/// A quote that jumps to its moment in the call.
/// When a call happened, as a person reads it: the date alone when only a date was given (the
/// upload form asks for a day, stored as that day's midnight UTC, which would otherwise show as
/// 08:00 in Taipei), else the date and time in the team's time zone; the upload time when no
/// date was given at all.
fn call_when(c: &Conversation, tz: chrono_tz::Tz) -> String {
    match c.conversation_date {
        Some(d) if d.time() == chrono::NaiveTime::MIN => d.format("%Y-%m-%d").to_string(),
        Some(d) => when(d, tz),
        None => when(c.created_at, tz),
    }
}

/// The transcript's lines, written compactly (a 60-minute call has ~700 of them and its page
/// must stay under 100 KB): each line's start as `data-t` (`m:ss`, shown by the stylesheet and
/// read by the script that seeks the recording on a click), the speaker only where the speaker
/// changes, and no end tags (HTML closes a list item at the next one). The line at `t`
/// (seconds; a search hit or a shared moment) is `#hit`.
fn transcript_lines(
    lang: Lang,
    segments: &[salesai_core::transcript::Segment],
    t: Option<u64>,
) -> maud::PreEscaped<String> {
    use salesai_core::transcript::{Attribution, Role};
    use std::fmt::Write as _;
    let hit = t.and_then(|t| {
        let at = t.saturating_mul(1000).saturating_add(999);
        segments.iter().rposition(|s| s.start_ms <= at)
    });
    let mut out = String::with_capacity(segments.len() * 128);
    let mut previous: Option<(Option<&str>, Option<Role>)> = None;
    for (i, s) in segments.iter().enumerate() {
        let _ = write!(out, "<li data-t=\"{}\"", clock(s.start_ms as i64));
        if hit == Some(i) {
            out.push_str(" id=\"hit\"");
        }
        out.push('>');
        let who = (s.speaker.as_deref(), s.role);
        if s.speaker.is_none() && s.attribution == Some(Attribution::Uncertain) {
            // Two at once, or a turn too short to place: said so, not guessed.
            let _ = write!(out, "<b class=u>{}</b>", lang.t().overlap);
        } else if who.0.is_some() && previous != Some(who) {
            // Short attributes: a 60-minute call has hundreds of speaker changes.
            out.push_str(match s.role {
                Some(Role::Customer) => "<b class=c",
                _ => "<b",
            });
            if s.attribution == Some(Attribution::Inferred) {
                let _ = write!(
                    out,
                    " title=\"{} {}%\"",
                    lang.t().inferred_confidence,
                    s.confidence.unwrap_or(0)
                );
            }
            out.push('>');
            let label = s.speaker.as_deref().unwrap_or_default();
            let side = s.role.map(|r| role_name(lang, r));
            match side {
                Some(side) if side != label => {
                    let _ = maud::Escaper::new(&mut out).write_str(side);
                    out.push_str(" · ");
                    let _ = maud::Escaper::new(&mut out).write_str(label);
                }
                _ => {
                    let _ = maud::Escaper::new(&mut out).write_str(label);
                }
            }
            if s.attribution == Some(Attribution::Inferred) {
                out.push('?');
            }
            out.push_str("</b>");
        }
        previous = Some(who);
        let _ = maud::Escaper::new(&mut out).write_str(&s.text);
    }
    maud::PreEscaped(out)
}

fn role_name(lang: Lang, role: salesai_core::transcript::Role) -> &'static str {
    match role {
        salesai_core::transcript::Role::Rep => lang.t().rep,
        salesai_core::transcript::Role::Customer => lang.t().customer,
    }
}

/// The talk analytics card: each figure with its healthy range, ⚠️ on those outside it, and
/// the form that corrects who is who (which re-runs the analysis).
fn talk_card(
    lang: Lang,
    app: &App,
    c: &Conversation,
    csrf: &str,
    segments: &[salesai_core::transcript::Segment],
) -> Markup {
    use salesai_core::talk::TalkFlag;
    // Estimated times (a plain-text upload) would make every timed figure up.
    let stats = salesai_core::talk::analyze(segments).filter(|_| !c.media.times_estimated());
    let targets = &app.talk_targets;
    let mut speakers: Vec<(&str, Option<salesai_core::transcript::Role>, bool)> = Vec::new();
    for s in segments {
        if let Some(name) = s.speaker.as_deref()
            && !speakers.iter().any(|(n, _, _)| *n == name)
        {
            speakers.push((
                name,
                s.role,
                s.attribution == Some(salesai_core::transcript::Attribution::Known),
            ));
        }
    }
    let mins = |ms: u64| clock(ms as i64);
    html! {
        section.card #talk {
            h2 { (lang.t().how_call_was_run) }
            @if let Some(st) = &stats {
                @let flags = st.flags(targets);
                @let warn = |hit: bool| if hit { " ⚠️" } else { "" };
                dl.fields.talk {
                    dt { (lang.t().rep_s_share_of_talk) }
                    dd { (format!("{:.0}%", st.talk_ratio * 100.0)) (warn(flags.iter().any(|f| matches!(f, TalkFlag::TalksTooMuch | TalkFlag::TalksTooLittle))))
                        small.muted { " " (format!("{:.0}–{:.0}%", targets.talk_ratio_min * 100.0, targets.talk_ratio_max * 100.0)) } }
                    dt { (lang.t().longest_rep_monologue) }
                    dd { (st.longest_monologue.map(|m| mins(m.duration_ms)).unwrap_or_else(|| "—".into())) (warn(flags.contains(&TalkFlag::LongMonologue)))
                        small.muted { " ≤ " (mins(targets.monologue_max_s * 1000)) } }
                    dt { (lang.t().longest_customer_story) }
                    dd { (st.longest_customer_story.map(|m| mins(m.duration_ms)).unwrap_or_else(|| "—".into())) (warn(flags.contains(&TalkFlag::ShortCustomerStory)))
                        small.muted { " ≥ " (mins(targets.story_min_s * 1000)) } }
                    dt { (lang.t().interactivity) }
                    dd { (format!("{:.1}", st.switches_per_minute)) (lang.t().switches_min) (warn(flags.contains(&TalkFlag::LowInteractivity)))
                        small.muted { " ≥ " (targets.switches_min) } }
                    dt { (lang.t().patience) }
                    dd { (st.patience_ms.map(|p| format!("{:.1} s", p as f64 / 1000.0)).unwrap_or_else(|| "—".into())) (warn(flags.contains(&TalkFlag::Impatient)))
                        small.muted { " ≥ " (format!("{:.1} s", targets.patience_min_ms as f64 / 1000.0)) } }
                    dt { (lang.t().rep_questions) }
                    dd { (st.rep_questions) " · " (format!("{:.0}", st.questions_per_hour)) (lang.t().hour) (warn(flags.contains(&TalkFlag::FewQuestions)))
                        small.muted { " ≥ " (targets.questions_per_hour_min) } }
                    @if let Some(b) = st.business_share {
                        dt { (lang.t().customer_s_business_vs_product) }
                        dd { (format!("{:.0}% / {:.0}%", b * 100.0, (1.0 - b) * 100.0)) }
                    }
                }
                @if st.inferred {
                    p.muted { (lang.t().who_spoke_is_inferred_from_voices) }
                }
            } @else if c.media.times_estimated() {
                p.muted { (lang.t().uploaded_text_had_no_times_so) }
            } @else {
                p.muted { (lang.t().nobody_in_this_transcript_is_placed) }
            }
            @if !speakers.is_empty() && matches!(c.status, ConversationStatus::Completed | ConversationStatus::Failed) {
                details.edit-speakers {
                    summary { (lang.t().who_is_who) }
                    @for (name, role, known) in &speakers {
                        form.inline-form method="post" action={ "/calls/" (c.id) "/speakers" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="speaker" value=(name);
                            span.speaker { (name) @if !known { small.muted { (lang.t().inferred) } } }
                            select name="role" aria-label=(lang.t().side) {
                                option value="rep" selected[*role == Some(salesai_core::transcript::Role::Rep)] { (lang.t().rep) }
                                option value="customer" selected[*role == Some(salesai_core::transcript::Role::Customer)] { (lang.t().customer) }
                            }
                            button type="submit" { (lang.t().save_and_analyse_again) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct SpeakerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    speaker: String,
    #[serde(default)]
    role: String,
}

/// `POST /calls/{id}/speakers`: a person says which side a speaker is on; the transcript is
/// corrected and the call analysed again (see `salesai_core::pipeline::correct_speaker`).
pub async fn speakers(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<SpeakerForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    let c = reachable(&app, &viewer, &id).await?;
    let Some(role) = salesai_core::transcript::Role::parse(&form.role) else {
        return Err(PageError::new(
            StatusCode::BAD_REQUEST,
            Some(lang),
            lang.t().choose_rep_or_customer,
        ));
    };
    match salesai_core::pipeline::correct_speaker(app.store.as_ref(), &c, &form.speaker, role).await
    {
        Ok(_) => {
            tracing::info!(event = "conversation.speaker_corrected", conversation_id = %c.id, speaker = %form.speaker, role = role.as_str(), by = %viewer.principal.name, "speaker corrected; analysing again");
            Ok(Redirect::to(&format!("/calls/{}", c.id)).into_response())
        }
        Err(salesai_core::pipeline::RestartError::Conflict(msg)) => {
            Err(PageError::new(StatusCode::CONFLICT, Some(lang), &msg))
        }
        Err(salesai_core::pipeline::RestartError::Invalid(msg)) => {
            Err(PageError::new(StatusCode::BAD_REQUEST, Some(lang), &msg))
        }
        Err(salesai_core::pipeline::RestartError::Store(e)) => Err(e.into()),
    }
}

fn quote(quote: &str, start_ms: u64) -> Markup {
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
                            div.markdown { (super::markdown::render(shown)) }
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

/// What a `Range` header asks of a resource of `size` bytes (RFC 9110 §14.2).
#[derive(Debug, PartialEq)]
enum RangeAsk {
    /// The whole resource (200): no range salesai serves — another unit (`items=0-5`), several
    /// ranges (`bytes=0-1,5-6`; a server may answer those with the whole), or one it cannot
    /// read. RFC 9110 says to ignore these, not to refuse them.
    Whole,
    /// One satisfiable byte range (206).
    Part(std::ops::Range<u64>),
    /// One well-formed byte range that starts past the end (416).
    Unsatisfiable,
}

/// Reads a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range against `size`.
fn parse_range(header: &str, size: u64) -> RangeAsk {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return RangeAsk::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeAsk::Whole;
    };
    let number = |s: &str| s.parse::<u64>().ok();
    let (start, end) = match (a.trim(), b.trim()) {
        ("", "") => return RangeAsk::Whole,
        ("", n) => match number(n) {
            Some(0) => return RangeAsk::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size),
            None => return RangeAsk::Whole,
        },
        (a, "") => match number(a) {
            Some(a) => (a, size),
            None => return RangeAsk::Whole,
        },
        (a, b) => match (number(a), number(b)) {
            (Some(a), Some(b)) if a <= b => (a, b.saturating_add(1).min(size)),
            _ => return RangeAsk::Whole,
        },
    };
    if start < end && start < size {
        RangeAsk::Part(start..end)
    } else {
        RangeAsk::Unsatisfiable
    }
}

/// `GET /calls/{id}/audio`: the recording, streamed from blob storage with HTTP Range support.
pub async fn audio(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let c = reachable(&app, &viewer, &id).await?;
    let key = c
        .blob_key
        .as_deref()
        .filter(|_| c.media.kind == Some(UploadKind::Audio))
        .and_then(|k| BlobKey::parse(k).ok())
        .ok_or_else(|| PageError::not_found(lang))?;
    let unavailable = |e: salesai_core::blob::BlobError| {
        tracing::warn!(event = "web.audio_unavailable", conversation_id = %c.id, error = %e, "recording could not be read");
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(lang),
            lang.t().recording_cannot_be_read_from_storage,
        )
    };
    let size = app
        .blobs
        .size(&key)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| PageError::not_found(lang))?;
    let kind = match c.media.format.as_deref() {
        Some("mp3") => "audio/mpeg",
        Some("m4a") | Some("mp4") => "audio/mp4",
        Some("wav") => "audio/wav",
        Some("ogg") | Some("opus") => "audio/ogg",
        Some("flac") => "audio/flac",
        Some("webm") => "audio/webm",
        _ => "application/octet-stream",
    };
    let requested = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(RangeAsk::Whole, |raw| parse_range(raw, size));
    let mut response = match requested {
        RangeAsk::Part(range) => {
            let stream = app
                .blobs
                .get_range(&key, range.clone())
                .await
                .map_err(unavailable)?;
            let mut r = Response::new(Body::from_stream(stream));
            *r.status_mut() = StatusCode::PARTIAL_CONTENT;
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
                    .expect("digits"),
            );
            r.headers_mut().insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(range.end - range.start),
            );
            r
        }
        RangeAsk::Unsatisfiable => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("digits"),
            );
            return Ok(r);
        }
        RangeAsk::Whole => {
            let stream = app.blobs.get_stream(&key).await.map_err(unavailable)?;
            let mut r = Response::new(Body::from_stream(stream));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            r
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}

/// Runs a restart and goes back to the call page, or shows why it was refused.
async fn restart(
    app: &App,
    viewer: &Viewer,
    id: &str,
    form: &CsrfForm,
    reanalyze: bool,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let c = reachable(app, viewer, id).await?;
    let done = if reanalyze {
        salesai_core::pipeline::reanalyze(app.store.as_ref(), &c).await
    } else {
        salesai_core::pipeline::retry(app.store.as_ref(), &c).await
    };
    match done {
        Ok(r) => {
            tracing::info!(event = if reanalyze { "conversation.reanalyzed" } else { "conversation.retried" }, conversation_id = %c.id, resume_at = r.resumes_at, by = %viewer.principal.name, "restarted from the web app");
            Ok(Redirect::to(&format!("/calls/{}", c.id)).into_response())
        }
        Err(salesai_core::pipeline::RestartError::Conflict(msg)) => Err(PageError::new(
            StatusCode::CONFLICT,
            Some(viewer.lang),
            &msg,
        )),
        Err(salesai_core::pipeline::RestartError::Invalid(msg)) => Err(PageError::new(
            StatusCode::BAD_REQUEST,
            Some(viewer.lang),
            &msg,
        )),
        Err(salesai_core::pipeline::RestartError::Store(e)) => Err(e.into()),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct NotesForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    markdown: String,
}

/// `POST /calls/{id}/notes`: saves edited meeting notes (`action=save`) or drops the edits so
/// the generated notes show again (`action=restore`). Whoever may open the call may edit them.
pub async fn notes(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<NotesForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    let c = reachable(&app, &viewer, &id).await?;
    match form.action.as_str() {
        "save" => {
            let text = form.markdown.replace("\r\n", "\n");
            if text.trim().is_empty() {
                return Err(PageError::new(
                    StatusCode::BAD_REQUEST,
                    Some(lang),
                    lang.t().notes_are_empty_write_something_or,
                ));
            }
            match app
                .store
                .save_meeting_notes(&c.id, &text, &viewer.session.person.user.id)
                .await
            {
                Ok(()) => {}
                Err(StoreError::InvalidInput(msg)) => {
                    return Err(PageError::new(StatusCode::BAD_REQUEST, Some(lang), &msg));
                }
                Err(e) => return Err(e.into()),
            }
            tracing::info!(event = "conversation.notes_edited", conversation_id = %c.id, by = %viewer.principal.name, "meeting notes edited");
        }
        "restore" => {
            app.store.clear_meeting_notes(&c.id).await?;
            tracing::info!(event = "conversation.notes_restored", conversation_id = %c.id, by = %viewer.principal.name, "generated meeting notes restored");
        }
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                Some(lang),
                lang.t().choose_save_or_restore,
            ));
        }
    }
    Ok(Redirect::to(&format!("/calls/{}#notes", c.id)).into_response())
}

/// `POST /calls/{id}/retry`.
pub async fn retry(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    restart(&app, &viewer, &id, &form, false).await
}

/// `POST /calls/{id}/reanalyze`.
pub async fn reanalyze(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    restart(&app, &viewer, &id, &form, true).await
}

/// `POST /calls/{id}/delete` (admins).
pub async fn delete(
    State(app): State<App>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    viewer
        .require(&[Role::Admin])
        .map_err(|_| PageError::forbidden(lang, lang.t().only_admin_can_delete_call))?;
    let c = reachable(&app, &viewer, &id).await?;
    crate::routes::conversations::delete_with_upload(&app, &c)
        .await
        .map_err(|e| PageError::from_api(lang, e))?;
    tracing::info!(event = "conversation.deleted", conversation_id = %c.id, case_number = c.case_number.as_str(), by = %viewer.principal.name, "conversation deleted from the web app");
    Ok(Redirect::to("/calls").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_without_a_time_shows_as_a_date() {
        use chrono::TimeZone;
        let mut c: Conversation = serde_json::from_value(serde_json::json!({
            "id": "x", "case_number": "202611-SA0001", "opportunity_id": "o",
            "customer_number": "C-1", "customer_name": "", "product_line": "default",
            "conversation_type": "discovery_call", "title": "", "status": "pending",
            "error": null, "blob_key": null, "rep_user_id": null, "conversation_date": null,
            "media": {}, "metadata": {}, "slack": null,
            "created_at": "2026-11-29T01:30:00Z", "updated_at": "2026-11-29T01:30:00Z"
        }))
        .unwrap();
        let tz = chrono_tz::Asia::Taipei;
        assert_eq!(
            call_when(&c, tz),
            "2026-11-29 09:30",
            "no date: the upload time"
        );
        c.conversation_date = Some(chrono::Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap());
        assert_eq!(call_when(&c, tz), "2026-11-20", "a date alone, not 08:00");
        c.conversation_date = Some(
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 20, 6, 15, 0)
                .unwrap(),
        );
        assert_eq!(call_when(&c, tz), "2026-11-20 14:15");
    }

    #[test]
    fn ranges_parse_like_browsers_send_them() {
        use RangeAsk::*;
        assert_eq!(parse_range("bytes=0-", 100), Part(0..100));
        assert_eq!(parse_range("bytes=10-19", 100), Part(10..20));
        assert_eq!(parse_range("bytes=90-500", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("Bytes=-500", 100), Part(0..100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        // Ignored (RFC 9110 §14.2): the whole file, 200.
        assert_eq!(parse_range("bytes=5-2", 100), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=x-1", 100), Whole);
        assert_eq!(parse_range("bytes", 100), Whole);
    }

    #[test]
    fn highlights_are_escaped_and_marked() {
        let html = highlight("The <b>budget</b> is 50 萬 per 月", "budget").into_string();
        assert!(
            html.contains("&lt;b&gt;<mark>budget</mark>&lt;/b&gt;"),
            "{html}"
        );
        let zh = highlight("我們每個月的預算大概五萬", "預算").into_string();
        assert!(zh.contains("<mark>預算</mark>"), "{zh}");
        assert_eq!(highlight("abc", "").into_string(), "abc");
    }
}
