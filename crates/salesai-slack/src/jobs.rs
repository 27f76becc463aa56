//! The Slack jobs. Everything that talks to Slack's Web API runs here, on the durable queue,
//! never in a request handler (except `views.open`, whose trigger lives three seconds).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use salesai_core::access::Reach;
use salesai_core::blob::{BlobKey, StoreLimitedError, Stored, store_limited};
use salesai_core::domain::{Conversation, ConversationStatus, Media, Role};
use salesai_core::media::{looks_like_html, sniff};
use salesai_core::pipeline::{DownloadJob, NotifyJob, PrepareJob};
use salesai_core::product_line::SlackReply;
use salesai_core::queue::{Job, JobKind, NOTIFICATIONS, NewJob};
use salesai_core::store::ConversationFilter;
use salesai_core::{App, ErrorCode};
use salesai_worker::jobs::{conversation_id, db, load_conversation, stage};
use salesai_worker::{Handler, JobError, Registry};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::blocks::{self, CardFacts, FileRef};
use crate::text::Language;
use crate::{Slack, SlackError, api};

/// `slack.prompt`: reply to a shared file with the button that opens the form.
pub const PROMPT: &str = "slack.prompt";
/// `slack.respond`: post an answer to a `response_url`.
pub const RESPOND: &str = "slack.respond";
/// `slack.report`: build `/report` and post it to the command's `response_url`.
pub const REPORT: &str = "slack.report";
/// `slack.login`: find an invited person by their Slack profile's e-mail and answer
/// `/salesai login` with a sign-in link.
pub const LOGIN: &str = "slack.login";

/// The payload of [`LOGIN`]: a Slack user salesai did not know by their Slack id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginJob {
    /// Their Slack user id.
    pub user_id: String,
    /// Where to answer.
    pub response_url: String,
    /// `zh-TW` or `en`.
    #[serde(default)]
    pub lang: Option<String>,
}

impl JobKind for LoginJob {
    const KIND: &'static str = LOGIN;
    const QUEUE: &'static str = NOTIFICATIONS;
}

/// The payload of [`PROMPT`]: a file shared in a channel salesai listens to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptJob {
    /// The Slack file.
    pub file_id: String,
    /// The channel it was shared in.
    pub channel_id: String,
    /// Who shared it.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The thread it was shared in, if any.
    #[serde(default)]
    pub thread_ts: Option<String>,
    /// The channel's product line.
    pub product_line: String,
}

impl JobKind for PromptJob {
    const KIND: &'static str = PROMPT;
    const QUEUE: &'static str = NOTIFICATIONS;
}

/// The payload of [`RESPOND`]: a message for a `response_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RespondJob {
    /// Where to post (checked to be Slack's before posting).
    pub response_url: String,
    /// The message, as Slack's JSON.
    pub message: Value,
}

impl JobKind for RespondJob {
    const KIND: &'static str = RESPOND;
    const QUEUE: &'static str = NOTIFICATIONS;
}

/// The payload of [`REPORT`]: who asked for `/report`, and where to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportJob {
    /// `/report team` rather than the caller's own.
    #[serde(default)]
    pub team: bool,
    /// The caller's Slack user id.
    pub user_id: String,
    /// The caller's handle.
    #[serde(default)]
    pub user_name: Option<String>,
    /// Where to answer.
    pub response_url: String,
    /// `zh-TW` or `en`.
    #[serde(default)]
    pub lang: Option<String>,
}

impl JobKind for ReportJob {
    const KIND: &'static str = REPORT;
    const QUEUE: &'static str = NOTIFICATIONS;
}

/// Registers the Slack jobs. Without Slack configured, notifications are skipped (logged) and
/// downloads fail with a message naming the settings.
pub fn register_jobs(registry: &mut Registry, slack: Option<Slack>) {
    let slack = slack.map(Arc::new);
    registry
        .add(Prompt(slack.clone()))
        .add(Respond(slack.clone()))
        .add(Report(slack.clone()))
        .add(Login(slack.clone()))
        .add(Download(slack.clone()))
        .add(Notify(slack));
}

fn configured(slack: &Option<Arc<Slack>>) -> Result<&Slack, JobError> {
    slack.as_deref().ok_or_else(|| {
        JobError::terminal(
            ErrorCode::SlackApiError,
            "Slack is not configured on this node: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN",
        )
    })
}

fn slack_err(err: SlackError) -> JobError {
    err.into_job_error()
}

