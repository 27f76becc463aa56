//! A fake Slack for tests and benchmarks: the Web API methods salesai calls, answering in
//! Slack's JSON (`{"ok": true, …}` / `{"ok": false, "error": "…"}`), a file host that, like
//! Slack's, answers an HTML login page when the bot token is missing, and `response_url`
//! hooks. Every call is recorded for assertions. Rate limits are injected per method.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// A file the fake serves.
#[derive(Clone)]
pub struct FakeFile {
    /// File name.
    pub name: String,
    /// MIME type.
    pub mimetype: String,
    /// Slack's file type (`mp3`, `text`, …).
    pub filetype: String,
    /// The bytes, or a generated size.
    pub content: FakeContent,
}

/// What a fake file contains.
#[derive(Clone)]
pub enum FakeContent {
    /// These bytes.
    Bytes(Bytes),
    /// `n` bytes of an MP3-looking stream, generated while sent (for large downloads).
    Generated(u64),
}

impl FakeContent {
    fn len(&self) -> u64 {
        match self {
            FakeContent::Bytes(b) => b.len() as u64,
            FakeContent::Generated(n) => *n,
        }
    }
}

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method (`chat.postMessage`) or `hook:<id>` for response URLs, `file:<id>` for
    /// downloads.
    pub method: String,
    /// The arguments (JSON bodies as sent; form bodies as an object).
    pub body: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    files: HashMap<String, (FakeFile, Value)>,
    users: HashMap<String, Value>,
    rate_limits: HashMap<String, (u32, u64)>,
    delays: HashMap<String, Duration>,
    lost_answers: Vec<(String, String, u32)>,
    next_ts: u64,
    messages: BTreeMap<String, Value>,
}

/// A running fake.
#[derive(Clone)]
pub struct FakeSlack {
    /// `http://127.0.0.1:PORT/` — its Web API is at `api/`.
    pub base: url::Url,
    /// The bot token it accepts.
    pub token: String,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Clone)]
struct Shared {
    token: String,
    base: url::Url,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSlack {
    /// Starts a fake on a free local port, accepting `token`.
    pub async fn start(token: &str) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let base = url::Url::parse(&format!("http://{addr}/")).expect("valid URL");
        let inner = Arc::new(Mutex::new(Inner {
            next_ts: 1_700_000_000_000_100,
            ..Default::default()
        }));
        let shared = Shared {
            token: token.to_owned(),
            base: base.clone(),
            inner: inner.clone(),
        };
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/files/{id}", get(file))
            .route("/hooks/{id}", post(hook))
            .with_state(shared);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSlack {
            base,
            token: token.to_owned(),
            inner,
        }
    }

    /// The Web API URL to configure (`SLACK_API_URL`).
    pub fn api_url(&self) -> url::Url {
        self.base.join("api/").expect("valid URL")
    }

    /// A `response_url` the fake records.
    pub fn hook_url(&self, id: &str) -> String {
        self.base
            .join(&format!("hooks/{id}"))
            .expect("valid URL")
            .to_string()
    }

    /// Adds a file shared in `channel` by a message with timestamp `ts`.
    pub fn add_file(&self, id: &str, file: FakeFile, channel: &str, ts: &str) {
        let url = self.base.join(&format!("files/{id}")).expect("valid URL");
        let object = json!({
            "id": id,
            "name": file.name,
            "mimetype": file.mimetype,
            "filetype": file.filetype,
            "size": file.content.len(),
            "url_private": url.as_str(),
            "url_private_download": url.as_str(),
            "shares": { "public": { channel: [ { "ts": ts } ] } },
        });
        self.lock().files.insert(id.to_owned(), (file, object));
    }

    /// Changes a file's `url_private_download` (to test the host allow-list).
    pub fn set_download_url(&self, id: &str, url: &str) {
        if let Some((_, object)) = self.lock().files.get_mut(id) {
            object["url_private_download"] = json!(url);
        }
    }

    /// Adds a user for `users.info`.
    pub fn add_user(&self, id: &str, email: &str, real_name: &str) {
        self.lock().users.insert(
            id.to_owned(),
            json!({ "id": id, "name": real_name.to_lowercase(), "real_name": real_name,
                    "profile": { "email": email, "real_name": real_name } }),
        );
    }

