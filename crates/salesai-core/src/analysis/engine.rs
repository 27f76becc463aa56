//! The analysis engine interface: one agent at a time, so every agent's output can be saved as
//! a checkpoint and a retry pays only for the agents that did not finish.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Agent;
use super::rules::{self, RulesInput};
use crate::ErrorCode;
use crate::product_line::ProductLine;
use crate::store::AgentRun;
use crate::transcript::Segment;

/// What an agent reads.
#[derive(Debug, Clone, Copy)]
pub struct AgentContext<'a> {
    /// The transcript.
    pub segments: &'a [Segment],
    /// The upload's metadata.
    pub metadata: &'a serde_json::Value,
    /// The conversation's product line.
    pub product_line: &'a ProductLine,
    /// Outputs of the agents this one depends on.
    pub prior: &'a BTreeMap<Agent, serde_json::Value>,
}

/// Why an agent failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AnalyzerError {
    /// The stable code.
    pub code: ErrorCode,
    /// What happened.
    pub message: String,
    /// A provider's `retry-after`, when it sent one.
    pub retry_at: Option<DateTime<Utc>>,
}

/// Runs agents.
#[async_trait]
pub trait Analyzer: Send + Sync + 'static {
    /// `rules` or `llm`.
    fn engine(&self) -> &'static str;

    /// Whether an agent that cannot get a valid answer fails the analysis (`true`) or takes its
    /// output from the rules engine (`false`, the default).
    fn strict(&self) -> bool {
        false
    }

    /// How long one analysis may wait on this engine in all (every agent's calls together)
    /// before the agents still waiting take their part from the rules engine; `None`: no
    /// limit (the rules engine itself).
    fn budget(&self) -> Option<std::time::Duration> {
        None
    }

    /// Runs one agent and returns its validated output.
    async fn run(&self, agent: Agent, context: AgentContext<'_>)
    -> Result<AgentRun, AnalyzerError>;
}

/// The offline rules engine as an `Analyzer`.
pub struct RulesAnalyzer;

#[async_trait]
impl Analyzer for RulesAnalyzer {
    fn engine(&self) -> &'static str {
        rules::ENGINE
    }

    async fn run(
        &self,
        agent: Agent,
        context: AgentContext<'_>,
    ) -> Result<AgentRun, AnalyzerError> {
        Ok(rules_run(agent, &context))
    }
}

/// One agent's output from the rules engine.
fn rules_run(agent: Agent, context: &AgentContext<'_>) -> AgentRun {
    let started = Instant::now();
    let input = RulesInput {
        segments: context.segments,
        competitors: &context.product_line.competitors,
        metadata: context.metadata,
        language: context.product_line.rules_language(),
        lexicon: &context.product_line.lexicon,
    };
    let output = rules::run_agent(agent, &input);
    AgentRun {
        agent: agent.as_str().to_owned(),
        engine: rules::ENGINE.to_owned(),
        model: None,
        output,
        prompt_tokens: None,
        completion_tokens: None,
        latency_ms: Some(started.elapsed().as_millis() as i64),
        fallback: None,
    }
}

/// The rules engine's output for one agent, standing in for an LLM that could not give a valid
/// one, with the reason kept beside it (shown on the API, the Slack card and the call page).
pub fn rules_fallback(agent: Agent, context: &AgentContext<'_>, reason: String) -> AgentRun {
    AgentRun {
        fallback: Some(reason),
        ..rules_run(agent, context)
    }
}

/// Runs every agent in dependency waves (the same order the worker checkpoints them in) and
/// assembles the contract; the eval harness and tools use it, the worker keeps its own loop
/// because it saves each agent as it finishes.
pub async fn run_all(
    analyzer: &dyn Analyzer,
    segments: &[Segment],
    metadata: &serde_json::Value,
    product_line: &ProductLine,
) -> Result<(super::AgentOutputs, Vec<AgentRun>), AnalyzerError> {
    let mut done: BTreeMap<Agent, serde_json::Value> = BTreeMap::new();
    let mut runs = Vec::new();
    for wave in super::WAVES {
        for agent in wave {
            let prior: BTreeMap<Agent, serde_json::Value> = agent
                .needs()
                .iter()
                .filter_map(|need| done.get(need).map(|v| (*need, v.clone())))
                .collect();
            let context = AgentContext {
                segments,
                metadata,
                product_line,
                prior: &prior,
            };
            let run = analyzer.run(*agent, context).await?;
            done.insert(*agent, run.output.clone());
            runs.push(run);
        }
    }
    let object: serde_json::Map<String, serde_json::Value> = done
        .into_iter()
        .map(|(a, v)| (a.as_str().to_owned(), v))
        .collect();
    let outputs =
        serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| AnalyzerError {
            code: ErrorCode::AnalysisInvalidOutput,
            message: format!("agent outputs do not match the contract: {e}"),
            retry_at: None,
        })?;
    Ok((outputs, runs))
}
