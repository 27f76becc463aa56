//! A client for the parts of Slack's Web API salesai uses.
//!
//! Slack rate-limits per method and answers 429 with `Retry-After`: the client remembers the
//! wait per method and refuses calls to that method until it passes (jobs turn that into a
//! reschedule that spends no attempt). `chat.postMessage` is paced to about one message per
//! second per channel, Slack's documented posting rate. Errors carry Slack's `error` string
//! and whether trying again can help.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, RETRY_AFTER};
use salesai_core::ErrorCode;
use salesai_worker::JobError;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

/// A failed Web API call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SlackError {
    /// Slack said 429: wait `retry_after`.
    #[error("Slack rate-limited {method}; retry after {retry_after:?}")]
    RateLimited {
        /// The method.
        method: String,
        /// How long to wait.
        retry_after: Duration,
    },
    /// Slack answered `ok: false`.
    #[error("Slack {method} failed: {error}")]
    Api {
        /// The method.
        method: String,
        /// Slack's error string (`channel_not_found`, `invalid_auth`, …).
        error: String,
    },
    /// No usable answer (connection, timeout, 5xx, not JSON).
    #[error("Slack {method} unreachable: {message}")]
    Transport {
        /// The method.
        method: String,
        /// What happened.
        message: String,
    },
}

/// Slack errors that a later attempt may not see.
const TRANSIENT: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
    "team_added_to_org",
];

impl SlackError {
    /// True when trying again later can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SlackError::RateLimited { .. } | SlackError::Transport { .. } => true,
            SlackError::Api { error, .. } => TRANSIENT.contains(&error.as_str()),
        }
    }

    /// Slack's error string, when it gave one.
    pub fn slack_error(&self) -> Option<&str> {
        match self {
            SlackError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The job outcome: a 429 reschedules without spending an attempt, transient errors are
    /// retried, the rest are terminal; all are coded `SLACK_API_ERROR` (429s `RATE_LIMITED`).
    pub fn into_job_error(self) -> JobError {
        match &self {
            SlackError::RateLimited { retry_after, .. } => JobError::RetryAt {
                at: chrono::Utc::now()
                    + chrono::Duration::from_std(*retry_after)
                        .unwrap_or_else(|_| chrono::Duration::seconds(60)),
                code: ErrorCode::RateLimited,
                message: self.to_string(),
            },
            _ if self.is_transient() => {
                JobError::retryable(ErrorCode::SlackApiError, self.to_string())
            }
            _ => JobError::terminal(ErrorCode::SlackApiError, self.to_string()),
        }
    }
}

/// The `event_type` of the message metadata salesai tags its conversation messages with.
pub const MESSAGE_EVENT_TYPE: &str = "salesai_message";

/// Slack message metadata naming a conversation's message of `kind` (`status`, `completed`,
/// `failed:N`): a retry that cannot tell whether its post arrived finds the message by it.
/// Before a conversation exists (a shared file's `prompt` or `refused` reply), the subject in
/// `conversation_id` is `file:` and the Slack file id.
pub fn message_tag(conversation_id: &str, kind: &str) -> Value {
    serde_json::json!({
        "event_type": MESSAGE_EVENT_TYPE,
        "event_payload": { "conversation_id": conversation_id, "kind": kind },
    })
}

/// Asks the history methods for message metadata too.
const METADATA: &[(&str, &str)] = &[("include_all_metadata", "true")];

/// The Web API client. Cheap to clone.
#[derive(Clone)]
pub struct WebClient {
    http: reqwest::Client,
    base: Url,
    token: SecretString,
    state: Arc<Mutex<Pacing>>,
    post_interval: Duration,
}

#[derive(Default)]
struct Pacing {
    /// Per method: no calls before this instant (a 429's `Retry-After`).
    blocked_until: HashMap<String, Instant>,
    /// Per channel: the next `chat.postMessage` slot.
    next_post: HashMap<String, Instant>,
}

/// An answer with the response headers (`auth.test` reports scopes in `x-oauth-scopes`).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The JSON body (`ok` is true).
    pub body: Value,
    /// The response headers.
    pub headers: HeaderMap,
}

