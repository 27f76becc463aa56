//! The storage interface: everything salesai keeps, as one trait per capability (the job
//! queue, conversations, customers, people, Slack state, operations) with one implementation
//! per backend (SQLite for the embedded default, PostgreSQL for teams). HTTP handlers and
//! workers hold an `Arc<dyn Store>` and never know which backend they talk to.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    Conversation, ConversationStatus, CreatedConversation, NewConversation, Opportunity, Role,
    StageError, User,
};
use crate::queue::{
    Enqueued, FailOutcome, Job, JobDetail, JobFailure, JobFilter, Lease, NewJob, QueueSettings,
    QueueStats, Reaped,
};
use crate::transcript::Segment;

/// A storage failure, by what callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error; usually transient.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The input broke a rule the database enforces.
    #[error("{0}")]
    InvalidInput(String),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The thing to create exists already.
    #[error("{0}")]
    Conflict(String),
    /// The database was migrated by a newer salesai than this binary.
    #[error(
        "the database schema is at version {database} but this salesai only knows up to {binary}; \
         run the newer salesai release, or roll the schema back with that release's `salesai migrate down`"
    )]
    SchemaTooNew {
        /// The database's newest applied migration.
        database: i64,
        /// The newest migration this binary carries.
        binary: i64,
    },
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// The stable error code for this failure.
    pub fn code(&self) -> crate::ErrorCode {
        match self {
            StoreError::InvalidInput(_) | StoreError::NotFound(_) | StoreError::Conflict(_) => {
                crate::ErrorCode::InvalidInput
            }
            _ => crate::ErrorCode::DatabaseError,
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// The team server.
    Postgres,
}

impl Backend {
    /// The backend's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

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
    /// The last call's `created_at`.
    pub created_at: DateTime<Utc>,
    /// The last call's id.
    pub id: String,
    /// The last call's score, for a list sorted by score.
    pub score: Option<u8>,
}

impl CallCursor {
    /// The cursor as one URL-safe word: `s<score>~` when sorted by score, then microseconds
    /// (PostgreSQL keeps them), `~`, id.
    pub fn encode(&self) -> String {
        let at = format!("{}~{}", self.created_at.timestamp_micros(), self.id);
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
        let created_at = DateTime::from_timestamp_micros(us.parse().ok()?)?;
        (!id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then(|| CallCursor {
            created_at,
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

/// An ops-alert incident: a condition the monitor found, open until it clears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The condition (stable across evaluations).
    pub key: String,
    /// `P0`…`P3`.
    pub severity: String,
    /// What is wrong, for people.
    pub title: String,
    /// Evidence and action.
    pub detail: String,
    /// When it (last) opened.
    pub opened_at: DateTime<Utc>,
    /// When it cleared; `None` while open.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was last announced.
    pub notified_at: Option<DateTime<Utc>>,
}

/// An API token to store. The token itself is shown once and never stored; only its hash is.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// A human name, unique among live tokens.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The person it belongs to (`salesai token create --for EMAIL`): a rep's token sees and
    /// changes only that rep's conversations. `None` for a service token (integrations).
    pub user_id: Option<String>,
}

/// A stored API token (without the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    /// The token id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last used to authenticate.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked token authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The person it belongs to; `None` for a service token, or one created before tokens
    /// belonged to people (it keeps working as a service token; doctor lists it).
    #[serde(default)]
    pub user_id: Option<String>,
}

/// The durable job queue: enqueue, lease, complete, fail, reap, and what operators see of it.
///
/// Leases are fenced by `(job id, attempt, worker)`: a worker whose lease was lost cannot
/// complete or fail the job any more.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues one job (or returns the existing one with the same idempotency key).
    async fn enqueue(&self, job: NewJob) -> StoreResult<Enqueued>;

    /// Enqueues several jobs in one transaction.
    async fn enqueue_many(&self, jobs: Vec<NewJob>) -> StoreResult<Vec<Enqueued>>;

    /// Leases up to `max` due jobs of `queue` to `worker_id`, unless the queue is paused.
    async fn claim(&self, queue: &str, worker_id: &str, max: u32) -> StoreResult<Vec<Job>>;

    /// Marks a leased job completed. False when the lease was lost.
    async fn complete(&self, lease: &Lease) -> StoreResult<bool>;

    /// Marks a leased job completed and leases up to `max` due jobs of `queue` to `worker_id`
    /// in one round trip where the backend can (PostgreSQL: one statement): a worker that
    /// finishes a job asks for its next one at the same time. Returns whether the lease was
    /// still held (as `complete`) and the jobs claimed (as `claim`).
    async fn complete_and_claim(
        &self,
        lease: &Lease,
        queue: &str,
        worker_id: &str,
        max: u32,
    ) -> StoreResult<(bool, Vec<Job>)>;

    /// Marks several leased jobs completed in one statement; returns how many were still held.
    async fn complete_many(&self, leases: &[Lease]) -> StoreResult<u64>;

    /// Records a failed attempt and queues the job again after a backoff, or moves it to dead.
    async fn fail(&self, lease: &Lease, failure: &JobFailure) -> StoreResult<FailOutcome>;

    /// Puts a leased job back for `run_at` without spending an attempt: a provider said
    /// "retry after", which is not the job's fault. The reschedule is still recorded in the
    /// job's history under `code`.
    async fn reschedule(
        &self,
        lease: &Lease,
        run_at: DateTime<Utc>,
        code: &str,
        message: &str,
    ) -> StoreResult<bool>;

    /// Returns leased jobs to the queue at once without spending an attempt (graceful
    /// shutdown ran out of time).
    async fn release(&self, leases: &[Lease]) -> StoreResult<u64>;

    /// Extends the leases of jobs a live worker still runs.
    async fn extend_leases(&self, leases: &[Lease]) -> StoreResult<u64>;

    /// Ends now the leases held by these workers, known to be gone (an earlier incarnation of a
    /// restarted node), so the next reap returns their jobs without waiting for the leases to
    /// run out. Returns how many leases ended.
    async fn expire_leases_of(&self, worker_ids: &[String]) -> StoreResult<u64>;

    /// The workers that hold leases now.
    async fn lease_holders(&self) -> StoreResult<Vec<String>>;

    /// Returns jobs whose lease ran out to the queue, or to dead when their attempts are spent.
    async fn reap_expired_leases(&self) -> StoreResult<Reaped>;

    /// Every queue's settings, the built-in queues always included.
    async fn queue_settings(&self) -> StoreResult<Vec<QueueSettings>>;

    /// One queue's settings (defaults when the queue has never been configured).
    async fn get_queue_settings(&self, queue: &str) -> StoreResult<QueueSettings>;

    /// Saves a queue's settings (the paused flag included).
    async fn put_queue_settings(&self, settings: &QueueSettings) -> StoreResult<()>;

    /// Lists jobs, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<Job>>;

    /// One job with its attempt history.
    async fn get_job(&self, id: i64) -> StoreResult<Option<JobDetail>>;

    /// Queues matching dead jobs again with fresh attempts; returns their ids.
    async fn retry_jobs(&self, filter: &JobFilter) -> StoreResult<Vec<i64>>;

    /// Deletes matching jobs that are not running (or, with `dry_run`, only lists them);
    /// returns the ids deleted or that would be.
    async fn purge_jobs(&self, filter: &JobFilter, dry_run: bool) -> StoreResult<Vec<i64>>;

    /// Depth, age and recent outcomes.
    async fn queue_stats(&self) -> StoreResult<QueueStats>;
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

/// Customers (opportunities), found by customer number.
#[async_trait]
pub trait Customers: Send + Sync {
    /// The opportunity with this customer number.
    async fn get_opportunity(&self, customer_number: &str) -> StoreResult<Option<Opportunity>>;

    /// Opportunities within `reach` whose customer number equals `query` or whose company name
    /// contains it (case-insensitively), most recently created first; an empty query lists
    /// all. A customer is within reach when its owner is, or a call with it is (a rep: their
    /// own; a manager: theirs and their teams' reps'; everyone for `Reach::All`).
    async fn search_opportunities(
        &self,
        query: &str,
        limit: u32,
        reach: &crate::domain::Reach,
    ) -> StoreResult<Vec<Opportunity>>;

    /// Creates an opportunity; `Conflict` when the customer number is taken.
    async fn create_opportunity(
        &self,
        customer_number: &str,
        company_name: &str,
        product_line: &str,
        owner_user_id: Option<&str>,
    ) -> StoreResult<Opportunity>;
}

/// People and their API tokens.
#[async_trait]
pub trait People: Send + Sync {
    /// One user.
    async fn get_user(&self, id: &str) -> StoreResult<Option<User>>;

    /// Refreshes a user's name, and their e-mail when they have none and no one else has it,
    /// from an authoritative profile (Slack's `users.info`).
    async fn update_user_profile(
        &self,
        id: &str,
        email: Option<&str>,
        display_name: &str,
    ) -> StoreResult<()>;

    /// Sets the role of the user with this id, e-mail or Slack id; returns the user, or
    /// `None` when there is no such user.
    async fn set_user_role(&self, who: &str, role: Role) -> StoreResult<Option<User>>;

    /// The user with this Slack id, else with this e-mail (linking the Slack id to them), else a
    /// new user with the rep role. Returns the user id. People are found in the database, never
    /// in a table in code.
    async fn find_or_create_user(
        &self,
        email: Option<&str>,
        slack_user_id: Option<&str>,
        display_name: &str,
    ) -> StoreResult<String>;

    /// Stores a token's hash.
    async fn create_api_token(&self, token: NewApiToken) -> StoreResult<ApiToken>;

    /// The live token with this hash, touching its `last_used_at`.
    async fn authenticate_api_token(&self, token_hash: &str) -> StoreResult<Option<ApiToken>>;

    /// All tokens, revoked ones included.
    async fn list_api_tokens(&self) -> StoreResult<Vec<ApiToken>>;

    /// Revokes the live token with this name or id; false when there is none.
    async fn revoke_api_token(&self, name_or_id: &str) -> StoreResult<bool>;
}

/// What salesai remembers of Slack and other senders: the messages it posted per
/// conversation, and the events it has handled already.
#[async_trait]
pub trait SlackState: Send + Sync {
    /// The Slack messages salesai posted for a conversation, by kind (`status`, `completed`,
    /// `failed:N`): `(kind, channel, ts)`.
    async fn slack_messages(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Vec<(String, String, String)>>;

    /// Records a posted Slack message of `kind`; false when one of that kind was already
    /// recorded (the caller then updates the recorded one instead of posting again).
    ///
    /// An empty `ts` records the *intent* to post (before the post, so a crash between Slack's
    /// answer and this record is recognisable); a later call with the real `ts` settles it.
    /// A settled record is never changed.
    async fn put_slack_message(
        &self,
        conversation_id: &str,
        kind: &str,
        channel_id: &str,
        ts: &str,
    ) -> StoreResult<bool>;

    /// Records that an external event (a Slack event id, a file id) was handled; false when it
    /// already was, on any node.
    async fn record_external_event(&self, source: &str, event_id: &str) -> StoreResult<bool>;
}

/// Operational state: health, ops-alert incidents, per-node counters, repairs.
#[async_trait]
pub trait Operations: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// A cheap round trip, for `/ready`.
    async fn ping(&self) -> StoreResult<()>;

    /// Every incident, open and resolved.
    async fn list_incidents(&self) -> StoreResult<Vec<Incident>>;

    /// Creates or replaces an incident (by key).
    async fn save_incident(&self, incident: &Incident) -> StoreResult<()>;

    /// Adds `delta` to this node's counter `name` for the minute (Unix minutes).
    async fn add_counter(&self, node: &str, name: &str, minute: i64, delta: i64)
    -> StoreResult<()>;

    /// The counter `name` summed over all nodes from `since_minute` on.
    async fn sum_counter(&self, name: &str, since_minute: i64) -> StoreResult<i64>;

    /// Records a fact a running server tells the other commands (`public_url`: where `serve`
    /// answers), replacing the last value.
    async fn set_fact(&self, key: &str, value: &str) -> StoreResult<()>;

    /// A recorded fact.
    async fn fact(&self, key: &str) -> StoreResult<Option<String>>;

    /// The nodes that counted `name` from `since_minute` on.
    async fn counter_nodes(&self, name: &str, since_minute: i64) -> StoreResult<Vec<String>>;

    /// Deletes counts older than `before_minute`; returns how many rows went.
    async fn prune_counters(&self, before_minute: i64) -> StoreResult<u64>;

    /// PostgreSQL: terminates this database's connections idle for longer than `older_than`
    /// (never this one); returns how many. SQLite: `InvalidInput` (no server connections).
    async fn terminate_idle(&self, older_than: std::time::Duration) -> StoreResult<i64>;

    /// Refreshes planner statistics and reclaims space (`VACUUM ANALYZE`; SQLite `ANALYZE` and
    /// `PRAGMA optimize`).
    async fn analyze(&self) -> StoreResult<()>;
}

/// A person as sign-in and authorisation see them: the user, their team, the teams they manage
/// and whether they may sign in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// The user.
    pub user: User,
    /// The team they belong to.
    pub team: Option<String>,
    /// The teams they manage (managers), sorted.
    pub manages: Vec<String>,
    /// False once deactivated: they cannot sign in and their sessions and tokens stop working.
    pub active: bool,
    /// When they were created.
    pub created_at: DateTime<Utc>,
}

/// A change to a person; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonChange {
    /// The new role.
    pub role: Option<Role>,
    /// The new team (`Some(None)` leaves every team).
    pub team: Option<Option<String>>,
    /// The teams they manage, replacing the old list.
    pub manages: Option<Vec<String>>,
    /// Deactivate (`false`: their sessions end in the same transaction) or reactivate.
    pub active: Option<bool>,
    /// The new display name.
    pub display_name: Option<String>,
}

/// Why a one-time link exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkPurpose {
    /// Signs an existing person in.
    Signin,
    /// Creates the first admin (printed by `salesai serve` while there is none).
    Setup,
}