    /// The next `times` calls of `method` answer 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit(&self, method: &str, times: u32, retry_after_secs: u64) {
        self.lock()
            .rate_limits
            .insert(method.to_owned(), (times, retry_after_secs));
    }

    /// The next `times` calls of `method` whose JSON arguments contain `containing` are carried
    /// out, but answered with HTTP 500 — what a caller sees when Slack accepted a message and
    /// the answer was lost (or the caller crashed before reading it).
    pub fn lose_answers(&self, method: &str, containing: &str, times: u32) {
        self.lock()
            .lost_answers
            .push((method.to_owned(), containing.to_owned(), times));
    }

    /// Every later call of `method` is answered after `delay`, as Slack does on a slow day
    /// (an instant fake hides races between a conversation's notifications).
    pub fn slow(&self, method: &str, delay: Duration) {
        self.lock().delays.insert(method.to_owned(), delay);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// The current text+blocks of every message posted, by ts (updates applied).
    pub fn messages(&self) -> BTreeMap<String, Value> {
        self.lock().messages.clone()
    }

    /// Waits until `check` holds for the calls, or panics after `timeout`.
    pub async fn wait_until(&self, what: &str, timeout: Duration, check: impl Fn(&[Call]) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if check(&self.calls()) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let methods: Vec<String> = self.calls().iter().map(|c| c.method.clone()).collect();
                panic!("timed out waiting for {what}; calls so far: {methods:?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn slack_ok(extra: Value) -> Response {
    let mut body = json!({ "ok": true });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    axum::Json(body).into_response()
}

fn slack_err(error: &str) -> Response {
    axum::Json(json!({ "ok": false, "error": error })).into_response()
}

async fn api(
    State(s): State<Shared>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let args: Value = if is_json {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        Value::Object(
            url::form_urlencoded::parse(&body)
                .into_owned()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        )
    };
    let delay = s
        .inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .delays
        .get(&method)
        .copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
    inner.calls.push(Call {
        method: method.clone(),
        body: args.clone(),
        at: std::time::Instant::now(),
    });
    if let Some((left, wait)) = inner.rate_limits.get_mut(&method)
        && *left > 0
    {
        *left -= 1;
        let wait = *wait;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.to_string())],
            axum::Json(json!({ "ok": false, "error": "ratelimited" })),
        )
            .into_response();
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(s.token.as_str()) {
        return slack_err("invalid_auth");
    }
    let text = args.to_string();
    let lose = match inner
        .lost_answers
        .iter_mut()
        .find(|(m, needle, left)| *m == method && *left > 0 && text.contains(needle.as_str()))
    {
        Some((_, _, left)) => {
            *left -= 1;
            true
        }
        None => false,
    };
    let answer = match method.as_str() {
        "auth.test" => (
            [(
                "x-oauth-scopes",
                "chat:write,commands,files:read,users:read,users:read.email,im:write,channels:read,groups:read,im:history,channels:history",
            )],
            axum::Json(json!({ "ok": true, "url": "https://fake.slack.com/", "team": "Fake", "user": "salesai", "team_id": "T0FAKE", "user_id": "U0BOT", "bot_id": "B0BOT" })),
        )
            .into_response(),
        "chat.postMessage" => {
            let Some(channel) = args["channel"].as_str().filter(|c| !c.is_empty()) else {
                return slack_err("channel_not_found");
            };
            if args["text"].as_str().is_none_or(str::is_empty) && args["blocks"].is_null() {
                return slack_err("no_text");
            }
            if args["blocks"].as_array().is_some_and(|b| b.len() > 50) {
                return slack_err("invalid_blocks");
            }
            inner.next_ts += 1;
            let ts = format!("{}.{:06}", inner.next_ts / 1_000_000, inner.next_ts % 1_000_000);
            inner.messages.insert(ts.clone(), args.clone());
            slack_ok(json!({ "channel": channel, "ts": ts, "message": { "text": args["text"] } }))
        }
        "chat.update" => {
            let ts = args["ts"].as_str().unwrap_or_default().to_owned();
            if !inner.messages.contains_key(&ts) {
                return slack_err("message_not_found");
            }
            let mut updated = inner.messages[&ts].clone();
            updated["text"] = args["text"].clone();
            updated["blocks"] = args["blocks"].clone();
            inner.messages.insert(ts.clone(), updated);
            slack_ok(json!({ "channel": args["channel"], "ts": ts }))
        }
        "views.open" => {
            if args["trigger_id"].as_str().is_none_or(str::is_empty) {
                return slack_err("invalid_trigger_id");
            }
            slack_ok(json!({ "view": { "id": "V0FAKE" } }))
        }
        "files.info" => {
            let id = args["file"].as_str().unwrap_or_default();
            match inner.files.get(id) {
                Some((_, object)) => slack_ok(json!({ "file": object })),
                None => slack_err("file_not_found"),
            }
        }
        "users.info" => {
            let id = args["user"].as_str().unwrap_or_default();
            match inner.users.get(id) {
                Some(user) => slack_ok(json!({ "user": user })),
                None => slack_err("user_not_found"),
            }
        }
        "conversations.replies" | "conversations.history" => {
            // The thread (its parent and replies) or the channel's top-level messages, oldest
            // first as Slack's replies are; metadata only with include_all_metadata.
            let channel = args["channel"].as_str().unwrap_or_default();
            let thread = args["ts"].as_str();
            let with_metadata = args["include_all_metadata"] == "true";
            let messages: Vec<Value> = inner
                .messages
                .iter()
                .filter(|(_, m)| m["channel"] == channel)
                .filter(|(ts, m)| match thread {
                    Some(parent) => ts.as_str() == parent || m["thread_ts"] == parent,
                    None => m["thread_ts"].is_null(),
                })
                .map(|(ts, m)| {
                    let mut out = json!({ "ts": ts, "text": m["text"], "thread_ts": m["thread_ts"] });
                    if with_metadata && !m["metadata"].is_null() {
                        out["metadata"] = m["metadata"].clone();
                    }
                    out
                })
                .collect();
            slack_ok(json!({ "messages": messages, "has_more": false }))
        }
        "conversations.open" => {
            let users = args["users"].as_str().unwrap_or_default();
            slack_ok(json!({ "channel": { "id": format!("D{users}") } }))
        }
        "conversations.info" => {
            let channel = args["channel"].as_str().unwrap_or_default();
            if channel.starts_with('C') || channel.starts_with('D') || channel.starts_with('G') {
                slack_ok(json!({ "channel": { "id": channel, "is_member": true } }))
            } else {
                slack_err("channel_not_found")
            }
        }
        _ => slack_err("unknown_method"),
    };
    if lose {
        return (StatusCode::INTERNAL_SERVER_ERROR, "lost").into_response();
    }
    answer
}