impl WebClient {
    /// A client for the API at `base` (`https://slack.com/api/`) with the bot token. `http`
    /// should have timeouts set.
    pub fn new(http: reqwest::Client, base: Url, token: SecretString) -> Self {
        let mut base = base;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        WebClient {
            http,
            base,
            token,
            state: Arc::default(),
            post_interval: Duration::from_secs(1),
        }
    }

    /// Changes the per-channel posting interval (default one second).
    pub fn with_post_interval(mut self, interval: Duration) -> Self {
        self.post_interval = interval;
        self
    }

    /// The API's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Calls a write method with a JSON body.
    pub async fn call_json(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        if method == "chat.postMessage"
            && let Some(channel) = body.get("channel").and_then(Value::as_str)
        {
            self.pace(channel).await;
        }
        let request = self
            .http
            .post(self.url(method))
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.token.expose_secret()),
            )
            .json(body);
        self.send(method, request).await.map(|a| a.body)
    }

    /// Calls a read method with form arguments (Slack's read methods do not all take JSON).
    pub async fn call_form(
        &self,
        method: &str,
        args: &[(&str, &str)],
    ) -> Result<Answer, SlackError> {
        let request = self
            .http
            .post(self.url(method))
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.token.expose_secret()),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(args)
                    .finish(),
            );
        self.send(method, request).await
    }

    /// Posts a message; returns its `ts`.
    pub async fn post_message(&self, message: &Value) -> Result<String, SlackError> {
        let body = self.call_json("chat.postMessage", message).await?;
        Ok(body
            .get("ts")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    /// Replaces a message's text and blocks.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        message: &Value,
    ) -> Result<(), SlackError> {
        let mut body = message.clone();
        body["channel"] = channel.into();
        body["ts"] = ts.into();
        self.call_json("chat.update", &body).await.map(|_| ())
    }

    /// The `ts` of the message salesai tagged (see [`message_tag`]) as `conversation_id`'s
    /// `kind`: looked for among a thread's replies (`conversations.replies`) or, for a message
    /// that is not in a thread, among the channel's latest 100 messages
    /// (`conversations.history`). `None` when Slack holds no such message (the post never
    /// arrived). A call's thread holds a handful of messages, so one page is enough.
    pub async fn find_tagged(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        conversation_id: &str,
        kind: &str,
    ) -> Result<Option<String>, SlackError> {
        let answer = match thread_ts {
            Some(ts) => {
                let args = [("channel", channel), ("ts", ts), ("limit", "200")];
                self.call_form("conversations.replies", &[&args[..], METADATA].concat())
                    .await?
            }
            None => {
                let args = [("channel", channel), ("limit", "100")];
                self.call_form("conversations.history", &[&args[..], METADATA].concat())
                    .await?
            }
        };
        Ok(answer.body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                let meta = &m["metadata"];
                meta["event_type"] == MESSAGE_EVENT_TYPE
                    && meta["event_payload"]["conversation_id"] == conversation_id
                    && meta["event_payload"]["kind"] == kind
            })
            .and_then(|m| m["ts"].as_str())
            .map(str::to_owned))
    }

    /// Opens a DM with a user; returns the channel id.
    pub async fn open_dm(&self, user: &str) -> Result<String, SlackError> {
        let body = self
            .call_json("conversations.open", &serde_json::json!({ "users": user }))
            .await?;
        Ok(body["channel"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// `files.info`: the file object.
    pub async fn file_info(&self, file: &str) -> Result<Value, SlackError> {
        Ok(self.call_form("files.info", &[("file", file)]).await?.body["file"].clone())
    }

    /// `users.info`: the user object.
    pub async fn user_info(&self, user: &str) -> Result<Value, SlackError> {
        Ok(self.call_form("users.info", &[("user", user)]).await?.body["user"].clone())
    }

    /// Posts to an interaction's or command's `response_url`.
    pub async fn respond(&self, response_url: &Url, message: &Value) -> Result<(), SlackError> {
        let method = "response_url";
        let response = self
            .http
            .post(response_url.clone())
            .json(message)
            .send()
            .await
            .map_err(|e| transport(method, &e))?;
        if response.status().as_u16() == 429 {
            return Err(SlackError::RateLimited {
                method: method.into(),
                retry_after: retry_after(response.headers()),
            });
        }
        if !response.status().is_success() {
            return Err(SlackError::Transport {
                method: method.into(),
                message: format!("HTTP {}", response.status()),
            });
        }
        Ok(())
    }

    /// Starts a download of a private file with the bot token. Redirects are followed only as
    /// the client's policy allows (see [`crate::SlackConfig::download_allowed`]).
    pub async fn download(&self, url: &Url) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .get(url.clone())
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.token.expose_secret()),
            )
            .send()
            .await
    }

    /// Starts a download of a private file's first `bytes` bytes (`Range: bytes=0-…`; a host
    /// that ignores the range sends the whole file, which the caller stops reading).
    pub async fn download_head(
        &self,
        url: &Url,
        bytes: usize,
    ) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .get(url.clone())
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.token.expose_secret()),
            )
            .header(
                reqwest::header::RANGE,
                format!("bytes=0-{}", bytes.saturating_sub(1)),
            )
            .send()
            .await
    }

    fn url(&self, method: &str) -> Url {
        self.base
            .join(method)
            .expect("method names are valid URL paths")
    }

    async fn pace(&self, channel: &str) {
        let wait_until = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = state
                .next_post
                .get(channel)
                .copied()
                .filter(|t| *t > now)
                .unwrap_or(now);
            state
                .next_post
                .insert(channel.to_owned(), slot + self.post_interval);
            if state.next_post.len() > 10_000 {
                state.next_post.retain(|_, t| *t > now);
            }
            slot
        };
        tokio::time::sleep_until(wait_until).await;
    }

    async fn send(
        &self,
        method: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, SlackError> {
        {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(until) = state.blocked_until.get(method)
                && *until > Instant::now()
            {
                return Err(SlackError::RateLimited {
                    method: method.into(),
                    retry_after: *until - Instant::now(),
                });
            }
        }
        let response = request.send().await.map_err(|e| transport(method, &e))?;
        let status = response.status();
        if status.as_u16() == 429 {
            let wait = retry_after(response.headers());
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .blocked_until
                .insert(method.to_owned(), Instant::now() + wait);
            tracing::warn!(
                event = "slack.rate_limited",
                method,
                retry_after_ms = wait.as_millis() as u64,
                "Slack rate-limited a method"
            );
            return Err(SlackError::RateLimited {
                method: method.into(),
                retry_after: wait,
            });
        }
        let headers = response.headers().clone();
        if !status.is_success() {
            return Err(SlackError::Transport {
                method: method.into(),
                message: format!("HTTP {status}"),
            });
        }
        let body: Value = response.json().await.map_err(|e| transport(method, &e))?;
        if body.get("ok").and_then(Value::as_bool) == Some(true) {
            Ok(Answer { body, headers })
        } else {
            let error = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown_error")
                .to_owned();
            Err(SlackError::Api {
                method: method.into(),
                error,
            })
        }
    }
}

