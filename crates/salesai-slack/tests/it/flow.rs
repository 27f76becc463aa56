//! The upload flow from a signed event to the completed card.

use salesai_core::domain::ConversationStatus;
use salesai_core::product_line::SlackReply;
use salesai_core::store::ConversationFilter;
use salesai_db::story;
use salesai_db::testing::TestDb;
use salesai_slack::blocks::{ACTION_OPEN_UPLOAD, ACTION_RETRY};
use serde_json::{Value, json};

use crate::*;

/// Shares `file_id` in `channel`, waits for the prompt, clicks it, submits the form; returns
/// the conversation id.
async fn upload(
    h: &Harness,
    file_id: &str,
    channel: &str,
    user: &str,
    share_ts: &str,
    answers: &[(&str, &str)],
    selects: &[(&str, &str)],
) -> String {
    let r = h
        .event(
            &format!("Ev{file_id}"),
            file_shared(file_id, channel, user),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let prompt = wait_prompt(h, file_id).await;
    assert_eq!(
        prompt["thread_ts"], share_ts,
        "the prompt replies in the file's thread"
    );
    let button = &prompt["blocks"][1]["elements"][0];
    assert_eq!(button["action_id"], ACTION_OPEN_UPLOAD);
    let opened_before = h.fake.calls_of("views.open").len();
    let r = h
        .interaction(json!({
            "type": "block_actions", "trigger_id": "trig-1", "user": { "id": user, "name": "rep" },
            "response_url": h.fake.hook_url("open"),
            "actions": [ { "action_id": ACTION_OPEN_UPLOAD, "value": button["value"] } ],
        }))
        .await;
    assert_eq!(r.status(), 200);
    let opened = h.fake.calls_of("views.open");
    assert_eq!(
        opened.len(),
        opened_before + 1,
        "the button opens the form at once"
    );
    let view = opened.last().unwrap().body["view"].clone();
    let r = h
        .interaction(json!({
            "type": "view_submission", "user": { "id": user, "name": "rep" },
            "view": { "callback_id": view["callback_id"], "private_metadata": view["private_metadata"],
                      "state": { "values": state_values(answers, selects) } },
        }))
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["response_action"], "clear", "{answer}");
    let list = h
        .app
        .store
        .list_conversations(&ConversationFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    list.into_iter()
        .find(|c| c.metadata["slack_file_id"] == file_id)
        .expect("the submission created a conversation")
        .id
}

async fn wait_prompt(h: &Harness, file_id: &str) -> Value {
    let needle = format!("\"f\":\"{file_id}\"");
    h.fake
        .wait_until("the prompt", std::time::Duration::from_secs(30), |calls| {
            calls.iter().any(|c| {
                c.method == "chat.postMessage"
                    && c.body.to_string().contains(&needle.replace('"', "\\\""))
            })
        })
        .await;
    h.fake
        .calls_of("chat.postMessage")
        .into_iter()
        .map(|c| c.body)
        .find(|b| b.to_string().contains(&needle.replace('"', "\\\"")))
        .unwrap()
}

async fn wait_status(h: &Harness, id: &str, status: ConversationStatus) {
    eventually(&format!("conversation {status:?}"), || async {
        h.app
            .store
            .get_conversation(id)
            .await
            .unwrap()
            .unwrap()
            .status
            == status
    })
    .await;
}

story!(a_shared_transcript_comes_back_as_one_card);
async fn a_shared_transcript_comes_back_as_one_card(db: &TestDb) {
    let h = Harness::start(db).await;
    h.fake.add_user("U0REP", "rep@example.com", "Rita Rep");
    h.fake.add_file(
        "F0CALL",
        vtt_file("call.vtt", english_transcript()),
        EN_CHANNEL,
        "1700000000.000100",
    );

    // The form validates first: a missing required answer and a bad customer number come back
    // as Slack inline errors, nothing is created.
    let r = h
        .event("Ev0", file_shared("F0CALL", EN_CHANNEL, "U0REP"), &[])
        .await;
    assert_eq!(r.status(), 200);
    let prompt = wait_prompt(&h, "F0CALL").await;
    let value = prompt["blocks"][1]["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let meta = value.clone();
    let r = h
        .interaction(json!({
            "type": "view_submission", "user": { "id": "U0REP", "name": "rita" },
            "view": { "callback_id": "salesai_upload", "private_metadata": meta,
                      "state": { "values": state_values(&[("customer_number", "bad number!"), ("customer_name", "")], &[]) } },
        }))
        .await;
    let errors: Value = r.json().await.unwrap();
    assert_eq!(errors["response_action"], "errors");
    assert!(
        errors["errors"]["customer_number"]
            .as_str()
            .unwrap()
            .contains("letters")
    );
    assert_eq!(errors["errors"]["customer_name"], "Required.");
    assert_eq!(errors["errors"]["decision_maker_present"], "Required.");
    assert!(
        h.app
            .store
            .list_conversations(&ConversationFilter {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );

    // Slack retries the event, and the message/file_share twin arrives: still one prompt.
    let r = h
        .event(
            "Ev0",
            file_shared("F0CALL", EN_CHANNEL, "U0REP"),
            &[
                ("x-slack-retry-num", "1"),
                ("x-slack-retry-reason", "http_timeout"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = h
        .event(
            "Ev1",
            message_file_share("F0CALL", EN_CHANNEL, "U0REP", "1700000000.000100"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);

    let id = upload(
        &h,
        "F0CALL",
        EN_CHANNEL,
        "U0REP",
        "1700000000.000100",
        &[
            ("customer_number", "C-1001"),
            ("customer_name", "Harbor Diner"),
            ("contact_email", "owner@harbor.example"),
        ],
        &[("decision_maker_present", "yes")],
    )
    .await;
    wait_status(&h, &id, ConversationStatus::Completed).await;
    h.fake
        .wait_until("the card", std::time::Duration::from_secs(30), |calls| {
            calls.iter().any(|c| {
                c.method == "chat.postMessage"
                    && c.body["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Analysis complete"))
            })
        })
        .await;

    // A second submission of the same file (a double click) returns the same conversation.
    let r = h
        .interaction(json!({
            "type": "view_submission", "user": { "id": "U0REP", "name": "rita" },
            "view": { "callback_id": "salesai_upload", "private_metadata": value,
                      "state": { "values": state_values(&[("customer_number", "C-1001"), ("customer_name", "Harbor Diner")], &[("decision_maker_present", "yes")]) } },
        }))
        .await;
    assert_eq!(r.status(), 200);
    let all = h
        .app
        .store
        .list_conversations(&ConversationFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "one conversation for one file");
    let c = &all[0];
    assert_eq!(c.metadata["contact_email"], "owner@harbor.example");
    assert_eq!(c.metadata["decision_maker_present"], "yes");

    // The rep was mapped through users.info's e-mail.
    let rep = h
        .app
        .store
        .get_user(c.rep_user_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rep.email.as_deref(), Some("rep@example.com"));
    assert_eq!(rep.slack_user_id.as_deref(), Some("U0REP"));

    // Exactly one prompt, one status message (updated in place), one card, in the thread.
    let fake = &h.fake;
    assert_eq!(posted_with(fake, "Analyze this call?").len(), 1);
    let cards = posted_with(fake, "Analysis complete");
    assert_eq!(cards.len(), 1);
    let card = &cards[0];
    assert_eq!(card["channel"], EN_CHANNEL);
    assert_eq!(card["thread_ts"], "1700000000.000100");
    let blocks = card["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    let text = card.to_string();
    assert!(
        text.contains("Overall") && text.contains("Pain") && text.contains("Square"),
        "{text}"
    );
    assert!(text.contains(&format!("https://salesai.example.com/calls/{id}")));
    let statuses = posted_with(fake, c.case_number.as_str());
    let status = statuses
        .iter()
        .find(|m| {
            m["text"].as_str().unwrap().contains("Queued")
                || m["text"].as_str().unwrap().contains("Stage")
        })
        .expect("a status message");
    assert_eq!(status["thread_ts"], "1700000000.000100");
    let status_ts = fake
        .messages()
        .into_iter()
        .find(|(_, m)| {
            m["text"] == status["text"] || m["text"].as_str().is_some_and(|t| t.contains("Done"))
        })
        .map(|(ts, _)| ts)
        .unwrap();
    let current = &fake.messages()[&status_ts];
    assert!(
        current["text"].as_str().unwrap().contains("Done"),
        "the status message ends at Done: {current}"
    );
    assert!(
        !fake.calls_of("chat.update").is_empty(),
        "progress updates the message in place"
    );
    assert!(fake.calls_of("file:F0CALL").len() == 1, "downloaded once");

    // Re-running the analysis updates the card; it never posts a second one.
    let answer = h
        .command(
            "/analyze",
            &format!("{} rerun", c.case_number.as_str()),
            "U0REP",
            EN_CHANNEL,
        )
        .await;
    assert!(
        answer["text"].as_str().unwrap().contains("Re-running"),
        "{answer}"
    );
    eventually("the card updated after the rerun", || async {
        h.fake.calls_of("chat.update").iter().any(|u| {
            u.body["text"]
                .as_str()
                .is_some_and(|t| t.contains("Analysis complete"))
        })
    })
    .await;
    wait_status(&h, &id, ConversationStatus::Completed).await;
    assert_eq!(
        posted_with(fake, "Analysis complete").len(),
        1,
        "exactly one completion message"
    );
}

story!(a_slow_slack_still_gets_one_status_message_and_one_card);
async fn a_slow_slack_still_gets_one_status_message_and_one_card(db: &TestDb) {
    let h = Harness::start(db).await;
    h.fake.add_user("U0REP", "rep@example.com", "Rita Rep");
    h.fake.add_file(
        "F0SLOW",
        vtt_file("call.vtt", english_transcript()),
        EN_CHANNEL,
        "1700000000.000300",
    );
    // Slack on a slow day: every post takes 1.5 s to answer.
    h.fake
        .slow("chat.postMessage", std::time::Duration::from_millis(1500));
    let id = upload(
        &h,
        "F0SLOW",
        EN_CHANNEL,
        "U0REP",
        "1700000000.000300",
        &[
            ("customer_number", "C-SLOW"),
            ("customer_name", "Slow Cafe"),
        ],
        &[("decision_maker_present", "yes")],
    )
    .await;
    wait_status(&h, &id, ConversationStatus::Completed).await;
    let c = h.app.store.get_conversation(&id).await.unwrap().unwrap();
    eventually("the card", || async {
        !posted_with(&h.fake, "Analysis complete").is_empty()
    })
    .await;
    // Let any straggling notification finish before counting.
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    let fake = &h.fake;
    let statuses: Vec<Value> = posted_with(fake, c.case_number.as_str())
        .into_iter()
        .filter(|m| {
            !m["text"]
                .as_str()
                .unwrap_or("")
                .contains("Analysis complete")
        })
        .collect();
    assert_eq!(
        statuses.len(),
        1,
        "one status message per conversation, every later stage an update: {statuses:#?}"
    );
    assert!(
        !fake.calls_of("chat.update").is_empty(),
        "stages update it in place"
    );
    assert_eq!(
        posted_with(fake, "Analysis complete").len(),
        1,
        "exactly one completion card"
    );
}

story!(a_rate_limited_post_waits_for_retry_after);
async fn a_rate_limited_post_waits_for_retry_after(db: &TestDb) {
    let h = Harness::start(db).await;
    h.fake.add_file(
        "F0LIMIT",
        vtt_file("call.vtt", english_transcript()),
        EN_CHANNEL,
        "1700000000.000300",
    );
    h.fake.rate_limit("chat.postMessage", 1, 1);
    h.event("EvL", file_shared("F0LIMIT", EN_CHANNEL, "U0REP"), &[])
        .await;
    h.fake
        .wait_until(
            "the post after the 429",
            std::time::Duration::from_secs(30),
            |calls| {
                calls
                    .iter()
                    .filter(|c| c.method == "chat.postMessage")
                    .count()
                    >= 2
            },
        )
        .await;
    let posts = h.fake.calls_of("chat.postMessage");
    assert_eq!(posts.len(), 2, "one 429, then the post");
    let waited = posts[1].at.duration_since(posts[0].at);
    assert!(
        waited >= std::time::Duration::from_millis(950),
        "retried after Retry-After, not before ({waited:?})"
    );
    // The reschedule spent no attempt.
    let jobs = h
        .app
        .store
        .list_jobs(&salesai_core::queue::JobFilter {
            kind: Some("slack.prompt".into()),
            limit: Some(10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempts, 1, "{:?}", jobs[0]);
}

story!(a_failed_download_offers_retry_that_resumes);
async fn a_failed_download_offers_retry_that_resumes(db: &TestDb) {
    let h = Harness::start(db).await;
    // Slack's login page where the file should be: FILE_DOWNLOAD_FAILED, not a transcript.
    let login = Bytes::from_static(
        b"<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>",
    );
    h.fake.add_file(
        "F0HTML",
        vtt_file("call.vtt", login),
        ZH_CHANNEL,
        "1700000000.000500",
    );
    let id = upload(
        &h,
        "F0HTML",
        ZH_CHANNEL,
        "U0REP",
        "1700000000.000500",
        &[("customer_number", "IC-77"), ("customer_name", "好吃小館")],
        &[
            ("store_type", "restaurant"),
            ("decision_maker_present", "no"),
        ],
    )
    .await;
    wait_status(&h, &id, ConversationStatus::Failed).await;
    let c = h.app.store.get_conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.error.as_ref().unwrap().code, "FILE_DOWNLOAD_FAILED");
    h.fake
        .wait_until(
            "the failure notice",
            std::time::Duration::from_secs(30),
            |calls| {
                calls.iter().any(|c| {
                    c.method == "chat.postMessage"
                        && c.body["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("分析失敗"))
                })
            },
        )
        .await;
    let failed = posted_with(&h.fake, "分析失敗");
    assert_eq!(failed.len(), 1);
    let text = failed[0].to_string();
    assert!(
        text.contains("FILE_DOWNLOAD_FAILED") && text.contains("files:read"),
        "{text}"
    );
    let retry = failed[0]["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|b| {
            b["elements"]
                .as_array()?
                .iter()
                .find(|e| e["action_id"] == ACTION_RETRY)
                .cloned()
        })
        .expect("a Retry button");
    assert_eq!(retry["text"]["text"], "重試");

    // The file is fixed; Retry resumes the conversation at the download.
    h.fake.add_file(
        "F0HTML",
        vtt_file("call.vtt", english_transcript()),
        ZH_CHANNEL,
        "1700000000.000500",
    );
    let r = h
        .interaction(json!({
            "type": "block_actions", "trigger_id": "t", "user": { "id": "U0REP" },
            "response_url": h.fake.hook_url("retry"),
            "actions": [ { "action_id": ACTION_RETRY, "value": retry["value"] } ],
        }))
        .await;
    assert_eq!(r.status(), 200);
    wait_status(&h, &id, ConversationStatus::Completed).await;
    h.fake
        .wait_until(
            "the card after the retry",
            std::time::Duration::from_secs(30),
            |calls| {
                calls.iter().any(|c| {
                    c.method == "chat.postMessage"
                        && c.body["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("分析完成"))
                })
            },
        )
        .await;
    assert_eq!(posted_with(&h.fake, "分析完成").len(), 1);
    assert_eq!(
        posted_with(&h.fake, "分析失敗").len(),
        1,
        "no second failure notice"
    );
    h.fake
        .wait_until(
            "the retry acknowledgement",
            std::time::Duration::from_secs(30),
            |calls| calls.iter().any(|c| c.method == "hook:retry"),
        )
        .await;
}

story!(downloads_come_only_from_the_slack_host);
async fn downloads_come_only_from_the_slack_host(db: &TestDb) {
    let h = Harness::start(db).await;
    h.fake.add_file(
        "F0EVIL",
        vtt_file("call.vtt", english_transcript()),
        EN_CHANNEL,
        "1700000000.000700",
    );
    h.fake
        .set_download_url("F0EVIL", "http://127.0.0.1:9/steal");
    let id = upload(
        &h,
        "F0EVIL",
        EN_CHANNEL,
        "U0REP",
        "1700000000.000700",
        &[("customer_number", "C-9"), ("customer_name", "Evil")],
        &[("decision_maker_present", "yes")],
    )
    .await;
    wait_status(&h, &id, ConversationStatus::Failed).await;
    let c = h.app.store.get_conversation(&id).await.unwrap().unwrap();
    let error = c.error.unwrap();
    assert_eq!(error.code, "FILE_DOWNLOAD_FAILED");
    assert!(
        error
            .message
            .contains("refusing to download from 127.0.0.1"),
        "{}",
        error.message
    );
}

story!(dm_lines_report_to_the_rep_directly);
async fn dm_lines_report_to_the_rep_directly(db: &TestDb) {
    let mut lines = salesai_core::product_line::builtin();
    for l in &mut lines {
        if l.id == "default" {
            l.slack_reply = SlackReply::Dm;
        }
    }
    let h = Harness::start_with(db, lines).await;
    h.fake.add_file(
        "F0DM",
        vtt_file("call.vtt", english_transcript()),
        EN_CHANNEL,
        "1700000000.000900",
    );
    let id = upload(
        &h,
        "F0DM",
        EN_CHANNEL,
        "U0DMREP",
        "1700000000.000900",
        &[("customer_number", "C-DM"), ("customer_name", "Direct Co")],
        &[("decision_maker_present", "yes")],
    )
    .await;
    wait_status(&h, &id, ConversationStatus::Completed).await;
    h.fake
        .wait_until("the card", std::time::Duration::from_secs(30), |calls| {
            calls.iter().any(|c| {
                c.method == "chat.postMessage"
                    && c.body["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("Analysis complete"))
            })
        })
        .await;
    assert!(!h.fake.calls_of("conversations.open").is_empty());
    let card = &posted_with(&h.fake, "Analysis complete")[0];
    assert_eq!(card["channel"], "DU0DMREP", "the card goes to the rep's DM");
    let status = h
        .fake
        .calls_of("chat.postMessage")
        .into_iter()
        .map(|c| c.body)
        .find(|b| b["channel"] == "DU0DMREP" && b.get("thread_ts").is_none())
        .expect("the status message opens the DM thread");
    assert!(
        status["text"].as_str().unwrap().contains("C-DM")
            || status["text"].as_str().unwrap().contains("call.vtt")
    );
    assert!(
        card["thread_ts"].is_string(),
        "the card replies under the status message"
    );
}

story!(only_calls_in_watched_places_are_prompted);
async fn only_calls_in_watched_places_are_prompted(db: &TestDb) {
    let h = Harness::start(db).await;
    h.fake.add_file(
        "F0DMCALL",
        vtt_file("call.vtt", english_transcript()),
        "D0REP",
        "1700000000.000010",
    );
    h.fake.add_file(
        "F0UNWATCHED",
        vtt_file("call.vtt", english_transcript()),
        "C0RANDOM",
        "1700000000.000020",
    );
    let photo = salesai_slack::fake::FakeFile {
        name: "menu.png".into(),
        mimetype: "image/png".into(),
        filetype: "png".into(),
        content: salesai_slack::fake::FakeContent::Bytes(Bytes::from_static(b"\x89PNG\r\n")),
    };
    h.fake
        .add_file("F0PHOTO", photo, EN_CHANNEL, "1700000000.000030");
    for (id, file, channel) in [
        ("Ev1", "F0UNWATCHED", "C0RANDOM"),
        ("Ev2", "F0PHOTO", EN_CHANNEL),
        ("Ev3", "F0DMCALL", "D0REP"),
    ] {
        assert_eq!(
            h.event(id, file_shared(file, channel, "U0REP"), &[])
                .await
                .status(),
            200
        );
    }
    // A bot's own file share is not a call to analyse.
    let mut own = message_file_share("F0PHOTO", EN_CHANNEL, "U0BOT", "1700000000.000040");
    own["bot_id"] = json!("B0BOT");
    assert_eq!(h.event("Ev4", own, &[]).await.status(), 200);

    let prompt = wait_prompt(&h, "F0DMCALL").await;
    // A form that does not open (an expired trigger) is reported to the rep, not swallowed.
    let r = h
        .interaction(json!({
            "type": "block_actions", "trigger_id": "", "user": { "id": "U0REP" },
            "response_url": h.fake.hook_url("noform"),
            "actions": [ { "action_id": ACTION_OPEN_UPLOAD, "value": prompt["blocks"][1]["elements"][0]["value"] } ],
        }))
        .await;
    assert_eq!(r.status(), 200);
    h.fake
        .wait_until(
            "the form-failure answer",
            std::time::Duration::from_secs(30),
            |calls| {
                calls.iter().any(|c| {
                    c.method == "hook:noform"
                        && c.body["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("Click *Analyze* again"))
                })
            },
        )
        .await;
    assert_eq!(prompt["channel"], "D0REP", "a DM with the app is watched");
    assert!(
        prompt["text"]
            .as_str()
            .unwrap()
            .contains("Analyze this call?"),
        "the DM line is English"
    );
    // The photo's prompt job ran (files.info) and decided not to ask.
    eventually("the photo's job finished", || async {
        h.fake
            .calls_of("files.info")
            .iter()
            .any(|c| c.body["file"] == "F0PHOTO")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let posts = h.fake.calls_of("chat.postMessage");
    assert_eq!(
        posts.len(),
        1,
        "only the DM call was prompted: {:?}",
        posts.iter().map(|p| &p.body["text"]).collect::<Vec<_>>()
    );
    assert!(
        h.fake
            .calls_of("files.info")
            .iter()
            .all(|c| c.body["file"] != "F0UNWATCHED"),
        "unwatched channels cost no API call"
    );
}

story!(a_file_that_is_not_a_call_is_refused_before_the_form);
async fn a_file_that_is_not_a_call_is_refused_before_the_form(db: &TestDb) {
    let h = Harness::start(db).await;
    // A PNG named and typed as an MP3: it passes the file-type check, not the first bytes.
    let fake_mp3 = salesai_slack::fake::FakeFile {
        name: "call.mp3".into(),
        mimetype: "audio/mpeg".into(),
        filetype: "mp3".into(),
        content: salesai_slack::fake::FakeContent::Bytes(Bytes::from_static(
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR not audio at all",
        )),
    };
    h.fake
        .add_file("F0FAKEMP3", fake_mp3, ZH_CHANNEL, "1700000000.000050");
    // Larger than the harness's 5 MB download limit.
    let huge = salesai_slack::fake::FakeFile {
        name: "long.mp3".into(),
        mimetype: "audio/mpeg".into(),
        filetype: "mp3".into(),
        content: salesai_slack::fake::FakeContent::Generated(6 * 1024 * 1024),
    };
    h.fake
        .add_file("F0HUGE", huge, EN_CHANNEL, "1700000000.000060");
    for (id, file, channel) in [
        ("Ev1", "F0FAKEMP3", ZH_CHANNEL),
        ("Ev2", "F0HUGE", EN_CHANNEL),
    ] {
        assert_eq!(
            h.event(id, file_shared(file, channel, "U0REP"), &[])
                .await
                .status(),
            200
        );
    }
    h.fake
        .wait_until(
            "both refusals",
            std::time::Duration::from_secs(30),
            |calls| {
                calls
                    .iter()
                    .filter(|c| c.method == "chat.postMessage")
                    .count()
                    >= 2
            },
        )
        .await;
    let not_audio = posted_with(&h.fake, "看起來不是錄音或逐字稿");
    assert_eq!(not_audio.len(), 1, "the zh-TW line answers in Chinese");
    assert_eq!(
        not_audio[0]["thread_ts"], "1700000000.000050",
        "in the file's thread"
    );
    let too_large = posted_with(&h.fake, "salesai takes files up to 5 MB");
    assert_eq!(
        too_large.len(),
        1,
        "{:?}",
        h.fake.calls_of("chat.postMessage")
    );
    assert!(too_large[0]["text"].as_str().unwrap().contains("6 MB"));
    // No form was offered for either: no prompt buttons anywhere.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for post in h.fake.calls_of("chat.postMessage") {
        assert!(
            post.body.get("blocks").is_none(),
            "no prompt: {}",
            post.body
        );
    }
}

/// The messages Slack holds that salesai tagged as `kind` (message metadata).
fn tagged(fake: &salesai_slack::fake::FakeSlack, kind: &str) -> Vec<Value> {
    fake.messages()
        .into_values()
        .filter(|m| m["metadata"]["event_payload"]["kind"] == kind)
        .collect()
}

story!(a_lost_answer_from_slack_does_not_post_twice);
async fn a_lost_answer_from_slack_does_not_post_twice(db: &TestDb) {
    let h = Harness::start(db).await;
    h.fake.add_user("U0REP", "rep@example.com", "Rita Rep");
    h.fake.add_file(
        "F0LOST",
        vtt_file("call.vtt", english_transcript()),
        EN_CHANNEL,
        "1700000000.000400",
    );
    // Slack takes the status message and the card, but the answers never arrive (what a node
    // killed between Slack's answer and its own record also leaves behind).
    h.fake
        .lose_answers("chat.postMessage", r#""kind":"status""#, 1);
    h.fake
        .lose_answers("chat.postMessage", r#""kind":"completed""#, 1);
    let id = upload(
        &h,
        "F0LOST",
        EN_CHANNEL,
        "U0REP",
        "1700000000.000400",
        &[
            ("customer_number", "C-LOST"),
            ("customer_name", "Lost Cafe"),
        ],
        &[("decision_maker_present", "yes")],
    )
    .await;
    wait_status(&h, &id, ConversationStatus::Completed).await;
    eventually("the card recorded", || async {
        h.app
            .store
            .slack_messages(&id)
            .await
            .unwrap()
            .iter()
            .any(|(kind, _, ts)| kind == "completed" && !ts.is_empty())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let fake = &h.fake;
    let tagged = |kind: &str| tagged(fake, kind);
    assert_eq!(tagged("status").len(), 1, "one status message");
    assert_eq!(tagged("completed").len(), 1, "one completion card");
    assert!(
        tagged("status")[0]["text"]
            .as_str()
            .unwrap()
            .contains("Analysis complete")
            || !fake.calls_of("chat.update").is_empty(),
        "the status message found by its tag is updated in place"
    );
    assert!(
        !fake.calls_of("conversations.replies").is_empty(),
        "the retry looked in the thread before posting again"
    );
    let recorded = h.app.store.slack_messages(&id).await.unwrap();
    assert!(
        recorded.iter().all(|(_, _, ts)| !ts.is_empty()),
        "every intent settled: {recorded:?}"
    );
}

story!(a_lost_answer_does_not_repeat_the_prompt);
async fn a_lost_answer_does_not_repeat_the_prompt(db: &TestDb) {
    let h = Harness::start(db).await;
    h.fake.add_user("U0REP", "rep@example.com", "Rita Rep");
    h.fake.add_file(
        "F0PLOST",
        vtt_file("call.vtt", english_transcript()),
        EN_CHANNEL,
        "1700000000.000500",
    );
    // Slack takes the prompt, but its answer never arrives: the job fails and is retried.
    h.fake
        .lose_answers("chat.postMessage", r#""kind":"prompt""#, 1);
    let r = h
        .event(
            "EvF0PLOST",
            file_shared("F0PLOST", EN_CHANNEL, "U0REP"),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let store = &h.app.store;
    eventually("the prompt job done on its second attempt", || async {
        store
            .list_jobs(&salesai_core::queue::JobFilter {
                kind: Some("slack.prompt".into()),
                limit: Some(10),
                ..Default::default()
            })
            .await
            .unwrap()
            .iter()
            .any(|j| j.status == salesai_core::queue::JobStatus::Completed && j.attempts == 2)
    })
    .await;
    let prompts = tagged(&h.fake, "prompt");
    assert_eq!(prompts.len(), 1, "one prompt in the thread: {prompts:?}");
    assert_eq!(
        prompts[0]["metadata"]["event_payload"]["conversation_id"],
        "file:F0PLOST"
    );
    assert!(
        !h.fake.calls_of("conversations.replies").is_empty(),
        "the retry looked in the thread before posting again"
    );
}

story!(a_burst_of_events_is_taken_together_and_each_once);
async fn a_burst_of_events_is_taken_together_and_each_once(db: &TestDb) {
    // Sixty events at once (the inbox commits them in a few transactions), then each one
    // delivered again (Slack's retry): sixty prompt jobs, every request answered 200, and the
    // repeats recorded as repeats.
    use salesai_core::queue::JobFilter;
    let h = Harness::start(db).await;
    let send = |round: &'static str| {
        let h = &h;
        async move {
            let answers = futures_util::future::join_all((0..60).map(|i| async move {
                h.event(
                    &format!("EvBurst{i}"),
                    file_shared(&format!("F0BURST{i:02}"), EN_CHANNEL, "U0REP"),
                    &[(
                        "x-slack-retry-num",
                        if round == "again" { "1" } else { "0" },
                    )],
                )
                .await
                .status()
            }))
            .await;
            assert!(answers.iter().all(|s| *s == 200), "{round}: {answers:?}");
        }
    };
    send("first").await;
    send("again").await;
    let prompts = h
        .app
        .store
        .list_jobs(&JobFilter {
            kind: Some("slack.prompt".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(prompts.len(), 60, "one prompt job per file");
    for i in 0..60 {
        assert!(
            !h.app
                .store
                .record_external_event("slack.event", &format!("EvBurst{i}"))
                .await
                .unwrap(),
            "EvBurst{i} was recorded"
        );
    }
}
