//! The conversation pipeline's job kinds and the operations on a conversation that API, CLI
//! and Slack share (retry, re-analyse), so each behaves the same wherever it is triggered.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::domain::{Conversation, ConversationStatus, StageError};
use crate::queue::{CONVERSATIONS, JobFilter, JobKind, JobStatus, NOTIFICATIONS, NewJob};
use crate::store::{Store, StoreError};

/// `conversation.prepare`: read the upload, parse a transcript or prepare audio.
pub const PREPARE: &str = "conversation.prepare";
/// `conversation.transcribe_chunk`: send one audio chunk to speech-to-text.
pub const TRANSCRIBE_CHUNK: &str = "conversation.transcribe_chunk";
/// `conversation.merge`: join the chunk transcripts into one.
pub const MERGE: &str = "conversation.merge";
/// `conversation.analyze`: run the agents and derive the scores.
pub const ANALYZE: &str = "conversation.analyze";
/// `conversation.download`: fetch an upload from where it was shared (a Slack file) into
/// blob storage, then hand over to `conversation.prepare`.
pub const DOWNLOAD: &str = "conversation.download";
/// `conversation.notify` (notifications queue): bring the conversation's Slack thread up to
/// date with its status. Enqueued by the store in the same transaction as every status change
/// of a conversation that has a Slack thread, so no change goes unannounced.
pub const NOTIFY: &str = "conversation.notify";

/// How much earlier (in upload time) a conversation's job counts for each pipeline stage it is
/// further along: a minute. A burst of calls uploaded within a minute is worked call by call
/// (each one's later stages first), so the first card arrives about when a lone call's would,
/// instead of after every call's preparation and transcription.
pub const STAGE_STEP_MS: i64 = 60_000;

/// How far along the pipeline a job kind is (0 for the first stage); `None` for other kinds.
pub fn stage_rank(kind: &str) -> Option<i64> {
    match kind {
        DOWNLOAD => Some(0),
        PREPARE => Some(1),
        TRANSCRIBE_CHUNK => Some(2),
        MERGE => Some(3),
        ANALYZE => Some(4),
        NOTIFY => Some(5),
        _ => None,
    }
}

/// A job's claim priority (lower runs first among due jobs): a conversation's job takes the
/// conversation's upload time in milliseconds, less [`STAGE_STEP_MS`] per stage it is along;
/// any other job its due time (first come, first served). Both only grow with time for new
/// work, so nothing waits behind an endless stream of newer jobs.
pub fn job_priority(
    kind: &str,
    uploaded: Option<chrono::DateTime<chrono::Utc>>,
    due: chrono::DateTime<chrono::Utc>,
) -> i64 {
    match uploaded {
        Some(at) => at.timestamp_millis() - stage_rank(kind).unwrap_or(0) * STAGE_STEP_MS,
        None => due.timestamp_millis(),
    }
}

crate::empty_job!(
    /// The payload of [`PREPARE`] (the conversation is the job's).
    PrepareJob = PREPARE, CONVERSATIONS
);
crate::empty_job!(
    /// The payload of [`DOWNLOAD`] (the conversation is the job's).
    DownloadJob = DOWNLOAD, CONVERSATIONS
);
crate::empty_job!(
    /// The payload of [`ANALYZE`] (the conversation is the job's).
    AnalyzeJob = ANALYZE, CONVERSATIONS
);
crate::empty_job!(
    /// The payload of [`NOTIFY`] (the conversation is the job's).
    NotifyJob = NOTIFY, NOTIFICATIONS
);

/// The payload of [`MERGE`]: how many chunk transcripts to wait for, of which plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeJob {
    /// The chunks the plan has, over all channels.
    pub total: u32,
    /// The plan (the preparing job's id): chunks of an older plan are not mixed in.
    pub plan: i64,
}

impl JobKind for MergeJob {
    const KIND: &'static str = MERGE;
    const QUEUE: &'static str = CONVERSATIONS;
}

/// The payload of [`TRANSCRIBE_CHUNK`]: one stored audio chunk to send to speech-to-text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkJob {
    /// The audio channel (0 for mono; 0 and 1 for a stereo call, one speaker each).
    #[serde(default)]
    pub channel: u32,
    /// The chunk's index within its channel.
    pub index: u32,
    /// The chunks the plan has, over all channels.
    pub total: u32,
    /// Where the chunk starts in the call.
    pub start_ms: u64,
    /// Where it ends.
    pub end_ms: u64,
    /// The stored chunk.
    pub blob_key: String,
    /// The file name sent to speech-to-text.
    pub file_name: String,
    /// Its media type.
    pub mime: String,
    /// The plan (the preparing job's id).
    pub plan: i64,
}

impl JobKind for ChunkJob {
    const KIND: &'static str = TRANSCRIBE_CHUNK;
    const QUEUE: &'static str = CONVERSATIONS;
}

/// Whether retrying a conversation that failed with `code` can help. What the upload itself
/// is — not a call, undecodable, silent, too large — fails the same way again; a setting fixed
/// meanwhile (a scope, a key) or a provider back up does not, so everything else can.
pub fn retry_can_help(code: &str) -> bool {
    !matches!(
        code,
        "INVALID_INPUT" | "AUDIO_DECODE_FAILED" | "AUDIO_EMPTY" | "AUDIO_TOO_LARGE"
    )
}

