//! LLM agents over any OpenAI-compatible chat endpoint (Gemini's OpenAI-compatible endpoint,
//! Groq, OpenAI, Ollama, vLLM). The vendor's wire format stays in this file.
//!
//! Real servers differ in structured output, so the client degrades once per process, on the
//! server's own word: strict `json_schema` first, then `json_object` with the schema in the
//! prompt, then plain text with the schema in the prompt. Whatever the mode, the answer is
//! validated locally against the contract and repaired once with the validation error; a repair
//! still invalid gets one fresh call (the question asked anew), and an answer invalid after that
//! is `ANALYSIS_INVALID_OUTPUT` in strict mode, else that agent's rules-engine fallback.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use salesai_core::ErrorCode;
use salesai_core::analysis::engine::{AgentContext, Analyzer, AnalyzerError, rules_fallback};
use salesai_core::analysis::prompts::{Prompts, messages, resolve_line_refs};
use salesai_core::analysis::{Agent, output_schema, validate_output};
use salesai_core::store::AgentRun;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::stt::parse_retry_after;

/// Gemini's OpenAI-compatible base URL.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta/openai";
/// Gemini's default model.
pub const GEMINI_DEFAULT_MODEL: &str = "gemini-2.5-flash";

/// An LLM endpoint.
#[derive(Clone)]
pub struct LlmConfig {
    /// `gemini`, `openai`, `custom`…
    pub provider: String,
    /// Base URL, without `/chat/completions`.
    pub base_url: String,
    /// Bearer key.
    pub api_key: Option<SecretString>,
    /// The model for agents without their own.
    pub model: String,
    /// Per-agent models (`buyer` → `gemini-2.5-pro`).
    pub agent_models: BTreeMap<String, String>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// The most one analysis waits on the LLM in all; past it the agents still waiting take
    /// their part from the rules engine (`SALESAI_LLM_BUDGET_SECS`).
    pub budget: Duration,
    /// Fail an agent whose answer is still invalid after the repair instead of taking its
    /// output from the rules engine (`SALESAI_ANALYSIS_STRICT`).
    pub strict: bool,
}

impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .field("agent_models", &self.agent_models)
            .finish_non_exhaustive()
    }
}

/// Structured-output modes, best first.
const JSON_SCHEMA: u8 = 0;
const JSON_OBJECT: u8 = 1;
const TEXT: u8 = 2;

/// The LLM analyser.
pub struct LlmAnalyzer {
    config: LlmConfig,
    http: reqwest::Client,
    prompts: Prompts,
    /// The structured-output mode per model (one endpoint per analyser), and whether a call in
    /// that mode has ever succeeded: servers differ, and what one model accepts another may not.
    modes: Mutex<HashMap<String, ModeState>>,
}

/// What is known of one model's structured-output support.
#[derive(Debug, Clone, Copy, Default)]
struct ModeState {
    /// The best mode not yet refused.
    mode: u8,
    /// A call in this mode has succeeded.
    confirmed: bool,
}

struct Reply {
    content: String,
    prompt_tokens: i64,
    completion_tokens: i64,
}

enum CallError {
    /// The server said it does not support the structured-output mode.
    ModeUnsupported,
    /// The server refused the request (4xx or 5xx, not 429) without saying why in terms of
    /// the mode: on the very first structured call this may still be the mode.
    Refused(AnalyzerError),
    Failed(AnalyzerError),
}

fn failed(code: ErrorCode, message: impl Into<String>) -> CallError {
    CallError::Failed(AnalyzerError {
        code,
        message: message.into(),
        retry_at: None,
    })
}

/// The most tokens an agent's answer may take: its schema's size with room for its longest
/// lists and sentences (a full answer of a 60-minute call stays well inside), in either
/// language.
pub fn max_tokens(agent: Agent) -> u32 {
    match agent {
        Agent::Context => 600,
        Agent::Crm => 900,
        Agent::Buyer | Agent::Seller | Agent::Coach => 1_500,
        Agent::Summary => 1_800,
    }
}

impl LlmAnalyzer {
    /// An analyser for `config` with `prompts`.
    pub fn new(config: LlmConfig, prompts: Prompts) -> LlmAnalyzer {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("the HTTP client builds with static settings");
        LlmAnalyzer {
            config,
            http,
            prompts,
            modes: Mutex::new(HashMap::new()),
        }
    }

