//! Speech-to-text over the OpenAI-compatible transcription API (`POST {base}/audio/transcriptions`,
//! multipart, `response_format=verbose_json`): Groq by default, or OpenAI, or a local Whisper
//! server. The vendor's wire format stays in this file.

use std::time::Duration;

use chrono::{DateTime, Utc};
use salesai_core::ErrorCode;
use salesai_core::audio::ChunkLimits;
use salesai_core::stt::{SpeechToText, SttError, SttRequest, SttResult};
use salesai_core::transcript::Segment;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Groq's OpenAI-compatible base URL.
pub const GROQ_BASE_URL: &str = "https://api.groq.com/openai/v1";
/// Groq's cheap, fast Whisper.
pub const GROQ_DEFAULT_MODEL: &str = "whisper-large-v3-turbo";

/// A speech-to-text endpoint.
#[derive(Clone)]
pub struct SttConfig {
    /// `groq`, `openai` or `custom`: the error code a failure is reported under depends on it
    /// (`GROQ_API_ERROR` for Groq, as the runbook greps).
    pub provider: String,
    /// Base URL, without the `/audio/transcriptions` suffix.
    pub base_url: String,
    /// Bearer key; a local server may need none.
    pub api_key: Option<SecretString>,
    /// Model name.
    pub model: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Chunks sent at once per node.
    pub max_concurrency: usize,
    /// The provider's upload and length limits.
    pub limits: ChunkLimits,
    /// Requests per minute this node may send (`None`: no budget beyond the provider's 429s).
    /// Over budget, a chunk is rescheduled for when a slot frees, like a 429, without calling.
    pub requests_per_minute: Option<u32>,
}

impl std::fmt::Debug for SttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SttConfig")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// The client. Requests beyond `max_concurrency` wait for a free slot, so a long recording's
/// chunks never exceed the provider budget of this node.
#[derive(Debug, Clone)]
pub struct SttClient {
    config: SttConfig,
    http: reqwest::Client,
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    sent: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<DateTime<Utc>>>>,
}

#[derive(Deserialize)]
struct VerboseJson {
    /// Always present in a real answer (empty for silence): an answer without it is not a
    /// transcription, and must not pass for a silent chunk.
    text: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    segments: Option<Vec<VerboseSegment>>,
}

#[derive(Deserialize)]
struct VerboseSegment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    no_speech_prob: Option<f64>,
}

/// Parses `retry-after`: seconds (possibly fractional) or an HTTP date; 10 s when absent.
pub fn parse_retry_after(value: Option<&str>, now: DateTime<Utc>) -> DateTime<Utc> {
    let fallback = now + chrono::Duration::seconds(10);
    let Some(value) = value.map(str::trim) else {
        return fallback;
    };
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return now + chrono::Duration::milliseconds((seconds.min(86_400.0) * 1000.0) as i64);
    }
    DateTime::parse_from_rfc2822(value)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(fallback)
}