/// A payload field that must not be empty.
fn non_empty<'a>(value: &'a str, key: &str) -> Result<&'a str, JobError> {
    Some(value).filter(|s| !s.is_empty()).ok_or_else(|| {
        JobError::terminal(
            ErrorCode::InvalidInput,
            format!("the job payload has no {key}"),
        )
    })
}

/// Audio, video and transcript files are calls; images, PDFs and the rest are not.
pub fn is_call_file(file: &Value) -> bool {
    const TYPES: &[&str] = &[
        "mp3", "m4a", "mp4", "wav", "flac", "ogg", "oga", "opus", "webm", "aac", "amr", "vtt",
        "srt", "text", "txt",
    ];
    let mime = file["mimetype"].as_str().unwrap_or_default();
    let filetype = file["filetype"].as_str().unwrap_or_default();
    let ext = file["name"]
        .as_str()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    mime.starts_with("audio/")
        || mime.starts_with("video/")
        || TYPES.contains(&filetype)
        || TYPES.contains(&ext.as_str())
}

/// The message that shared a file in a channel, from `files.info`'s `shares`.
fn share_ts(file: &Value, channel: &str) -> Option<String> {
    ["public", "private"].iter().find_map(|kind| {
        let share = &file["shares"][kind][channel][0];
        share["thread_ts"]
            .as_str()
            .or_else(|| share["ts"].as_str())
            .map(str::to_owned)
    })
}

/// Maps a Slack user to a salesai user: by Slack id, then by the e-mail `users.info` gives,
/// else a new rep. A failing `users.info` (e.g. a missing `users:read.email` scope) still maps
/// by Slack id.
pub async fn map_user(
    slack: &Slack,
    slack_user_id: &str,
    fallback_name: &str,
) -> Result<String, JobError> {
    let (email, name, authoritative) = match slack.client.user_info(slack_user_id).await {
        Ok(user) => (
            user["profile"]["email"].as_str().map(str::to_owned),
            user["real_name"]
                .as_str()
                .or_else(|| user["name"].as_str())
                .unwrap_or(fallback_name)
                .to_owned(),
            true,
        ),
        Err(err @ SlackError::RateLimited { .. }) => return Err(slack_err(err)),
        Err(err) => {
            tracing::warn!(event = "slack.users_info_failed", user = slack_user_id, error = %err, "users.info failed; mapping the user by Slack id only");
            (None, fallback_name.to_owned(), false)
        }
    };
    let store = &slack.app.store;
    let id = store
        .find_or_create_user(email.as_deref(), Some(slack_user_id), &name)
        .await
        .map_err(db)?;
    if authoritative {
        // Someone first seen through a command (a handle, no e-mail) gets their real profile.
        store
            .update_user_profile(&id, email.as_deref(), &name)
            .await
            .map_err(db)?;
    }
    Ok(id)
}

struct Prompt(Option<Arc<Slack>>);

#[async_trait]
impl Handler for Prompt {
    type Kind = PromptJob;

    async fn run(&self, _app: &App, job: &Job, p: PromptJob) -> Result<(), JobError> {
        let slack = configured(&self.0)?;
        let file_id = non_empty(&p.file_id, "file_id")?;
        let channel = non_empty(&p.channel_id, "channel_id")?;
        let line_id = non_empty(&p.product_line, "product_line")?;
        let file = slack.client.file_info(file_id).await.map_err(slack_err)?;
        if !is_call_file(&file) {
            tracing::info!(
                event = "slack.file_ignored",
                file_id,
                mimetype = file["mimetype"].as_str().unwrap_or_default(),
                "not a recording or transcript"
            );
            return Ok(());
        }
        if let Some(user) = p.user_id.as_deref().filter(|u| !u.is_empty()) {
            map_user(slack, user, user).await?;
        }
        let thread_ts = p.thread_ts.clone().or_else(|| share_ts(&file, channel));
        // Checked before the rep is asked to fill a form: a file too large, or one whose first
        // bytes are not a recording or transcript, gets a reply that says so instead.
        let lang = Language::of(&slack.app.product_line(line_id).language);
        let subject = format!("file:{file_id}");
        let place = Place {
            channel,
            thread: thread_ts.as_deref(),
        };
        if let Some(refusal) = refuse_early(slack, &file, lang).await {
            let message = json!({ "text": refusal });
            post_tagged_once(slack, job, &subject, "refused", place, message).await?;
            tracing::info!(event = "slack.file_refused", file_id, channel, reason = %refusal, "refused a shared file before the form");
            return Ok(());
        }
        let file_ref = FileRef {
            file_id: file_id.to_owned(),
            channel_id: channel.to_owned(),
            thread_ts: thread_ts.clone(),
            product_line: line_id.to_owned(),
            name: file["name"]
                .as_str()
                .unwrap_or("recording")
                .chars()
                .take(200)
                .collect(),
            size: file["size"].as_u64().unwrap_or(0),
        };
        let line = slack.app.product_line(line_id);
        let message = blocks::prompt(Language::of(&line.language), &file_ref);
        post_tagged_once(slack, job, &subject, "prompt", place, message).await?;
        tracing::info!(
            event = "slack.prompted",
            file_id,
            channel,
            "asked about a shared file"
        );
        Ok(())
    }
}