    /// The structured-output mode in use for the default model: `json_schema`, `json_object`
    /// or `text`.
    pub fn mode(&self) -> &'static str {
        self.mode_of(&self.config.model)
    }

    /// The structured-output mode in use for `model`.
    pub fn mode_of(&self, model: &str) -> &'static str {
        match self.state(model).mode {
            JSON_SCHEMA => "json_schema",
            JSON_OBJECT => "json_object",
            _ => "text",
        }
    }

    fn state(&self, model: &str) -> ModeState {
        self.modes
            .lock()
            .expect("the mode map is never poisoned: no code panics holding it")
            .get(model)
            .copied()
            .unwrap_or_default()
    }

    /// Records that `mode` works for `model` (never moving back up the ladder).
    fn confirm(&self, model: &str, mode: u8) {
        let mut modes = self.modes.lock().expect("the mode map is never poisoned");
        let state = modes.entry(model.to_owned()).or_default();
        if mode >= state.mode {
            *state = ModeState {
                mode,
                confirmed: true,
            };
        }
    }

    /// Records that `model` refused every mode before `mode`.
    fn step_down(&self, model: &str, mode: u8) {
        let mut modes = self.modes.lock().expect("the mode map is never poisoned");
        let state = modes.entry(model.to_owned()).or_default();
        if mode > state.mode {
            *state = ModeState {
                mode,
                confirmed: false,
            };
        }
    }

    fn model_for(&self, agent: Agent) -> &str {
        self.config
            .agent_models
            .get(agent.as_str())
            .unwrap_or(&self.config.model)
    }

    async fn call(
        &self,
        agent: Agent,
        model: &str,
        mode: u8,
        conversation: &[Value],
    ) -> Result<Reply, CallError> {
        // The answer is capped to what the agent's schema needs: a model that rambles (a small
        // local one can write thousands of tokens) is cut off instead of running for minutes.
        let mut body = json!({ "model": model, "messages": conversation, "temperature": 0,
                               "max_tokens": max_tokens(agent) });
        match mode {
            JSON_SCHEMA => {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": { "name": format!("{}_output", agent.as_str()), "schema": output_schema(agent), "strict": false }
                });
            }
            JSON_OBJECT => body["response_format"] = json!({ "type": "json_object" }),
            _ => {}
        }
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut request = self.http.post(&url).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        // No answer in time and no answer at all (nothing listening, the connection cut) are
        // both a provider that did not answer: TIMEOUT, which the analysis stops waiting for
        // on its last attempt.
        let response = request.send().await.map_err(|e| {
            failed(
                if e.is_timeout() || e.is_connect() || e.is_request() {
                    ErrorCode::Timeout
                } else {
                    ErrorCode::LlmApiError
                },
                if e.is_connect() {
                    format!("{} unreachable: {e}", self.config.provider)
                } else {
                    format!("{} request failed: {e}", self.config.provider)
                },
            )
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(|e| {
            failed(
                if e.is_timeout() {
                    ErrorCode::Timeout
                } else {
                    ErrorCode::LlmApiError
                },
                format!("reading the {} answer failed: {e}", self.config.provider),
            )
        })?;
        if status == 429 {
            return Err(CallError::Failed(AnalyzerError {
                code: ErrorCode::RateLimited,
                message: format!("{} rate limit", self.config.provider),
                retry_at: Some(parse_retry_after(retry_after.as_deref(), Utc::now())),
            }));
        }
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| {
                    v.pointer("/error/message")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| text.chars().take(300).collect());
            let lower = message.to_lowercase();
            // Any 4xx or 5xx that names the mode: some servers reject `json_schema` with 400,
            // others with 422 or even 500 and a validation message.
            if mode < TEXT
                && (lower.contains("response_format")
                    || lower.contains("response format")
                    || lower.contains("json_schema")
                    || lower.contains("json schema")
                    || lower.contains("schema")
                    || lower.contains("json mode")
                    || lower.contains("json_object")
                    || lower.contains("structured output"))
            {
                return Err(CallError::ModeUnsupported);
            }
            return Err(CallError::Refused(AnalyzerError {
                code: ErrorCode::LlmApiError,
                message: format!("{} answered HTTP {status}: {message}", self.config.provider),
                retry_at: None,
            }));
        }
        let parsed: Value = serde_json::from_str(&text).map_err(|e| {
            failed(
                ErrorCode::LlmApiError,
                format!(
                    "{} answered with something that is not JSON: {e}",
                    self.config.provider
                ),
            )
        })?;
        let content = parsed
            .pointer("/choices/0/message/content")
            .and_then(|c| c.as_str())
            .ok_or_else(|| {
                failed(
                    ErrorCode::LlmApiError,
                    "the answer has no choices[0].message.content",
                )
            })?
            .to_owned();
        Ok(Reply {
            content,
            prompt_tokens: parsed
                .pointer("/usage/prompt_tokens")
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
            completion_tokens: parsed
                .pointer("/usage/completion_tokens")
                .and_then(|v| v.as_i64())
                .unwrap_or(0),
        })
    }
}

