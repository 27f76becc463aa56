//! `conversation.analyze`: the agents as a DAG, each output checkpointed, then the scores
//! derived in code and the analysis saved with the conversation's completion in one
//! transaction.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::future::join_all;
use salesai_core::analysis::derive::derive_in;
use salesai_core::analysis::engine::{AgentContext, rules_fallback};
use salesai_core::analysis::{Agent, AgentOutputs};
use salesai_core::domain::ConversationStatus;
use salesai_core::pipeline::AnalyzeJob;
use salesai_core::queue::Job;
use salesai_core::store::StoredAnalysis;
use salesai_core::{App, ErrorCode};

use super::{conversation_id, db, load_conversation, stage};
use crate::{Handler, JobError};

/// The agents in waves (the core's order).
pub use salesai_core::analysis::WAVES;

/// The handler.
pub struct Analyze;

#[async_trait]
impl Handler for Analyze {
    type Kind = AnalyzeJob;

    async fn run(&self, app: &App, job: &Job, _: AnalyzeJob) -> Result<(), JobError> {
        let id = conversation_id(job)?;
        // On the job's last attempt an agent whose LLM still fails takes its output from the
        // rules engine (unless the analysis is strict), so the analysis completes.
        let last_attempt = job.attempts >= job.max_attempts;
        stage(
            app,
            job,
            &id,
            ConversationStatus::Analyzing,
            analyze(app, &id, last_attempt),
        )
        .await
    }
}

async fn analyze(app: &App, id: &str, last_attempt: bool) -> Result<(), JobError> {
    let store = &app.store;
    let conversation = load_conversation(app, id).await?;
    if conversation.status == ConversationStatus::Completed {
        return Ok(());
    }
    let segments = store.get_transcript(id).await.map_err(db)?;
    if segments.is_empty() {
        return Err(JobError::terminal(
            ErrorCode::AudioEmpty,
            "there is no transcript to analyse",
        ));
    }
    if conversation.status != ConversationStatus::Analyzing {
        store
            .set_conversation_status(id, ConversationStatus::Analyzing, None)
            .await
            .map_err(db)?;
    }
    let line = app.product_line(&conversation.product_line);
    // The agents resolve "next Tuesday" against the day the call was held, in the team's
    // time zone (`_` keys are salesai's own, never shown as upload fields).
    let mut metadata = conversation.metadata.clone();
    if let Some(fields) = metadata.as_object_mut() {
        let day = conversation
            .call_at()
            .with_timezone(&app.time_zone)
            .date_naive();
        fields.insert(
            salesai_core::analysis::CALL_DATE_KEY.into(),
            serde_json::json!(day.to_string()),
        );
    }
    let budget = Budget::start(app);
    let mut done: BTreeMap<Agent, serde_json::Value> = BTreeMap::new();
    for run in store.get_agent_outputs(id).await.map_err(db)? {
        if let Some(agent) = salesai_core::analysis::AGENTS
            .iter()
            .find(|a| a.as_str() == run.agent)
        {
            done.insert(*agent, run.output);
        }
    }
    for wave in WAVES {
        let pending: Vec<Agent> = wave
            .iter()
            .copied()
            .filter(|a| !done.contains_key(a))
            .collect();
        if pending.is_empty() {
            continue;
        }
        let runs = join_all(pending.iter().map(|agent| {
            let prior: BTreeMap<Agent, serde_json::Value> = agent
                .needs()
                .iter()
                .filter_map(|need| done.get(need).map(|v| (*need, v.clone())))
                .collect();
            let segments = &segments;
            let metadata = &metadata;
            let budget = &budget;
            async move {
                let context = AgentContext {
                    segments,
                    metadata,
                    product_line: line,
                    prior: &prior,
                };
                let result = run_agent(app, *agent, context, last_attempt, budget).await;
                (*agent, result)
            }
        }))
        .await;
        // Save every success before reporting a failure, so a retry redoes only the failures.
        let mut errors = Vec::new();
        for (agent, result) in runs {
            match result {
                Ok(run) => {
                    // Paid for: kept through a database outage rather than asked again.
                    crate::until_stored("agent output", super::KEEP_PAID_FOR, None, || {
                        store.save_agent_output(id, &run)
                    })
                    .await
                    .map_err(db)?;
                    tracing::info!(event = "agent.completed", conversation_id = %id, agent = agent.as_str(), engine = %run.engine, latency_ms = run.latency_ms, prompt_tokens = run.prompt_tokens, completion_tokens = run.completion_tokens, "agent completed");
                    done.insert(agent, run.output);
                }
                Err(err) => {
                    tracing::warn!(event = "agent.failed", conversation_id = %id, agent = agent.as_str(), error_code = %err.code, error = %err.message, "agent failed");
                    errors.push(err);
                }
            }
        }
        if let Some(err) = wave_error(errors) {
            return Err(err);
        }
    }
    let outputs = assemble(&done)?;
    let derived = derive_in(&outputs, &line.methodology, line.rules_language());
    let engine = app.analyzer.engine().to_owned();
    let analysis = StoredAnalysis {
        engine,
        overall_score: derived.overall,
        qualification: derived.qualification.as_str().to_owned(),
        pain_score: outputs.buyer.pain.score,
        decision_score: outputs.buyer.decision.score,
        champion_score: outputs.buyer.champion.score,
        metrics_score: outputs.buyer.metrics.score,
        result: serde_json::to_value(&derived)
            .map_err(|e| JobError::terminal(ErrorCode::Internal, e.to_string()))?,
    };
    store.complete_analysis(id, &analysis).await.map_err(db)?;
    let durations = stage_durations(&store.stage_events(id).await.map_err(db)?);
    tracing::info!(
        event = "conversation.completed",
        conversation_id = %id,
        case_number = %conversation.case_number,
        engine = app.analyzer.engine(),
        overall_score = analysis.overall_score.value(),
        pending_ms = durations.get("pending").copied().unwrap_or(0),
        preparing_ms = durations.get("preparing").copied().unwrap_or(0),
        transcribing_ms = durations.get("transcribing").copied().unwrap_or(0),
        analyzing_ms = durations.get("analyzing").copied().unwrap_or(0),
        duration_ms = durations.get("total").copied().unwrap_or(0),
        "Processing completed"
    );
    Ok(())
}

