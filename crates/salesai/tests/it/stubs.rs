//! What the stub OpenAI-compatible servers of these tests answer.

use serde_json::{Value, json};

/// The agent a chat-completions request is for, read from its system prompt (English or
/// Chinese prompts).
pub fn agent_of(request: &Value) -> salesai_core::analysis::Agent {
    let system = request["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    salesai_core::analysis::AGENTS
        .into_iter()
        .find(|a| {
            system.contains(&format!("Agent: {}", a.as_str()))
                || system.contains(&format!("代理：{}", a.as_str()))
        })
        .unwrap_or(salesai_core::analysis::Agent::Context)
}

/// A chat completion answering `request` with a schema-valid output for its agent (the rules
/// engine's on a fixed two-line call, not the request's) and token usage (100 + 20).
pub fn agent_completion(request: &Value) -> Value {
    use salesai_core::analysis::rules::{Language, RulesInput, run_agent};
    let segments = salesai_core::transcript::parse_transcript(
        "Rep: How do you take orders?\nOwner: By hand, we lose $500 a month.",
    )
    .expect("a valid transcript")
    .1;
    let output = run_agent(
        agent_of(request),
        &RulesInput {
            segments: &segments,
            competitors: &[],
            metadata: &json!({}),
            language: Language::En,
            lexicon: &Default::default(),
        },
    );
    completion(&output.to_string())
}

/// A chat completion whose answer is `content`.
pub fn completion(content: &str) -> Value {
    json!({
        "id": "x", "object": "chat.completion", "created": 1, "model": "stub",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120 }
    })
}