/// What the buyer analysis lacks that later agents need: evidence for a pain it scores, or a
/// reason for a deal it rates unlikely to close.
pub fn buyer_quality_gap(agent: Agent, output: &Value) -> Option<String> {
    if agent != Agent::Buyer {
        return None;
    }
    let mut gaps = Vec::new();
    let pain = output
        .pointer("/pain/score")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let evidence = output.pointer("/pain/evidence").and_then(|e| e.as_array());
    if pain >= 40 && evidence.is_none_or(|e| e.is_empty()) {
        gaps.push("pain is scored but pain.evidence is empty");
    }
    let probability = output
        .get("deal_probability")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    if probability < 50 && output.get("not_closed_reason").is_none_or(|v| v.is_null()) {
        gaps.push("the deal is rated unlikely but not_closed_reason is missing");
    }
    (!gaps.is_empty()).then(|| gaps.join(" and "))
}

/// The JSON object in an answer: the whole text, or the part inside a ```json fence, or from the
/// first `{` to the last `}`.
pub fn extract_json(content: &str) -> Result<Value, String> {
    let trimmed = content.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Ok(v);
    }
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .map(str::trim);
    if let Some(inner) = unfenced
        && let Ok(v) = serde_json::from_str::<Value>(inner)
    {
        return Ok(v);
    }
    match (trimmed.find('{'), trimmed.rfind('}')) {
        (Some(a), Some(b)) if a < b => serde_json::from_str(&trimmed[a..=b])
            .map_err(|e| format!("the answer is not valid JSON: {e}")),
        _ => Err("the answer holds no JSON object".into()),
    }
}

