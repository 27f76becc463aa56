//! `/slack/events`: the URL check, and files shared in watched channels or DMs.
//!
//! `file_shared` and `message`/`file_share` may both arrive for one file, Slack retries
//! deliveries it thinks failed, and a retry may land on another node: every file becomes one
//! `slack.prompt` job whose idempotency key is the file id (in the database, so all nodes
//! agree), and event ids are recorded so repeats are counted and skipped.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use salesai_core::queue::NewJob;
use salesai_core::store::{DeliveryTaken, SlackDelivery};
use serde_json::{Value, json};

use crate::Slack;
use crate::jobs::PromptJob;
use crate::reply::{ack, ok_json};

pub(crate) async fn handle(slack: &Slack, headers: &HeaderMap, body: &[u8]) -> Response {
    let Ok(envelope) = serde_json::from_slice::<Value>(body) else {
        return (StatusCode::BAD_REQUEST, "the body is not JSON").into_response();
    };
    let metrics = &slack.app.metrics;
    match envelope["type"].as_str() {
        Some("url_verification") => {
            metrics.slack_request("url_verification", "handled");
            ok_json(json!({ "challenge": envelope["challenge"] }))
        }
        Some("event_callback") => {
            let event = &envelope["event"];
            let kind = event["type"].as_str().unwrap_or("unknown");
            let retry = headers
                .get("x-slack-retry-num")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0");
            let files = shared_files(slack, event);
            if files.is_empty() {
                metrics.slack_request(kind, "ignored");
                return ack();
            }
            let event_id = envelope["event_id"].as_str().unwrap_or_default();
            // In the database before Slack hears 200, committed with whatever other events
            // arrived meanwhile (the inbox); the enqueue is idempotent, so a 503 and Slack's
            // retry lose nothing.
            let delivery = SlackDelivery {
                jobs: files,
                event_id: Some(event_id.to_owned()).filter(|id| !id.is_empty()),
            };
            let DeliveryTaken {
                created,
                first_delivery,
            } = match slack.inbox().take(delivery).await {
                Ok(taken) => taken,
                Err(err) => {
                    tracing::error!(event = "slack.event_failed", error = %err, "could not queue a shared file; Slack will retry");
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            };
            let outcome = if created { "handled" } else { "duplicate" };
            metrics.slack_request(kind, outcome);
            tracing::info!(
                event = "slack.event",
                kind,
                event_id,
                retry_num = retry,
                first_delivery,
                outcome,
                "Slack event"
            );
            ack()
        }
        _ => {
            metrics.slack_request("unknown", "ignored");
            ack()
        }
    }
}

/// The prompt jobs for the files an event shares in a watched channel or DM (none for bots'
/// own files, other message subtypes and unwatched channels).
fn shared_files(slack: &Slack, event: &Value) -> Vec<NewJob> {
    if event.get("bot_id").is_some_and(|b| !b.is_null()) {
        return Vec::new();
    }
    let (channel, user, ids, thread_ts): (&str, &str, Vec<&str>, Option<&str>) =
        match (event["type"].as_str(), event["subtype"].as_str()) {
            (Some("file_shared"), _) => (
                event["channel_id"].as_str().unwrap_or_default(),
                event["user_id"].as_str().unwrap_or_default(),
                event["file_id"].as_str().into_iter().collect(),
                None,
            ),
            (Some("message"), Some("file_share")) => (
                event["channel"].as_str().unwrap_or_default(),
                event["user"].as_str().unwrap_or_default(),
                event["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["id"].as_str())
                    .collect(),
                event["thread_ts"].as_str().or_else(|| event["ts"].as_str()),
            ),
            _ => return Vec::new(),
        };
    let Some(line) = slack
        .config
        .product_line_for(channel, event["channel_type"].as_str())
    else {
        return Vec::new();
    };
    ids.into_iter()
        .filter(|id| !id.is_empty() && id.len() <= 64)
        .map(|file_id| {
            NewJob::of(&PromptJob {
                file_id: file_id.to_owned(),
                channel_id: channel.to_owned(),
                user_id: Some(user.to_owned()).filter(|u| !u.is_empty()),
                thread_ts: thread_ts.map(str::to_owned),
                product_line: line.to_owned(),
            })
            .idempotency_key(format!("slack-file:{file_id}"))
        })
        .collect()
}
