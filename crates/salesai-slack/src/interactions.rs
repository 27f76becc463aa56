//! `/slack/interactions`: the buttons salesai renders and the upload modal.
//!
//! Every button has a handler: "Analyze" opens the modal (at once: Slack's `trigger_id` lives
//! three seconds), "Retry" resumes a failed conversation, the report link only needs an
//! acknowledgement. Submitting the modal validates the answers (inline errors in the modal)
//! and creates the conversation, whose first job downloads the file. "Who is who?" opens a
//! modal listing the speakers found in a call; submitting it puts the chosen one on the rep's
//! side (`pipeline::correct_speaker`) and analyses the call again — for the people who may
//! reach that call, by the same rule as the web app.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use salesai_core::domain::{Media, SlackThread};
use salesai_core::intake::{Intake, Source};
use salesai_core::pipeline::{self, RestartError};
use salesai_core::queue::NewJob;
use serde_json::{Value, json};

use crate::Slack;
use crate::access::SlackUser;
use crate::blocks::{
    self, ACTION_OPEN_UPLOAD, ACTION_REPORT_LINK, ACTION_RETRY, ACTION_SPEAKERS, FileRef,
    SPEAKERS_CALLBACK, UPLOAD_CALLBACK,
};
use crate::jobs::RespondJob;
use crate::reply::{ack, form, ok_json};
use crate::text::Language;

pub(crate) async fn handle(slack: &Slack, body: &[u8]) -> Response {
    let fields = form(body);
    let Some(payload) = fields
        .get("payload")
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    else {
        return (StatusCode::BAD_REQUEST, "no payload").into_response();
    };
    let kind = payload["type"].as_str().unwrap_or("unknown");
    match kind {
        "block_actions" => {
            let action = &payload["actions"][0];
            let action_id = action["action_id"].as_str().unwrap_or_default();
            slack.app.metrics.slack_request(action_id, "handled");
            match action_id {
                ACTION_OPEN_UPLOAD => open_upload(slack, &payload, action).await,
                ACTION_RETRY => retry(slack, &payload, action).await,
                ACTION_SPEAKERS => open_speakers(slack, &payload, action).await,
                ACTION_REPORT_LINK => ack(),
                other => {
                    tracing::info!(
                        event = "slack.unknown_action",
                        action_id = other,
                        "ignored an unknown action"
                    );
                    ack()
                }
            }
        }
        "view_submission" if payload["view"]["callback_id"] == UPLOAD_CALLBACK => {
            slack
                .app
                .metrics
                .slack_request("view_submission", "handled");
            submit(slack, &payload).await
        }
        "view_submission" if payload["view"]["callback_id"] == SPEAKERS_CALLBACK => {
            slack
                .app
                .metrics
                .slack_request("speakers_submission", "handled");
            submit_speakers(slack, &payload).await
        }
        _ => {
            slack.app.metrics.slack_request(kind, "ignored");
            ack()
        }
    }
}

/// The action ids salesai's buttons carry (the authorisation matrix test reads this list: a
/// button added without rows there fails it).
pub const ACTIONS: &[&str] = &[
    ACTION_OPEN_UPLOAD,
    ACTION_RETRY,
    ACTION_SPEAKERS,
    ACTION_REPORT_LINK,
];

/// Whether the person behind the click in `payload` may act on `conversation` (the call's rep,
/// a manager of their team, an admin — the web app's rule): `Ok(Err(words))` tells them why
/// not. Someone salesai does not know, or deactivated, may not.
async fn clicker_may_reach(
    slack: &Slack,
    payload: &Value,
    lang: Language,
    conversation: Option<&salesai_core::domain::Conversation>,
) -> salesai_core::store::StoreResult<Result<salesai_core::store::Person, String>> {
    let store = slack.app.store.as_ref();
    let slack_user = payload["user"]["id"].as_str().unwrap_or_default();
    let who = SlackUser::resolve(store, slack_user).await?;
    let (person, principal) = match who.person(lang) {
        Ok(found) => found,
        Err(refusal) => return Ok(Err(refusal.to_owned())),
    };
    if let Some(conversation) = conversation
        && !crate::access::may_reach(store, &principal, conversation).await?
    {
        tracing::info!(event = "slack.action_denied", conversation_id = %conversation.id, slack_user_id = %slack_user, "a Slack action on a call out of reach was refused");
        return Ok(Err(lang.t().this_call_belongs_to_rep_outside_2.to_owned()));
    }
    Ok(Ok(person.clone()))
}

