//! Stable error codes.
//!
//! A code is the one string that travels with a failure everywhere: logs, metrics, the database,
//! the API and Slack. Operators grep for them (the runbook greps `GROQ_API_ERROR`,
//! `DATABASE_ERROR` and `FILE_DOWNLOAD_FAILED`), so a code, once shipped, never changes spelling.

use serde::{Deserialize, Serialize};

/// Every failure salesai can report, by its stable name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The speech-to-text provider (Groq or compatible) failed.
    GroqApiError,
    /// The database failed or could not be reached.
    DatabaseError,
    /// A file could not be downloaded (Slack, or the blob store).
    FileDownloadFailed,
    /// The LLM provider failed.
    LlmApiError,
    /// A provider rate-limited us; the job is rescheduled, not failed.
    RateLimited,
    /// The audio could not be decoded.
    AudioDecodeFailed,
    /// The audio holds no sound worth transcribing.
    AudioEmpty,
    /// The audio is larger than any configured limit allows.
    AudioTooLarge,
    /// Blob storage failed.
    StorageError,
    /// An LLM answered with output that does not match the contract, even after one repair.
    AnalysisInvalidOutput,
    /// Audio arrived but no speech-to-text provider is configured.
    SttNotConfigured,
    /// A call took longer than its deadline.
    Timeout,
    /// The input was rejected; retrying the same input cannot help.
    InvalidInput,
    /// A worker held the job's lease and stopped renewing it (it crashed or hung).
    LeaseExpired,
    /// A conversation's stage was lost with its worker on every attempt (crashes, kills): the
    /// conversation fails with this code instead of staying in its stage for good.
    WorkerLost,
    /// No handler is registered for a job's kind on this node.
    UnknownJobKind,
    /// The Slack Web API failed.
    SlackApiError,
    /// Anything not named above; the log line carries the cause.
    Internal,
}

impl ErrorCode {
    /// Every code, for listings and exhaustive tests.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::GroqApiError,
        ErrorCode::DatabaseError,
        ErrorCode::FileDownloadFailed,
        ErrorCode::LlmApiError,
        ErrorCode::RateLimited,
        ErrorCode::AudioDecodeFailed,
        ErrorCode::AudioEmpty,
        ErrorCode::AudioTooLarge,
        ErrorCode::StorageError,
        ErrorCode::AnalysisInvalidOutput,
        ErrorCode::SttNotConfigured,
        ErrorCode::Timeout,
        ErrorCode::InvalidInput,
        ErrorCode::LeaseExpired,
        ErrorCode::WorkerLost,
        ErrorCode::UnknownJobKind,
        ErrorCode::SlackApiError,
        ErrorCode::Internal,
    ];

    /// The stable string, as stored and logged.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::GroqApiError => "GROQ_API_ERROR",
            ErrorCode::DatabaseError => "DATABASE_ERROR",
            ErrorCode::FileDownloadFailed => "FILE_DOWNLOAD_FAILED",
            ErrorCode::LlmApiError => "LLM_API_ERROR",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::AudioDecodeFailed => "AUDIO_DECODE_FAILED",
            ErrorCode::AudioEmpty => "AUDIO_EMPTY",
            ErrorCode::AudioTooLarge => "AUDIO_TOO_LARGE",
            ErrorCode::StorageError => "STORAGE_ERROR",
            ErrorCode::AnalysisInvalidOutput => "ANALYSIS_INVALID_OUTPUT",
            ErrorCode::SttNotConfigured => "STT_NOT_CONFIGURED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::LeaseExpired => "LEASE_EXPIRED",
            ErrorCode::WorkerLost => "WORKER_LOST",
            ErrorCode::UnknownJobKind => "UNKNOWN_JOB_KIND",
            ErrorCode::SlackApiError => "SLACK_API_ERROR",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// Parses a stored code; unknown strings are `None` (a newer binary may have written them).
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// Whether a failure with this code is worth retrying when nothing more specific is known.
    ///
    /// Provider and infrastructure failures are transient; bad input, bad configuration and
    /// contract violations are not, and retrying them would only spend money.
    pub fn retryable_by_default(self) -> bool {
        match self {
            ErrorCode::GroqApiError
            | ErrorCode::DatabaseError
            | ErrorCode::FileDownloadFailed
            | ErrorCode::LlmApiError
            | ErrorCode::RateLimited
            | ErrorCode::StorageError
            | ErrorCode::Timeout
            | ErrorCode::LeaseExpired
            | ErrorCode::WorkerLost
            | ErrorCode::SlackApiError
            | ErrorCode::Internal => true,
            ErrorCode::AudioDecodeFailed
            | ErrorCode::AudioEmpty
            | ErrorCode::AudioTooLarge
            | ErrorCode::AnalysisInvalidOutput
            | ErrorCode::SttNotConfigured
            | ErrorCode::InvalidInput
            | ErrorCode::UnknownJobKind => false,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validation failure, phrased for the person who sent the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_serde() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::parse("NOPE"), None);
    }

    #[test]
    fn runbook_codes_keep_their_names() {
        assert_eq!(ErrorCode::GroqApiError.as_str(), "GROQ_API_ERROR");
        assert_eq!(ErrorCode::DatabaseError.as_str(), "DATABASE_ERROR");
        assert_eq!(
            ErrorCode::FileDownloadFailed.as_str(),
            "FILE_DOWNLOAD_FAILED"
        );
    }
}