/// The job's outcome when agents of a wave failed: an error no retry can help ends the job;
/// otherwise rate limits reschedule it for the *latest* `Retry-After` among them (an earlier
/// one would call the other rate-limited agents before their provider allows it); otherwise
/// the first failure is retried as usual.
fn wave_error(errors: Vec<salesai_core::analysis::engine::AnalyzerError>) -> Option<JobError> {
    if let Some(err) = errors
        .iter()
        .find(|e| e.retry_at.is_none() && !e.code.retryable_by_default())
    {
        return Some(JobError::terminal(err.code, err.message.clone()));
    }
    if let Some((at, err)) = errors
        .iter()
        .filter_map(|e| e.retry_at.map(|at| (at, e)))
        .max_by_key(|(at, _)| *at)
    {
        return Some(JobError::RetryAt {
            at,
            code: err.code,
            message: err.message.clone(),
        });
    }
    errors
        .into_iter()
        .next()
        .map(|err| JobError::from_code(err.code, err.message))
}

/// Calls one agent with its own budget: a transient failure (5xx, a timeout, a refused
/// connection) is tried again in this attempt, up to [`AGENT_CALLS`] calls, after an
/// exponential backoff with jitter — so one agent's bad luck spends neither the job's attempts
/// nor the other agents' finished work. A rate limit is not waited for here: the job is
/// rescheduled for the provider's `Retry-After` without spending an attempt.
async fn run_agent(
    app: &App,
    agent: Agent,
    context: AgentContext<'_>,
    last_attempt: bool,
    budget: &Budget,
) -> Result<salesai_core::store::AgentRun, salesai_core::analysis::engine::AnalyzerError> {
    let mut call = 1;
    loop {
        // Past the budget, or once the provider proved unreachable or too slow on this last
        // attempt: no more waiting — the rules engine's part, with the reason.
        if let Some(reason) = budget.spent() {
            if app.analyzer.strict() {
                return Err(salesai_core::analysis::engine::AnalyzerError {
                    code: ErrorCode::Timeout,
                    message: reason,
                    retry_at: None,
                });
            }
            tracing::warn!(event = "agent.budget_fallback", agent = agent.as_str(), reason = %reason, "the agent takes its part from the rules engine");
            return Ok(rules_fallback(agent, &context, reason));
        }
        let attempt = match budget.remaining() {
            Some(left) => {
                match tokio::time::timeout(left, app.analyzer.run(agent, context)).await {
                    Ok(result) => result,
                    Err(_) => continue,
                }
            }
            None => app.analyzer.run(agent, context).await,
        };
        match attempt {
            Err(err)
                if last_attempt && err.code == ErrorCode::Timeout && !app.analyzer.strict() =>
            {
                budget.give_up(format!(
                    "the LLM did not answer on the last attempt ({}); no agent waits for it again in this analysis",
                    err.message
                ));
                continue;
            }
            Ok(run) => return Ok(run),
            Err(err)
                if call < AGENT_CALLS
                    && err.retry_at.is_none()
                    && err.code.retryable_by_default() =>
            {
                let wait = super::call_backoff(call, rand::random::<f64>());
                tracing::warn!(event = "agent.retry", agent = agent.as_str(), call, error_code = %err.code, error = %err.message, wait_ms = wait.as_millis() as u64, "the agent's call failed; trying again");
                tokio::time::sleep(wait).await;
                call += 1;
            }
            // On the last attempt a long wait (a provider's pause, a far Retry-After) helps no
            // one: the agent takes the rules engine's part now, and so do the others.
            Err(err)
                if last_attempt
                    && !app.analyzer.strict()
                    && err.retry_at.is_some_and(|at| {
                        at > chrono::Utc::now() + chrono::Duration::seconds(LONGEST_WAIT_SECS)
                    }) =>
            {
                let reason = format!(
                    "the LLM asked to wait until {} on the last attempt: {}",
                    err.retry_at.map(|at| at.to_rfc3339()).unwrap_or_default(),
                    err.message
                );
                budget.give_up(reason.clone());
                return Ok(rules_fallback(agent, &context, reason));
            }
            Err(err) if fall_back(app, &err, last_attempt) => {
                let reason = format!(
                    "the LLM kept failing for this agent: {}: {}",
                    err.code, err.message
                );
                // A provider that does not answer at all will not answer the next agent either.
                if last_attempt && err.code == ErrorCode::Timeout {
                    budget.give_up(reason.clone());
                }
                return Ok(rules_fallback(agent, &context, reason));
            }
            Err(err) => return Err(err),
        }
    }
}

