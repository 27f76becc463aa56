//! `conversation.prepare`: turns the upload into a transcript.
//!
//! Transcript files (WebVTT, SRT, JSON segments, plain text) are parsed here and need no
//! speech-to-text. Audio is decoded and chunked for speech-to-text (see `transcribe`); with no
//! provider configured the conversation fails at once with `STT_NOT_CONFIGURED`, naming the
//! settings, rather than sitting in a queue.

use async_trait::async_trait;
use futures_util::StreamExt;
use salesai_core::blob::BlobKey;
use salesai_core::domain::ConversationStatus;
use salesai_core::queue::{CONVERSATIONS, Job, NewJob};
use salesai_core::{App, ErrorCode};

use super::{ANALYZE, conversation_id, db, stage};
use crate::{JobError, JobHandler};

/// The largest transcript file read into memory (transcripts are text; 20 MB is hours of it).
const MAX_TRANSCRIPT_BYTES: usize = 20 * 1024 * 1024;

/// The handler.
pub struct Prepare;

#[async_trait]
impl JobHandler for Prepare {
    async fn run(&self, app: &App, job: &Job) -> Result<(), JobError> {
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
    let Some(conversation) = store.get_conversation(id).await.map_err(db)? else {
        return Err(JobError::terminal(
            ErrorCode::InvalidInput,
            format!("conversation {id} no longer exists"),
        ));
    };
    if conversation.status == ConversationStatus::Completed {
        return Ok(());
    }
    // Checkpoint: a transcript saved by an earlier attempt is not made again.
    if store.get_transcript(id).await.map_err(db)?.is_empty() {
        store
            .set_conversation_status(id, ConversationStatus::Preparing, None)
            .await
            .map_err(db)?;
        let media = conversation
            .metadata
            .get("media")
            .and_then(|v| v.as_str())
            .unwrap_or("audio");
        if media != "transcript" {
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
        let mut stream = app.blobs.get_stream(&key).await.map_err(|e| match e {
            salesai_core::blob::BlobError::NotFound(_) => JobError::terminal(
                ErrorCode::FileDownloadFailed,
                format!("the upload {} is missing from storage", key.as_str()),
            ),
            other => JobError::retryable(ErrorCode::StorageError, other.to_string()),
        })?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| JobError::retryable(ErrorCode::StorageError, e.to_string()))?;
            if bytes.len() + chunk.len() > MAX_TRANSCRIPT_BYTES {
                return Err(JobError::terminal(
                    ErrorCode::InvalidInput,
                    "the transcript file is larger than 20 MB",
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            JobError::terminal(ErrorCode::InvalidInput, "the transcript is not UTF-8 text")
        })?;
        let (format, segments) = salesai_core::transcript::parse_transcript(&text)
            .map_err(|e| JobError::terminal(ErrorCode::InvalidInput, e.0))?;
        store.save_transcript(id, &segments).await.map_err(db)?;
        tracing::info!(event = "conversation.transcript_parsed", conversation_id = %id, format = ?format, segments = segments.len(), "transcript parsed");
    }
    store
        .set_conversation_status(id, ConversationStatus::Analyzing, None)
        .await
        .map_err(db)?;
    // Keyed by this job: a rerun of this job after a crash enqueues nothing new.
    let next = NewJob {
        conversation_id: Some(id.to_owned()),
        ..NewJob::new(
            CONVERSATIONS,
            ANALYZE,
            serde_json::json!({ "conversation_id": id }),
        )
        .idempotency_key(format!("analyze:{id}:{}", job.id))
    };
    store.enqueue(next).await.map_err(db)?;
    Ok(())
}
