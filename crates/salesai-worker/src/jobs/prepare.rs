//! `conversation.prepare`: turns the upload into a transcript.
//!
//! Transcript files (WebVTT, SRT, JSON segments, plain text) are parsed here and need no
//! speech-to-text. Audio is decoded and chunked for speech-to-text (see `transcribe`); with no
//! provider configured the conversation fails at once with `STT_NOT_CONFIGURED`, naming the
//! settings, rather than sitting in a queue.

use async_trait::async_trait;
use salesai_core::blob::BlobKey;
use salesai_core::domain::ConversationStatus;
use salesai_core::pipeline::{AnalyzeJob, PrepareJob};
use salesai_core::queue::{Job, NewJob};
use salesai_core::{App, ErrorCode};

use super::{conversation_id, db, load_conversation, read_blob, stage};
use crate::{Handler, JobError};

/// The largest transcript file read into memory (transcripts are text; 20 MB is hours of it).
const MAX_TRANSCRIPT_BYTES: usize = 20 * 1024 * 1024;

/// The handler.
pub struct Prepare;

#[async_trait]
impl Handler for Prepare {
    type Kind = PrepareJob;

    async fn run(&self, app: &App, job: &Job, _: PrepareJob) -> Result<(), JobError> {
        let id = conversation_id(job)?;
        stage(
            app,
            job,
            &id,
            ConversationStatus::Preparing,
            prepare(app, job, &id),
        )
        .await
    }
}

async fn prepare(app: &App, job: &Job, id: &str) -> Result<(), JobError> {
    let store = &app.store;
    let conversation = load_conversation(app, id).await?;
    if conversation.status == ConversationStatus::Completed {
        return Ok(());
    }
    // Checkpoint: a transcript saved by an earlier attempt is not made again.
    if store.get_transcript(id).await.map_err(db)?.is_empty() {
        // A rerun after a crash mid-preparation finds chunks already transcribing: the status
        // does not go back.
        if conversation.status != ConversationStatus::Transcribing {
            store
                .set_conversation_status(id, ConversationStatus::Preparing, None)
                .await
                .map_err(db)?;
        }
        if !conversation.media.is_transcript() {
            // Audio goes through speech-to-text; the merge job hands over to the analysis.
            return super::transcribe::prepare_audio(app, job, &conversation).await;
        }
        let key = conversation
            .blob_key
            .as_deref()
            .and_then(|k| BlobKey::parse(k).ok())
            .ok_or_else(|| {
                JobError::terminal(
                    ErrorCode::InvalidInput,
                    "the conversation has no stored upload",
                )
            })?;
        let bytes = read_blob(
            app,
            &key,
            MAX_TRANSCRIPT_BYTES,
            "the transcript file is larger than 20 MB",
        )
        .await?;
        let text = String::from_utf8(bytes).map_err(|_| {
            JobError::terminal(ErrorCode::InvalidInput, "the transcript is not UTF-8 text")
        })?;
        let (format, mut segments) = salesai_core::transcript::parse_transcript(&text)
            .map_err(|e| JobError::terminal(ErrorCode::InvalidInput, e.0))?;
        // The file's own labels place its speakers ("業務", "Customer", the rep's name); other
        // names are placed by how they talk.
        super::transcribe::place_speakers(
            app,
            &conversation,
            &mut segments,
            &salesai_core::speakers::Diarization::default(),
        )
        .await?;
        store.save_transcript(id, &segments).await.map_err(db)?;
        store
            .set_media_format(id, format.extension())
            .await
            .map_err(db)?;
        tracing::info!(event = "conversation.transcript_parsed", conversation_id = %id, format = ?format, segments = segments.len(), "transcript parsed");
    }
    if !conversation.media.is_transcript() {
        // A recording's transcript is saved by the merge, which hands over to the analysis
        // itself: this is a rerun of a preparation whose first attempt was lost after its chunks
        // were queued (a killed worker), and the call has moved on without it. Queuing the
        // analysis here too would analyse the call twice.
        return Ok(());
    }
    // Keyed by this job: a rerun of this job after a crash enqueues nothing new.
    let next = NewJob::of(&AnalyzeJob {}).idempotency_key(format!("analyze:{id}:{}", job.id));
    store
        .advance(id, ConversationStatus::Analyzing, vec![next])
        .await
        .map_err(db)?;
    Ok(())
}