/// Posts a message about something that has no conversation yet (a shared file's prompt or
/// refusal), tagged with `subject` and `kind` ([`api::message_tag`]): a later attempt of the
/// job first looks in the thread for the tagged message, so a post whose answer was lost (or
/// whose worker died before recording the job done) is not repeated. The first attempt posts
/// at once: nothing can have been posted before it. When Slack cannot be asked (no history
/// scope), it posts: a rare duplicate beats a lost prompt.
async fn post_tagged_once(
    slack: &Slack,
    job: &Job,
    subject: &str,
    kind: &str,
    place: Place<'_>,
    mut message: Value,
) -> Result<(), JobError> {
    if job.attempts > 1 {
        match slack
            .client
            .find_tagged(place.channel, place.thread, subject, kind)
            .await
        {
            Ok(Some(_)) => {
                tracing::info!(
                    event = "slack.post_recovered",
                    subject,
                    kind,
                    "an earlier post whose answer was lost was found by its tag"
                );
                return Ok(());
            }
            Ok(None) => {}
            Err(err) if err.is_transient() => return Err(slack_err(err)),
            Err(err) => {
                tracing::warn!(event = "slack.post_unverifiable", subject, kind, error = %err, "cannot look for an earlier post (add the history scopes); posting again");
            }
        }
    }
    message["channel"] = json!(place.channel);
    if let Some(ts) = place.thread {
        message["thread_ts"] = json!(ts);
    }
    message["metadata"] = api::message_tag(subject, kind);
    slack
        .client
        .post_message(&message)
        .await
        .map_err(slack_err)?;
    Ok(())
}

/// How much of a shared file is read to recognise it.
const PEEK_BYTES: usize = 4096;

/// Why a shared file cannot be analysed, in the line's language, when that is clear before
/// downloading it: larger than the download limit, or its first bytes are neither a recording
/// nor a transcript. `None` when it looks fine or cannot be told yet (the first bytes could not
/// be read: the download job will check and report).
async fn refuse_early(slack: &Slack, file: &Value, lang: Language) -> Option<String> {
    let limit = slack.config.max_download_bytes;
    let size = file["size"].as_u64().unwrap_or(0);
    if size > limit {
        return Some(
            lang.t()
                .slack_file_too_large
                .replace("{size}", &(size.div_ceil(1024 * 1024)).to_string())
                .replace("{limit}", &(limit / (1024 * 1024)).to_string()),
        );
    }
    let head = peek(slack, file).await?;
    (sniff(&head).is_none() && !looks_like_html(&head))
        .then(|| lang.t().slack_not_a_call_file.to_owned())
}

/// The first bytes of a Slack file (at most [`PEEK_BYTES`]), or `None` when they cannot be read
/// (no URL, not a Slack file host, an error, a web page instead of the file).
async fn peek(slack: &Slack, file: &Value) -> Option<Vec<u8>> {
    use futures_util::StreamExt as _;
    let raw = file["url_private_download"]
        .as_str()
        .or_else(|| file["url_private"].as_str())?;
    let url = Url::parse(raw).ok()?;
    if !slack.config.download_allowed(&url) {
        return None;
    }
    let response = match slack.client.download_head(&url, PEEK_BYTES).await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            tracing::warn!(event = "slack.peek_failed", status = %r.status(), "could not read a shared file's first bytes");
            return None;
        }
        Err(err) => {
            tracing::warn!(event = "slack.peek_failed", error = %err, "could not read a shared file's first bytes");
            return None;
        }
    };
    let is_html = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        return None; // a login page: the download job reports the missing scope
    }
    let mut head = Vec::with_capacity(PEEK_BYTES);
    let mut stream = response.bytes_stream();
    while head.len() < PEEK_BYTES {
        match stream.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(_)) => return None,
            None => break,
        }
    }
    head.truncate(PEEK_BYTES);
    // The rest of the file is not wanted: dropping the stream closes the download.
    Some(head)
}

