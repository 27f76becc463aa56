//! One typed read model of a call: [`CallReport`], assembled once from what the store keeps
//! (the conversation, its stages, transcript, analysis, each agent's output, edited notes). The
//! call page, the API's conversation and the Slack card are renderings of it; none of them
//! decodes an agent's output or computes talk figures on its own.
//!
//! An agent output that does not decode is not silently dropped: it is logged once here and
//! named in [`CallReport::unreadable`], which every rendering shows.

use serde::{Deserialize, Serialize};

use crate::analysis::derive::{DerivedScores, Qualification};
use crate::analysis::{
    BuyerOutput, CoachOutput, ContextOutput, CrmOutput, SellerOutput, SummaryOutput,
};
use crate::domain::Conversation;
use crate::store::{AgentRun, EditedNotes, Person, StageEvent, Store, StoreResult, StoredAnalysis};
use crate::talk::{TalkFlag, TalkStats, TalkTargets};
use crate::transcript::Segment;

/// Everything known about one call, typed.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The call.
    pub conversation: Conversation,
    /// Its rep, when it has one.
    pub rep: Option<Person>,
    /// Its stage history.
    pub events: Vec<StageEvent>,
    /// Its transcript (empty until transcribed).
    pub transcript: Vec<Segment>,
    /// How the call was run — only when the transcript's speakers have sides and its times
    /// are real (a plain-text upload's are estimated, which would make every figure up).
    pub talk: Option<TalkReport>,
    /// Its analysis, once analysed.
    pub analysis: Option<AnalysisReport>,
    /// The meeting notes as a person edited them, when someone did.
    pub notes: Option<EditedNotes>,
    /// Each agent's run (engine, model, tokens, latency), for those who look at how it was
    /// analysed.
    pub runs: Vec<AgentRun>,
    /// Agents whose stored output could not be read (a contract that changed, a corrupt
    /// row): shown as such, never silently left out.
    pub unreadable: Vec<String>,
}

/// How a call was run, with the figures outside their healthy ranges.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TalkReport {
    /// The figures.
    pub stats: TalkStats,
    /// The figures outside their healthy range.
    pub flags: Vec<TalkFlag>,
    /// The healthy ranges they were checked against (`SALESAI_TALK_TARGETS`).
    pub targets: TalkTargets,
}

/// A call's analysis, typed: the scores, the qualification, the derived view and each agent's
/// output.
#[derive(Debug, Clone)]
pub struct AnalysisReport {
    /// The scores as stored.
    pub scores: StoredAnalysis,
    /// The qualification band (`None` for a stored name this release does not know).
    pub qualification: Option<Qualification>,
    /// MEDDIC, risks and the weakest dimension.
    pub derived: Option<DerivedScores>,
    /// The context agent's output.
    pub context: Option<ContextOutput>,
    /// The buyer agent's output.
    pub buyer: Option<BuyerOutput>,
    /// The seller agent's output.
    pub seller: Option<SellerOutput>,
    /// The CRM agent's output.
    pub crm: Option<CrmOutput>,
    /// The summary agent's output.
    pub summary: Option<SummaryOutput>,
    /// The coach agent's output.
    pub coach: Option<CoachOutput>,
}

impl CallReport {
    /// Reads everything about `conversation` and assembles the report.
    pub async fn load(
        store: &dyn Store,
        conversation: Conversation,
        targets: &TalkTargets,
    ) -> StoreResult<CallReport> {
        let id = conversation.id.clone();
        let events = store.stage_events(&id).await?;
        let transcript = store.get_transcript(&id).await?;
        let stored = store.get_analysis(&id).await?;
        let runs = store.get_agent_outputs(&id).await?;
        let notes = store.meeting_notes(&id).await?;
        let rep = match &conversation.rep_user_id {
            Some(rep) => store.person(rep).await?,
            None => None,
        };
        Ok(CallReport::assemble(
            conversation,
            rep,
            events,
            transcript,
            stored,
            runs,
            notes,
            targets,
        ))
    }

    /// The report from what was read (`load` reads it; tests build it from parts).
    #[expect(clippy::too_many_arguments, reason = "one argument per stored part")]
    pub fn assemble(
        conversation: Conversation,
        rep: Option<Person>,
        events: Vec<StageEvent>,
        transcript: Vec<Segment>,
        stored: Option<StoredAnalysis>,
        runs: Vec<AgentRun>,
        notes: Option<EditedNotes>,
        targets: &TalkTargets,
    ) -> CallReport {
        let mut unreadable = Vec::new();
        let talk = crate::talk::analyze(&transcript)
            .filter(|_| !conversation.media.times_estimated())
            .map(|stats| TalkReport {
                flags: stats.flags(targets),
                stats,
                targets: targets.clone(),
            });
        let analysis = stored.map(|scores| {
            let read = |agent: &str| -> Option<serde_json::Value> {
                runs.iter().find(|r| r.agent == agent).map(|r| r.output.clone())
            };
            fn decode<T: serde::de::DeserializeOwned>(
                id: &str,
                agent: &str,
                value: Option<serde_json::Value>,
                unreadable: &mut Vec<String>,
            ) -> Option<T> {
                let value = value?;
                match serde_json::from_value(value) {
                    Ok(output) => Some(output),
                    Err(err) => {
                        tracing::warn!(event = "report.unreadable_output", conversation_id = %id, agent, error = %err, "an agent's stored output could not be read");
                        unreadable.push(agent.to_owned());
                        None
                    }
                }
            }
            let id = conversation.id.as_str();
            let derived = match serde_json::from_value::<DerivedScores>(scores.result.clone()) {
                Ok(d) => Some(d),
                Err(err) => {
                    tracing::warn!(event = "report.unreadable_output", conversation_id = %id, agent = "derived", error = %err, "the derived scores could not be read");
                    unreadable.push("derived".to_owned());
                    None
                }
            };
            AnalysisReport {
                qualification: Qualification::parse(&scores.qualification),
                derived,
                context: decode(id, "context", read("context"), &mut unreadable),
                buyer: decode(id, "buyer", read("buyer"), &mut unreadable),
                seller: decode(id, "seller", read("seller"), &mut unreadable),
                crm: decode(id, "crm", read("crm"), &mut unreadable),
                summary: decode(id, "summary", read("summary"), &mut unreadable),
                coach: decode(id, "coach", read("coach"), &mut unreadable),
                scores,
            }
        });
        CallReport {
            conversation,
            rep,
            events,
            transcript,
            talk,
            analysis,
            notes,
            runs,
            unreadable,
        }
    }

