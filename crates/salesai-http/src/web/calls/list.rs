//! `GET /calls`: the calls list — filters, search with the matching line, keyset pages.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeZone, Utc};
use maud::{Markup, PreEscaped, html};
use salesai_core::App;
use salesai_core::domain::{ConversationStatus, ConversationType, Role};
use salesai_core::store::{CallCursor, CallRow, CallSort, ConversationFilter, Person};
use serde::Deserialize;

use super::super::cookies::encode;
use super::super::i18n::{Lang, clock};
use super::super::layout::{Nav, page};
use super::super::session::{PageError, Viewer};
use crate::auth::Authorize;

use super::*;

pub(super) const PAGE_SIZE: u32 = 25;

/// The calls as a table on wide screens and as cards on phones (the same markup).
pub(super) fn call_table(lang: Lang, app: &App, calls: &[CallRow], search: Option<&str>) -> Markup {
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
                            td.num data-label=(lang.t().score) { (score_badge(lang, row.score, salesai_core::report::Standing::of_call(row))) }
                        }
                    }
                }
            }
        }
    }
}

/// `text` with each case-insensitive occurrence of `term` marked, escaped, shortened around the
/// first match.
pub(super) fn highlight(text: &str, term: &str) -> Markup {
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

pub(super) fn some(v: &Option<String>) -> Option<&str> {
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
pub(super) fn day_start(raw: &str, tz: chrono_tz::Tz) -> Option<chrono::DateTime<Utc>> {
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
        let cursor = CallCursor::after(last, last_row.score.filter(|_| sort.by_score())).encode();
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
                            @for l in app.product_lines.iter() { option value=(l.id) selected[selected(&q.line, &l.id)] { (l.name_in(lang.0)) } }
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

#[cfg(test)]
mod tests {
    use super::*;

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
