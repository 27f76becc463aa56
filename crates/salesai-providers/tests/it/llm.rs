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
            lexicon: &Default::default(),
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
                    // Servers that reject the mode with other statuses and a validation message.
                    "reject_400" | "reject_422" | "reject_500" if format == "json_schema" => {
                        let status = match mode {
                            "reject_400" => StatusCode::BAD_REQUEST,
                            "reject_422" => StatusCode::UNPROCESSABLE_ENTITY,
                            _ => StatusCode::INTERNAL_SERVER_ERROR,
                        };
                        (status, Json(json!({ "detail": [{ "loc": ["body", "response_format", "json_schema"], "msg": "Input should be a valid dictionary or object to extract fields from", "type": "model_attributes_type" }] }))).into_response()
                    }
                    "reject_400" | "reject_422" | "reject_500" => completion(good),
                    // A server that only knows json_object: json_schema gets a bare 500.
                    "object_only" if format == "json_schema" => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
                    "object_only" if format == "text" => (StatusCode::BAD_REQUEST, Json(json!({ "error": { "message": "messages must ask for JSON" } }))).into_response(),
                    "object_only" => completion(good),
                    // Every call fails without a reason: one step down is tried, then the error.
                    "always_500" => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
                    // The buyer's answers are never valid; the other agents are fine.
                    "invalid_buyer" if agent == "buyer" => completion("{\"pain\": \"very high\"}".into()),
                    "invalid_buyer" => completion(good),
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
                    // The buyer's first answer and its repair are invalid; asked anew, it is fine.
                    "buyer_invalid_twice" if agent == "buyer" && n <= 2 => {
                        completion("{\"pain\": \"very high\"}".into())
                    }
                    "buyer_invalid_twice" => completion(good),
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
                        tokio::time::sleep(Duration::from_secs(10)).await;
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

/// A strict analyser (no per-agent fallback), as the tests written before the fallback expect.
fn analyzer(base: &str) -> LlmAnalyzer {
    analyzer_with(base, true)
}

fn analyzer_with(base: &str, strict: bool) -> LlmAnalyzer {
    let mut agent_models = BTreeMap::new();
    agent_models.insert("buyer".to_owned(), "big-model".to_owned());
    LlmAnalyzer::new(
        LlmConfig {
            provider: "gemini".into(),
            base_url: base.into(),
            api_key: Some(SecretString::from("key")),
            model: "small-model".into(),
            agent_models,
            timeout: Duration::from_millis(2_500),
            budget: Duration::from_secs(60),
            strict,
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
        2,
        "degraded once per model (small-model and big-model), then kept"
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
        .find(|r| {
            agent_of(r) == "buyer"
                && r["messages"][1]["content"]
                    .as_str()
                    .is_some_and(|t| t.contains("does not match the required JSON schema"))
        })
        .expect("a repair request");
    let text = repair["messages"][1]["content"].as_str().unwrap();
    assert!(text.contains("does not match"), "{text}");
    assert!(
        text.contains("\"score\":150"),
        "the invalid answer is shown: {text}"
    );
    assert!(
        !text.contains("## Transcript") && !text.contains("[0]A:"),
        "a repair fixes the shape and does not resend the transcript: {text}"
    );
    assert_eq!(repair["messages"].as_array().unwrap().len(), 2);

    let (base, _) = stub("always_invalid").await;
    let err = run_all(&analyzer(&base)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AnalysisInvalidOutput);
    assert!(err.message.contains("after one repair"), "{}", err.message);
}

/// A repair that is still invalid gets one fresh call — the whole question again, not another
/// repair — and a valid fresh answer is used as the LLM's own (no fallback).
#[tokio::test]
async fn a_repair_still_invalid_gets_a_fresh_call() {
    let (base, log) = stub("buyer_invalid_twice").await;
    let runs = run_all(&analyzer_with(&base, true)).await.unwrap();
    let buyer = &runs[&Agent::Buyer];
    assert_eq!(buyer.engine, "llm");
    assert_eq!(buyer.fallback, None);
    let buyer_requests: Vec<Value> = log
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| agent_of(r) == "buyer")
        .cloned()
        .collect();
    assert_eq!(buyer_requests.len(), 3, "answer, repair, fresh call");
    assert_eq!(
        buyer_requests[2]["messages"], buyer_requests[0]["messages"],
        "the fresh call asks the original question"
    );
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

fn formats(log: &Log) -> Vec<String> {
    log.requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            r.pointer("/response_format/type")
                .and_then(|v| v.as_str())
                .unwrap_or("text")
                .to_owned()
        })
        .collect()
}