    /// The meeting notes people read: as edited, else as the summary agent wrote them.
    pub fn notes_markdown(&self) -> Option<&str> {
        self.notes
            .as_ref()
            .map(|n| n.markdown.as_str())
            .or_else(|| {
                self.analysis
                    .as_ref()
                    .and_then(|a| a.summary.as_ref())
                    .map(|s| s.meeting_notes_markdown.as_str())
            })
    }

    /// The agents whose output came from the rules engine because the LLM could not give a
    /// valid one.
    pub fn fallbacks(&self) -> Vec<String> {
        self.runs
            .iter()
            .filter(|r| r.fallback.is_some())
            .map(|r| r.agent.clone())
            .collect()
    }

    /// Whether the transcript's times are estimated (a plain-text upload had none).
    pub fn estimated_times(&self) -> bool {
        self.conversation.media.times_estimated()
    }
}

impl AnalysisReport {
    /// The CRM agent's pipeline stage, when it gave one this release reads.
    pub fn stage(&self) -> Option<DealStage> {
        self.crm.as_ref().and_then(|c| DealStage::parse(&c.stage))
    }

    /// How the deal stands, in the one word a headline shows: won or lost once the CRM agent
    /// says it closed (a lost deal is not "at risk": it is over), else the qualification band.
    pub fn standing(&self) -> Option<Standing> {
        Standing::of(self.stage(), self.qualification)
    }
}

/// How a call's deal stands, for a headline (the call page's score, the Slack card).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The deal closed won.
    Won,
    /// The deal closed lost.
    Lost,
    /// Open, in this qualification band.
    Band(Qualification),
}

impl Standing {
    /// A listed call's standing, as its call page says it.
    pub fn of_call(row: &crate::store::CallRow) -> Option<Standing> {
        Standing::of(
            row.stage.as_deref().and_then(DealStage::parse),
            row.qualification.as_deref().and_then(Qualification::parse),
        )
    }

    /// From the CRM stage and the band: a closed deal is won or lost whatever its band.
    pub fn of(stage: Option<DealStage>, band: Option<Qualification>) -> Option<Standing> {
        match stage {
            Some(DealStage::ClosedWon) => Some(Standing::Won),
            Some(DealStage::ClosedLost) => Some(Standing::Lost),
            _ => band.map(Standing::Band),
        }
    }
}

/// Where a deal stands in the CRM's pipeline, as the CRM agent judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DealStage {
    /// Still finding out whether it is a deal.
    Qualification,
    /// Pains confirmed, needs being analysed.
    NeedsAnalysis,
    /// Ready for (or given) a proposal.
    Proposal,
    /// Terms being negotiated.
    Negotiation,
    /// Won.
    ClosedWon,
    /// Lost.
    ClosedLost,
}

impl DealStage {
    /// Reads the CRM agent's stage (an LLM may spell it loosely: `Closed Won`, `closed-won`).
    pub fn parse(raw: &str) -> Option<DealStage> {
        let key: String = raw
            .trim()
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Some(match key.as_str() {
            "qualification" | "qualifying" | "prospecting" | "discovery" => {
                DealStage::Qualification
            }
            "needs_analysis" | "needs" | "analysis" => DealStage::NeedsAnalysis,
            "proposal" | "proposal_sent" | "quote" => DealStage::Proposal,
            "negotiation" | "negotiating" => DealStage::Negotiation,
            "closed_won" | "won" | "closing" => DealStage::ClosedWon,
            "closed_lost" | "lost" => DealStage::ClosedLost,
            _ => return None,
        })
    }
}

/// How the customer spoke of a competitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Attitude {
    /// Well.
    Positive,
    /// Neither well nor badly.
    Neutral,
    /// Badly.
    Negative,
}

impl Attitude {
    /// Reads an agent's attitude (`positive`, `neutral`, `negative`).
    pub fn parse(raw: &str) -> Option<Attitude> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "positive" => Some(Attitude::Positive),
            "neutral" => Some(Attitude::Neutral),
            "negative" => Some(Attitude::Negative),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_and_attitudes_are_read_loosely() {
        assert_eq!(DealStage::parse("Closed Won"), Some(DealStage::ClosedWon));
        assert_eq!(
            DealStage::parse("needs-analysis"),
            Some(DealStage::NeedsAnalysis)
        );
        assert_eq!(
            DealStage::parse("negotiation"),
            Some(DealStage::Negotiation)
        );
        assert_eq!(DealStage::parse("something else"), None);
        assert_eq!(Attitude::parse(" Positive "), Some(Attitude::Positive));
        assert_eq!(Attitude::parse("meh"), None);
    }
}
