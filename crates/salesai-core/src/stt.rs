//! Speech-to-text, as the pipeline sees it: a trait with the provider's limits, and the
//! request, result and error types. The OpenAI-compatible client lives in `salesai-providers`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ErrorCode;
use crate::audio::ChunkLimits;
use crate::transcript::Segment;

/// A speech-to-text provider.
#[async_trait]
pub trait SpeechToText: Send + Sync + 'static {
    /// `groq`, `openai`, `local`…
    fn provider(&self) -> &str;
    /// The model.
    fn model(&self) -> &str;
    /// Its upload and length limits.
    fn limits(&self) -> ChunkLimits;
    /// Transcribes one chunk.
    async fn transcribe(&self, request: SttRequest) -> Result<SttResult, SttError>;
}

/// One transcription request.
#[derive(Debug, Clone)]
pub struct SttRequest {
    /// The encoded audio.
    pub audio: bytes::Bytes,
    /// Its file name; the extension tells the server the format (never `audio.mp3` for FLAC).
    pub file_name: String,
    /// Its MIME type.
    pub mime: String,
    /// ISO-639-1 language hint.
    pub language: Option<String>,
    /// Vocabulary prompt.
    pub prompt: Option<String>,
}

/// A transcription.
#[derive(Debug, Clone, PartialEq)]
pub struct SttResult {
    /// Segments, times relative to the request's audio.
    pub segments: Vec<Segment>,
    /// The language the server detected or used.
    pub language: Option<String>,
}

/// A transcription failure, by what the caller does next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SttError {
    /// 429: come back at `retry_at` (not a failed attempt).
    #[error("rate limited until {retry_at}")]
    RateLimited {
        /// When the provider will accept again.
        retry_at: DateTime<Utc>,
    },
    /// 413: the chunk is too large; plan smaller chunks.
    #[error("the provider rejected the chunk as too large")]
    TooLarge,
    /// Other 4xx: retrying the same request cannot help.
    #[error("{code}: HTTP {status}: {message}")]
    Rejected {
        /// The stable code.
        code: ErrorCode,
        /// HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 5xx, connection failures, malformed answers: try again later.
    #[error("{code}: {message}")]
    Transient {
        /// The stable code.
        code: ErrorCode,
        /// What happened.
        message: String,
    },
}

impl SttError {
    /// The stable code for logs and the conversation's error.
    pub fn code(&self) -> ErrorCode {
        match self {
            SttError::RateLimited { .. } => ErrorCode::RateLimited,
            SttError::TooLarge => ErrorCode::AudioTooLarge,
            SttError::Rejected { code, .. } | SttError::Transient { code, .. } => *code,
        }
    }
}
