//! The authorisation matrix for Slack: every slash command and every button and form, sent as
//! signed requests in Slack's wire format by each kind of person, against the same rules as the
//! web app and the API (`salesai_core::access`). A command or action salesai adds without rows
//! here fails this test.

use std::collections::BTreeSet;

use salesai_core::domain::Role;
use salesai_core::store::PersonChange;
use salesai_db::story;
use salesai_db::testing::TestDb;
use salesai_slack::blocks::{
    ACTION_OPEN_UPLOAD, ACTION_REPORT_LINK, ACTION_RETRY, ACTION_SPEAKERS, FileRef,
    SPEAKERS_CALLBACK, UPLOAD_CALLBACK,
};
use serde_json::{Value, json};

use crate::*;

/// The kinds of person, in the order of every row's expectations.
const PEOPLE: [(&str, &str); 7] = [
    ("unknown", "U0NOBODY"),
    ("deactivated", "U0GUS"),
    ("rep", "U0AMY"),
    ("other_rep", "U0BOB"),
    ("manager", "U0MIA"),
    ("other_manager", "U0MAX"),
    ("admin", "U0ADA"),
];

/// Words only a refusal says: what a person who may not see or do something is told.
const REFUSALS: &[&str] = &[
    "does not know your Slack account",
    "deactivated",
    "outside what you may see",
    "that you can see",
    "None of your customers",
    "No customers of yours",
    "for managers",
];

fn refused(text: &str) -> bool {
    REFUSALS.iter().any(|r| text.contains(r))
}

fn ack_text(answer: &Value) -> String {
    answer["text"].as_str().unwrap_or_default().to_owned()
}