/// What an error code means, for a rep, in `lang`: the Slack failure notice and the web app's
/// call page say the same.
pub fn explain(lang: crate::language::Language, code: &str) -> &'static str {
    let m = lang.t();
    match code {
        "FILE_DOWNLOAD_FAILED" => m.explain_file_download_failed,
        "GROQ_API_ERROR" => m.explain_groq_api_error,
        "STT_NOT_CONFIGURED" => m.explain_stt_not_configured,
        "AUDIO_DECODE_FAILED" => m.explain_audio_decode_failed,
        "AUDIO_EMPTY" => m.explain_audio_empty,
        "AUDIO_TOO_LARGE" => m.explain_audio_too_large,
        "LLM_API_ERROR" | "ANALYSIS_INVALID_OUTPUT" => m.explain_llm_api_error,
        "WORKER_LOST" => m.explain_worker_lost,
        "RATE_LIMITED" => m.explain_rate_limited,
        "DATABASE_ERROR" | "STORAGE_ERROR" => m.explain_database_error,
        "INVALID_INPUT" => m.explain_invalid_input,
        _ => m.explain_other,
    }
}

/// What a restart did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Restarted {
    /// The conversation.
    pub id: String,
    /// The status it restarted at.
    pub status: ConversationStatus,
    /// The job kind it resumes with.
    pub resumes_at: &'static str,
    /// The job.
    pub job_id: i64,
}

/// Why a restart was refused.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// The conversation is not in a state that allows it.
    #[error("{0}")]
    Conflict(String),
    /// The request names something the conversation does not have (a speaker).
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Resumes a failed conversation at its first unfinished step: with a transcript saved, at the
/// analysis (finished agents are kept); otherwise from the start.
pub async fn retry(
    store: &dyn Store,
    conversation: &Conversation,
) -> Result<Restarted, RestartError> {
    let stuck = conversation.status != ConversationStatus::Completed
        && conversation.status != ConversationStatus::Failed
        && !has_live_pipeline_job(store, &conversation.id).await?;
    if conversation.status == ConversationStatus::Completed {
        return Err(RestartError::Conflict(format!(
            "conversation {} is completed: there is nothing to retry; to run the analysis again, re-analyse it",
            conversation.case_number
        )));
    }
    if conversation.status != ConversationStatus::Failed && !stuck {
        return Err(RestartError::Conflict(format!(
            "conversation {} is {} and still has work queued or running; only a failed conversation, or one whose jobs are all dead, can be retried",
            conversation.case_number,
            conversation.status.as_str()
        )));
    }
    let has_transcript = !store.get_transcript(&conversation.id).await?.is_empty();
    let (status, job, kind) = if has_transcript {
        let job = NewJob::of(&AnalyzeJob {});
        (ConversationStatus::Analyzing, job, ANALYZE)
    } else if conversation.blob_key.is_none()
        && conversation.metadata.get("slack_file_id").is_some()
    {
        // The download never finished: fetch it again.
        (
            ConversationStatus::Pending,
            NewJob::of(&DownloadJob {}),
            DOWNLOAD,
        )
    } else {
        (
            ConversationStatus::Pending,
            NewJob::of(&PrepareJob {}),
            PREPARE,
        )
    };
    let attempt = store.stage_events(&conversation.id).await?.len();
    let job = job.idempotency_key(format!("retry:{}:{attempt}", conversation.id));
    let job_id = store
        .restart_conversation(&conversation.id, status, job, false)
        .await?;
    Ok(Restarted {
        id: conversation.id.clone(),
        status,
        resumes_at: kind,
        job_id,
    })
}

/// Runs the agents again on the saved transcript (the previous analysis is replaced).
pub async fn reanalyze(
    store: &dyn Store,
    conversation: &Conversation,
) -> Result<Restarted, RestartError> {
    if !matches!(
        conversation.status,
        ConversationStatus::Completed | ConversationStatus::Failed
    ) {
        return Err(RestartError::Conflict(format!(
            "conversation {} is still {}; wait for it to finish",
            conversation.case_number,
            conversation.status.as_str()
        )));
    }
    if store.get_transcript(&conversation.id).await?.is_empty() {
        return Err(RestartError::Conflict(
            "there is no transcript to analyse yet; use retry".into(),
        ));
    }
    let attempt = store.stage_events(&conversation.id).await?.len();
    let job = NewJob::of(&AnalyzeJob {})
        .idempotency_key(format!("reanalyze:{}:{attempt}", conversation.id));
    let job_id = store
        .restart_conversation(&conversation.id, ConversationStatus::Analyzing, job, true)
        .await?;
    Ok(Restarted {
        id: conversation.id.clone(),
        status: ConversationStatus::Analyzing,
        resumes_at: ANALYZE,
        job_id,
    })
}

