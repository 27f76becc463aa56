//! Conversations: upload, the pipeline's stages, transcripts, agent runs and analyses, and the
//! calls list (filters, search, order by the call's date, keyset pages).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Conversation, ConversationStatus, CreatedConversation, NewConversation, StageError,
};
use crate::transcript::Segment;

use super::StoreResult;

/// Selects conversations. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationFilter {
    /// Only this status.
    pub status: Option<ConversationStatus>,
    /// Only this product line.
    pub product_line: Option<String>,
    /// Only this rep (user id).
    pub rep_user_id: Option<String>,
    /// Only this customer.
    pub customer_number: Option<String>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
    /// Page size.
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
    /// Only calls the caller reaches (`None`: all).
    #[serde(default)]
    pub reach: Option<crate::domain::Reach>,
    /// Only calls of reps in this team.
    #[serde(default)]
    pub team: Option<String>,
    /// Only this kind of call.
    #[serde(default)]
    pub conversation_type: Option<crate::domain::ConversationType>,
    /// Only analyses in this qualification band as stored (`strong`, `medium`, `weak`, `atrisk`).
    #[serde(default)]
    pub qualification: Option<String>,
    /// Only overall scores at or above.
    #[serde(default)]
    pub score_min: Option<u8>,
    /// Only overall scores at or below.
    #[serde(default)]
    pub score_max: Option<u8>,
    /// Calls whose customer name, customer number, title or transcript contains this text
    /// (case-insensitive; works without spaces between words, as Chinese is written).
    #[serde(default)]
    pub search: Option<String>,
    /// Keyset paging: only calls listed after this one (older, in the newest-first order).
    /// Stays fast however deep the page; `offset` is kept for the API's old clients.
    #[serde(default)]
    pub after: Option<CallCursor>,
    /// The order (newest first by default).
    #[serde(default)]
    pub sort: CallSort,
}

/// The order of the calls list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallSort {
    /// Newest first.
    #[default]
    Newest,
    /// Oldest first.
    Oldest,
    /// Highest score first (analysed calls only), newest first within a score.
    ScoreHigh,
    /// Lowest score first (analysed calls only) — who needs help — newest first within a score.
    ScoreLow,
}

impl CallSort {
    /// Its name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            CallSort::Newest => "newest",
            CallSort::Oldest => "oldest",
            CallSort::ScoreHigh => "score_high",
            CallSort::ScoreLow => "score_low",
        }
    }

    /// Reads a name made by [`CallSort::as_str`].
    pub fn parse(raw: &str) -> Option<CallSort> {
        [
            CallSort::Newest,
            CallSort::Oldest,
            CallSort::ScoreHigh,
            CallSort::ScoreLow,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    /// Whether it orders by score.
    pub fn by_score(self) -> bool {
        matches!(self, CallSort::ScoreHigh | CallSort::ScoreLow)
    }
}

/// Where a page of the calls list ends: the last call's creation time and id (and its score,
/// when the list is sorted by score).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCursor {
    /// The last call's date as lists order by it: the date given at upload, else the upload
    /// time (the `call_at` column).
    pub call_at: DateTime<Utc>,
    /// The last call's id.
    pub id: String,
    /// The last call's score, for a list sorted by score.
    pub score: Option<u8>,
}

impl CallCursor {
    /// The cursor just after `call` (with its score, for a list sorted by score).
    pub fn after(call: &Conversation, score: Option<u8>) -> CallCursor {
        CallCursor {
            call_at: call.call_at(),
            id: call.id.clone(),
            score,
        }
    }

    /// The cursor as one URL-safe word: `s<score>~` when sorted by score, then microseconds
    /// (PostgreSQL keeps them), `~`, id.
    pub fn encode(&self) -> String {
        let at = format!("{}~{}", self.call_at.timestamp_micros(), self.id);
        match self.score {
            Some(score) => format!("s{score}~{at}"),
            None => at,
        }
    }

    /// Reads a cursor made by [`CallCursor::encode`].
    pub fn decode(raw: &str) -> Option<CallCursor> {
        let (score, rest) = match raw.strip_prefix('s') {
            Some(scored) => {
                let (score, rest) = scored.split_once('~')?;
                (Some(score.parse::<u8>().ok().filter(|s| *s <= 100)?), rest)
            }
            None => (None, raw),
        };
        let (us, id) = rest.split_once('~')?;
        let call_at = DateTime::from_timestamp_micros(us.parse().ok()?)?;
        (!id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then(|| CallCursor {
            call_at,
            id: id.to_owned(),
            score,
        })
    }
}

/// A row of the calls list: the conversation with its score and rep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRow {
    /// The conversation.
    pub conversation: Conversation,
    /// Its overall score, once analysed.
    pub score: Option<u8>,
    /// Its qualification band, once analysed.
    pub qualification: Option<String>,
    /// The CRM agent's pipeline stage as it gave it, once analysed.
    pub stage: Option<String>,
    /// The rep's name.
    pub rep_name: Option<String>,
    /// The call's length, from its transcript.
    pub duration_ms: Option<i64>,
    /// With a search: the first transcript line that matched.
    pub hit: Option<SearchHit>,
}

