//! `/slack/commands`: `/analyze`, `/opportunity`, `/report`.
//!
//! Lookups are single database reads and are answered in the acknowledgement; `/report`
//! aggregates (and may call `users.info`), so it is acknowledged at once and answered through
//! `response_url` by a job. `help`, an empty line or unknown input answer with usage.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salesai_core::domain::CustomerNumber;
use salesai_core::pipeline::{self, RestartError};
use salesai_core::queue::{NOTIFICATIONS, NewJob};
use salesai_core::store::{ConversationFilter, StoreError};
use serde_json::json;

use crate::Slack;
use crate::blocks::ephemeral;
use crate::jobs::REPORT;
use crate::routes::{form, ok_json};

/// Usage of each command.
pub const ANALYZE_USAGE: &str = "*/analyze* — a conversation's status and scores\n• `/analyze <case number or id>` — status and scores\n• `/analyze <case number> rerun` — run the analysis again";
/// Usage of `/opportunity`.
pub const OPPORTUNITY_USAGE: &str = "*/opportunity* — customers\n• `/opportunity <customer number or name>` — look one up, with its latest score and conversations\n• `/opportunity list` — the newest customers\n• `/opportunity create <customer number> <name>` — add a customer";
/// Usage of `/report`.
pub const REPORT_USAGE: &str = "*/report* — summaries of the last 7 days\n• `/report` — yours: uploads, average score, weakest dimension\n• `/report team` — the team's, for managers";

pub(crate) async fn handle(slack: &Slack, body: &[u8]) -> Response {
    let f = form(body);
    let command = f.get("command").map(String::as_str).unwrap_or_default();
    let text = f.get("text").map(|s| s.trim()).unwrap_or_default();
    slack.app.metrics.slack_request(command, "handled");
    let answer = match command {
        "/analyze" => analyze(slack, text).await,
        "/opportunity" => opportunity(slack, text, &f).await,
        "/report" => report(slack, text, &f).await,
        _ => Ok(format!(
            "salesai does not know {command}.\n\n{ANALYZE_USAGE}\n\n{OPPORTUNITY_USAGE}\n\n{REPORT_USAGE}"
        )),
    };
    match answer {
        Ok(text) => ok_json(ephemeral(&text)),
        Err(err) => {
            tracing::error!(event = "slack.command_failed", command, error = %err, "a slash command failed");
            // Slack shows a 200's text to the user; a 5xx shows a generic failure.
            (
                StatusCode::OK,
                axum::Json(ephemeral(
                    "salesai could not answer just now (its database is unavailable). Try again in a minute.",
                )),
            )
                .into_response()
        }
    }
}

fn is_help(text: &str) -> bool {
    text.is_empty() || text.eq_ignore_ascii_case("help")
}

async fn analyze(slack: &Slack, text: &str) -> Result<String, StoreError> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (target, rerun) = match words.as_slice() {
        [t] if !is_help(t) => (*t, false),
        [t, r] if r.eq_ignore_ascii_case("rerun") => (*t, true),
        _ => return Ok(ANALYZE_USAGE.to_owned()),
    };
    let store = slack.app.store.as_ref();
    let Some(c) = pipeline::find(store, target).await? else {
        return Ok(format!("No conversation {target}.\n\n{ANALYZE_USAGE}"));
    };
    if rerun {
        return Ok(match pipeline::reanalyze(store, &c).await {
            Ok(_) => format!(
                "🔁 Re-running the analysis of {}; the result updates its card in the thread.",
                c.case_number.as_str()
            ),
            Err(RestartError::Conflict(msg)) => msg,
            Err(RestartError::Store(err)) => return Err(err),
        });
    }
    let mut out = format!(
        "*{}* · {} · {}",
        c.case_number.as_str(),
        c.product_line,
        c.status.as_str()
    );
    if let Some(e) = &c.error {
        out.push_str(&format!(
            "\nFailed at {}: `{}` {}",
            e.stage.as_str(),
            e.code,
            e.message
        ));
    }
    if let Some(a) = store.get_analysis(&c.id).await? {
        out.push_str(&format!(
            "\nOverall *{}/100* ({}) · Pain {} · Decision {} · Champion {} · Metrics {}",
            a.overall_score.value(),
            a.qualification,
            a.pain_score.value(),
            a.decision_score.value(),
            a.champion_score.value(),
            a.metrics_score.value()
        ));
    }
    if let Some(url) = slack.report_url(&c.id) {
        out.push_str(&format!("\n<{url}|Full report>"));
    }
    Ok(out)
}