struct Respond(Option<Arc<Slack>>);

#[async_trait]
impl Handler for Respond {
    type Kind = RespondJob;

    async fn run(&self, _app: &App, _job: &Job, p: RespondJob) -> Result<(), JobError> {
        let slack = configured(&self.0)?;
        respond(
            slack,
            non_empty(&p.response_url, "response_url")?,
            &p.message,
        )
        .await
    }
}

async fn respond(slack: &Slack, url: &str, message: &Value) -> Result<(), JobError> {
    let url = Url::parse(url)
        .ok()
        .filter(|u| slack.config.response_url_allowed(u))
        .ok_or_else(|| {
            JobError::terminal(
                ErrorCode::InvalidInput,
                format!("refusing to post to {url}: not a Slack response URL"),
            )
        })?;
    slack.client.respond(&url, message).await.map_err(slack_err)
}

struct Report(Option<Arc<Slack>>);

#[async_trait]
impl Handler for Report {
    type Kind = ReportJob;

    async fn run(&self, app: &App, _job: &Job, p: ReportJob) -> Result<(), JobError> {
        let slack = configured(&self.0)?;
        let user = non_empty(&p.user_id, "user_id")?;
        let lang = Language::of(p.lang.as_deref().unwrap_or("en"));
        // Who asks is decided now, by the same rules as the web app: someone salesai does not
        // know, or no longer lets in, gets told so and nothing else.
        let who = crate::access::SlackUser::resolve(app.store.as_ref(), user)
            .await
            .map_err(db)?;
        let text = match who.person(lang) {
            Err(refusal) => refusal.to_owned(),
            Ok((_, principal)) if p.team => {
                if matches!(principal.role, Role::Manager | Role::Admin) {
                    build_report(app, principal.reach(), false, lang).await?
                } else {
                    team_report_refusal(lang).to_owned()
                }
            }
            Ok((person, _)) => {
                build_report(app, Reach::Own(person.user.id.clone()), true, lang).await?
            }
        };
        respond(
            slack,
            non_empty(&p.response_url, "response_url")?,
            &blocks::ephemeral(&text),
        )
        .await
    }
}

/// What someone who is not a manager is told when they ask for the team's report.
pub(crate) fn team_report_refusal(lang: Language) -> &'static str {
    lang.t().report_team_is_for_managers_ask
}

struct Login(Option<Arc<Slack>>);

#[async_trait]
impl Handler for Login {
    type Kind = LoginJob;

    async fn run(&self, _app: &App, _job: &Job, p: LoginJob) -> Result<(), JobError> {
        let slack = configured(&self.0)?;
        let user = non_empty(&p.user_id, "user_id")?;
        let lang = Language::of(p.lang.as_deref().unwrap_or("en"));
        let text = match link_by_profile(slack, user).await? {
            Some(person) if person.active => {
                login_link(slack, lang, &person.user.id).await.map_err(db)?
            }
            Some(_) => crate::access::deactivated(lang).to_owned(),
            None => crate::access::not_invited(lang).to_owned(),
        };
        respond(
            slack,
            non_empty(&p.response_url, "response_url")?,
            &blocks::ephemeral(&text),
        )
        .await
    }
}

/// The person a Slack user is by their Slack id, else by the e-mail of their Slack profile
/// (Slack's word, within this workspace), whose Slack id is then remembered. Never creates
/// anyone: only someone an admin invited (or who shared a call) is found.
async fn link_by_profile(
    slack: &Slack,
    slack_user_id: &str,
) -> Result<Option<salesai_core::store::Person>, JobError> {
    let store = slack.app.store.as_ref();
    if let Some(person) = store
        .person_by_identity(Some(slack_user_id), None)
        .await
        .map_err(db)?
    {
        return Ok(Some(person));
    }
    let email = match slack.client.user_info(slack_user_id).await {
        Ok(user) => user["profile"]["email"].as_str().map(str::to_owned),
        Err(err @ SlackError::RateLimited { .. }) => return Err(slack_err(err)),
        Err(err) => {
            tracing::warn!(event = "slack.users_info_failed", user = slack_user_id, error = %err, "users.info failed; cannot look the person up by e-mail");
            None
        }
    };
    let Some(email) = email else { return Ok(None) };
    let Some(person) = store
        .person_by_identity(None, Some(&email))
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    if person.active && person.user.slack_user_id.is_none() {
        // Links the Slack id to the person with this e-mail (never creates: they exist).
        store
            .find_or_create_user(Some(&email), Some(slack_user_id), &person.user.display_name)
            .await
            .map_err(db)?;
    }
    Ok(Some(person))
}

