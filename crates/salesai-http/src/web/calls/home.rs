//! `GET /`: home — the week in numbers, what needs attention, recent calls.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::html;
use salesai_core::App;
use salesai_core::domain::ConversationStatus;
use salesai_core::store::ConversationFilter;

use super::super::layout::{Nav, page};
use super::super::session::{PageError, Viewer};
use crate::auth::Authorize;

use super::list::call_table;

/// `GET /`: my recent calls, what needs attention, the week in numbers.
pub async fn home(State(app): State<App>, viewer: Viewer) -> Result<Response, PageError> {
    let lang = viewer.lang;
    let reach = viewer.reach();
    // The week is the calls held in it (by the call's date), like every list.
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
            // However long ago the call was held: a failure waits for someone until it is
            // retried or deleted (newest call first, five at most).
            status: Some(ConversationStatus::Failed),
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
        @if recent.is_empty() {
            // Nothing yet: where the first call comes from.
            section.card.empty-state {
                h2 { (lang.t().no_calls_yet) }
                p { (lang.t().upload_a_recording_or_a_transcript_and) }
                p.actions {
                    a.button.primary href="/upload" { (lang.t().upload_your_first_call) }
                }
                p.muted { (lang.t().or_drop_a_recording_into_slack) }
            }
        } @else {
            section.card {
                h2 { (if mine { lang.t().my_recent_calls } else { lang.t().recent_calls }) }
                (call_table(lang, &app, &recent, None))
                p { a href="/calls" { (lang.t().see_all_calls) } }
            }
        }
    };
    Ok(page(&viewer, Nav::Home, "/", lang.t().home, body).into_response())
}
