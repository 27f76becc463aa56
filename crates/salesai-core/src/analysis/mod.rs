//! The analysis contract: what each agent of SPEC §4 produces, and what is derived from it in
//! code. The same structs are filled by an LLM (validated against their schema) or by the
//! offline rules engine ([`rules`]), so every later stage — scores, reports, Slack cards — is
//! the same whichever engine ran.
//!
//! Missing information is `None` or empty, never guessed. Every score is a [`Score`] (0–100).

pub mod derive;
pub mod engine;
pub mod eval;
pub mod prompts;
pub mod rules;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::Score;

/// The agents, in DAG order: context and buyer first (in parallel), seller and crm after
/// buyer, summary and coach last.
pub const AGENTS: [Agent; 6] = [
    Agent::Context,
    Agent::Buyer,
    Agent::Seller,
    Agent::Crm,
    Agent::Summary,
    Agent::Coach,
];

/// The agents in waves: every agent of a wave depends only on earlier waves, so a wave's
/// agents can run concurrently.
pub const WAVES: [&[Agent]; 3] = [
    &[Agent::Context, Agent::Buyer],
    &[Agent::Seller, Agent::Crm],
    &[Agent::Summary, Agent::Coach],
];

/// One analysis agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agent {
    /// Situation around the deal: decision maker, urgency, deadline, barriers.
    Context,
    /// The customer: PDCM, deal probability, competitors.
    Buyer,
    /// The rep: progress, strategy, next action, SPIN.
    Seller,
    /// Pipeline fields.
    Crm,
    /// Customer-facing notes and follow-up.
    Summary,
    /// Coaching and alerts.
    Coach,
}

impl Agent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Agent::Context => "context",
            Agent::Buyer => "buyer",
            Agent::Seller => "seller",
            Agent::Crm => "crm",
            Agent::Summary => "summary",
            Agent::Coach => "coach",
        }
    }

    /// The agents whose outputs this one reads.
    pub fn needs(self) -> &'static [Agent] {
        match self {
            Agent::Context | Agent::Buyer => &[],
            Agent::Seller => &[Agent::Buyer],
            Agent::Crm => &[Agent::Context, Agent::Buyer],
            Agent::Summary => &[Agent::Context, Agent::Buyer, Agent::Seller],
            Agent::Coach => &[Agent::Buyer, Agent::Seller],
        }
    }
}

/// A quote from the transcript with where it was said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// The words, as said.
    pub quote: String,
    /// Milliseconds from the start of the recording.
    pub start_ms: u64,
}

/// Low, medium or high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

impl Level {
    /// The wire name (`low`, `medium`, `high`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

/// The context agent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContextOutput {
    /// Was a decision maker in the call (from the upload form or the transcript)?
    pub decision_maker_present: Option<bool>,
    /// Did the transcript confirm who decides?
    pub decision_maker_confirmed: Option<bool>,
    /// How urgent the customer's need is.
    pub urgency: Option<Level>,
    /// A deadline the customer named.
    pub deadline: Option<String>,
    /// Why the customer is looking now.
    pub motivation: Option<String>,
    /// What stands in the way.
    pub barriers: Vec<String>,
    /// Supporting quotes.
    pub evidence: Vec<Evidence>,
}

/// PDCM Pain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PainAssessment {
    /// 0–100.
    pub score: Score,
    /// P1 (critical, quantified) … P4 (no real pain).
    pub level: String,
    /// The main pain in a sentence.
    pub main_pain: Option<String>,
    /// The loss the customer put a number on.
    pub quantified_loss: Option<String>,
    /// Supporting quotes.
    pub evidence: Vec<Evidence>,
}

/// PDCM Decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DecisionAssessment {
    /// 0–100.
    pub score: Score,
    /// The contact's role (owner, manager…).
    pub contact_role: Option<String>,
    /// Can the contact decide?
    pub has_authority: Option<bool>,
    /// What the customer said about budget.
    pub budget_awareness: Option<String>,
    /// When they intend to decide.
    pub timeline: Option<String>,
    /// What could stall the decision.
    pub risk: Option<String>,
    /// Supporting quotes.
    pub evidence: Vec<Evidence>,
}

/// PDCM Champion / Criteria.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChampionAssessment {
    /// 0–100.
    pub score: Score,
    /// positive, neutral or negative.
    pub attitude: Option<String>,
    /// e.g. price-sensitive, feature-driven.
    pub customer_type: Option<String>,
    /// What they will judge by.
    pub primary_criteria: Vec<String>,
    /// What worries them about switching.
    pub switch_concerns: Vec<String>,
    /// Supporting quotes.
    pub evidence: Vec<Evidence>,
}

/// A quantified business effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QuantifiedItem {
    /// What it is.
    pub description: String,
    /// Its monthly value in the customer's currency, when stated.
    pub monthly_value: Option<f64>,
}

/// PDCM Metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricsAssessment {
    /// 0–100.
    pub score: Score,
    /// M1 (ROI agreed) … M4 (nothing quantified).
    pub level: String,
    /// The quantities found.
    pub quantified_items: Vec<QuantifiedItem>,
    /// Yearly effect, when monthly values are known.
    pub annual_impact: Option<f64>,
    /// One line of ROI, when there is one.
    pub roi_line: Option<String>,
}

/// A competitor mentioned in the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompetitorMention {
    /// The competitor's name.
    pub name: String,
    /// The customer's words.
    pub quote: String,
    /// Where.
    pub start_ms: u64,
    /// positive, neutral or negative toward the competitor.
    pub attitude: String,
}

