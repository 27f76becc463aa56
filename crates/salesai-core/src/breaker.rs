//! Automatic pause of a provider that fails broadly: the runbook's "pause the queue when Groq
//! rate-limits", done by each node for the one provider instead of for the whole queue.
//!
//! Every call's outcome is recorded for a minute. When at least [`MIN_CALLS`] calls were made
//! and [`FAILURE_SHARE`] of them failed (5xx, timeouts, 429s), the provider is paused: calls
//! are not made, and the jobs that would make them are rescheduled for the pause's end without
//! spending an attempt (as for a 429). The first pause lasts a minute; one that follows soon
//! after the last doubles, up to ten minutes; a success resets that. Each pause is logged
//! (`provider.paused`), counted, and — through the monitor's per-node counters and the doctor —
//! announced once on the ops webhook, with its end.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::analysis::Agent;
use crate::analysis::engine::{AgentContext, Analyzer, AnalyzerError};
use crate::error::ErrorCode;
use crate::store::AgentRun;
use crate::stt::{SpeechToText, SttError, SttRequest, SttResult};

/// The speech-to-text provider's name (in logs, counters and the doctor's findings).
pub const STT: &str = "speech-to-text";
/// The LLM's name.
pub const LLM: &str = "llm";

/// Calls in the window before a pause can start.
pub const MIN_CALLS: usize = 10;
/// Share of failed calls in the window that pauses the provider.
pub const FAILURE_SHARE: f64 = 0.8;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The first pause.
pub const FIRST_PAUSE: Duration = Duration::from_secs(60);
/// The longest pause.
pub const MAX_PAUSE: Duration = Duration::from_secs(600);

#[derive(Default)]
struct State {
    outcomes: VecDeque<(Instant, bool)>,
    open_until: Option<Instant>,
    /// The last pause's length, while pauses follow each other.
    last_pause: Option<Duration>,
    closed_at: Option<Instant>,
    opened_total: u64,
}

/// One provider's breaker.
pub struct Breaker {
    name: &'static str,
    state: Mutex<State>,
}

static ALL: LazyLock<Mutex<Vec<Arc<Breaker>>>> = LazyLock::new(Mutex::default);

impl Breaker {
    /// This process's breaker for the provider `name` ([`STT`], [`LLM`]): one per provider, so
    /// every client of it (and the monitor, through [`all`]) sees the same pauses.
    pub fn of(name: &'static str) -> Arc<Breaker> {
        let mut all = ALL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = all.iter().find(|b| b.name == name) {
            return found.clone();
        }
        let breaker = Arc::new(Breaker {
            name,
            state: Mutex::default(),
        });
        all.push(breaker.clone());
        breaker
    }

    /// Its provider's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the provider is paused, until when (as a time jobs can be rescheduled for).
    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        self.paused_at(Instant::now())
    }

    fn paused_at(&self, now: Instant) -> Option<DateTime<Utc>> {
        let mut s = self.lock();
        match s.open_until {
            Some(until) if until > now => {
                Some(Utc::now() + chrono::Duration::from_std(until - now).unwrap_or_default())
            }
            Some(_) => {
                s.open_until = None;
                s.closed_at = Some(now);
                tracing::info!(
                    event = "provider.resumed",
                    provider = self.name,
                    "calls to the provider resume after its pause"
                );
                None
            }
            None => None,
        }
    }

    /// Records one call's outcome; returns the pause when this failure started one.
    pub fn record(&self, ok: bool) -> Option<Duration> {
        self.record_at(Instant::now(), ok)
    }

    fn record_at(&self, now: Instant, ok: bool) -> Option<Duration> {
        let mut s = self.lock();
        if ok {
            s.last_pause = None;
        }
        s.outcomes.push_back((now, ok));
        while s
            .outcomes
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            s.outcomes.pop_front();
        }
        let calls = s.outcomes.len();
        let failed = s.outcomes.iter().filter(|(_, ok)| !ok).count();
        if ok || s.open_until.is_some() || calls < MIN_CALLS {
            return None;
        }
        if (failed as f64) < FAILURE_SHARE * calls as f64 {
            return None;
        }
        // Pauses that follow each other (a failure soon after the last one ended) double.
        let soon = s
            .closed_at
            .is_some_and(|closed| now.duration_since(closed) < WINDOW * 5);
        let pause = match (s.last_pause, soon) {
            (Some(last), true) => (last * 2).min(MAX_PAUSE),
            _ => FIRST_PAUSE,
        };
        s.last_pause = Some(pause);
        s.open_until = Some(now + pause);
        s.outcomes.clear();
        s.opened_total += 1;
        tracing::warn!(
            event = "provider.paused",
            provider = self.name,
            calls,
            failed,
            pause_secs = pause.as_secs(),
            "the provider failed broadly: calls to it pause; waiting jobs keep their attempts"
        );
        Some(pause)
    }

    /// Pauses started so far (the monitor flushes the count to the per-node counters).
    pub fn opened_total(&self) -> u64 {
        self.lock().opened_total
    }
}