/// A one-time sign-in link for `user_id`, as the words only that person sees.
pub(crate) async fn login_link(
    slack: &Slack,
    lang: Language,
    user_id: &str,
) -> Result<String, salesai_core::store::StoreError> {
    let Some(base) = &slack.config.public_base_url else {
        return Ok(lang.t().web_app_s_address_is_not.to_owned());
    };
    let path = salesai_core::access::issue_link(
        slack.app.store.as_ref(),
        Some(user_id),
        None,
        salesai_core::access::LINK_TTL,
    )
    .await?;
    let link = base
        .join(path.trim_start_matches('/'))
        .map(String::from)
        .unwrap_or(path);
    tracing::info!(event = "slack.login_link", user_id = %user_id, "sign-in link given in Slack");
    Ok(format!("{}\n{link}", lang.t().your_sign_in_link_works_once))
}

/// Averages over a set of conversations' analyses.
#[derive(Default)]
struct Tally {
    uploads: u64,
    completed: u64,
    failed: u64,
    sums: [u64; 5],
}

impl Tally {
    fn avg(&self, i: usize) -> Option<u64> {
        (self.completed > 0).then(|| (self.sums[i] as f64 / self.completed as f64).round() as u64)
    }
}

const DIMENSIONS: [&str; 4] = ["pain", "decision", "champion", "metrics"];

/// The last seven days of the calls within `reach` — one rep's own (`mine`), or the teams a
/// manager manages, or everyone's for an admin — in `lang`.
pub async fn build_report(
    app: &App,
    reach: Reach,
    mine: bool,
    lang: Language,
) -> Result<String, JobError> {
    let t = |key: &str| crate::text::t(lang, key).to_owned();
    let since = chrono::Utc::now() - chrono::Duration::days(7);
    let conversations = app
        .store
        .list_conversations(&ConversationFilter {
            reach: Some(reach),
            from: Some(since),
            limit: 1000,
            ..Default::default()
        })
        .await
        .map_err(db)?;
    let mut total = Tally::default();
    let mut by_rep: BTreeMap<String, Tally> = BTreeMap::new();
    for c in &conversations {
        let rep_tally = by_rep
            .entry(c.rep_user_id.clone().unwrap_or_default())
            .or_default();
        for t in [&mut total, rep_tally] {
            t.uploads += 1;
            t.failed += u64::from(c.status == ConversationStatus::Failed);
        }
        if c.status == ConversationStatus::Completed
            && let Some(a) = app.store.get_analysis(&c.id).await.map_err(db)?
        {
            let scores = [
                a.overall_score.value(),
                a.pain_score.value(),
                a.decision_score.value(),
                a.champion_score.value(),
                a.metrics_score.value(),
            ];
            let rep_tally = by_rep
                .entry(c.rep_user_id.clone().unwrap_or_default())
                .or_default();
            for t in [&mut total, rep_tally] {
                t.completed += 1;
                for (sum, s) in t.sums.iter_mut().zip(scores) {
                    *sum += u64::from(s);
                }
            }
        }
    }
    let mut out = format!(
        "*{} — {}*\n{} *{}* · {} {} · {} {}",
        if mine {
            lang.t().your_report
        } else {
            lang.t().team_report
        },
        lang.t().last_7_days_2,
        lang.t().uploads,
        total.uploads,
        lang.t().completed_2,
        total.completed,
        lang.t().failed,
        total.failed
    );
    match total.avg(0) {
        Some(avg) => {
            let weakest = (1..5)
                .min_by_key(|i| total.avg(*i).unwrap_or(0))
                .expect("four dimensions");
            out.push_str(&format!(
                "\n{} *{avg}/100* · {} {} · {} {} · {} {} · {} {}\n{}: *{}* ({})",
                lang.t().average_score_2,
                t("pain"),
                total.avg(1).unwrap_or(0),
                t("decision"),
                total.avg(2).unwrap_or(0),
                t("champion"),
                total.avg(3).unwrap_or(0),
                t("metrics"),
                total.avg(4).unwrap_or(0),
                lang.t().weakest_dimension,
                t(DIMENSIONS[weakest - 1]),
                total.avg(weakest).unwrap_or(0)
            ));
        }
        None => out.push_str(lang.t().no_completed_analyses_yet),
    }
    if !mine && !by_rep.is_empty() {
        out.push_str(lang.t().by_rep);
        for (rep_id, tally) in &by_rep {
            let name = if rep_id.is_empty() {
                lang.t().no_rep.to_owned()
            } else {
                app.store
                    .get_user(rep_id)
                    .await
                    .map_err(db)?
                    .map(|u| u.display_name)
                    .unwrap_or_else(|| rep_id.clone())
            };
            out.push_str(&format!(
                "\n• {} — {} {}, {} {}",
                blocks::escape(&name),
                tally.uploads,
                lang.t().uploads_2,
                lang.t().average,
                tally.avg(0).map_or("–".to_owned(), |a| a.to_string())
            ));
        }
    }
    Ok(out)
}