impl LinkPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Signin => "signin",
            LinkPurpose::Setup => "setup",
        }
    }
}

/// A one-time sign-in link to store (only its hash is kept).
#[derive(Debug, Clone)]
pub struct NewLoginLink {
    /// SHA-256 of the link's secret, hex.
    pub token_hash: String,
    /// The person it signs in; `None` for a setup link.
    pub user_id: Option<String>,
    /// What it does.
    pub purpose: LinkPurpose,
    /// The page to land on after signing in (a path on this server).
    pub return_to: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A live one-time link, as its confirmation page sees it (before it is used).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginLink {
    /// What it does.
    pub purpose: LinkPurpose,
    /// The person it signs in (signin links).
    pub person: Option<Person>,
    /// The page to land on.
    pub return_to: Option<String>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A web session to store (only the hash of the cookie's secret is kept).
#[derive(Debug, Clone)]
pub struct NewSession {
    /// SHA-256 of the cookie's secret, hex.
    pub id_hash: String,
    /// Who signed in.
    pub user_id: String,
    /// The session's CSRF token, sent back in every form.
    pub csrf_token: String,
    /// The absolute end of the session, however active it stays.
    pub expires_at: DateTime<Utc>,
}

/// A live web session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSession {
    /// SHA-256 of the cookie's secret, hex.
    pub id_hash: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// Its absolute end.
    pub expires_at: DateTime<Utc>,
    /// Who it belongs to.
    pub person: Person,
}

/// What an OpenID Connect provider proved about who signed in, after the ID token, its
/// tenant and its e-mail claims were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenIdentity {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The provider's stable id of the account (`sub`): the identity from the first sign-in on.
    pub subject: String,
    /// The account's e-mail, only when the provider vouches for it (`email_verified`) and the
    /// tenant is pinned; lower case.
    pub verified_email: Option<String>,
    /// The Slack user id, for Sign in with Slack in the pinned workspace.
    pub slack_user_id: Option<String>,
    /// Whether someone unknown may join as a rep (their verified e-mail's domain is allowed).
    pub may_join: bool,
    /// The name to give a person who joins.
    pub display_name: String,
}

/// Who an OpenID Connect sign-in is.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityMatch {
    /// A person salesai knows (linked now or at an earlier sign-in). May be deactivated: the
    /// caller refuses them.
    Known(Person),
    /// Someone new who joined as a rep just now.
    Joined(Person),
    /// The person with this e-mail (or Slack id) already signs in with another account at
    /// this provider: a second account does not get theirs.
    OtherAccount,
    /// No one salesai knows, and not allowed to join.
    Unknown,
}