async fn opportunity(
    slack: &Slack,
    text: &str,
    f: &BTreeMap<String, String>,
) -> Result<String, StoreError> {
    let store = slack.app.store.as_ref();
    if is_help(text) {
        return Ok(OPPORTUNITY_USAGE.to_owned());
    }
    let (first, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    if first.eq_ignore_ascii_case("list") && rest.trim().is_empty() {
        let list = store.search_opportunities("", 10).await?;
        if list.is_empty() {
            return Ok(
                "No customers yet. Add one with `/opportunity create <customer number> <name>`."
                    .into(),
            );
        }
        let rows: Vec<String> = list
            .iter()
            .map(|o| {
                format!(
                    "• `{}` {} · {} · score {}",
                    o.customer_number,
                    o.company_name,
                    o.status,
                    o.latest_score.map_or("–".to_owned(), |s| s.to_string())
                )
            })
            .collect();
        return Ok(format!("*Newest customers*\n{}", rows.join("\n")));
    }
    if first.eq_ignore_ascii_case("create") {
        let rest = rest.trim();
        let (number, name) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let Ok(number) = CustomerNumber::parse(number) else {
            return Ok(format!(
                "`{number}` is not a customer number (letters, digits, - and _).\n\n{OPPORTUNITY_USAGE}"
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Ok(format!("Give the customer a name.\n\n{OPPORTUNITY_USAGE}"));
        }
        let channel = f.get("channel_id").map(String::as_str).unwrap_or_default();
        let line = slack
            .config
            .product_line_for(channel, None)
            .unwrap_or(&slack.config.dm_product_line)
            .to_owned();
        let user_id = f.get("user_id").map(String::as_str).unwrap_or_default();
        let user_name = f.get("user_name").map(String::as_str).unwrap_or(user_id);
        let owner = store
            .find_or_create_user(None, Some(user_id), user_name)
            .await?;
        return Ok(
            match store
                .create_opportunity(
                    number.as_str(),
                    &name.chars().take(200).collect::<String>(),
                    &line,
                    Some(&owner),
                )
                .await
            {
                Ok(o) => format!(
                    "✅ Created `{}` {} ({}).",
                    o.customer_number, o.company_name, o.product_line
                ),
                Err(StoreError::Conflict(msg)) => {
                    format!("{msg}; look it up with `/opportunity {}`.", number.as_str())
                }
                Err(other) => return Err(other),
            },
        );
    }
    let found = match store.get_opportunity(text).await? {
        Some(o) => vec![o],
        None => store.search_opportunities(text, 5).await?,
    };
    match found.as_slice() {
        [] => Ok(format!(
            "No customer matches “{text}”.\n\n{OPPORTUNITY_USAGE}"
        )),
        [o] => {
            let conversations = store
                .list_conversations(&ConversationFilter {
                    customer_number: Some(o.customer_number.clone()),
                    limit: 5,
                    ..Default::default()
                })
                .await?;
            let mut out = format!(
                "*{}* `{}` · {} · {} · latest score *{}* · {} conversation(s)",
                o.company_name,
                o.customer_number,
                o.product_line,
                o.status,
                o.latest_score.map_or("–".to_owned(), |s| s.to_string()),
                o.conversations
            );
            for c in conversations {
                out.push_str(&format!(
                    "\n• {} · {} · {}",
                    c.case_number.as_str(),
                    c.status.as_str(),
                    c.created_at.format("%Y-%m-%d")
                ));
            }
            Ok(out)
        }
        many => Ok(format!(
            "{} customers match:\n{}",
            many.len(),
            many.iter()
                .map(|o| format!("• `{}` {}", o.customer_number, o.company_name))
                .collect::<Vec<_>>()
                .join("\n")
        )),
    }
}

async fn report(
    slack: &Slack,
    text: &str,
    f: &BTreeMap<String, String>,
) -> Result<String, StoreError> {
    let team = match text.to_ascii_lowercase().as_str() {
        "" | "me" | "my" => false,
        "team" => true,
        _ => return Ok(REPORT_USAGE.to_owned()),
    };
    let Some(response_url) = f.get("response_url") else {
        return Ok(REPORT_USAGE.to_owned());
    };
    let job = NewJob::new(
        NOTIFICATIONS,
        REPORT,
        json!({
            "team": team,
            "user_id": f.get("user_id"),
            "user_name": f.get("user_name"),
            "response_url": response_url,
        }),
    );
    slack.app.store.enqueue(job).await?;
    Ok(if team {
        "⏳ Preparing the team report…".into()
    } else {
        "⏳ Preparing your report…".into()
    })
}