struct Download(Option<Arc<Slack>>);

#[async_trait]
impl Handler for Download {
    type Kind = DownloadJob;

    async fn run(&self, app: &App, job: &Job, _: DownloadJob) -> Result<(), JobError> {
        let id = conversation_id(job)?;
        stage(app, job, &id, ConversationStatus::Pending, async {
            let slack = configured(&self.0)?;
            download(slack, &id).await
        })
        .await
    }
}

fn download_failed(message: impl Into<String>) -> JobError {
    JobError::terminal(ErrorCode::FileDownloadFailed, message)
}

/// Streams a shared file from Slack into blob storage, checks it is a recording or a
/// transcript, then hands the conversation to `conversation.prepare`.
async fn download(slack: &Slack, id: &str) -> Result<(), JobError> {
    let app = &slack.app;
    let conversation = load_conversation(app, id).await?;
    if conversation.blob_key.is_some() {
        return Ok(()); // an earlier attempt finished (and queued the next stage with it)
    }
    let file_id = conversation.metadata["slack_file_id"]
        .as_str()
        .ok_or_else(|| {
            JobError::terminal(
                ErrorCode::InvalidInput,
                "the conversation has no Slack file",
            )
        })?;
    let file = slack
        .client
        .file_info(file_id)
        .await
        .map_err(|e| match e.slack_error() {
            Some("file_not_found" | "file_deleted") => download_failed(format!(
                "Slack file {file_id} was deleted before it could be downloaded"
            )),
            _ => slack_err(e),
        })?;
    let limit = slack.config.max_download_bytes;
    let size = file["size"].as_u64().unwrap_or(0);
    if size > limit {
        return Err(JobError::terminal(
            ErrorCode::AudioTooLarge,
            format!(
                "the file is {} MB; the limit is {} MB (SLACK_MAX_DOWNLOAD_MB)",
                size / (1024 * 1024),
                limit / (1024 * 1024)
            ),
        ));
    }
    let raw = file["url_private_download"]
        .as_str()
        .or_else(|| file["url_private"].as_str())
        .ok_or_else(|| {
            download_failed("Slack gave no download URL for the file (is it an external file?)")
        })?;
    let url = Url::parse(raw)
        .map_err(|_| download_failed(format!("Slack gave an invalid download URL {raw:?}")))?;
    if !slack.config.download_allowed(&url) {
        return Err(download_failed(format!(
            "refusing to download from {}: files come only from Slack's file hosts",
            url.host_str().unwrap_or("?")
        )));
    }
    let response = slack.client.download(&url).await.map_err(|e| {
        JobError::retryable(
            ErrorCode::FileDownloadFailed,
            format!("downloading the file failed: {e}"),
        )
    })?;
    let status = response.status();
    if status.is_redirection() {
        return Err(download_failed(
            "Slack redirected the download outside its file hosts",
        ));
    }
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(JobError::retryable(
            ErrorCode::FileDownloadFailed,
            format!("Slack's file host answered HTTP {status}"),
        ));
    }
    if !status.is_success() {
        return Err(download_failed(format!(
            "Slack's file host answered HTTP {status}; check the app's files:read scope"
        )));
    }
    let is_html = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        return Err(download_failed(
            "Slack answered with a web page (its login page) instead of the file: the bot token lacks files:read or the app cannot see the file",
        ));
    }
    let now = chrono::Utc::now();
    let key = BlobKey::parse(&format!(
        "uploads/{}/{}",
        now.format("%Y/%m"),
        conversation.id
    ))
    .expect("generated keys are valid");
    let Stored { bytes, head } =
        store_limited(app.blobs.as_ref(), &key, response.bytes_stream(), limit)
            .await
            .map_err(|e| match e {
                StoreLimitedError::TooLarge(_) => JobError::terminal(
                    ErrorCode::AudioTooLarge,
                    format!(
                        "the file is larger than {} MB (SLACK_MAX_DOWNLOAD_MB)",
                        limit / (1024 * 1024)
                    ),
                ),
                StoreLimitedError::Source(err) => JobError::retryable(
                    ErrorCode::FileDownloadFailed,
                    format!("the download was cut off: {err}"),
                ),
                StoreLimitedError::Storage(err) => {
                    JobError::retryable(ErrorCode::StorageError, err.to_string())
                }
            })?;
    let Some(kind) = sniff(&head) else {
        let _ = app.blobs.delete(&key).await;
        return Err(if looks_like_html(&head) {
            download_failed(
                "Slack answered with a web page (its login page) instead of the file: the bot token lacks files:read",
            )
        } else {
            JobError::terminal(
                ErrorCode::InvalidInput,
                format!(
                    "the file is not a recording or transcript salesai can read; send {}",
                    salesai_core::media::ACCEPTED
                ),
            )
        });
    };
    let media = Media::sniffed(kind, bytes, None);
    let next = NewJob::of(&PrepareJob {})
        .for_conversation(&conversation.id)
        .idempotency_key(format!(
            "prepare-after-download:{}:{}",
            conversation.id,
            key.as_str()
        ));
    app.store
        .attach_media(&conversation.id, key.as_str(), &media, next)
        .await
        .map_err(db)?;
    tracing::info!(event = "slack.downloaded", conversation_id = %conversation.id, bytes, format = kind.extension(), "downloaded the file from Slack");
    Ok(())
}

