//! The three renderings of one analysed call — the call page, the API's conversation and the
//! Slack card — are read from one `CallReport` and agree on every figure they show.

use reqwest::StatusCode;
use reqwest::header::COOKIE;
use salesai_core::analysis::AGENTS;
use salesai_core::analysis::derive::derive_in;
use salesai_core::analysis::rules::{RulesInput, analyze, run_agent};
use salesai_core::domain::Role;
use salesai_core::language::Language;
use salesai_core::store::{AgentRun, StoredAnalysis};
use salesai_core::transcript::Segment;
use salesai_db::story;
use salesai_db::testing::TestDb;
use serde_json::Value;

use super::TestApp;
use super::web::{Cast, new_call_for};

const CALL: &[(&str, &str)] = &[
    ("Rep", "Thanks for your time. How do you take orders today?"),
    (
        "Owner",
        "On paper. We lose about ten orders a week, that costs us maybe 3000 dollars a month.",
    ),
    ("Rep", "What happens when an order gets lost?"),
    (
        "Owner",
        "Customers complain and the kitchen gets confused. We also looked at Square last month.",
    ),
    (
        "Rep",
        "Can we schedule a demo with your manager on Friday at two?",
    ),
    ("Owner", "I am the owner, I decide. Friday at two works."),
];

story!(the_page_the_api_and_the_slack_card_agree_on_every_figure);
async fn the_page_the_api_and_the_slack_card_agree_on_every_figure(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let cast = Cast::invite(&store, Role::Rep).await;
    let call = store
        .create_conversation(new_call_for(&cast.amy.user.id))
        .await
        .unwrap()
        .id;
    let segments: Vec<Segment> = CALL
        .iter()
        .enumerate()
        .map(|(i, (who, text))| Segment {
            speaker: Some((*who).into()),
            ..Segment::said(i as u64 * 5_000, i as u64 * 5_000 + 4_500, *text)
        })
        .collect();
    store.save_transcript(&call, &segments).await.unwrap();
    // The analysis, as the pipeline stores it: each agent's output, then the scores.
    let line = t.app.product_line("default");
    let input = RulesInput {
        segments: &segments,
        competitors: &line.competitors,
        metadata: &serde_json::json!({}),
        language: Language::En,
        lexicon: &line.lexicon,
    };
    for agent in AGENTS {
        store
            .save_agent_output(
                &call,
                &AgentRun {
                    agent: agent.as_str().into(),
                    engine: "rules".into(),
                    model: None,
                    output: run_agent(agent, &input),
                    prompt_tokens: None,
                    completion_tokens: None,
                    latency_ms: None,
                    fallback: None,
                },
            )
            .await
            .unwrap();
    }
    let outputs = analyze(&input);
    let derived = derive_in(&outputs, &line.methodology, Language::En);
    store
        .complete_analysis(
            &call,
            &StoredAnalysis {
                engine: "rules".into(),
                overall_score: derived.overall,
                qualification: derived.qualification.as_str().into(),
                pain_score: outputs.buyer.pain.score,
                decision_score: outputs.buyer.decision.score,
                champion_score: outputs.buyer.champion.score,
                metrics_score: outputs.buyer.metrics.score,
                result: serde_json::to_value(&derived).unwrap(),
            },
        )
        .await
        .unwrap();
    let figures = [
        derived.overall.value(),
        outputs.buyer.pain.score.value(),
        outputs.buyer.decision.score.value(),
        outputs.buyer.champion.score.value(),
        outputs.buyer.metrics.score.value(),
    ];

    // The API.
    let token = t.token_of("a", Role::Admin, Some(&cast.ada.user.id)).await;
    let api: Value = t
        .client
        .get(format!("{}/api/v1/conversations/{call}", t.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scores = &api["analysis"]["scores"];
    let from_api: Vec<u8> = [
        "overall_score",
        "pain_score",
        "decision_score",
        "champion_score",
        "metrics_score",
    ]
    .iter()
    .map(|k| scores[*k].as_u64().unwrap() as u8)
    .collect();
    assert_eq!(from_api, figures, "the API: {scores}");
    assert!(api["unreadable"].as_array().unwrap().is_empty(), "{api}");

    // The page: the big score, and each PDCM bar's figure.
    let browser = t.sign_in(&cast.ada.user.id).await;
    let page = t
        .client
        .get(format!("{}/calls/{call}", t.base))
        .header(COOKIE, &browser.cookie)
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("<span class=\"big-number\">{}</span>", figures[0])),
        "the page's score is {}",
        figures[0]
    );
    for figure in &figures[1..] {
        assert!(
            html.contains(&format!(">{figure}<")),
            "the page shows {figure}"
        );
    }

    // The Slack card, from the same read model.
    let conversation = store.get_conversation(&call).await.unwrap().unwrap();
    let report =
        salesai_core::report::CallReport::load(store.as_ref(), conversation, &Default::default())
            .await
            .unwrap();
    let facts = salesai_slack::blocks::CardFacts::of(&report, None).unwrap();
    let card = salesai_slack::blocks::completed(Language::En, &facts).to_string();
    assert!(
        card.contains(&format!("{}/100", figures[0])),
        "the card's score: {card}"
    );
    for figure in &figures[1..] {
        assert!(
            card.contains(&figure.to_string()),
            "the card shows {figure}"
        );
    }
    // And the same word for where the deal stands.
    let standing = report.analysis.as_ref().unwrap().standing().unwrap();
    let word = salesai_core::i18n::Label::label(&standing, Language::En.t());
    assert!(card.contains(word) && html.contains(word), "{word}");
}

story!(a_call_waiting_for_its_llm_says_until_when);
async fn a_call_waiting_for_its_llm_says_until_when(db: &TestDb) {
    use salesai_core::domain::ConversationStatus;
    use salesai_core::queue::{CONVERSATIONS, NewJob};
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let cast = Cast::invite(&store, Role::Rep).await;
    let mut new = new_call_for(&cast.amy.user.id);
    new.first_job = NewJob::new(
        CONVERSATIONS,
        salesai_core::pipeline::ANALYZE,
        serde_json::json!({}),
    );
    let created = store.create_conversation(new).await.unwrap();
    store
        .set_conversation_status(&created.id, ConversationStatus::Analyzing, None)
        .await
        .unwrap();
    let job = store
        .claim(CONVERSATIONS, "w", 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    store
        .reschedule(
            &job.lease().unwrap(),
            chrono::Utc::now() + chrono::Duration::minutes(5),
            "RATE_LIMITED",
            "the LLM failed broadly and is paused",
        )
        .await
        .unwrap();
    let browser = t.sign_in(&cast.ada.user.id).await;
    for (lang, words) in [("en", "the analysis continues at"), ("zh-TW", "分析會在")] {
        let html = t
            .client
            .get(format!("{}/calls/{}", t.base, created.id))
            .header(COOKIE, &browser.cookie)
            .header("accept-language", lang)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains(words), "{lang}: the page says until when");
    }
}
