//! `salesai slack check` and the app manifest: is the token valid, does it have the scopes
//! salesai needs, can it see the configured channels.

use serde::Serialize;

use crate::{SlackConfig, WebClient};

/// The bot scopes salesai needs (the manifest asks for these and the private-channel ones).
pub const REQUIRED_SCOPES: &[&str] = &[
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:read",
    "im:history",
    "im:write",
    "users:read",
    "users:read.email",
];

/// The manifest template; `{{BASE_URL}}` is salesai's public URL.
pub const MANIFEST_TEMPLATE: &str = include_str!("../../../deploy/slack-manifest.yaml");

/// The manifest with request URLs under `base_url` (no trailing slash needed).
pub fn manifest(base_url: &str) -> String {
    MANIFEST_TEMPLATE.replace("{{BASE_URL}}", base_url.trim_end_matches('/'))
}

/// One configured channel's reachability.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelCheck {
    /// The channel id.
    pub channel: String,
    /// Its product line.
    pub product_line: String,
    /// Whether `conversations.info` found it.
    pub reachable: bool,
    /// Whether the bot is a member (it must be, to see files shared there).
    pub member: Option<bool>,
    /// Slack's error, when not reachable.
    pub error: Option<String>,
}

/// What `slack check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// `auth.test` passed.
    pub auth_ok: bool,
    /// The workspace and bot, from `auth.test`.
    pub team: Option<String>,
    /// The bot user.
    pub bot_user: Option<String>,
    /// Slack's error when `auth.test` failed.
    pub auth_error: Option<String>,
    /// The scopes the token has.
    pub scopes: Vec<String>,
    /// Needed scopes it lacks.
    pub missing_scopes: Vec<String>,
    /// The configured channels.
    pub channels: Vec<ChannelCheck>,
    /// Everything needed is there.
    pub ok: bool,
}

/// Runs the checks.
pub async fn check(client: &WebClient, config: &SlackConfig) -> CheckReport {
    let mut report = CheckReport {
        auth_ok: false,
        team: None,
        bot_user: None,
        auth_error: None,
        scopes: Vec::new(),
        missing_scopes: Vec::new(),
        channels: Vec::new(),
        ok: false,
    };
    match client.call_form("auth.test", &[]).await {
        Ok(answer) => {
            report.auth_ok = true;
            report.team = answer.body["team"].as_str().map(str::to_owned);
            report.bot_user = answer.body["user"].as_str().map(str::to_owned);
            report.scopes = answer
                .headers
                .get("x-oauth-scopes")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            report.missing_scopes = REQUIRED_SCOPES
                .iter()
                .filter(|s| !report.scopes.iter().any(|have| have == *s))
                .map(|s| (*s).to_owned())
                .collect();
        }
        Err(err) => report.auth_error = Some(err.to_string()),
    }
    if report.auth_ok {
        for (channel, line) in &config.channels {
            let check = match client
                .call_form("conversations.info", &[("channel", channel)])
                .await
            {
                Ok(answer) => ChannelCheck {
                    channel: channel.clone(),
                    product_line: line.clone(),
                    reachable: true,
                    member: answer.body["channel"]["is_member"].as_bool(),
                    error: None,
                },
                Err(err) => ChannelCheck {
                    channel: channel.clone(),
                    product_line: line.clone(),
                    reachable: false,
                    member: None,
                    error: Some(err.to_string()),
                },
            };
            report.channels.push(check);
        }
    }
    report.ok = report.auth_ok
        && report.missing_scopes.is_empty()
        && report
            .channels
            .iter()
            .all(|c| c.reachable && c.member != Some(false));
    report
}