struct Notify(Option<Arc<Slack>>);

#[async_trait]
impl Handler for Notify {
    type Kind = NotifyJob;

    async fn run(&self, app: &App, job: &Job, _: NotifyJob) -> Result<(), JobError> {
        let Some(slack) = self.0.as_deref() else {
            tracing::warn!(
                event = "slack.notify_skipped",
                "a conversation has a Slack thread but Slack is not configured on this node"
            );
            return Ok(());
        };
        let id = conversation_id(job)?;
        let Some(conversation) = app.store.get_conversation(&id).await.map_err(db)? else {
            return Ok(()); // deleted meanwhile: nobody to tell
        };
        notify(slack, &conversation).await
    }
}

/// Brings a conversation's Slack thread up to date: the status message (posted once, then
/// updated in place), the completion card (posted once per conversation; a re-analysis
/// updates it), and one notice per failure. Every post goes through [`post_once`], so a crash
/// or a lost answer between Slack's acceptance and our record does not post twice.
pub async fn notify(slack: &Slack, c: &Conversation) -> Result<(), JobError> {
    let Some(thread) = &c.slack else {
        return Ok(());
    };
    let app = &slack.app;
    let line = app.product_line(&c.product_line);
    let lang = Language::of(&line.language);
    let posted: BTreeMap<String, (String, String)> = app
        .store
        .slack_messages(&c.id)
        .await
        .map_err(db)?
        .into_iter()
        .map(|(kind, channel, ts)| (kind, (channel, ts)))
        .collect();
    // Where the thread lives: the file's thread in its channel, or (DM mode) a DM with the
    // rep whose first message, the status, is the thread's parent.
    let (channel, thread_ts) = match (line.slack_reply, posted.get("status")) {
        (SlackReply::Thread, _) => (thread.channel_id.clone(), thread.thread_ts.clone()),
        (SlackReply::Dm, Some((channel, ts))) => {
            (channel.clone(), Some(ts.clone()).filter(|t| !t.is_empty()))
        }
        (SlackReply::Dm, None) => {
            let rep = c.metadata["slack_user_id"].as_str().unwrap_or_default();
            let dm = if rep.is_empty() {
                thread.channel_id.clone()
            } else {
                slack.client.open_dm(rep).await.map_err(slack_err)?
            };
            (dm, None)
        }
    };
    let place = Place {
        channel: &channel,
        thread: thread_ts.as_deref(),
    };
    let status = blocks::status(lang, c);
    let status_ts = match post_once(slack, c, &posted, "status", place, &status).await? {
        Posted::New(ts) => ts,
        Posted::Earlier(ch, ts) => {
            slack
                .client
                .update_message(&ch, &ts, &status)
                .await
                .map_err(slack_err)?;
            ts
        }
    };
    let reply_in = Place {
        channel: &channel,
        thread: match line.slack_reply {
            SlackReply::Thread => thread_ts.as_deref(),
            SlackReply::Dm => Some(&status_ts),
        },
    };
    match c.status {
        ConversationStatus::Completed => {
            let report = salesai_core::report::CallReport::load(
                app.store.as_ref(),
                c.clone(),
                &app.talk_targets,
            )
            .await
            .map_err(db)?;
            let Some(facts) = CardFacts::of(&report, slack.report_url(&c.id)) else {
                return Ok(());
            };
            let card = blocks::completed(lang, &facts);
            // Exactly one completion message: a re-analysis updates it.
            match post_once(slack, c, &posted, "completed", reply_in, &card).await? {
                Posted::New(_) => {
                    tracing::info!(event = "slack.completed_posted", conversation_id = %c.id, "posted the completion card");
                }
                Posted::Earlier(ch, ts) => slack
                    .client
                    .update_message(&ch, &ts, &card)
                    .await
                    .map_err(slack_err)?,
            }
        }
        ConversationStatus::Failed => {
            let failures = app
                .store
                .stage_events(&c.id)
                .await
                .map_err(db)?
                .iter()
                .filter(|e| e.status == ConversationStatus::Failed)
                .count();
            // One notice per failure: an earlier notice of this failure stays as it is.
            let kind = format!("failed:{failures}");
            post_once(slack, c, &posted, &kind, reply_in, &blocks::failed(lang, c)).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Where a message goes: a channel, and the thread in it (none for a thread's parent).
#[derive(Clone, Copy)]
struct Place<'a> {
    channel: &'a str,
    thread: Option<&'a str>,
}

/// What [`post_once`] did.
enum Posted {
    /// Posted now, with this `ts`.
    New(String),
    /// Posted before (recorded, or found in Slack by its tag) in this channel with this `ts`.
    Earlier(String, String),
}

/// Posts the conversation's message of `kind` unless it was posted before — also when the
/// earlier post's answer never reached the store (a crash, a lost answer). The intent is
/// recorded first (an empty `ts`), the message carries [`api::message_tag`], and a post that
/// finds an unsettled intent asks Slack for the tagged message before posting again. When
/// Slack cannot be asked (no history scope), it posts: a rare duplicate beats a lost card.
async fn post_once(
    slack: &Slack,
    c: &Conversation,
    posted: &BTreeMap<String, (String, String)>,
    kind: &str,
    place: Place<'_>,
    message: &Value,
) -> Result<Posted, JobError> {
    let store = &slack.app.store;
    match posted.get(kind) {
        Some((ch, ts)) if !ts.is_empty() => return Ok(Posted::Earlier(ch.clone(), ts.clone())),
        Some((ch, _)) => {
            match slack
                .client
                .find_tagged(ch, place.thread, &c.id, kind)
                .await
            {
                Ok(Some(ts)) => {
                    store
                        .put_slack_message(&c.id, kind, ch, &ts)
                        .await
                        .map_err(db)?;
                    tracing::info!(event = "slack.post_recovered", conversation_id = %c.id, kind, "an earlier post whose answer was lost was found by its tag");
                    return Ok(Posted::Earlier(ch.clone(), ts));
                }
                Ok(None) => {} // it never arrived: post it now
                Err(err) if err.is_transient() => return Err(slack_err(err)),
                Err(err) => {
                    tracing::warn!(event = "slack.post_unverifiable", conversation_id = %c.id, kind, error = %err, "cannot look for an earlier post (add the history scopes); posting again");
                }
            }
        }
        None => {
            store
                .put_slack_message(&c.id, kind, place.channel, "")
                .await
                .map_err(db)?;
        }
    }
    let mut message = message.clone();
    message["channel"] = json!(place.channel);
    if let Some(ts) = place.thread {
        message["thread_ts"] = json!(ts);
    }
    message["metadata"] = api::message_tag(&c.id, kind);
    let ts = slack
        .client
        .post_message(&message)
        .await
        .map_err(slack_err)?;
    store
        .put_slack_message(&c.id, kind, place.channel, &ts)
        .await
        .map_err(db)?;
    Ok(Posted::New(ts))
}