/// A person's correction of who is who: every line of `speaker` is on `role`'s side (a fact
/// from now on), the other speakers are placed again around it, the rep's voice profile learns
/// the voice when the correction names the rep, and the analysis runs again on the corrected
/// transcript. Refused while the call is still in the pipeline, or for a speaker the
/// transcript does not have.
pub async fn correct_speaker(
    store: &dyn Store,
    conversation: &Conversation,
    speaker: &str,
    role: crate::transcript::Role,
) -> Result<Restarted, RestartError> {
    use crate::speakers::{self, VoiceProfile};
    // A speaker the call does not have is a mistake in the request, whatever the call's state.
    let mut segments = store.get_transcript(&conversation.id).await?;
    if !segments
        .iter()
        .any(|s| s.speaker.as_deref() == Some(speaker))
    {
        return Err(RestartError::Invalid(format!(
            "the transcript has no speaker {speaker:?}; use one of the names it shows"
        )));
    }
    if !matches!(
        conversation.status,
        ConversationStatus::Completed | ConversationStatus::Failed
    ) {
        return Err(RestartError::Conflict(format!(
            "conversation {} is still {}; correct the speakers once it has finished",
            conversation.case_number,
            conversation.status.as_str()
        )));
    }
    speakers::correct(&mut segments, speaker, role);
    let diarization = store
        .speaker_turns(&conversation.id)
        .await?
        .unwrap_or_default();
    let rep = place_speakers(store, conversation, &mut segments, &diarization).await?;
    store.save_transcript(&conversation.id, &segments).await?;
    if role == crate::transcript::Role::Rep
        && let Some((user, profile)) = rep
        && let Some(voice) = speakers::speaker_number(speaker)
            .and_then(|n| diarization.voices.iter().find(|v| v.speaker == n))
    {
        store
            .save_voice_profile(&user, &VoiceProfile::learn(profile, voice))
            .await?;
    }
    reanalyze(store, conversation).await
}

/// Places every speaker of a transcript on a side (see [`crate::speakers::assign_roles`]) with
/// what salesai knows of the conversation's rep — their name and voice profile — and returns the
/// rep's user id and profile as read, for a caller that teaches the profile afterwards.
pub async fn place_speakers(
    store: &dyn Store,
    conversation: &Conversation,
    segments: &mut [crate::transcript::Segment],
    diarization: &crate::speakers::Diarization,
) -> Result<Option<(String, Option<crate::speakers::VoiceProfile>)>, StoreError> {
    let rep = match conversation.rep_user_id.as_deref() {
        Some(id) => store.get_user(id).await?,
        None => None,
    };
    let profile = match &rep {
        Some(user) => store.voice_profile(&user.id).await?,
        None => None,
    };
    let placed = crate::speakers::assign_roles(
        segments,
        &crate::speakers::RoleHints {
            rep_name: rep.as_ref().map(|u| u.display_name.as_str()),
            rep_profile: profile.as_ref(),
            voices: &diarization.voices,
        },
    );
    tracing::info!(event = "transcript.speakers_placed", conversation_id = %conversation.id, speakers = placed.len(), inferred = placed.iter().filter(|p| !p.known).count(), "speakers placed");
    Ok(rep.map(|u| (u.id, profile)))
}

/// Finds a conversation by id or case number.
pub async fn find(store: &dyn Store, id_or_case: &str) -> Result<Option<Conversation>, StoreError> {
    if crate::domain::CaseNumber::parse(id_or_case).is_ok() {
        store.find_conversation_by_case(id_or_case).await
    } else {
        store.get_conversation(id_or_case).await
    }
}

/// Whether a conversation has a pipeline job queued or running (one that can still move it).
pub async fn has_live_pipeline_job(store: &dyn Store, id: &str) -> Result<bool, StoreError> {
    for status in [JobStatus::Queued, JobStatus::Running] {
        let jobs = store
            .list_jobs(&JobFilter {
                queue: Some(CONVERSATIONS.to_owned()),
                status: Some(status),
                conversation_id: Some(id.to_owned()),
                limit: Some(1),
                ..Default::default()
            })
            .await?;
        if !jobs.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a conversation fails with when its pipeline job goes dead (attempts spent, a terminal
/// error, or its lease expired on the last attempt): its current stage, the job's code — a
/// lost worker as `WORKER_LOST` — and whether a retry can help. `None` when the conversation
/// already completed or failed (a sibling's late death changes nothing and is not announced
/// twice). Both stores apply it in the transaction that makes the job dead.
pub fn dead_job_failure(status: &str, code: &str, message: &str) -> Option<StageError> {
    let stage = ConversationStatus::parse(status).ok()?;
    if matches!(
        stage,
        ConversationStatus::Completed | ConversationStatus::Failed
    ) {
        return None;
    }
    let (code, message) = if code == ErrorCode::LeaseExpired.as_str() {
        (
            ErrorCode::WorkerLost.as_str().to_owned(),
            format!(
                "the worker running the {} stage stopped on every attempt ({message}); retry resumes it",
                stage.as_str()
            ),
        )
    } else {
        (code.to_owned(), message.to_owned())
    };
    let retryable = ErrorCode::parse(&code).is_none_or(ErrorCode::retryable_by_default);
    Some(StageError {
        stage,
        code,
        message,
        retryable,
    })
}