/// Sign-in and access: people with teams and activity, one-time links, web sessions.
#[async_trait]
pub trait Access: Send + Sync {
    /// One person.
    async fn person(&self, id: &str) -> StoreResult<Option<Person>>;

    /// The person with this Slack user id, else the one with this e-mail (case-insensitive):
    /// how a sign-in through Slack or an OpenID Connect provider finds who signed in. Finds
    /// deactivated people too (the caller refuses them); never creates anyone.
    async fn person_by_identity(
        &self,
        slack_user_id: Option<&str>,
        email: Option<&str>,
    ) -> StoreResult<Option<Person>>;

    /// The person an OpenID Connect sign-in proves, in one transaction: the person already
    /// linked to `(issuer, subject)`; else the person with the Slack user id, else with the
    /// verified e-mail, who is linked to this identity now — unless they are linked to another
    /// subject at this issuer already ([`IdentityMatch::OtherAccount`]); else, when
    /// `may_join`, a new rep linked to it. Deactivated people are found but never linked.
    async fn sign_in_identity(&self, identity: &ProvenIdentity) -> StoreResult<IdentityMatch>;

    /// Every person, active first, then by name.
    async fn people(&self) -> StoreResult<Vec<Person>>;

    /// Whether an active admin exists (while none does, `salesai serve` prints a setup link).
    async fn has_admin(&self) -> StoreResult<bool>;

