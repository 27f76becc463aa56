//! The Slack app.
//!
//! Three signed endpoints (`/slack/events`, `/slack/commands`, `/slack/interactions`) verify
//! Slack's v0 signature on the raw body, drop retries and duplicates by ids persisted in the
//! database, answer within Slack's three seconds and put everything slow on the durable queue.
//! Jobs then talk to Slack's Web API: the file prompt, the download, the thread messages
//! (`conversation.notify`, enqueued by the store with every status change) and command answers
//! through `response_url`.
//!
//! Architecture: this crate sees the rest of salesai only through the core's `App`; the
//! binary builds a [`Slack`] from configuration, merges [`router`] into the HTTP router and
//! registers [`register_jobs`] with the worker.

mod access;
pub mod api;
pub mod blocks;
pub mod check;
mod commands;
mod events;
mod inbox;
mod interactions;
pub mod jobs;
mod reply;
mod routes;
pub mod signature;
pub mod text;

#[cfg(feature = "testing")]
#[cfg(feature = "testing")]
pub mod fake;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use salesai_core::App;
use secrecy::SecretString;
use url::Url;

pub use api::{SlackError, WebClient};
pub use commands::COMMANDS;
pub use interactions::ACTIONS;
pub use jobs::register_jobs;
pub use routes::router;

/// Slack's Web API.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

/// The Slack app's settings.
#[derive(Clone)]
pub struct SlackConfig {
    /// Signs every request Slack sends (`SLACK_SIGNING_SECRET`).
    pub signing_secret: SecretString,
    /// The bot token, `xoxb-…` (`SLACK_BOT_TOKEN`).
    pub bot_token: SecretString,
    /// The Web API's base (`SLACK_API_URL`); tests point it at a local fake.
    pub api_url: Url,
    /// Channel id → product line id (`SLACK_CHANNELS=C0123=ichef,C0456=beauty`).
    pub channels: BTreeMap<String, String>,
    /// The product line of files sent to the app in a DM (`SLACK_DM_PRODUCT_LINE`).
    pub dm_product_line: String,
    /// Where full reports are served (`SALESAI_PUBLIC_URL`), for the card's link.
    pub public_base_url: Option<Url>,
    /// The largest file downloaded from Slack (`SLACK_MAX_DOWNLOAD_MB`, default 500).
    pub max_download_bytes: u64,
}

impl std::fmt::Debug for SlackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackConfig")
            .field("signing_secret", &"[redacted]")
            .field("bot_token", &"[redacted]")
            .field("api_url", &self.api_url.as_str())
            .field("channels", &self.channels)
            .field("dm_product_line", &self.dm_product_line)
            .finish_non_exhaustive()
    }
}

impl SlackConfig {
    /// Parses `C0123=ichef,C0456=beauty`.
    pub fn parse_channels(raw: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for pair in raw
            .split([',', ';', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (channel, line) = pair.split_once('=').ok_or_else(|| {
                format!("SLACK_CHANNELS entry {pair:?} is not CHANNEL_ID=product_line")
            })?;
            let (channel, line) = (channel.trim(), line.trim());
            if channel.is_empty()
                || !channel.chars().all(|c| c.is_ascii_alphanumeric())
                || line.is_empty()
            {
                return Err(format!(
                    "SLACK_CHANNELS entry {pair:?} is not CHANNEL_ID=product_line (channel ids look like C0123ABCD)"
                ));
            }
            out.insert(channel.to_owned(), line.to_owned());
        }
        Ok(out)
    }

    /// True when the API is Slack's own (not overridden for tests).
    pub fn is_slack(&self) -> bool {
        self.api_url.host_str() == Some("slack.com")
    }

    /// Files may be downloaded only from Slack's file hosts — or, when `SLACK_API_URL` is
    /// overridden, only from that host and port — over HTTPS unless overridden.
    pub fn download_allowed(&self, url: &Url) -> bool {
        if self.is_slack() {
            url.scheme() == "https"
                && url.host_str().is_some_and(|h| {
                    h == "files.slack.com" || (h.starts_with("files") && h.ends_with(".slack.com"))
                })
        } else {
            url.scheme() == self.api_url.scheme()
                && url.host_str() == self.api_url.host_str()
                && url.port_or_known_default() == self.api_url.port_or_known_default()
        }
    }

    /// `response_url`s must be Slack's hooks host (or the overridden API host).
    pub fn response_url_allowed(&self, url: &Url) -> bool {
        if self.is_slack() {
            url.scheme() == "https" && url.host_str() == Some("hooks.slack.com")
        } else {
            self.download_allowed(url)
        }
    }

    /// The product line of a channel: mapped channels, and DMs with the app (ids start with
    /// `D`); `None` for channels salesai does not watch.
    pub fn product_line_for(&self, channel: &str, channel_type: Option<&str>) -> Option<&str> {
        if let Some(line) = self.channels.get(channel) {
            return Some(line);
        }
        (channel_type == Some("im") || channel.starts_with('D'))
            .then_some(self.dm_product_line.as_str())
    }
}

/// Everything the Slack handlers and jobs need.
#[derive(Clone)]
pub struct Slack {
    /// The application.
    pub app: App,
    /// Settings.
    pub config: Arc<SlackConfig>,
    /// The Web API.
    pub client: WebClient,
    /// Where `/slack/events` deliveries are committed together (started on first use, on the
    /// server's runtime).
    inbox: Arc<std::sync::OnceLock<inbox::Inbox>>,
}

/// The Web API client for a configuration: timeouts, and redirects followed only to hosts
/// downloads may use.
pub fn web_client(config: &SlackConfig) -> Result<WebClient, String> {
    let policy_config = config.clone();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 || !policy_config.download_allowed(attempt.url()) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .user_agent(concat!("salesai/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the Slack HTTP client: {e}"))?;
    Ok(WebClient::new(
        http,
        config.api_url.clone(),
        config.bot_token.clone(),
    ))
}

impl Slack {
    /// The Slack app over `app` with `config`.
    pub fn new(app: App, config: SlackConfig) -> Result<Self, String> {
        let client = web_client(&config)?;
        Ok(Slack {
            app,
            config: Arc::new(config),
            client,
            inbox: Arc::default(),
        })
    }