async fn open_upload(slack: &Slack, payload: &Value, action: &Value) -> Response {
    let Some(file) = action["value"]
        .as_str()
        .and_then(|v| serde_json::from_str::<FileRef>(v).ok())
    else {
        return ack();
    };
    let line = slack.app.product_line(&file.product_line).clone();
    let lang = Language::of(&line.language);
    match clicker_may_reach(slack, payload, lang, None).await {
        Ok(Ok(_)) => {}
        Ok(Err(refusal)) => return refuse(slack, payload, &refusal).await,
        Err(err) => {
            tracing::error!(event = "slack.open_upload_failed", error = %err, "could not check who clicked");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let view = blocks::upload_modal(lang, &line, &file);
    open_modal(
        slack,
        payload,
        view,
        "upload",
        lang.t().form_did_not_open_slack_was,
    )
    .await
}

/// Opens `view` for the click in `payload` at once (Slack's `trigger_id` lives three seconds).
/// When Slack refuses or is slow, the person who clicked and saw nothing is told `retry_hint`.
async fn open_modal(
    slack: &Slack,
    payload: &Value,
    view: Value,
    form: &str,
    retry_hint: &str,
) -> Response {
    let trigger = payload["trigger_id"].as_str().unwrap_or_default();
    let body = json!({ "trigger_id": trigger, "view": view });
    let call = slack.client.call_json("views.open", &body);
    let error = match tokio::time::timeout(std::time::Duration::from_millis(2500), call).await {
        Ok(Ok(_)) => return ack(),
        Ok(Err(err)) => err.to_string(),
        Err(_) => "Slack did not answer views.open in time".to_owned(),
    };
    tracing::error!(event = "slack.views_open_failed", form, error = %error, "could not open a form");
    if let Some(url) = payload["response_url"].as_str() {
        respond_later(slack, url, blocks::ephemeral(retry_hint)).await;
    }
    ack()
}

/// Tells the person who clicked why nothing happened (through the click's `response_url`).
async fn refuse(slack: &Slack, payload: &Value, words: &str) -> Response {
    if let Some(url) = payload["response_url"].as_str() {
        respond_later(slack, url, blocks::ephemeral(words)).await;
    }
    ack()
}

/// What a click on a call that is gone (or out of reach) is told.
fn gone(lang: Language, id: &str) -> String {
    lang.t()
        .conversation_id_no_longer_exists
        .replace("{id}", &blocks::escape(id))
}

async fn retry(slack: &Slack, payload: &Value, action: &Value) -> Response {
    let id = action["value"].as_str().unwrap_or_default();
    let found = pipeline::find(slack.app.store.as_ref(), id).await;
    let reply = match found {
        Ok(Some(conversation)) => {
            let lang = Language::of(&slack.app.product_line(&conversation.product_line).language);
            match clicker_may_reach(slack, payload, lang, Some(&conversation)).await {
                Ok(Ok(_)) => {}
                Ok(Err(refusal)) => return refuse(slack, payload, &refusal).await,
                Err(err) => {
                    tracing::error!(event = "slack.retry_failed", error = %err, "could not check who clicked");
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            }
            match pipeline::retry(slack.app.store.as_ref(), &conversation).await {
                Ok(restarted) => {
                    tracing::info!(event = "slack.retry", conversation_id = %restarted.id, resumes_at = restarted.resumes_at, "retry from Slack");
                    format!(
                        "🔁 {} {} — {}",
                        lang.t().slack_case,
                        conversation.case_number.as_str(),
                        lang.t().slack_retrying
                    )
                }
                Err(RestartError::Conflict(msg) | RestartError::Invalid(msg)) => {
                    blocks::escape(&msg)
                }
                Err(RestartError::Store(err)) => {
                    tracing::error!(event = "slack.retry_failed", error = %err, "retry from Slack failed");
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            }
        }
        Ok(None) => gone(Language::En, id),
        Err(err) => {
            tracing::error!(event = "slack.retry_failed", error = %err, "retry from Slack failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    if let Some(url) = payload["response_url"].as_str() {
        respond_later(slack, url, blocks::ephemeral(&reply)).await;
    }
    ack()
}

/// Opens the "Who is who?" modal for the conversation in the button's value.
async fn open_speakers(slack: &Slack, payload: &Value, action: &Value) -> Response {
    let id = action["value"].as_str().unwrap_or_default();
    let store = slack.app.store.as_ref();
    let found = match pipeline::find(store, id).await {
        Ok(found) => found,
        Err(err) => {
            tracing::error!(event = "slack.speakers_failed", error = %err, "could not read the conversation");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let Some(conversation) = found else {
        return refuse(slack, payload, &gone(Language::En, id)).await;
    };
    let lang = Language::of(&slack.app.product_line(&conversation.product_line).language);
    // Checked before anything of the call is read: the modal shows its speakers' first lines.
    match clicker_may_reach(slack, payload, lang, Some(&conversation)).await {
        Ok(Ok(_)) => {}
        Ok(Err(refusal)) => return refuse(slack, payload, &refusal).await,
        Err(err) => {
            tracing::error!(event = "slack.speakers_failed", error = %err, "could not check who clicked");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let transcript = match store.get_transcript(&conversation.id).await {
        Ok(transcript) => transcript,
        Err(err) => {
            tracing::error!(event = "slack.speakers_failed", error = %err, "could not read the transcript");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    // Each speaker once, in order of first appearance, with the first thing they said.
    let mut speakers: Vec<(String, String)> = Vec::new();
    let mut rep = None;
    for segment in &transcript {
        let Some(label) = segment.speaker.as_deref() else {
            continue;
        };
        if segment.role == Some(salesai_core::transcript::Role::Rep) && rep.is_none() {
            rep = Some(label.to_owned());
        }
        if !speakers.iter().any(|(l, _)| l == label) {
            speakers.push((label.to_owned(), segment.text.clone()));
        }
    }
    if speakers.is_empty() {
        if let Some(url) = payload["response_url"].as_str() {
            let text = lang.t().this_call_s_transcript_has_no;
            respond_later(slack, url, blocks::ephemeral(text)).await;
        }
        return ack();
    }
    let view = blocks::speakers_modal(lang, &conversation, &speakers, rep.as_deref());
    open_modal(
        slack,
        payload,
        view,
        "speakers",
        lang.t().form_did_not_open_slack_was_2,
    )
    .await
}

/// "Who is who?" submitted: the chosen speaker is the rep, checked against who may reach the
/// call; errors are shown in the modal.
async fn submit_speakers(slack: &Slack, payload: &Value) -> Response {
    let view = &payload["view"];
    let id = view["private_metadata"].as_str().unwrap_or_default();
    let speaker = view["state"]["values"]["rep"]["value"]["selected_option"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let store = slack.app.store.as_ref();
    let conversation = match pipeline::find(store, id).await {
        Ok(Some(conversation)) => conversation,
        Ok(None) => return modal_error(&gone(Language::En, id)),
        Err(err) => {
            tracing::error!(event = "slack.speakers_failed", error = %err, "could not read the conversation");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let lang = Language::of(&slack.app.product_line(&conversation.product_line).language);
    if speaker.is_empty() {
        return modal_error(lang.t().choose_rep);
    }
    // The same rule as the web app: the call's rep, a manager of their team, or an admin.
    let slack_user = payload["user"]["id"].as_str().unwrap_or_default();
    match clicker_may_reach(slack, payload, lang, Some(&conversation)).await {
        Ok(Ok(_)) => {}
        Ok(Err(reason)) => return modal_error(&reason),
        Err(err) => {
            tracing::error!(event = "slack.speakers_failed", error = %err, "could not check who may correct");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    match pipeline::correct_speaker(
        store,
        &conversation,
        &speaker,
        salesai_core::transcript::Role::Rep,
    )
    .await
    {
        Ok(_) => {
            tracing::info!(event = "conversation.speaker_corrected", conversation_id = %conversation.id, speaker = %speaker, role = "rep", slack_user_id = %slack_user, "speaker corrected from Slack; analysing again");
            ok_json(json!({
                "response_action": "update",
                "view": {
                    "type": "modal",
                    "title": blocks::plain(lang.t().slack_speakers_title, 24),
                    "close": blocks::plain(lang.t().slack_close, 24),
                    "blocks": [blocks::section(lang.t().slack_speakers_done)],
                },
            }))
        }
        Err(RestartError::Conflict(msg) | RestartError::Invalid(msg)) => modal_error(&msg),
        Err(RestartError::Store(err)) => {
            tracing::error!(event = "slack.speakers_failed", error = %err, "speaker correction failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// An answer that shows `message` under the modal's speaker choice.
fn modal_error(message: &str) -> Response {
    ok_json(json!({ "response_action": "errors", "errors": { "rep": message } }))
}

/// Queues an answer to a `response_url`.
pub(crate) async fn respond_later(slack: &Slack, response_url: &str, message: Value) {
    let job = NewJob::of(&RespondJob {
        response_url: response_url.to_owned(),
        message,
    });
    if let Err(err) = slack.app.store.enqueue(job).await {
        tracing::error!(event = "slack.respond_failed", error = %err, "could not queue a Slack answer");
    }
}

async fn submit(slack: &Slack, payload: &Value) -> Response {
    let view = &payload["view"];
    let Some(file) = view["private_metadata"]
        .as_str()
        .and_then(|m| serde_json::from_str::<FileRef>(m).ok())
    else {
        return (StatusCode::BAD_REQUEST, "the form lost its file").into_response();
    };
    let line = slack.app.product_line(&file.product_line).clone();
    let lang = Language::of(&line.language);
    let user_id = payload["user"]["id"].as_str().unwrap_or_default();
    let store = &slack.app.store;
    // The person who submits is the call's rep: someone salesai knows and lets in (checked
    // first: there is no point in fixing answers they cannot send).
    let rep = match clicker_may_reach(slack, payload, lang, None).await {
        Ok(Ok(person)) => Some(person.user.id),
        Ok(Err(refusal)) => {
            return ok_json(
                json!({ "response_action": "errors", "errors": { "customer_number": refusal } }),
            );
        }
        Err(err) => {
            tracing::error!(event = "slack.submit_failed", error = %err, "could not map the Slack user");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let submission = match blocks::parse_submission(lang, &line, &view["state"]["values"]) {
        Ok(s) => s,
        Err(errors) => {
            return ok_json(json!({ "response_action": "errors", "errors": errors }));
        }
    };
    let mut intake = Intake::new(Source::Slack, submission.customer_number);
    for (k, v) in &submission.answers {
        intake.fields.insert(k.clone(), json!(v));
    }
    intake
        .fields
        .insert("slack_file_id".into(), json!(file.file_id));
    intake.fields.insert("slack_user_id".into(), json!(user_id));
    intake.customer_name = Some(submission.customer_name);
    intake.conversation_date = Some(Utc::now());
    intake.rep_user_id = rep;
    intake.media = Media {
        bytes: Some(file.size),
        file_name: Some(file.name.clone()),
        ..Media::default()
    };
    intake.idempotency_key = Some(format!("slack-file:{}", file.file_id));
    intake.slack = Some(SlackThread {
        channel_id: file.channel_id.clone(),
        thread_ts: file.thread_ts.clone(),
    });
    let new = match intake.conversation(&line, Utc::now(), slack.app.time_zone) {
        Ok(new) => new,
        Err(err) => {
            tracing::error!(event = "slack.submit_failed", error = %err.0, "the product line's case prefix is invalid");
            return (StatusCode::INTERNAL_SERVER_ERROR, "bad case prefix").into_response();
        }
    };
    match store.create_conversation(new).await {
        Ok(created) => {
            tracing::info!(event = "slack.conversation_created", conversation_id = %created.id, case_number = created.case_number.as_str(), created = created.created, file_id = %file.file_id, "conversation created from Slack");
            ok_json(json!({ "response_action": "clear" }))
        }
        Err(err) => {
            tracing::error!(event = "slack.submit_failed", error = %err, "could not create the conversation");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