#[async_trait]
impl Analyzer for LlmAnalyzer {
    fn engine(&self) -> &'static str {
        "llm"
    }

    fn strict(&self) -> bool {
        self.config.strict
    }

    fn budget(&self) -> Option<Duration> {
        Some(self.config.budget)
    }

    async fn run(
        &self,
        agent: Agent,
        context: AgentContext<'_>,
    ) -> Result<AgentRun, AnalyzerError> {
        let started = Instant::now();
        let model = self.model_for(agent).to_owned();
        let (mut prompt_tokens, mut completion_tokens) = (0, 0);
        let state = self.state(&model);
        let mut mode = state.mode;
        // After an unexplained refusal on a model's first structured call, the next mode is
        // tried once before failing.
        let mut tried_next = false;
        let reply = loop {
            let (system, user, transcript_chars) =
                messages(&self.prompts, agent, &context, mode != JSON_SCHEMA);
            let conversation = vec![
                json!({ "role": "system", "content": system }),
                json!({ "role": "user", "content": user }),
            ];
            match self.call(agent, &model, mode, &conversation).await {
                Ok(reply) => {
                    tracing::debug!(event = "llm.called", agent = agent.as_str(), model = %model, transcript_chars, mode, "llm answered");
                    self.confirm(&model, mode);
                    break (reply, conversation);
                }
                Err(CallError::ModeUnsupported) => {
                    let next = (mode + 1).min(TEXT);
                    tracing::warn!(event = "llm.mode_downgraded", provider = %self.config.provider, model = %model, from = mode, to = next, "the server rejected this structured-output mode");
                    self.step_down(&model, next);
                    mode = next;
                }
                Err(CallError::Refused(err)) if !state.confirmed && !tried_next && mode < TEXT => {
                    tracing::warn!(event = "llm.mode_probe", provider = %self.config.provider, model = %model, from = mode, to = mode + 1, error = %err.message, "the first structured call failed without a reason; trying the next mode once");
                    tried_next = true;
                    mode += 1;
                }
                Err(CallError::Refused(err) | CallError::Failed(err)) => return Err(err),
            }
        };
        let (first, mut conversation) = reply;
        prompt_tokens += first.prompt_tokens;
        completion_tokens += first.completion_tokens;
        let check = |content: &str| -> Result<Value, String> {
            let value = extract_json(content)?;
            validate_output(agent, &value)?;
            Ok(value)
        };
        let output = match check(&first.content) {
            Ok(value) => value,
            Err(problem) => {
                // One repair: show the model its answer and what is wrong with it. The
                // transcript is not sent again: fixing the shape of an answer does not need it.
                tracing::warn!(event = "llm.repair", agent = agent.as_str(), problem = %problem, "invalid answer; asking once for a repair");
                let repair = vec![
                    conversation[0].clone(),
                    json!({ "role": "user", "content": format!(
                        "This answer does not match the required JSON schema: {problem}.\n\nAnswer:\n{}\n\nSchema:\n{}\n\nAnswer again with only the corrected JSON object.",
                        first.content.chars().take(20_000).collect::<String>(),
                        output_schema(agent)
                    )}),
                ];
                let second = match self.call(agent, &model, mode, &repair).await {
                    Ok(reply) => reply,
                    Err(CallError::Failed(err) | CallError::Refused(err)) => return Err(err),
                    Err(CallError::ModeUnsupported) => {
                        return Err(AnalyzerError {
                            code: ErrorCode::LlmApiError,
                            message: "the server rejected the repair request".into(),
                            retry_at: None,
                        });
                    }
                };
                prompt_tokens += second.prompt_tokens;
                completion_tokens += second.completion_tokens;
                // A repair that is still invalid gets one fresh call (the question asked anew:
                // a model that went wrong once often answers well from scratch) before the
                // agent gives up.
                let fresh = match check(&second.content) {
                    Ok(value) => Ok(value),
                    Err(problem) => {
                        tracing::warn!(event = "llm.fresh_call", agent = agent.as_str(), problem = %problem, "still invalid after the repair; asking once more from scratch");
                        match self.call(agent, &model, mode, &conversation).await {
                            Ok(third) => {
                                prompt_tokens += third.prompt_tokens;
                                completion_tokens += third.completion_tokens;
                                check(&third.content)
                            }
                            Err(CallError::Failed(err) | CallError::Refused(err)) => {
                                return Err(err);
                            }
                            Err(CallError::ModeUnsupported) => Err(problem),
                        }
                    }
                };
                match fresh {
                    Ok(value) => value,
                    Err(problem) if self.config.strict => {
                        return Err(AnalyzerError {
                            code: ErrorCode::AnalysisInvalidOutput,
                            message: format!(
                                "the {} agent's answer did not match its schema after one repair and a fresh call: {problem}",
                                agent.as_str()
                            ),
                            retry_at: None,
                        });
                    }
                    Err(problem) => {
                        // Per-agent fallback: this agent's output comes from the rules engine,
                        // marked with the reason, and the analysis goes on.
                        tracing::warn!(event = "llm.fallback", agent = agent.as_str(), model = %model, problem = %problem, "invalid answer after a repair and a fresh call; this agent falls back to the rules engine");
                        let mut run = rules_fallback(
                            agent,
                            &context,
                            format!(
                                "the LLM's answer did not match the schema after a repair and a fresh call: {problem}"
                            ),
                        );
                        run.prompt_tokens = Some(prompt_tokens);
                        run.completion_tokens = Some(completion_tokens);
                        run.latency_ms = Some(started.elapsed().as_millis() as i64);
                        return Ok(run);
                    }
                }
            }
        };
        // The buyer's output feeds every later agent: if it lacks evidence or a reason, ask once
        // for a refinement and use that (the original asked, then threw the answer away).
        let output = match (agent, buyer_quality_gap(agent, &output)) {
            (Agent::Buyer, Some(gap)) => {
                tracing::info!(event = "llm.refine", agent = agent.as_str(), gap = %gap, "refining the buyer analysis once");
                conversation.push(json!({ "role": "assistant", "content": output.to_string() }));
                conversation.push(json!({ "role": "user", "content": format!(
                    "Refine this analysis: {gap}. Quote the transcript word for word with start_ms, and keep null only where the transcript really says nothing. Answer with the complete corrected JSON object."
                )}));
                match self.call(agent, &model, mode, &conversation).await {
                    Ok(reply) => {
                        prompt_tokens += reply.prompt_tokens;
                        completion_tokens += reply.completion_tokens;
                        // A refinement that breaks the contract is ignored; the valid first answer stands.
                        check(&reply.content).unwrap_or(output)
                    }
                    Err(CallError::Failed(err)) if err.code == ErrorCode::RateLimited => {
                        return Err(err);
                    }
                    Err(_) => output,
                }
            }
            _ => output,
        };
        let mut output = output;
        resolve_line_refs(&mut output, context.segments);
        Ok(AgentRun {
            agent: agent.as_str().to_owned(),
            engine: "llm".to_owned(),
            model: Some(model),
            output,
            prompt_tokens: Some(prompt_tokens),
            completion_tokens: Some(completion_tokens),
            latency_ms: Some(started.elapsed().as_millis() as i64),
            fallback: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::extract_json;

    #[test]
    fn json_is_found_in_chatty_answers() {
        assert!(extract_json(r#"{"a": 1}"#).is_ok());
        assert_eq!(extract_json("```json\n{\"a\": 2}\n```").unwrap()["a"], 2);
        assert_eq!(
            extract_json("Sure! Here it is: {\"a\": 3} Hope that helps.").unwrap()["a"],
            3
        );
        assert!(extract_json("no json here").is_err());
    }
}
