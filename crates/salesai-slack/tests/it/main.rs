//! The Slack app against a fake Slack Web API speaking Slack's JSON, with the real router,
//! store, blob storage and workers: signatures, the upload flow, deduplication, rate limits,
//! retries, slash commands and people mapping.

mod commands;
mod flow;
mod matrix;
mod signature;
mod speakers;

use std::sync::Arc;
use std::time::Duration;

use salesai_core::App;
use salesai_core::blob::BlobStore;
use salesai_core::product_line::ProductLine;
use salesai_db::testing::TestDb;
use salesai_providers::blob::ObjectBlobStore;
use salesai_slack::fake::{FakeContent, FakeFile, FakeSlack, signed_headers};
use salesai_slack::{Slack, SlackConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-signing-secret";
pub const TOKEN: &str = "xoxb-test-token";
/// A channel mapped to the English `default` line.
pub const EN_CHANNEL: &str = "C0EN";
/// A channel mapped to `ichef` (zh-TW).
pub const ZH_CHANNEL: &str = "C0ICHEF";

/// salesai with Slack, served on port 0, workers running, against a fake Slack.
pub struct Harness {
    pub base: String,
    pub app: App,
    pub fake: FakeSlack,
    pub http: reqwest::Client,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Harness {
    pub async fn start(db: &TestDb) -> Harness {
        Self::start_with(db, salesai_core::product_line::builtin()).await
    }

    pub async fn start_with(db: &TestDb, lines: Vec<ProductLine>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let blobs: Arc<dyn BlobStore> = Arc::new(ObjectBlobStore::folder(dir.path()).unwrap());
        let app = App {
            product_lines: Arc::new(lines),
            ..App::new(db.store(), blobs)
        };
        let fake = FakeSlack::start(TOKEN).await;
        let config = SlackConfig {
            signing_secret: SECRET.to_owned().into(),
            bot_token: TOKEN.to_owned().into(),
            api_url: fake.api_url(),
            channels: SlackConfig::parse_channels(&format!(
                "{EN_CHANNEL}=default,{ZH_CHANNEL}=ichef"
            ))
            .unwrap(),
            dm_product_line: "default".into(),
            public_base_url: Some(url::Url::parse("https://salesai.example.com/").unwrap()),
            max_download_bytes: 5 * 1024 * 1024,
        };
        let mut slack = Slack::new(app.clone(), config).unwrap();
        slack.client = slack
            .client
            .clone()
            .with_post_interval(Duration::from_millis(20));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router =
            salesai_http::router_with(app.clone(), salesai_slack::router(Some(slack.clone())));
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let stop = CancellationToken::new();
        let mut registry = salesai_worker::Registry::new();
        salesai_worker::register_pipeline(&mut registry);
        salesai_slack::register_jobs(&mut registry, Some(slack));
        let options = salesai_worker::WorkerOptions {
            poll_interval: Duration::from_millis(20),
            shutdown_grace: Duration::from_secs(1),
            ..salesai_worker::WorkerOptions::new("test-worker")
        };
        tokio::spawn(salesai_worker::run(
            app.clone(),
            registry,
            options,
            stop.clone(),
        ));
        Harness {
            base,
            app,
            fake,
            http: reqwest::Client::new(),
            stop,
            _dir: dir,
        }
    }

    /// POSTs a signed body to a Slack endpoint.
    pub async fn signed(
        &self,
        path: &str,
        body: &str,
        content_type: &str,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned());
        for (k, v) in signed_headers(SECRET, body.as_bytes()) {
            request = request.header(k, v);
        }
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        request.send().await.unwrap()
    }

    /// Sends an Events API envelope.
    pub async fn event(
        &self,
        event_id: &str,
        event: Value,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let body = json!({
            "token": "unused", "team_id": "T0FAKE", "api_app_id": "A0APP",
            "type": "event_callback", "event_id": event_id, "event_time": 1_700_000_000,
            "event": event,
        })
        .to_string();
        self.signed("/slack/events", &body, "application/json", extra)
            .await
    }

    /// Sends an interaction payload.
    pub async fn interaction(&self, payload: Value) -> reqwest::Response {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        self.signed(
            "/slack/interactions",
            &body,
            "application/x-www-form-urlencoded",
            &[],
        )
        .await
    }

    /// Runs a slash command; returns the acknowledgement's JSON.
    pub async fn command(&self, command: &str, text: &str, user: &str, channel: &str) -> Value {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", "unused")
            .append_pair("team_id", "T0FAKE")
            .append_pair("channel_id", channel)
            .append_pair("user_id", user)
            .append_pair("user_name", &user.to_lowercase())
            .append_pair("command", command)
            .append_pair("text", text)
            .append_pair(
                "response_url",
                &self
                    .fake
                    .hook_url(&format!("{}-{}", command.trim_start_matches('/'), user)),
            )
            .append_pair("trigger_id", "1.2.3")
            .finish();
        let response = self
            .signed(
                "/slack/commands",
                &body,
                "application/x-www-form-urlencoded",
                &[],
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// A short English sales call as WebVTT.
pub fn english_transcript() -> Bytes {
    Bytes::from_static(
        b"WEBVTT\n\n00:00.000 --> 00:06.000\n<v Rep>Thanks for your time. How do you take orders today?\n\n\
00:06.000 --> 00:14.000\n<v Customer>We write them on paper and we lose about ten orders a week, that costs us maybe 3000 dollars a month.\n\n\
00:14.000 --> 00:20.000\n<v Rep>What happens when an order gets lost?\n\n\
00:20.000 --> 00:28.000\n<v Customer>Customers complain and the kitchen gets confused. We also looked at Square last month.\n\n\
00:28.000 --> 00:34.000\n<v Customer>I am the owner, I decide. If it is easy to use we could start next month.\n\n\
00:34.000 --> 00:40.000\n<v Rep>Great, can we schedule a demo with your manager on Friday?\n",
    )
}

pub use bytes::Bytes;

/// A transcript file as Slack describes it.
pub fn vtt_file(name: &str, content: Bytes) -> FakeFile {
    FakeFile {
        name: name.into(),
        mimetype: "text/vtt".into(),
        filetype: "vtt".into(),
        content: FakeContent::Bytes(content),
    }
}

/// A `file_shared` event.
pub fn file_shared(file: &str, channel: &str, user: &str) -> Value {
    json!({ "type": "file_shared", "file_id": file, "user_id": user, "channel_id": channel,
            "file": { "id": file }, "event_ts": "1700000000.000200" })
}

/// A `message`/`file_share` event for the same file.
pub fn message_file_share(file: &str, channel: &str, user: &str, ts: &str) -> Value {
    json!({ "type": "message", "subtype": "file_share", "channel": channel, "channel_type": "channel",
            "user": user, "ts": ts, "text": "", "files": [ { "id": file, "name": "call.vtt" } ] })
}

/// The answers a form submission sends, in Slack's `view.state.values` shape.
pub fn state_values(answers: &[(&str, &str)], selects: &[(&str, &str)]) -> Value {
    let mut values = serde_json::Map::new();
    for (id, value) in answers {
        values.insert(
            (*id).into(),
            json!({ "value": { "type": "plain_text_input", "value": value } }),
        );
    }
    for (id, value) in selects {
        values.insert((*id).into(), json!({ "value": { "type": "static_select", "selected_option": { "value": value, "text": { "type": "plain_text", "text": value } } } }));
    }
    Value::Object(values)
}

/// Waits for a condition on the app (the database), or panics with `what`.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The messages posted with `chat.postMessage` whose text contains `needle`.
pub fn posted_with(fake: &FakeSlack, needle: &str) -> Vec<Value> {
    fake.calls_of("chat.postMessage")
        .into_iter()
        .map(|c| c.body)
        .filter(|b| b["text"].as_str().is_some_and(|t| t.contains(needle)))
        .collect()
}