/// A transcript line that matched a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The line's position in the transcript.
    pub seq: i64,
    /// Where it starts in the recording.
    pub start_ms: i64,
    /// Its speaker.
    pub speaker: Option<String>,
    /// The line.
    pub text: String,
}

/// Numbers for the home page over the calls a principal reaches since a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStats {
    /// Calls uploaded.
    pub total: i64,
    /// Of those, analysed.
    pub completed: i64,
    /// Of those, failed.
    pub failed: i64,
    /// Of those, still in the pipeline.
    pub in_progress: i64,
    /// The mean overall score of the analysed ones.
    pub average_score: Option<f64>,
}

/// A status transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StageEvent {
    /// The status entered.
    pub status: ConversationStatus,
    /// When.
    pub at: DateTime<Utc>,
}

/// A conversation retention may remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneCandidate {
    /// Its id.
    pub id: String,
    /// Its case number.
    pub case_number: String,
    /// Its upload, if still stored.
    pub blob_key: Option<String>,
    /// Its chunk blobs: (channel, index) of each chunk transcript.
    pub chunks: Vec<(u32, u32)>,
}

/// One chunk's transcript, times relative to the chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkTranscript {
    /// The audio channel (0 for a downmixed recording; 0 and 1 for split stereo).
    pub channel: u32,
    /// Position in the channel's plan.
    pub index: u32,
    /// Chunk start in the normalised recording.
    pub start_ms: u64,
    /// Chunk end.
    pub end_ms: u64,
    /// The provider, or `silence` for a skipped chunk.
    pub provider: String,
    /// The model.
    pub model: Option<String>,
    /// Segments, relative to `start_ms`.
    pub segments: Vec<Segment>,
    /// How long the provider took.
    pub latency_ms: Option<i64>,
}

/// One agent's saved output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRun {
    /// The agent (`buyer`, …).
    pub agent: String,
    /// `rules` or `llm`.
    pub engine: String,
    /// The model, for LLM runs.
    pub model: Option<String>,
    /// The validated output.
    pub output: serde_json::Value,
    /// Prompt tokens, for LLM runs.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens, for LLM runs.
    pub completion_tokens: Option<i64>,
    /// How long the agent took.
    pub latency_ms: Option<i64>,
    /// Why this agent's output came from the rules engine although an LLM is configured (its
    /// answers stayed invalid, or the LLM kept failing); `None` when the engine that was asked
    /// answered.
    #[serde(default)]
    pub fallback: Option<String>,
}

/// A completed analysis as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoredAnalysis {
    /// `rules` or `llm`.
    pub engine: String,
    /// Overall score.
    pub overall_score: crate::domain::Score,
    /// Qualification band.
    pub qualification: String,
    /// PDCM Pain.
    pub pain_score: crate::domain::Score,
    /// PDCM Decision.
    pub decision_score: crate::domain::Score,
    /// PDCM Champion.
    pub champion_score: crate::domain::Score,
    /// PDCM Metrics.
    pub metrics_score: crate::domain::Score,
    /// The derived scores and risks (JSON of `DerivedScores`).
    pub result: serde_json::Value,
}

/// Conversations and their pipeline state: intake, stage transitions (each with its
/// notification in the same transaction), transcripts and their chunk checkpoints, agent
/// outputs, the analysis, and retention.
#[async_trait]
pub trait Conversations: Send + Sync {
    /// Creates a conversation: finds or creates its opportunity by customer number, allocates
    /// its case number and enqueues its first job, all in one transaction.
    async fn create_conversation(&self, new: NewConversation) -> StoreResult<CreatedConversation>;

    /// One conversation.
    async fn get_conversation(&self, id: &str) -> StoreResult<Option<Conversation>>;

    /// The conversation with this case number.
    async fn find_conversation_by_case(
        &self,
        case_number: &str,
    ) -> StoreResult<Option<Conversation>>;

    /// Conversations matching a filter, newest first.
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> StoreResult<Vec<Conversation>>;