fn transport(method: &str, err: &reqwest::Error) -> SlackError {
    SlackError::Transport {
        method: method.into(),
        message: err.to_string(),
    }
}

/// `Retry-After` in seconds; a missing or unreadable header waits 30 s (Slack's usual).
fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.clamp(1, 3600)))
        .unwrap_or(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let api = |e: &str| SlackError::Api {
            method: "chat.postMessage".into(),
            error: e.into(),
        };
        assert!(api("internal_error").is_transient());
        assert!(!api("channel_not_found").is_transient());
        assert!(matches!(
            api("invalid_auth").into_job_error(),
            JobError::Terminal {
                code: ErrorCode::SlackApiError,
                ..
            }
        ));
        assert!(matches!(
            api("service_unavailable").into_job_error(),
            JobError::Retryable {
                code: ErrorCode::SlackApiError,
                ..
            }
        ));
        let limited = SlackError::RateLimited {
            method: "chat.postMessage".into(),
            retry_after: Duration::from_secs(7),
        };
        match limited.into_job_error() {
            JobError::RetryAt { at, code, .. } => {
                assert_eq!(code, ErrorCode::RateLimited);
                let wait = at - chrono::Utc::now();
                assert!(
                    wait > chrono::Duration::seconds(5) && wait <= chrono::Duration::seconds(7)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_is_read_and_bounded() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), Duration::from_secs(30));
        h.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(3));
        h.insert(RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(retry_after(&h), Duration::from_secs(1));
    }
}