/// Servers that reject `json_schema` with 400, 422 or 500 and a message naming it: the client
/// steps down to `json_object` and keeps it for that model; the analysis completes.
#[tokio::test]
async fn a_rejected_json_schema_steps_down_whatever_the_status() {
    for mode in ["reject_400", "reject_422", "reject_500"] {
        let (base, log) = stub(mode).await;
        let a = analyzer(&base);
        let runs = run_all(&a).await.unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(runs.len(), 6, "{mode}");
        assert_eq!(a.mode_of("small-model"), "json_object", "{mode}");
        assert_eq!(a.mode_of("big-model"), "json_object", "{mode}: per model");
        let sent = formats(&log);
        assert_eq!(
            sent.iter().filter(|f| *f == "json_schema").count(),
            2,
            "{mode}: json_schema is tried once per model, then remembered: {sent:?}"
        );
        log.requests.lock().unwrap().clear();
        run_all(&a).await.unwrap();
        assert!(
            formats(&log).iter().all(|f| f == "json_object"),
            "{mode}: the next analysis starts at the mode that worked"
        );
    }
}

/// A server that accepts `json_object` only and answers `json_schema` with a bare 500: the
/// first structured call's unexplained failure tries the next mode once, which works and is
/// remembered.
#[tokio::test]
async fn an_unexplained_error_on_the_first_structured_call_tries_the_next_mode_once() {
    let (base, log) = stub("object_only").await;
    let a = analyzer(&base);
    let runs = run_all(&a).await.unwrap();
    assert_eq!(runs.len(), 6);
    assert_eq!(a.mode(), "json_object");
    let sent = formats(&log);
    assert_eq!(sent[0], "json_schema");
    assert_eq!(sent[1], "json_object");
    assert_eq!(
        sent.iter().filter(|f| *f == "json_schema").count(),
        2,
        "each model probes once: {sent:?}"
    );

    // A server that fails everything: one step down, then the error, not a walk to text.
    let (base, log) = stub("always_500").await;
    let a = analyzer(&base);
    let err = run_all(&a).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::LlmApiError);
    assert_eq!(formats(&log), ["json_schema", "json_object"]);
    assert_eq!(
        a.mode(),
        "json_schema",
        "an unexplained failure is not remembered"
    );
}

/// The buyer's answers stay invalid after the repair: without strict mode that agent's output
/// comes from the rules engine, marked with the reason, and every agent completes; in strict
/// mode the analysis fails with ANALYSIS_INVALID_OUTPUT as before.
#[tokio::test]
async fn an_agent_that_stays_invalid_falls_back_to_the_rules_engine() {
    let (base, log) = stub("invalid_buyer").await;
    let runs = run_all(&analyzer_with(&base, false)).await.unwrap();
    assert_eq!(runs.len(), 6);
    let buyer = &runs[&Agent::Buyer];
    assert_eq!(buyer.engine, "rules");
    let reason = buyer.fallback.as_deref().unwrap();
    assert!(reason.contains("schema"), "{reason}");
    assert_eq!(
        buyer.prompt_tokens,
        Some(360),
        "the three calls' tokens are kept"
    );
    salesai_core::analysis::validate_output(Agent::Buyer, &buyer.output).unwrap();
    for agent in [
        Agent::Context,
        Agent::Seller,
        Agent::Crm,
        Agent::Summary,
        Agent::Coach,
    ] {
        assert_eq!(runs[&agent].engine, "llm", "{agent:?}");
        assert_eq!(runs[&agent].fallback, None);
    }
    let buyer_calls = log
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| agent_of(r) == "buyer")
        .count();
    assert_eq!(
        buyer_calls, 3,
        "the first answer, one repair and one fresh call"
    );

    let (base, _) = stub("invalid_buyer").await;
    let err = run_all(&analyzer_with(&base, true)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::AnalysisInvalidOutput);
}
