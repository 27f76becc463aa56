//! The conversation pipeline as jobs, one file per stage. Each stage checkpoints what it
//! finished, so a retry resumes at the first unfinished piece and never pays twice.

pub mod analyze;
pub mod prepare;
pub mod transcribe;

use std::future::Future;

use futures_util::StreamExt;
use salesai_core::blob::{BlobError, BlobKey, ByteStream};
use salesai_core::domain::{Conversation, ConversationStatus, StageError};
use salesai_core::queue::Job;
use salesai_core::{App, ErrorCode};

use crate::{JobError, Registry};

pub use salesai_core::pipeline::{ANALYZE, PREPARE};

/// Registers the pipeline's job kinds.
pub fn register_pipeline(registry: &mut Registry) {
    registry
        .add(prepare::Prepare)
        .add(transcribe::TranscribeChunk)
        .add(transcribe::Merge)
        .add(analyze::Analyze);
}

/// The conversation a pipeline job works on.
pub fn conversation_id(job: &Job) -> Result<String, JobError> {
    job.payload
        .get("conversation_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| job.conversation_id.clone())
        .ok_or_else(|| {
            JobError::terminal(
                ErrorCode::InvalidInput,
                "the job payload has no conversation_id",
            )
        })
}

/// Runs a stage; when it fails for good (terminal, or its last attempt), marks the
/// conversation failed with the stage, the code, the message and whether a retry can help —
/// once: a conversation a sibling job already failed is neither worked on nor failed again.
pub async fn stage<F>(
    app: &App,
    job: &Job,
    id: &str,
    stage: ConversationStatus,
    work: F,
) -> Result<(), JobError>
where
    F: Future<Output = Result<(), JobError>>,
{
    // A sibling already failed the conversation (or it was retried into another stage's job):
    // this job's work would be wasted, and its failure would announce a second failure.
    let current = app.store.get_conversation(id).await.map_err(db)?;
    if current
        .as_ref()
        .is_some_and(|c| c.status == ConversationStatus::Failed)
    {
        tracing::info!(event = "job.skipped", conversation_id = %id, job_id = job.id, kind = %job.kind, "the conversation already failed; this job does nothing");
        return Ok(());
    }
    let result = work.await;
    if let Err(err) = &result {
        let (code, message, final_failure, retryable) = match err {
            JobError::Terminal { code, message } => (
                *code,
                message.clone(),
                true,
                matches!(code, ErrorCode::SttNotConfigured),
            ),
            JobError::Retryable { code, message } => (
                *code,
                message.clone(),
                job.attempts >= job.max_attempts,
                true,
            ),
            JobError::RetryAt { .. } => return result,
        };
        let already_failed = app
            .store
            .get_conversation(id)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c.status == ConversationStatus::Failed);
        if final_failure && !already_failed {
            let error = StageError {
                stage,
                code: code.to_string(),
                message: message.clone(),
                retryable,
            };
            if let Err(store_err) = app
                .store
                .set_conversation_status(id, ConversationStatus::Failed, Some(&error))
                .await
            {
                tracing::error!(event = "conversation.record_failed", conversation_id = %id, error = %store_err, "could not mark the conversation failed");
            }
            tracing::error!(event = "conversation.failed", conversation_id = %id, stage = stage.as_str(), error_code = %code, error = %message, "conversation failed");
        }
    }
    result
}

/// How long a job waits for the database to keep what a provider was paid for (an agent's
/// answer, a chunk's transcript) before it fails and is retried: its lease is renewed
/// meanwhile, so no other node takes the job over.
pub(crate) const KEEP_PAID_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// Maps a store failure to a retryable job error.
pub fn db(err: salesai_core::store::StoreError) -> JobError {
    JobError::from_code(err.code(), err.to_string())
}

/// The conversation a job works on; gone is terminal (it was deleted, e.g. by retention).
pub async fn load_conversation(app: &App, id: &str) -> Result<Conversation, JobError> {
    app.store
        .get_conversation(id)
        .await
        .map_err(db)?
        .ok_or_else(|| {
            JobError::terminal(
                ErrorCode::InvalidInput,
                format!("conversation {id} no longer exists"),
            )
        })
}

/// Opens a stored blob. A missing blob is terminal (`FILE_DOWNLOAD_FAILED`: retrying cannot
/// bring it back); storage trouble is retryable.
pub(crate) async fn open_blob(app: &App, key: &BlobKey) -> Result<ByteStream, JobError> {
    app.blobs.get_stream(key).await.map_err(|e| match e {
        BlobError::NotFound(_) => JobError::terminal(
            ErrorCode::FileDownloadFailed,
            format!("{} is missing from storage", key.as_str()),
        ),
        other => JobError::retryable(ErrorCode::StorageError, other.to_string()),
    })
}

/// Reads a whole blob into memory, failing with `too_large` past `limit` bytes.
pub(crate) async fn read_blob(
    app: &App,
    key: &BlobKey,
    limit: usize,
    too_large: &str,
) -> Result<Vec<u8>, JobError> {
    let mut stream = open_blob(app, key).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| JobError::retryable(ErrorCode::StorageError, e.to_string()))?;
        if bytes.len() + chunk.len() > limit {
            return Err(JobError::terminal(ErrorCode::InvalidInput, too_large));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The wait before a provider call number `call + 1` within one attempt (an agent's or a
/// chunk's own budget): 1 s, then 2 s, …, capped at 8 s, with equal jitter (half fixed, half
/// random from `jitter` in `[0, 1)`), so calls that failed together do not retry together.
pub fn call_backoff(call: u32, jitter: f64) -> std::time::Duration {
    let full = 1_000u64 << call.saturating_sub(1).min(3);
    let half = full / 2;
    std::time::Duration::from_millis(half + (half as f64 * jitter.clamp(0.0, 1.0)) as u64)
}

#[cfg(test)]
mod tests {
    use super::call_backoff;
    use std::time::Duration;

    #[test]
    fn call_backoff_grows_and_is_bounded() {
        assert_eq!(call_backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(call_backoff(1, 0.999), Duration::from_millis(999));
        assert_eq!(call_backoff(2, 0.0), Duration::from_millis(1000));
        assert_eq!(call_backoff(9, 1.0), Duration::from_millis(8000));
        assert_eq!(
            call_backoff(9, 7.0),
            Duration::from_millis(8000),
            "jitter clamped"
        );
    }
}
