//! The LLM analyser against a stub speaking OpenAI's chat-completions wire format: success,
//! a server that rejects `json_schema` (and one that rejects `json_object` too), an invalid
//! answer repaired once, an answer still invalid after the repair, 429 with `retry-after`,
//! 500, a timeout, and how much of the transcript each agent is sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use salesai_core::ErrorCode;
use salesai_core::analysis::engine::{AgentContext, Analyzer};
use salesai_core::analysis::prompts::Prompts;
use salesai_core::analysis::rules::{Language, RulesInput, run_agent};
use salesai_core::analysis::{AGENTS, Agent};
use salesai_core::transcript::{Segment, parse_transcript};
use salesai_providers::llm::{LlmAnalyzer, LlmConfig};
use secrecy::SecretString;
use serde_json::{Value, json};

const CALL: &str = "Rep: How do you take orders today?\nOwner: By hand. It's slow and we lose about $2,000 a month.\n\
Rep: What does that mean for your staff?\nOwner: They stay late every night fixing mistakes.\nRep: Would it help if orders went straight to the kitchen?\n\
Owner: Sounds good. I'm the owner, I decide.\nRep: Shall we start the trial next week?\nOwner: Yes, next week.";

#[derive(Clone, Default)]
struct Log {
    requests: Arc<Mutex<Vec<Value>>>,
    answered: Arc<Mutex<BTreeMap<String, u32>>>,
}

fn segments() -> Vec<Segment> {
    parse_transcript(CALL).unwrap().1
}

fn valid_output(agent: &str) -> Value {
    let segments = segments();
    let agent = AGENTS
        .iter()
        .find(|a| a.as_str() == agent)
        .copied()
        .unwrap();
    run_agent(
        agent,
        &RulesInput {
            segments: &segments,
            competitors: &[],
            metadata: &json!({}),
            language: Language::En,
        },
    )
}

fn agent_of(body: &Value) -> String {
    let system = body["messages"][0]["content"].as_str().unwrap_or_default();
    let at = system.find("Agent: ").map(|i| i + 7).unwrap_or(0);
    system[at..]
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn completion(content: String) -> Response {
    Json(json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "stub",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150 }
    }))
    .into_response()
}

async fn stub(mode: &'static str) -> (String, Log) {
    let log = Log::default();
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |State(log): State<Log>, Json(body): Json<Value>| async move {
                log.requests.lock().unwrap().push(body.clone());
                let agent = agent_of(&body);
                let format = body.pointer("/response_format/type").and_then(|v| v.as_str()).unwrap_or("text").to_owned();
                let n = {
                    let mut answered = log.answered.lock().unwrap();
                    let n = answered.entry(agent.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                let good = valid_output(&agent).to_string();
                match mode {
                    "ok" => completion(good),
                    "no_json_schema" if format == "json_schema" => (
                        StatusCode::BAD_REQUEST,
                        Json(json!({ "error": { "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.", "type": "invalid_request_error" } })),
                    )
                        .into_response(),
                    "no_json_schema" => completion(good),
                    "text_only" if format != "text" => (
                        StatusCode::BAD_REQUEST,
                        Json(json!({ "error": { "message": "response_format is not supported", "type": "invalid_request_error" } })),
                    )
                        .into_response(),
                    "text_only" => completion(format!("Here is the analysis:\n```json\n{good}\n```")),
                    "invalid_then_fixed" if n == 1 => {
                        let mut bad: Value = serde_json::from_str(&good).unwrap();
                        if agent == "buyer" {
                            bad["pain"]["score"] = json!(150);
                        } else if let Some(obj) = bad.as_object_mut() {
                            let first = obj.keys().next().cloned().unwrap();
                            obj.remove(&first);
                        }
                        completion(bad.to_string())
                    }
                    "invalid_then_fixed" => completion(good),
                    "always_invalid" => completion("{\"pain\": \"very high\"}".into()),
                    "weak_buyer" if agent == "buyer" && n == 1 => {
                        let mut weak: Value = serde_json::from_str(&good).unwrap();
                        weak["pain"]["evidence"] = json!([]);
                        weak["pain"]["main_pain"] = json!("first answer");
                        completion(weak.to_string())
                    }
                    "weak_buyer" => {
                        let mut refined: Value = serde_json::from_str(&good).unwrap();
                        if agent == "buyer" {
                            refined["pain"]["main_pain"] = json!("refined answer");
                        }
                        completion(refined.to_string())
                    }
                    "429" => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "20")],
                        Json(json!({ "error": { "message": "Resource has been exhausted (e.g. check quota).", "code": 429 } })),
                    )
                        .into_response(),
                    "500" => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": { "message": "internal" } }))).into_response(),
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        completion(good)
                    }
                    _ => unreachable!(),
                }
            }),
        )
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, log)
}

fn analyzer(base: &str) -> LlmAnalyzer {
    let mut agent_models = BTreeMap::new();
    agent_models.insert("buyer".to_owned(), "big-model".to_owned());
    LlmAnalyzer::new(
        LlmConfig {
            provider: "gemini".into(),
            base_url: base.into(),
            api_key: Some(SecretString::from("key")),
            model: "small-model".into(),
            agent_models,
            timeout: Duration::from_millis(800),
        },
        Prompts::embedded(),
    )
}

/// Runs every agent in DAG waves, as the analyze job does.
async fn run_all(
    analyzer: &LlmAnalyzer,
) -> Result<
    BTreeMap<Agent, salesai_core::store::AgentRun>,
    salesai_core::analysis::engine::AnalyzerError,
