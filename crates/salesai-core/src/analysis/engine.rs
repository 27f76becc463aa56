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
        let started = Instant::now();
        let input = RulesInput {
            segments: context.segments,
            competitors: &context.product_line.competitors,
            metadata: context.metadata,
            language: context.product_line.rules_language(),
        };
        let output = rules::run_agent(agent, &input);
        Ok(AgentRun {
            agent: agent.as_str().to_owned(),
            engine: rules::ENGINE.to_owned(),
            model: None,
            output,
            prompt_tokens: None,
            completion_tokens: None,
            latency_ms: Some(started.elapsed().as_millis() as i64),
        })
    }
}
