//! "Who is who?" from the Slack card: the modal lists the speakers found, the call's rep (or
//! their manager, or an admin) puts one on the rep's side, and the call is analysed again;
//! anyone else is refused in the modal.

use salesai_core::domain::{
    CasePeriod, CasePrefix, ConversationStatus, ConversationType, CustomerNumber, NewConversation,
    Score,
};
use salesai_core::queue::NewJob;
use salesai_core::store::StoredAnalysis;
use salesai_core::transcript::{Attribution, Role, Segment};
use salesai_db::story;
use salesai_db::testing::TestDb;
use salesai_slack::blocks::{ACTION_SPEAKERS, SPEAKERS_CALLBACK};
use serde_json::{Value, json};

use crate::*;

/// A completed call of `rep` whose two voices were placed the wrong way round (inferred).
pub(crate) async fn misplaced_call(h: &Harness, rep: &str) -> String {
    let id = h
        .app
        .store
        .create_conversation(NewConversation {
            customer_number: CustomerNumber::parse("WHO-1").unwrap(),
            customer_name: "Corner Cafe".into(),
            product_line: "default".into(),
            case_prefix: CasePrefix::parse("SA").unwrap(),
            case_period: CasePeriod::at(chrono::Utc::now(), chrono_tz::Asia::Taipei),
            conversation_type: ConversationType::DiscoveryCall,
            title: String::new(),
            conversation_date: None,
            rep_user_id: Some(rep.into()),
            blob_key: None,
            media: Default::default(),
            metadata: json!({}),
            // Parked on a queue no worker serves: the call stays as this test leaves it.
            first_job: NewJob::new("parked", "parked.noop", json!({})),
            idempotency_key: None,
            slack: None,
        })
        .await
        .unwrap()
        .id;
    let line = |start: u64, speaker: &str, role: Role, text: &str| Segment {
        speaker: Some(speaker.into()),
        role: Some(role),
        attribution: Some(Attribution::Inferred),
        confidence: Some(60),
        ..Segment::said(start, start + 4_000, text)
    };
    let transcript = vec![
        line(
            0,
            "Speaker 1",
            Role::Customer,
            "Thanks for the time. How do you take orders today?",
        ),
        line(
            5_000,
            "Speaker 2",
            Role::Rep,
            "By hand, and the kitchen loses tickets every busy night.",
        ),
        line(
            10_000,
            "Speaker 1",
            Role::Customer,
            "What does a lost ticket cost you?",
        ),
        line(
            15_000,
            "Speaker 2",
            Role::Rep,
            "About two thousand dollars a month.",
        ),
    ];
    h.app.store.save_transcript(&id, &transcript).await.unwrap();
    let s = Score::new(50).unwrap();
    h.app
        .store
        .complete_analysis(
            &id,
            &StoredAnalysis {
                engine: "rules".into(),
                overall_score: s,
                qualification: "medium".into(),
                pain_score: s,
                decision_score: s,
                champion_score: s,
                metrics_score: s,
                result: json!({}),
            },
        )
        .await
        .unwrap();
    id
}

async fn submit(h: &Harness, user: &str, view: &Value, speaker: &str) -> Value {
    let r = h
        .interaction(json!({
            "type": "view_submission", "user": { "id": user, "name": user },
            "view": { "callback_id": view["callback_id"], "private_metadata": view["private_metadata"],
                      "state": { "values": { "rep": { "value": { "type": "static_select",
                          "selected_option": { "value": speaker } } } } } },
        }))
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

story!(who_is_who_from_slack_corrects_the_sides_and_analyses_again);
async fn who_is_who_from_slack_corrects_the_sides_and_analyses_again(db: &TestDb) {
    let h = Harness::start(db).await;
    let store = h.app.store.clone();
    let rep = store
        .find_or_create_user(None, Some("U0RITA"), "Rita Rep")
        .await
        .unwrap();
    store
        .find_or_create_user(None, Some("U0OTTO"), "Otto Other")
        .await
        .unwrap();
    let id = misplaced_call(&h, &rep).await;

    // The card's button opens the modal at once, listing each voice with its first line and
    // the one now on the rep's side chosen.
    let r = h
        .interaction(json!({
            "type": "block_actions", "trigger_id": "trig-who", "user": { "id": "U0RITA", "name": "rita" },
            "response_url": h.fake.hook_url("who"),
            "actions": [ { "action_id": ACTION_SPEAKERS, "value": id } ],
        }))
        .await;
    assert_eq!(r.status(), 200);
    let opened = h.fake.calls_of("views.open");
    assert_eq!(opened.len(), 1, "the button opens the form");
    let view = opened[0].body["view"].clone();
    assert_eq!(view["callback_id"], SPEAKERS_CALLBACK);
    assert_eq!(view["private_metadata"], id.as_str());
    let select = &view["blocks"][2]["element"];
    let options: Vec<&str> = select["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(options.len(), 2, "{options:?}");
    assert!(
        options[0].starts_with("Speaker 1 — “Thanks for the time."),
        "{options:?}"
    );
    assert_eq!(select["initial_option"]["value"], "Speaker 2");

    // Another rep may not correct Rita's call: refused in the modal, nothing changes.
    let answer = submit(&h, "U0OTTO", &view, "Speaker 1").await;
    assert_eq!(answer["response_action"], "errors", "{answer}");
    assert!(
        answer["errors"]["rep"]
            .as_str()
            .unwrap()
            .contains("outside what you may see"),
        "{answer}"
    );
    // Someone salesai does not know is refused too.
    let answer = submit(&h, "U0NOBODY", &view, "Speaker 1").await;
    assert_eq!(answer["response_action"], "errors", "{answer}");
    let unchanged = store.get_transcript(&id).await.unwrap();
    assert_eq!(unchanged[0].role, Some(Role::Customer));

    // Rita says Speaker 1 is her: a fact now, the other voice is the customer's, and the call
    // is analysed again.
    let answer = submit(&h, "U0RITA", &view, "Speaker 1").await;
    assert_eq!(answer["response_action"], "update", "{answer}");
    let corrected = store.get_transcript(&id).await.unwrap();
    for segment in &corrected {
        let expected = if segment.speaker.as_deref() == Some("Speaker 1") {
            Role::Rep
        } else {
            Role::Customer
        };
        assert_eq!(segment.role, Some(expected), "{segment:?}");
    }
    assert_eq!(corrected[0].attribution, Some(Attribution::Known));
    // The stored analysis above had an empty result; a real run writes one.
    eventually("the call analysed again", || async {
        let c = store.get_conversation(&id).await.unwrap().unwrap();
        c.status == ConversationStatus::Completed
            && store
                .get_analysis(&id)
                .await
                .unwrap()
                .is_some_and(|a| a.result != json!({}))
    })
    .await;
}