/// The buyer agent's output (the core of the analysis).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BuyerOutput {
    /// Pain.
    pub pain: PainAssessment,
    /// Decision.
    pub decision: DecisionAssessment,
    /// Champion / criteria.
    pub champion: ChampionAssessment,
    /// Metrics.
    pub metrics: MetricsAssessment,
    /// Chance of closing, 0–100.
    pub deal_probability: Score,
    /// Why the deal is not closed yet.
    pub not_closed_reason: Option<String>,
    /// What could unlock it.
    pub breakthrough: Option<String>,
    /// Competitors mentioned.
    pub competitors: Vec<CompetitorMention>,
    /// Openings the rep did not take.
    pub missed_opportunities: Vec<String>,
}

/// The recommended strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Ask for the signature now.
    CloseNow,
    /// Secure a smaller commitment (trial, demo with the owner).
    SmallStep,
    /// Not ready: nurture.
    KeepWarm,
}

/// The metadata key under which the analysis is given the day the call was held
/// (`YYYY-MM-DD`, in the team's time zone): "next Tuesday" is resolved against it.
pub const CALL_DATE_KEY: &str = "_call_date";

/// The next thing the rep should do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NextAction {
    /// The action.
    pub action: String,
    /// What to say.
    pub script: Option<String>,
    /// By when.
    pub deadline: Option<String>,
}

/// SPIN selling coverage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Spin {
    /// Situation questions.
    pub situation: Score,
    /// Problem questions.
    pub problem: Score,
    /// Implication questions.
    pub implication: Score,
    /// Need-payoff questions.
    pub need_payoff: Score,
    /// Overall completion.
    pub completion: Score,
}

/// The seller agent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SellerOutput {
    /// How far the rep moved the deal.
    pub progress_score: Score,
    /// Did the rep ask for the close?
    pub asked_for_close: bool,
    /// What to do next, in one word.
    pub strategy: Strategy,
    /// The next action.
    pub next_action: NextAction,
    /// SPIN coverage.
    pub spin: Spin,
    /// What went well.
    pub strengths: Vec<String>,
    /// What to improve.
    pub improvements: Vec<String>,
}

/// The crm agent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CrmOutput {
    /// Pipeline stage (qualification, needs_analysis, proposal, negotiation, closed_won…).
    pub stage: String,
    /// Confidence in the stage.
    pub stage_confidence: Score,
    /// Why.
    pub reasoning: String,
    /// Budget, as said.
    pub budget: Option<String>,
    /// People who decide.
    pub decision_makers: Vec<String>,
    /// Timeline, as said.
    pub timeline: Option<String>,
    /// Agreed next steps.
    pub next_steps: Vec<String>,
}

/// An action item from the meeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ActionItem {
    /// `us` or `customer`.
    pub owner: String,
    /// What.
    pub item: String,
}

/// The summary agent's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryOutput {
    /// Customer-facing notes in Markdown.
    pub meeting_notes_markdown: String,
    /// A short follow-up message to send.
    pub follow_up_message: String,
    /// Decisions taken.
    pub key_decisions: Vec<String>,
    /// Who does what.
    pub action_items: Vec<ActionItem>,
}

/// An alert for the rep's manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// close_now, missing_decision_maker, excellent, low_progress or none.
    pub kind: String,
    /// How much attention it needs.
    pub severity: Level,
    /// Why.
    pub reason: String,
}

/// An objection and how it was handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Objection {
    /// The objection, quoted.
    pub objection: String,
    /// Where.
    pub start_ms: u64,
    /// Whether the rep answered it.
    pub handled: bool,
}

/// The coach agent's output. Internal: never shown on customer-facing pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CoachOutput {
    /// The alert.
    pub alert: Alert,
    /// Coaching notes for the rep.
    pub coaching_notes: Vec<String>,
    /// Objections raised.
    pub objections: Vec<Objection>,
    /// Suggested talk tracks.
    pub talk_tracks: Vec<String>,
    /// How to handle the competitors mentioned.
    pub competitor_handling: Option<String>,
    /// Whether a manager should look at this call.
    pub manager_attention: bool,
}

/// All six outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentOutputs {
    /// Context.
    pub context: ContextOutput,
    /// Buyer.
    pub buyer: BuyerOutput,
    /// Seller.
    pub seller: SellerOutput,
    /// CRM.
    pub crm: CrmOutput,
    /// Summary.
    pub summary: SummaryOutput,
    /// Coach.
    pub coach: CoachOutput,
}

/// The JSON schema of an agent's output, as sent to an LLM and used to validate its answer.
pub fn output_schema(agent: Agent) -> serde_json::Value {
    let schema = match agent {
        Agent::Context => schemars::schema_for!(ContextOutput),
        Agent::Buyer => schemars::schema_for!(BuyerOutput),
        Agent::Seller => schemars::schema_for!(SellerOutput),
        Agent::Crm => schemars::schema_for!(CrmOutput),
        Agent::Summary => schemars::schema_for!(SummaryOutput),
        Agent::Coach => schemars::schema_for!(CoachOutput),
    };
    serde_json::to_value(schema).expect("schemas serialise")
}

/// Checks an agent's JSON against its contract: the shape (types, required fields, enums) and
/// the ranges (every score 0–100). Returns the problem in words an LLM can act on.
pub fn validate_output(agent: Agent, value: &serde_json::Value) -> Result<(), String> {
    fn check<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<(), String> {
        serde_json::from_value::<T>(value.clone())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    match agent {
        Agent::Context => check::<ContextOutput>(value),
        Agent::Buyer => check::<BuyerOutput>(value),
        Agent::Seller => check::<SellerOutput>(value),
        Agent::Crm => check::<CrmOutput>(value),
        Agent::Summary => check::<SummaryOutput>(value),
        Agent::Coach => check::<CoachOutput>(value),
    }
}