/// One analysis's wait on its engine: when the budget ends, and whether the provider already
/// proved unreachable or too slow on the job's last attempt (then no agent waits again).
struct Budget {
    until: Option<std::time::Instant>,
    seconds: u64,
    gave_up: std::sync::Mutex<Option<String>>,
}

impl Budget {
    fn start(app: &App) -> Budget {
        let budget = app.analyzer.budget();
        Budget {
            until: budget.map(|b| std::time::Instant::now() + b),
            seconds: budget.map_or(0, |b| b.as_secs()),
            gave_up: std::sync::Mutex::new(None),
        }
    }

    fn remaining(&self) -> Option<std::time::Duration> {
        self.until
            .map(|u| u.saturating_duration_since(std::time::Instant::now()))
    }

    /// Why no agent should wait any more, if so.
    fn spent(&self) -> Option<String> {
        if let Some(reason) = self.gave_up.lock().ok().and_then(|g| g.clone()) {
            return Some(reason);
        }
        self.remaining().filter(|r| r.is_zero()).map(|_| {
            format!(
                "the analysis's LLM budget of {} s (SALESAI_LLM_BUDGET_SECS) ran out",
                self.seconds
            )
        })
    }

    fn give_up(&self, reason: String) {
        if let Ok(mut g) = self.gave_up.lock() {
            g.get_or_insert(reason);
        }
    }
}