    /// The person with this e-mail, created when there is none (with `display_name`), given
    /// `role` and `team` — what `salesai users invite` does before it makes their link.
    async fn invite_person(
        &self,
        email: &str,
        display_name: &str,
        role: Role,
        team: Option<&str>,
    ) -> StoreResult<Person>;

    /// Changes a person in one transaction; deactivation ends their sessions and voids their
    /// unused sign-in links at once. `None` when there is no such person; `Conflict` when the
    /// change would leave no active admin.
    async fn update_person(&self, id: &str, change: &PersonChange) -> StoreResult<Option<Person>>;

    /// Stores a one-time link.
    async fn create_login_link(&self, link: &NewLoginLink) -> StoreResult<()>;

    /// The link with this hash while it can still be used (unused, unexpired, its person
    /// active), without using it.
    async fn peek_login_link(&self, token_hash: &str) -> StoreResult<Option<LoginLink>>;

    /// Uses a sign-in link: at most one caller ever gets `Some` for a link (on any node).
    /// Returns the person and the page to land on.
    async fn redeem_login_link(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(Person, Option<String>)>>;

    /// Uses a setup link and makes the person with this e-mail (created if needed) an admin, in
    /// one transaction; `Conflict` when an active admin exists already, `None` when the link is
    /// used or expired.
    async fn complete_setup(
        &self,
        token_hash: &str,
        email: &str,
        display_name: &str,
    ) -> StoreResult<Option<Person>>;

    /// Stores a new session.
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;

    /// The live session with this hash: not ended, before its absolute end, used within `idle`,
    /// its person active. Records the use (at most once a minute).
    async fn find_session(
        &self,
        id_hash: &str,
        idle: std::time::Duration,
    ) -> StoreResult<Option<WebSession>>;

    /// Ends one session (sign out).
    async fn end_session(&self, id_hash: &str) -> StoreResult<()>;

    /// Ends every session of a person ("sign out everywhere") and voids their unused sign-in
    /// links; returns how many sessions ended.
    async fn end_sessions_of(&self, user_id: &str) -> StoreResult<u64>;
}

/// Everything salesai stores: every capability, on one backend.
///
/// Architecture invariant: multi-step writes happen inside one method, in one transaction
/// (a conversation and its first job, a case number and its conversation), so no caller can
/// leave half-written state behind. A new feature adds its own capability trait (and one
/// implementation in `salesai-db`'s shared code, see ARCHITECTURE.md) and lists it here.
/// Meeting notes a person edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditedNotes {
    /// The notes, markdown.
    pub markdown: String,
    /// Who edited them last (`None` once that person is gone).
    pub edited_by: Option<String>,
    /// Their name, when known.
    pub edited_by_name: Option<String>,
    /// When.
    pub edited_at: DateTime<Utc>,
}

