//! The pages about calls: home, the calls list with search, the call page with its player,
//! transcript and analysis, the audio stream, and the actions on a call — one module each;
//! here what they share (who may open a call, how a call is named, pills and badges).

use maud::{Markup, html};
use salesai_core::App;
use salesai_core::domain::{Conversation, ConversationStatus};
use salesai_core::i18n::Label;
use salesai_core::report::Standing;

use super::chart;
use super::i18n::{Lang, when};
use super::session::{PageError, Viewer};
use crate::auth::Authorize;

mod actions;
mod audio;
mod home;
mod list;
mod page;
mod transcript;

pub use actions::{delete, notes, reanalyze, retry, speakers};
pub use audio::audio;
pub use home::home;
pub use list::list;
pub use page::{show, status};

/// A call the viewer may open, or the reason they may not.
pub(super) async fn reachable(
    app: &App,
    viewer: &Viewer,
    id: &str,
) -> Result<Conversation, PageError> {
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

pub(super) fn status_pill(lang: Lang, status: ConversationStatus) -> Markup {
    html! { span class=(format!("pill status-{}", status.as_str())) { (lang.status(status)) } }
}

pub(super) fn score_badge(lang: Lang, score: Option<u8>, standing: Option<Standing>) -> Markup {
    let word = standing.map(|s| s.label(lang.t()));
    html! {
        @match score {
            Some(s) => span class=(format!("score tone-{}", chart::tone(s))) title=(word.unwrap_or("")) {
                strong { (s) } @if let Some(w) = word { " " small { (w) } }
            },
            None => span.score.none { "—" },
        }
    }
}

pub(super) fn customer(c: &Conversation) -> Markup {
    html! {
        span.customer {
            @if c.customer_name.is_empty() { (c.customer_number) } @else { (c.customer_name) }
        }
    }
}

/// A quote that jumps to its moment in the call.
/// When a call happened, as a person reads it: the date alone when only a date was given (the
/// upload form asks for a day, stored as that day's midnight UTC, which would otherwise show as
/// 08:00 in Taipei), else the date and time in the team's time zone; the upload time when no
/// date was given at all.
pub(super) fn call_when(c: &Conversation, tz: chrono_tz::Tz) -> String {
    match c.conversation_date {
        Some(d) if d.time() == chrono::NaiveTime::MIN => d.format("%Y-%m-%d").to_string(),
        Some(d) => when(d, tz),
        None => when(c.created_at, tz),
    }
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
}