    /// The calls list: conversations matching a filter with their scores, reps and (for a
    /// search) the first matching transcript line, newest first.
    async fn list_calls(&self, filter: &ConversationFilter) -> StoreResult<Vec<CallRow>>;

    /// Counts for the calls `reach` covers created since `since`.
    async fn call_stats(
        &self,
        reach: &crate::domain::Reach,
        since: DateTime<Utc>,
    ) -> StoreResult<CallStats>;

    /// Moves a conversation to `status` and records the transition's time. A failure sets the
    /// error; any other status clears it (a retry starts clean).
    async fn set_conversation_status(
        &self,
        id: &str,
        status: ConversationStatus,
        error: Option<&StageError>,
    ) -> StoreResult<()>;

    /// Restarts a conversation at `status` with `job`, in one transaction: clears the error,
    /// optionally deletes the agent outputs and analysis (re-analysis), and enqueues the job.
    /// Returns the job id.
    async fn restart_conversation(
        &self,
        id: &str,
        status: ConversationStatus,
        job: crate::queue::NewJob,
        clear_analysis: bool,
    ) -> StoreResult<i64>;

    /// Moves a conversation on to `status` (clearing any error) and enqueues the new stage's
    /// jobs for it, in one transaction with the stage event and the notification: a stage never
    /// ends with its status written and its next job lost, or the other way round. Returns the
    /// jobs' ids (an existing job's when its idempotency key was seen already).
    async fn advance(
        &self,
        id: &str,
        status: ConversationStatus,
        next: Vec<crate::queue::NewJob>,
    ) -> StoreResult<Vec<i64>>;

    /// Every status transition of a conversation, oldest first.
    async fn stage_events(&self, id: &str) -> StoreResult<Vec<StageEvent>>;

    /// Replaces a conversation's transcript.
    async fn save_transcript(&self, id: &str, segments: &[Segment]) -> StoreResult<()>;

    /// Records the format an uploaded transcript was parsed as (`vtt`, `srt`, `json`, `txt`):
    /// every upload of text is stored as `txt` until then.
    async fn set_media_format(&self, id: &str, format: &str) -> StoreResult<()>;

    /// A conversation's transcript (empty when not transcribed yet).
    async fn get_transcript(&self, id: &str) -> StoreResult<Vec<Segment>>;

    /// Saves one chunk's transcript: the checkpoint that keeps a retry from paying for it again.
    async fn save_chunk_transcript(&self, id: &str, chunk: &ChunkTranscript) -> StoreResult<()>;

    /// The chunk transcripts saved so far, by index.
    async fn get_chunk_transcripts(&self, id: &str) -> StoreResult<Vec<ChunkTranscript>>;

    /// Saves one agent's output: the checkpoint a retry resumes after.
    async fn save_agent_output(&self, id: &str, run: &AgentRun) -> StoreResult<()>;

    /// The agent outputs saved so far.
    async fn get_agent_outputs(&self, id: &str) -> StoreResult<Vec<AgentRun>>;

    /// Deletes agent outputs and the analysis, keeping the transcript (re-analysis).
    async fn clear_analysis(&self, id: &str) -> StoreResult<()>;

    /// Saves the analysis and marks the conversation completed, in one transaction; updates
    /// the opportunity's latest score.
    async fn complete_analysis(&self, id: &str, analysis: &StoredAnalysis) -> StoreResult<()>;

    /// The conversation's analysis, once completed.
    async fn get_analysis(&self, id: &str) -> StoreResult<Option<StoredAnalysis>>;

    /// Completed, unprotected conversations created before `before`, oldest first, at most
    /// `limit`; with `with_audio_only`, only those whose upload is still stored.
    async fn prune_candidates(
        &self,
        before: DateTime<Utc>,
        with_audio_only: bool,
        limit: u32,
    ) -> StoreResult<Vec<PruneCandidate>>;

    /// Deletes a conversation with everything that hangs off it (transcript, chunks, agent
    /// outputs, analysis, stage events, jobs). False when it was not there.
    async fn delete_conversation(&self, id: &str) -> StoreResult<bool>;

    /// Records that a conversation's audio was deleted (its transcript and analysis stay).
    async fn forget_audio(&self, id: &str) -> StoreResult<()>;

    /// Attaches a downloaded upload to a conversation — where it is stored and what it is (a
    /// file name already known is kept when `media` has none) — and enqueues `next`, in one
    /// transaction. Returns the job id.
    async fn attach_media(
        &self,
        id: &str,
        blob_key: &str,
        media: &crate::domain::Media,
        next: crate::queue::NewJob,
    ) -> StoreResult<i64>;
}