/// The customer-facing meeting notes people edit (the summary agent writes the first version).
#[async_trait]
pub trait MeetingNotes: Send + Sync {
    /// The edited notes of a call, when someone edited them.
    async fn meeting_notes(&self, conversation_id: &str) -> StoreResult<Option<EditedNotes>>;

    /// Saves edited notes (replacing earlier edits); `NotFound` when there is no such call.
    async fn save_meeting_notes(
        &self,
        conversation_id: &str,
        markdown: &str,
        edited_by: &str,
    ) -> StoreResult<()>;

    /// Drops the edits: the generated notes show again. False when there were none.
    async fn clear_meeting_notes(&self, conversation_id: &str) -> StoreResult<bool>;
}

/// Who said what: the voices the preparation heard, and reps' voice profiles.
#[async_trait]
pub trait Voices: Send + Sync {
    /// Saves (replaces) the voices of a recording.
    async fn save_speaker_turns(
        &self,
        conversation_id: &str,
        diarization: &crate::speakers::Diarization,
    ) -> StoreResult<()>;

    /// The voices of a recording, once the preparation saved them.
    async fn speaker_turns(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Option<crate::speakers::Diarization>>;

    /// A rep's voice profile, when salesai has learned one.
    async fn voice_profile(
        &self,
        user_id: &str,
    ) -> StoreResult<Option<crate::speakers::VoiceProfile>>;

    /// Saves (replaces) a rep's voice profile.
    async fn save_voice_profile(
        &self,
        user_id: &str,
        profile: &crate::speakers::VoiceProfile,
    ) -> StoreResult<()>;
}

pub trait Store:
    JobQueue
    + Conversations
    + Customers
    + People
    + Access
    + MeetingNotes
    + Voices
    + SlackState
    + Operations
    + 'static
{
}

impl<T> Store for T where
    T: JobQueue
        + Conversations
        + Customers
        + People
        + Access
        + MeetingNotes
        + Voices
        + SlackState
        + Operations
        + 'static
{
}

/// The store's capability traits, for `use salesai_core::store::prelude::*` where a caller
/// calls store methods through an `Arc<dyn Store>`.
pub mod prelude {
    pub use super::{
        Access, Conversations, Customers, JobQueue, MeetingNotes, Operations, People, SlackState,
        Store, Voices,
    };
}