/// The per-node counter the monitor flushes a provider's pauses to.
pub fn counter_name(provider: &str) -> String {
    format!("provider_paused:{provider}")
}

/// Every breaker of this process.
pub fn all() -> Vec<Arc<Breaker>> {
    ALL.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// A speech-to-text provider behind a breaker.
pub struct GuardedStt {
    inner: Arc<dyn SpeechToText>,
    breaker: Arc<Breaker>,
}

impl GuardedStt {
    /// `inner` behind `breaker`.
    pub fn new(inner: Arc<dyn SpeechToText>, breaker: Arc<Breaker>) -> Self {
        GuardedStt { inner, breaker }
    }
}

#[async_trait]
impl SpeechToText for GuardedStt {
    fn provider(&self) -> &str {
        self.inner.provider()
    }
    fn model(&self) -> &str {
        self.inner.model()
    }
    fn limits(&self) -> crate::audio::ChunkLimits {
        self.inner.limits()
    }
    async fn transcribe(&self, request: SttRequest) -> Result<SttResult, SttError> {
        if let Some(retry_at) = self.breaker.paused_until() {
            return Err(SttError::RateLimited { retry_at });
        }
        let result = self.inner.transcribe(request).await;
        match &result {
            Ok(_) => {
                self.breaker.record(true);
            }
            Err(SttError::Transient { .. } | SttError::RateLimited { .. }) => {
                self.breaker.record(false);
            }
            // The request's own fault, not the provider's health.
            Err(_) => {}
        }
        result
    }
}

/// An LLM analyzer behind a breaker.
pub struct GuardedAnalyzer {
    inner: Arc<dyn Analyzer>,
    breaker: Arc<Breaker>,
}

impl GuardedAnalyzer {
    /// `inner` behind `breaker`.
    pub fn new(inner: Arc<dyn Analyzer>, breaker: Arc<Breaker>) -> Self {
        GuardedAnalyzer { inner, breaker }
    }
}

#[async_trait]
impl Analyzer for GuardedAnalyzer {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }
    fn strict(&self) -> bool {
        self.inner.strict()
    }
    fn budget(&self) -> Option<std::time::Duration> {
        self.inner.budget()
    }
    async fn run(
        &self,
        agent: Agent,
        context: AgentContext<'_>,
    ) -> Result<AgentRun, AnalyzerError> {
        if let Some(retry_at) = self.breaker.paused_until() {
            return Err(AnalyzerError {
                code: ErrorCode::RateLimited,
                message: format!(
                    "the LLM failed broadly and is paused until {retry_at}; the analysis waits without spending an attempt"
                ),
                retry_at: Some(retry_at),
            });
        }
        let result = self.inner.run(agent, context).await;
        match &result {
            Ok(_) => {
                self.breaker.record(true);
            }
            Err(err) if err.retry_at.is_some() || err.code.retryable_by_default() => {
                self.breaker.record(false);
            }
            Err(_) => {}
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker {
            name: "test",
            state: Mutex::default(),
        }
    }

    #[test]
    fn pauses_only_when_most_calls_in_the_window_fail() {
        let b = breaker();
        let t0 = Instant::now();
        // A mixed minute: 7 failures in 10 is not broad.
        for i in 0..10 {
            assert_eq!(b.record_at(t0, i % 10 >= 7), None);
        }
        assert!(b.paused_at(t0).is_none());
        let b = breaker();
        for i in 0..9 {
            assert_eq!(b.record_at(t0, false), None, "call {i}: too few calls yet");
        }
        assert_eq!(b.record_at(t0, false), Some(FIRST_PAUSE));
        assert!(b.paused_at(t0 + Duration::from_secs(30)).is_some());
        assert!(
            b.paused_at(t0 + FIRST_PAUSE + Duration::from_secs(1))
                .is_none()
        );
        assert_eq!(b.opened_total(), 1);
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let b = breaker();
        let t0 = Instant::now();
        for _ in 0..9 {
            b.record_at(t0, false);
        }
        // Two minutes later the old failures no longer count.
        assert_eq!(b.record_at(t0 + Duration::from_secs(120), false), None);
    }

    #[test]
    fn pauses_that_follow_each_other_double_up_to_the_cap_and_a_success_resets() {
        let b = breaker();
        let mut t = Instant::now();
        let mut pauses = Vec::new();
        for _ in 0..6 {
            let mut started = None;
            for _ in 0..MIN_CALLS {
                started = started.or(b.record_at(t, false));
            }
            pauses.push(started.unwrap().as_secs());
            t += MAX_PAUSE + Duration::from_secs(1);
            assert!(b.paused_at(t).is_none());
        }
        assert_eq!(pauses, [60, 120, 240, 480, 600, 600]);
        b.record_at(t, true);
        let mut started = None;
        for _ in 0..MIN_CALLS {
            started = started.or(b.record_at(t, false));
        }
        assert_eq!(started, Some(FIRST_PAUSE), "a success resets the doubling");
    }

    /// A provider that is down: every call fails, and is counted.
    struct Down(std::sync::atomic::AtomicU32);

    #[async_trait]
    impl SpeechToText for Down {
        fn provider(&self) -> &str {
            "down"
        }
        fn model(&self) -> &str {
            "down"
        }
        fn limits(&self) -> crate::audio::ChunkLimits {
            Default::default()
        }
        async fn transcribe(&self, _: SttRequest) -> Result<SttResult, SttError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err(SttError::Transient {
                code: ErrorCode::GroqApiError,
                message: "HTTP 503".into(),
            })
        }
    }

    #[tokio::test]
    async fn a_provider_that_is_down_stops_being_called_and_jobs_wait_without_spending() {
        let down = Arc::new(Down(Default::default()));
        let guarded = GuardedStt::new(down.clone(), Arc::new(breaker()));
        let request = || SttRequest {
            audio: bytes::Bytes::from_static(b"x"),
            file_name: "chunk-0000.flac".into(),
            mime: "audio/flac".into(),
            language: None,
            prompt: None,
        };
        for _ in 0..MIN_CALLS {
            assert!(matches!(
                guarded.transcribe(request()).await,
                Err(SttError::Transient { .. })
            ));
        }
        for _ in 0..5 {
            match guarded.transcribe(request()).await {
                // A 429-like answer: the chunk is rescheduled for the pause's end, no attempt spent.
                Err(SttError::RateLimited { retry_at }) => {
                    assert!(retry_at > Utc::now() + chrono::Duration::seconds(50));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            down.0.load(std::sync::atomic::Ordering::SeqCst),
            MIN_CALLS as u32,
            "no call reaches a paused provider"
        );
    }
}