    /// The events inbox (see [`inbox`]).
    pub(crate) fn inbox(&self) -> &inbox::Inbox {
        self.inbox
            .get_or_init(|| inbox::Inbox::start(self.app.store.clone()))
    }

    /// The full report's URL for a conversation — its page in the web app, which asks the rep
    /// to sign in first and then lands on it — when a public base URL is configured.
    pub fn report_url(&self, conversation_id: &str) -> Option<String> {
        self.config.public_base_url.as_ref().and_then(|base| {
            base.join(&format!("calls/{conversation_id}"))
                .ok()
                .map(String::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(api: &str) -> SlackConfig {
        SlackConfig {
            signing_secret: "s".to_owned().into(),
            bot_token: "xoxb-1".to_owned().into(),
            api_url: Url::parse(api).unwrap(),
            channels: SlackConfig::parse_channels("C01=ichef, C02=beauty").unwrap(),
            dm_product_line: "default".into(),
            public_base_url: None,
            max_download_bytes: 1,
        }
    }

    #[test]
    fn downloads_only_from_slacks_file_hosts_or_the_overridden_host() {
        let real = config(DEFAULT_API_URL);
        let ok = |c: &SlackConfig, u: &str| c.download_allowed(&Url::parse(u).unwrap());
        assert!(ok(
            &real,
            "https://files.slack.com/files-pri/T1-F1/download/a.mp3"
        ));
        assert!(ok(&real, "https://files-edge.slack.com/x"));
        assert!(!ok(&real, "http://files.slack.com/x"));
        assert!(!ok(&real, "https://evil.example/files.slack.com"));
        assert!(!ok(&real, "https://slack.com.evil.example/x"));
        assert!(!ok(&real, "https://hooks.slack.com/x"));
        let fake = config("http://127.0.0.1:9999/api/");
        assert!(ok(&fake, "http://127.0.0.1:9999/files/F1"));
        assert!(!ok(&fake, "http://127.0.0.1:9998/files/F1"));
        assert!(!ok(&fake, "https://files.slack.com/x"));
        assert!(
            real.response_url_allowed(&Url::parse("https://hooks.slack.com/commands/1").unwrap())
        );
        assert!(!real.response_url_allowed(&Url::parse("https://example.com/commands/1").unwrap()));
    }

    #[test]
    fn channels_map_to_lines_and_dms_to_the_dm_line() {
        let c = config(DEFAULT_API_URL);
        assert_eq!(c.product_line_for("C01", Some("channel")), Some("ichef"));
        assert_eq!(c.product_line_for("D99", None), Some("default"));
        assert_eq!(c.product_line_for("C77", Some("channel")), None);
        assert!(SlackConfig::parse_channels("C01").is_err());
        assert!(SlackConfig::parse_channels("#sales=ichef").is_err());
        assert!(SlackConfig::parse_channels("").unwrap().is_empty());
    }
}