impl SttClient {
    /// A client for `config`.
    pub fn new(config: SttConfig) -> SttClient {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("the HTTP client builds with static settings");
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(config.max_concurrency.max(1)));
        SttClient {
            config,
            http,
            slots,
            sent: Default::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SttConfig {
        &self.config
    }

    /// Speech-to-text failures are `GROQ_API_ERROR` whatever the provider: it is the name the
    /// runbook and existing alerts grep for.
    fn failure_code(&self) -> ErrorCode {
        ErrorCode::GroqApiError
    }

    /// Takes a slot of the per-minute budget, or says when the next one frees.
    fn budget(&self) -> Result<(), SttError> {
        let Some(limit) = self.config.requests_per_minute else {
            return Ok(());
        };
        let now = Utc::now();
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        while sent
            .front()
            .is_some_and(|t| now - *t >= chrono::Duration::minutes(1))
        {
            sent.pop_front();
        }
        if sent.len() >= limit.max(1) as usize {
            let retry_at = *sent.front().expect("non-empty") + chrono::Duration::minutes(1);
            return Err(SttError::RateLimited { retry_at });
        }
        sent.push_back(now);
        Ok(())
    }

    /// Transcribes one chunk.
    pub async fn transcribe(&self, request: SttRequest) -> Result<SttResult, SttError> {
        self.budget()?;
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| SttError::Transient {
                code: ErrorCode::Internal,
                message: "the speech-to-text client is shutting down".into(),
            })?;
        let url = format!(
            "{}/audio/transcriptions",
            self.config.base_url.trim_end_matches('/')
        );
        let part = reqwest::multipart::Part::stream(request.audio)
            .file_name(request.file_name)
            .mime_str(&request.mime)
            .map_err(|e| SttError::Rejected {
                code: ErrorCode::InvalidInput,
                status: 0,
                message: e.to_string(),
            })?;
        let mut form = reqwest::multipart::Form::new()
            .text("model", self.config.model.clone())
            .text("response_format", "verbose_json")
            .text("temperature", "0")
            .part("file", part);
        if let Some(language) = request.language {
            form = form.text("language", language);
        }
        if let Some(prompt) = request.prompt {
            form = form.text("prompt", prompt);
        }
        let mut builder = self.http.post(&url).multipart(form);
        if let Some(key) = &self.config.api_key {
            builder = builder.bearer_auth(key.expose_secret());
        }
        let code = self.failure_code();
        let response = builder.send().await.map_err(|e| SttError::Transient {
            code: if e.is_timeout() {
                ErrorCode::Timeout
            } else {
                code
            },
            message: format!(
                "{} speech-to-text request failed: {e}",
                self.config.provider
            ),
        })?;
        let status = response.status().as_u16();
        if status == 429 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Err(SttError::RateLimited {
                retry_at: parse_retry_after(retry_after.as_deref(), Utc::now()),
            });
        }
        if status == 413 {
            return Err(SttError::TooLarge);
        }
        let body = response.text().await.map_err(|e| SttError::Transient {
            code: if e.is_timeout() {
                ErrorCode::Timeout
            } else {
                code
            },
            message: format!("reading the {} answer failed: {e}", self.config.provider),
        })?;
        if (400..500).contains(&status) {
            return Err(SttError::Rejected {
                code,
                status,
                message: error_message(&body),
            });
        }
        if status >= 500 || !(200..300).contains(&status) {
            return Err(SttError::Transient {
                code,
                message: format!("HTTP {status}: {}", error_message(&body)),
            });
        }
        let parsed: VerboseJson = serde_json::from_str(&body).map_err(|e| SttError::Transient {
            code,
            message: format!(
                "{} answered with something that is not verbose_json: {e}",
                self.config.provider
            ),
        })?;
        let segments = match parsed.segments {
            Some(segments) => segments
                .into_iter()
                .filter(|s| s.no_speech_prob.is_none_or(|p| p < 0.9) || !s.text.trim().is_empty())
                .map(|s| Segment {
                    speaker: None,
                    start_ms: (s.start.max(0.0) * 1000.0).round() as u64,
                    end_ms: (s.end.max(s.start).max(0.0) * 1000.0).round() as u64,
                    text: s.text.trim().to_owned(),
                    ..Default::default()
                })
                .filter(|s| !s.text.is_empty())
                .collect(),
            None if !parsed.text.trim().is_empty() => vec![Segment {
                speaker: None,
                start_ms: 0,
                end_ms: (parsed.duration.unwrap_or(0.0).max(0.0) * 1000.0) as u64,
                text: parsed.text.trim().to_owned(),
                ..Default::default()
            }],
            None => Vec::new(),
        };
        Ok(SttResult {
            segments,
            language: parsed.language,
        })
    }
}

/// The `error.message` of an OpenAI-style error body, or the body itself (shortened).
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(300).collect())
}

#[async_trait::async_trait]
impl SpeechToText for SttClient {
    fn provider(&self) -> &str {
        &self.config.provider
    }

    fn model(&self) -> &str {
        &self.config.model
    }

    fn limits(&self) -> ChunkLimits {
        self.config.limits
    }

    async fn transcribe(&self, request: SttRequest) -> Result<SttResult, SttError> {
        SttClient::transcribe(self, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after(Some("7"), now),
            now + chrono::Duration::seconds(7)
        );
        assert_eq!(
            parse_retry_after(Some("1.5"), now),
            now + chrono::Duration::milliseconds(1500)
        );
        assert_eq!(
            parse_retry_after(Some("Sat, 28 Nov 2026 00:01:00 GMT"), now),
            now + chrono::Duration::seconds(60)
        );
        assert_eq!(
            parse_retry_after(None, now),
            now + chrono::Duration::seconds(10)
        );
        assert_eq!(
            parse_retry_after(Some("soon"), now),
            now + chrono::Duration::seconds(10)
        );
    }
}