/// The interaction ids the handler dispatches on, read from its source.
fn dispatched_actions() -> BTreeSet<String> {
    let source = include_str!("../../src/interactions.rs");
    let mut found = BTreeSet::new();
    for (i, _) in source.match_indices("ACTION_") {
        let name: String = source[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if source[i + name.len()..].trim_start().starts_with("=>") {
            found.insert(name);
        }
    }
    found
}

story!(every_slack_command_and_action_answers_each_kind_of_person);
async fn every_slack_command_and_action_answers_each_kind_of_person(db: &TestDb) {
    let h = Harness::start(db).await;
    let store = h.app.store.clone();
    let mut ids = std::collections::BTreeMap::new();
    for (who, slack) in PEOPLE.iter().skip(1) {
        let id = store
            .find_or_create_user(Some(&format!("{who}@example.com")), Some(slack), who)
            .await
            .unwrap();
        let (role, team, manages): (Role, Option<&str>, Vec<String>) = match *who {
            "rep" | "deactivated" => (Role::Rep, Some("north"), vec![]),
            "other_rep" => (Role::Rep, Some("south"), vec![]),
            "manager" => (Role::Manager, Some("north"), vec!["north".into()]),
            "other_manager" => (Role::Manager, Some("south"), vec!["south".into()]),
            _ => (Role::Admin, None, vec![]),
        };
        store
            .update_person(
                &id,
                &PersonChange {
                    role: Some(role),
                    team: Some(team.map(Into::into)),
                    manages: Some(manages),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        ids.insert(*who, id);
    }
    store
        .update_person(
            &ids["deactivated"],
            &PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Amy's call, with a customer of hers.
    let call = crate::speakers::misplaced_call(&h, &ids["rep"]).await;
    let case = store
        .get_conversation(&call)
        .await
        .unwrap()
        .unwrap()
        .case_number
        .as_str()
        .to_owned();

    // (command, text, who may see or do it: [unknown, deactivated, rep, other_rep, manager,
    // other_manager, admin], what an allowed answer shows)
    let yes_no = |s: &str| -> [bool; 7] {
        let mut out = [false; 7];
        for (i, c) in s.chars().filter(|c| !c.is_whitespace()).enumerate() {
            out[i] = c == 'Y';
        }
        out
    };
    let commands: Vec<(&str, String, [bool; 7], &str)> = vec![
        ("/analyze", case.clone(), yes_no("NN Y N Y N Y"), "Overall"),
        // Done already: "not now" to those who may, "none you can see" to the rest.
        (
            "/analyze",
            format!("{case} rerun"),
            yes_no("NN Y N Y N Y"),
            "",
        ),
        (
            "/opportunity",
            "WHO-1".into(),
            yes_no("NN Y N Y N Y"),
            "Corner Cafe",
        ),
        (
            "/opportunity",
            "list".into(),
            yes_no("NN Y N Y N Y"),
            "Corner Cafe",
        ),
        (
            "/opportunity",
            "create".into(),
            yes_no("NN Y Y Y Y Y"),
            "✅",
        ),
        (
            "/report",
            String::new(),
            yes_no("NN Y Y Y Y Y"),
            "Preparing your report",
        ),
        (
            "/report",
            "team".into(),
            yes_no("NN N N Y Y Y"),
            "Preparing the team report",
        ),
        (
            "/salesai",
            "login".into(),
            yes_no("NN Y Y Y Y Y"),
            "/login/link/",
        ),
    ];
    let covered: BTreeSet<&str> = commands.iter().map(|c| c.0).collect();
    assert_eq!(
        covered,
        salesai_slack::COMMANDS.iter().copied().collect(),
        "every slash command has rows in the Slack matrix"
    );
    let mut wrong = Vec::new();
    for (command, text, expected, shows) in &commands {
        for (i, (who, slack)) in PEOPLE.iter().enumerate() {
            let text = if text == "create" {
                format!("create NEW-{i} New Customer {i}")
            } else {
                text.clone()
            };
            let answer = ack_text(&h.command(command, &text, slack, EN_CHANNEL).await);
            let allowed = !refused(&answer) && answer.contains(shows);
            if allowed != expected[i] {
                wrong.push(format!("{command} {text} as {who}: {answer:?}"));
            }
            // Nobody sees Amy's customer or call unless allowed to.
            if !expected[i] && (answer.contains("Corner Cafe") || answer.contains("Overall")) {
                wrong.push(format!("{command} {text} as {who} leaked: {answer:?}"));
            }
        }
    }

    // The buttons and forms.
    let file = FileRef {
        file_id: "F0MATRIX".into(),
        channel_id: EN_CHANNEL.into(),
        thread_ts: Some("1700000000.000100".into()),
        product_line: "default".into(),
        name: "call.vtt".into(),
        size: 100,
    };
    let file_json = serde_json::to_string(&file).unwrap();
    // (action or callback, who may: [..7], the payload for a Slack user and a response_url)
    type Payload = Box<dyn Fn(&str, &str) -> Value>;
    let c1 = call.clone();
    let c2 = call.clone();
    let c3 = call.clone();
    let f1 = file_json.clone();
    let f2 = file_json.clone();
    let actions: Vec<(&str, [bool; 7], Payload)> = vec![
        (
            ACTION_RETRY,
            yes_no("NN Y N Y N Y"),
            Box::new(move |user, hook| {
                json!({ "type": "block_actions", "trigger_id": "t", "user": { "id": user },
                    "response_url": hook, "actions": [ { "action_id": ACTION_RETRY, "value": c1 } ] })
            }),
        ),
        (
            ACTION_SPEAKERS,
            yes_no("NN Y N Y N Y"),
            Box::new(move |user, hook| {
                json!({ "type": "block_actions", "trigger_id": "t", "user": { "id": user },
                    "response_url": hook, "actions": [ { "action_id": ACTION_SPEAKERS, "value": c2 } ] })
            }),
        ),
        (
            ACTION_OPEN_UPLOAD,
            yes_no("NN Y Y Y Y Y"),
            Box::new(move |user, hook| {
                json!({ "type": "block_actions", "trigger_id": "t", "user": { "id": user },
                    "response_url": hook, "actions": [ { "action_id": ACTION_OPEN_UPLOAD, "value": f1 } ] })
            }),
        ),
        // A link button: acknowledged, nothing said to anyone.
        (
            ACTION_REPORT_LINK,
            yes_no("YY Y Y Y Y Y"),
            Box::new(move |user, hook| {
                json!({ "type": "block_actions", "trigger_id": "t", "user": { "id": user },
                    "response_url": hook, "actions": [ { "action_id": ACTION_REPORT_LINK, "value": "x" } ] })
            }),
        ),
        (
            SPEAKERS_CALLBACK,
            yes_no("NN Y N Y N Y"),
            Box::new(move |user, _| {
                json!({ "type": "view_submission", "user": { "id": user },
                    "view": { "callback_id": SPEAKERS_CALLBACK, "private_metadata": c3,
                        "state": { "values": { "rep": { "value": { "type": "static_select",
                            "selected_option": { "value": "Nobody" } } } } } } })
            }),
        ),
        (
            UPLOAD_CALLBACK,
            yes_no("NN Y Y Y Y Y"),
            Box::new(move |user, _| {
                json!({ "type": "view_submission", "user": { "id": user },
                    "view": { "callback_id": UPLOAD_CALLBACK, "private_metadata": f2,
                        "state": { "values": state_values(&[("customer_number", "C-9"), ("customer_name", "Nine")], &[("decision_maker_present", "yes")]) } } })
            }),
        ),
    ];
    let rows: BTreeSet<String> = actions.iter().map(|a| a.0.to_owned()).collect();
    for listed in salesai_slack::ACTIONS
        .iter()
        .chain(&[UPLOAD_CALLBACK, SPEAKERS_CALLBACK])
    {
        assert!(
            rows.contains(*listed),
            "{listed} has no row in the Slack matrix"
        );
    }
    assert_eq!(
        dispatched_actions().len(),
        salesai_slack::ACTIONS.len(),
        "every action the handler dispatches is listed in ACTIONS"
    );
    for (name, expected, payload) in &actions {
        for (i, (who, slack)) in PEOPLE.iter().enumerate() {
            let hook_id = format!("{name}-{who}");
            let opened_before = h.fake.calls_of("views.open").len();
            let response = h
                .interaction(payload(slack, &h.fake.hook_url(&hook_id)))
                .await;
            assert_eq!(response.status(), 200, "{name} as {who}");
            let body = response.text().await.unwrap();
            // What the person is told: the answer itself (forms), or through response_url.
            let mut said = body.clone();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let hooks = h.fake.calls_of(&format!("hook:{hook_id}"));
                if let Some(hook) = hooks.first() {
                    said.push_str(&hook.body.to_string());
                    break;
                }
                let opened = h.fake.calls_of("views.open").len() > opened_before;
                let form = body.contains("response_action");
                if opened || form || *name == ACTION_REPORT_LINK {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
            let allowed = !refused(&said);
            if allowed != expected[i] {
                wrong.push(format!("{name} as {who}: {said:?}"));
            }
            if !expected[i] && said.contains("Thanks for the time") {
                wrong.push(format!("{name} as {who} leaked the transcript: {said:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Nobody outside saw the call's speakers, and nothing was corrected by them.
    let transcript = store.get_transcript(&call).await.unwrap();
    assert_eq!(
        transcript[0].role,
        Some(salesai_core::transcript::Role::Customer)
    );
}