async fn file(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let found = {
        let mut inner = s.inner.lock().unwrap_or_else(|e| e.into_inner());
        // A ranged request (the first bytes, read before the form) is recorded apart from a
        // download, so tests can count downloads; the fake ignores the range and sends the whole
        // file, as some hosts do.
        let ranged = headers.contains_key(header::RANGE);
        inner.calls.push(Call {
            method: if ranged {
                format!("file-head:{id}")
            } else {
                format!("file:{id}")
            },
            body: Value::Null,
            at: std::time::Instant::now(),
        });
        inner.files.get(&id).map(|(f, _)| f.clone())
    };
    if bearer.as_deref() != Some(s.token.as_str()) {
        // What Slack does: a login page, with 200.
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!("<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to {}</body></html>", s.base),
        )
            .into_response();
    }
    let Some(f) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match f.content {
        FakeContent::Bytes(b) => ([(header::CONTENT_TYPE, f.mimetype)], b).into_response(),
        FakeContent::Generated(n) => {
            const CHUNK: u64 = 64 * 1024;
            let stream = futures_util::stream::unfold(0u64, move |sent| async move {
                if sent >= n {
                    return None;
                }
                let len = CHUNK.min(n - sent);
                let mut chunk = vec![0x55u8; len as usize];
                if sent == 0 {
                    chunk[..3.min(len as usize)].copy_from_slice(&b"ID3"[..3.min(len as usize)]);
                }
                Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), sent + len))
            });
            (
                [
                    (header::CONTENT_TYPE, f.mimetype),
                    (header::CONTENT_LENGTH, n.to_string()),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
    }
}

async fn hook(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    s.inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .calls
        .push(Call {
            method: format!("hook:{id}"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            at: std::time::Instant::now(),
        });
    StatusCode::OK.into_response()
}

/// The headers of a request signed with `secret` now.
pub fn signed_headers(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = chrono::Utc::now().timestamp().to_string();
    vec![
        (
            "x-slack-signature",
            crate::signature::sign(secret.as_bytes(), &ts, body),
        ),
        ("x-slack-request-timestamp", ts),
    ]
}