> {
    let segments = segments();
    let line = salesai_core::product_line::builtin()
        .into_iter()
        .find(|l| l.id == "default")
        .unwrap();
    let metadata = json!({ "store_type": "ramen" });
    let mut done: BTreeMap<Agent, salesai_core::store::AgentRun> = BTreeMap::new();
    for agent in AGENTS {
        let prior = agent
            .needs()
            .iter()
            .filter_map(|n| done.get(n).map(|r| (*n, r.output.clone())))
            .collect();
        let context = AgentContext {
            segments: &segments,
            metadata: &metadata,
            product_line: &line,
            prior: &prior,
        };
        let run = analyzer.run(agent, context).await?;
        done.insert(agent, run);
    }
    Ok(done)
}

#[tokio::test]
async fn structured_output_with_models_tokens_and_a_lean_transcript() {
    let (base, log) = stub("ok").await;
    let a = analyzer(&base);
    let runs = run_all(&a).await.unwrap();
    assert_eq!(a.mode(), "json_schema");
    assert_eq!(runs.len(), 6);
    for run in runs.values() {
        assert_eq!(run.engine, "llm");
        assert_eq!(
            (run.prompt_tokens, run.completion_tokens),
            (Some(120), Some(30)),
            "{} took more than one call",
            run.agent
        );
    }
    assert_eq!(
        runs[&Agent::Buyer].model.as_deref(),
        Some("big-model"),
        "model per agent"
    );
    assert_eq!(runs[&Agent::Coach].model.as_deref(), Some("small-model"));
    let requests = log.requests.lock().unwrap().clone();
    assert_eq!(requests[0]["response_format"]["type"], "json_schema");
    assert!(requests[0]["response_format"]["json_schema"]["schema"]["properties"].is_object());
    assert_eq!(requests[0]["temperature"], 0);
    // How much transcript travels: count transcript lines across all requests.
    let lines: Vec<&str> = CALL.lines().collect();
    let chars: usize = lines.iter().map(|l| l.len()).sum();
    let sent: usize = requests
        .iter()
        .map(|r| {
            let user = r["messages"][1]["content"].as_str().unwrap();
            // The transcript section only (earlier agents' findings quote it too; those are
            // findings, not the transcript).
            let user = &user[user.find("## Transcript").unwrap()..];
            lines
                .iter()
                .filter(|l| user.contains(l.split_once(": ").unwrap().1))
                .map(|l| l.len())
                .sum::<usize>()
        })
        .sum();
    assert!(
        sent <= 4 * chars,
        "transcript sent {sent} chars for a {chars}-char transcript (> 4x)"
    );
    assert!(sent >= 2 * chars, "context and buyer read it whole");
}

#[tokio::test]
async fn servers_without_json_schema_get_json_object_then_text() {
    let (base, log) = stub("no_json_schema").await;
    let a = analyzer(&base);
    run_all(&a).await.unwrap();
    assert_eq!(a.mode(), "json_object", "degraded once, then kept");
    let requests = log.requests.lock().unwrap().clone();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r["response_format"]["type"] == "json_schema")
            .count(),
        1
    );
    let user = requests.last().unwrap()["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        user.contains("JSON schema"),
        "the schema travels in the prompt instead"
    );

    let (base, _) = stub("text_only").await;
    let a = analyzer(&base);
    let runs = run_all(&a).await.unwrap();
    assert_eq!(a.mode(), "text");
    assert_eq!(
        runs.len(),
        6,
        "fenced JSON in plain text is found and validated"
    );
}

#[tokio::test]
async fn invalid_answers_are_repaired_once() {
    let (base, log) = stub("invalid_then_fixed").await;
    let runs = run_all(&analyzer(&base)).await.unwrap();
    assert_eq!(runs.len(), 6);
    assert_eq!(
        runs[&Agent::Buyer].prompt_tokens,
        Some(240),
        "tokens of both calls counted"
    );
    let requests = log.requests.lock().unwrap().clone();
    let repair = requests
        .iter()
        .find(|r| r["messages"].as_array().unwrap().len() == 4)
        .unwrap();
    let text = repair["messages"][3]["content"].as_str().unwrap();
    assert!(text.contains("does not match"), "{text}");

    let (base, _) = stub("always_invalid").await;
    let err = run_all(&analyzer(&base)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AnalysisInvalidOutput);
    assert!(err.message.contains("after one repair"), "{}", err.message);
}

#[tokio::test]
async fn provider_failures_are_classified() {
    let (base, _) = stub("429").await;
    let before = chrono::Utc::now();
    let err = run_all(&analyzer(&base)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::RateLimited);
    let wait = (err.retry_at.unwrap() - before).num_seconds();
    assert!((19..=21).contains(&wait), "{wait}");

    let (base, _) = stub("500").await;
    assert_eq!(
        run_all(&analyzer(&base)).await.unwrap_err().code,
        ErrorCode::LlmApiError
    );

    let (base, _) = stub("slow").await;
    assert_eq!(
        run_all(&analyzer(&base)).await.unwrap_err().code,
        ErrorCode::Timeout
    );
}

#[tokio::test]
async fn a_weak_buyer_analysis_is_refined_once_and_the_refinement_is_used() {
    let (base, log) = stub("weak_buyer").await;
    let runs = run_all(&analyzer(&base)).await.unwrap();
    assert_eq!(
        runs[&Agent::Buyer].output["pain"]["main_pain"],
        "refined answer"
    );
    assert!(
        !runs[&Agent::Buyer].output["pain"]["evidence"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let requests = log.requests.lock().unwrap().clone();
    let seller = requests.iter().find(|r| agent_of(r) == "seller").unwrap();
    assert!(
        seller["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("refined answer"),
        "downstream agents see the refinement"
    );
    assert_eq!(
        requests.iter().filter(|r| agent_of(r) == "buyer").count(),
        2,
        "refined once"
    );
}