/// The longest a provider's requested wait is honoured on a job's last attempt.
const LONGEST_WAIT_SECS: i64 = 30;

/// Calls an agent gets within one attempt of the job before the attempt fails.
pub const AGENT_CALLS: u32 = 3;

/// Whether a failed agent takes its output from the rules engine: not in strict mode, not for a
/// rate limit (it waits without spending an attempt), and only when no retry is left (the last
/// attempt, or an error no retry can help).
fn fall_back(
    app: &App,
    err: &salesai_core::analysis::engine::AnalyzerError,
    last_attempt: bool,
) -> bool {
    !app.analyzer.strict()
        && err.retry_at.is_none()
        && (last_attempt || !err.code.retryable_by_default())
}

fn assemble(done: &BTreeMap<Agent, serde_json::Value>) -> Result<AgentOutputs, JobError> {
    let mut object = serde_json::Map::new();
    for (agent, value) in done {
        object.insert(agent.as_str().to_owned(), value.clone());
    }
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        JobError::terminal(
            ErrorCode::AnalysisInvalidOutput,
            format!("saved agent outputs do not match the contract: {e}"),
        )
    })
}

/// Milliseconds spent in each status (summed over repeats, e.g. after a retry), plus `total`.
pub fn stage_durations(events: &[salesai_core::store::StageEvent]) -> BTreeMap<&'static str, i64> {
    let mut out = BTreeMap::new();
    for pair in events.windows(2) {
        let ms = (pair[1].at - pair[0].at).num_milliseconds().max(0);
        *out.entry(pair[0].status.as_str()).or_insert(0) += ms;
    }
    if let (Some(first), Some(last)) = (events.first(), events.last()) {
        out.insert("total", (last.at - first.at).num_milliseconds().max(0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::wave_error;
    use crate::JobError;
    use chrono::{Duration, Utc};
    use salesai_core::ErrorCode;
    use salesai_core::analysis::engine::AnalyzerError;

    fn err(code: ErrorCode, retry_in_ms: Option<i64>) -> AnalyzerError {
        AnalyzerError {
            code,
            message: format!("{code}"),
            retry_at: retry_in_ms.map(|ms| Utc::now() + Duration::milliseconds(ms)),
        }
    }

    #[test]
    fn the_latest_retry_after_of_a_wave_wins() {
        let early = err(ErrorCode::RateLimited, Some(100));
        let late = err(ErrorCode::RateLimited, Some(900));
        let late_at = late.retry_at.unwrap();
        // Whatever order the agents finished in.
        for errors in [vec![early.clone(), late.clone()], vec![late, early]] {
            match wave_error(errors) {
                Some(JobError::RetryAt { at, .. }) => assert_eq!(at, late_at),
                other => panic!("expected a reschedule, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_rate_limit_outranks_a_transient_failure_and_a_terminal_one_ends_the_job() {
        let transient = err(ErrorCode::LlmApiError, None);
        let limited = err(ErrorCode::RateLimited, Some(500));
        assert!(matches!(
            wave_error(vec![transient.clone(), limited.clone()]),
            Some(JobError::RetryAt { .. })
        ));
        let terminal = err(ErrorCode::AnalysisInvalidOutput, None);
        assert!(matches!(
            wave_error(vec![limited, terminal]),
            Some(JobError::Terminal { .. })
        ));
        assert!(matches!(
            wave_error(vec![transient]),
            Some(JobError::Retryable { .. })
        ));
        assert!(wave_error(Vec::new()).is_none());
    }
}
