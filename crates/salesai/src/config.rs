//! Configuration: defaults, then an optional `salesai.toml`, then environment variables, then
//! flags — each later source overriding the earlier. Only the binary reads configuration.
//!
//! Every setting is one field of [`ConfigArgs`] with its flag and its environment variable, so
//! `salesai --help` lists them all and `.env.example` documents them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::builder::BoolishValueParser;
use salesai_providers::blob::{BlobConfig, S3Config};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The settings as flags and environment variables. All optional: a missing one falls back to
/// the config file, then to the default.
///
/// Each setting is spelled once, here: its flag and environment variable (`#[arg]`), its key
/// in `salesai.toml` (the field name), its help and its default (the doc comment). The same
/// struct reads the config file; flags and environment win over it ([`ConfigArgs::over`]).
/// `salesai help settings` and `salesai config` list them all from this struct.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (keys are the flag names with `_`)
    /// [default: ./salesai.toml when it exists]
    #[arg(long, env = "SALESAI_CONFIG", global = true, help_heading = "Settings")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub storage: StorageSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub stt: SttSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub llm: LlmSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub web: WebSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub alerts: AlertsSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub slack: SlackSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub workers: WorkerSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub schedules: ScheduleSettings,
    #[command(flatten)]
    #[serde(flatten)]
    pub logs: LogSettings,
}

/// The database: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct DatabaseSettings {
    /// Folder for the embedded database and blobs
    #[arg(
        long,
        env = "SALESAI_DATA_DIR",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub data_dir: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://USER:PASS@HOST/DB [default: sqlite://<data_dir>/salesai.db]
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub database_url: Option<String>,
    /// Most connections in the database pool, opened on demand and closed after 30 s unused
    #[arg(
        long,
        env = "SALESAI_DB_MAX_CONNECTIONS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub db_max_connections: Option<u32>,
    /// DATABASE_URL is PgBouncer in transaction pooling mode: unnamed statements, each in a
    /// transaction; migrations then need a direct URL
    #[arg(
        long,
        env = "SALESAI_DB_PGBOUNCER",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub db_pgbouncer: Option<bool>,
}

/// Blob storage: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct StorageSettings {
    /// Blob storage: a folder, file:///PATH or s3://BUCKET/PREFIX [default: <data_dir>/blobs]
    #[arg(
        long,
        env = "SALESAI_BLOB_URL",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub blob_url: Option<String>,
    /// S3 endpoint, e.g. https://<account>.r2.cloudflarestorage.com (empty for AWS)
    #[arg(
        long,
        env = "SALESAI_S3_ENDPOINT",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub s3_endpoint: Option<String>,
    /// S3 region ("auto" for R2)
    #[arg(
        long,
        env = "SALESAI_S3_REGION",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub s3_region: Option<String>,
    /// S3 access key id
    #[arg(
        long,
        env = "SALESAI_S3_ACCESS_KEY_ID",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment variable to the flag)
    #[arg(
        long,
        env = "SALESAI_S3_SECRET_ACCESS_KEY",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub s3_secret_access_key: Option<String>,
    /// Allow http:// S3 endpoints (local MinIO)
    #[arg(long, env = "SALESAI_S3_ALLOW_HTTP", global = true, value_parser = BoolishValueParser::new(), help_heading = "Settings", hide = true)]
    pub s3_allow_http: Option<bool>,
    /// Virtual-hosted-style S3 requests instead of path style
    #[arg(long, env = "SALESAI_S3_VIRTUAL_HOSTED_STYLE", global = true, value_parser = BoolishValueParser::new(), help_heading = "Settings", hide = true)]
    pub s3_virtual_hosted_style: Option<bool>,
}

/// Speech-to-text: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct SttSettings {
    /// Groq API key: enables Groq Whisper speech-to-text (whisper-large-v3-turbo)
    #[arg(
        long,
        env = "GROQ_API_KEY",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub groq_api_key: Option<String>,
    /// Any OpenAI-compatible speech-to-text server instead of Groq, e.g. http://127.0.0.1:8000/v1
    #[arg(
        long,
        env = "SALESAI_STT_BASE_URL",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub stt_base_url: Option<String>,
    /// API key for SALESAI_STT_BASE_URL
    #[arg(
        long,
        env = "SALESAI_STT_API_KEY",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub stt_api_key: Option<String>,
    /// Speech-to-text model [default: whisper-large-v3-turbo on Groq, whisper-1 elsewhere]
    #[arg(
        long,
        env = "SALESAI_STT_MODEL",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub stt_model: Option<String>,
    /// Chunks sent to speech-to-text at once per node
    #[arg(
        long,
        env = "SALESAI_STT_CONCURRENCY",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub stt_concurrency: Option<usize>,
    /// Longest chunk sent to speech-to-text, seconds
    #[arg(
        long,
        env = "SALESAI_STT_MAX_CHUNK_SECS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub stt_max_chunk_secs: Option<u64>,
    /// Largest chunk sent to speech-to-text, megabytes
    #[arg(
        long,
        env = "SALESAI_STT_MAX_CHUNK_MB",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub stt_max_chunk_mb: Option<u64>,
    /// Speech-to-text requests per minute from this node (over it, chunks wait for a slot) [default: no limit]
    #[arg(
        long,
        env = "SALESAI_STT_REQUESTS_PER_MINUTE",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub stt_requests_per_minute: Option<u32>,
    /// Seconds before a speech-to-text request times out
    #[arg(
        long,
        env = "SALESAI_STT_TIMEOUT_SECS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub stt_timeout_secs: Option<u64>,
}

/// The analysis: LLM agents, product lines and prompts: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct LlmSettings {
    /// Gemini API key: enables LLM agents on Gemini's OpenAI-compatible endpoint (gemini-2.5-flash)
    #[arg(
        long,
        env = "GEMINI_API_KEY",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub gemini_api_key: Option<String>,
    /// Any OpenAI-compatible chat endpoint instead of Gemini (Groq, OpenAI, Ollama, vLLM), e.g. http://127.0.0.1:11434/v1
    #[arg(
        long,
        env = "SALESAI_LLM_BASE_URL",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub llm_base_url: Option<String>,
    /// API key for SALESAI_LLM_BASE_URL
    #[arg(
        long,
        env = "SALESAI_LLM_API_KEY",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub llm_api_key: Option<String>,
    /// LLM model for every agent [default: gemini-2.5-flash on Gemini]
    #[arg(
        long,
        env = "SALESAI_LLM_MODEL",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub llm_model: Option<String>,
    /// Models per agent, e.g. buyer=gemini-2.5-pro,coach=gemini-2.5-flash
    #[arg(
        long,
        env = "SALESAI_LLM_AGENT_MODELS",
        global = true,
        value_delimiter = ',',
        help_heading = "Settings",
        hide = true
    )]
    pub llm_agent_models: Option<Vec<String>>,
    /// Seconds before an LLM request times out
    #[arg(
        long,
        env = "SALESAI_LLM_TIMEOUT_SECS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub llm_timeout_secs: Option<u64>,
    /// Seconds one analysis may wait on the LLM in all (every agent's calls); past it the agents still waiting take their part from the rules engine, marked
    #[arg(
        long,
        env = "SALESAI_LLM_BUDGET_SECS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub llm_budget_secs: Option<u64>,
    /// Fail the analysis when an agent's LLM answer is still invalid after a repair (or the LLM keeps failing), instead of taking that agent from the rules engine
    #[arg(long, env = "SALESAI_ANALYSIS_STRICT", global = true, value_parser = BoolishValueParser::new(), help_heading = "Settings", hide = true)]
    pub analysis_strict: Option<bool>,
    /// Folder of product-line files (<id>.toml) adding to or overriding the built-in lines
    #[arg(
        long,
        env = "SALESAI_LINES_DIR",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub lines_dir: Option<PathBuf>,
    /// Talk analytics' healthy ranges, any of ratio=LOW-HIGH (rep's share of talk, percent), monologue=S, story=S, switches=PER_MIN, patience=MS, questions=PER_HOUR [default: ratio=40-60,monologue=150,story=60,switches=2,patience=600,questions=11]
    #[arg(
        long,
        env = "SALESAI_TALK_TARGETS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub talk_targets: Option<String>,
    /// Folder of prompt overrides: <dir>/<product line>/<agent>.md, <dir>/<zh-TW|en>/<agent>.md, <dir>/lines/<product line>.md
    #[arg(
        long,
        env = "SALESAI_PROMPTS_DIR",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub prompts_dir: Option<PathBuf>,
}

/// The web server: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct WebSettings {
    /// Largest upload accepted, in megabytes
    #[arg(
        long,
        env = "SALESAI_MAX_UPLOAD_MB",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub max_upload_mb: Option<u64>,
    /// Address the HTTP server listens on
    #[arg(
        long,
        env = "SALESAI_BIND",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub bind: Option<SocketAddr>,
    /// Public base URL of this salesai (links in Slack cards), e.g. https://salesai.example.com/
    #[arg(
        long,
        env = "SALESAI_PUBLIC_URL",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub public_url: Option<String>,
    /// OpenID Connect issuer URL for single sign-on (Google: https://accounts.google.com; Entra, Okta, Keycloak: the tenant's issuer) [default: off]
    #[arg(
        long,
        env = "SALESAI_OIDC_ISSUER",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub oidc_issuer: Option<String>,
    /// OpenID Connect client id registered with the issuer
    #[arg(
        long,
        env = "SALESAI_OIDC_CLIENT_ID",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub oidc_client_id: Option<String>,
    /// OpenID Connect client secret registered with the issuer
    #[arg(
        long,
        env = "SALESAI_OIDC_CLIENT_SECRET",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub oidc_client_secret: Option<String>,
    /// What the single sign-on button says
    #[arg(
        long,
        env = "SALESAI_OIDC_NAME",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub oidc_name: Option<String>,
    /// E-mail domains whose people may sign in with single sign-on or Slack without an invitation (they join as reps), comma-separated: example.com,example.tw [default: none, only invited people]
    #[arg(
        long,
        env = "SALESAI_SIGN_IN_DOMAINS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub sign_in_domains: Option<String>,
    /// The organisation single sign-on accepts: Google Workspace's domain (hd, required with Google), Entra's tenant id (tid), or claim=value for another provider's claim [default: none; the issuer is the organisation]
    #[arg(
        long,
        env = "SALESAI_OIDC_TENANT",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub oidc_tenant: Option<String>,
    /// Reverse proxies whose X-Forwarded-For names the client (for the sign-in limiter and logs), comma-separated addresses or ranges: 127.0.0.1,10.0.0.0/8 [default: none; the connecting address is the client]
    #[arg(
        long,
        env = "SALESAI_TRUSTED_PROXIES",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub trusted_proxies: Option<String>,
}

/// Ops alerts and the daily summary: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct AlertsSettings {
    /// Slack incoming webhook for ops alerts and the daily summary [default: off]
    #[arg(
        long,
        env = "SLACK_WEBHOOK_URL",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_webhook_url: Option<String>,
    /// Seconds between alert evaluations (one per interval across all nodes)
    #[arg(
        long,
        env = "SALESAI_ALERT_INTERVAL_SECS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub alert_interval_secs: Option<u64>,
    /// Minutes a cleared alert stays quiet if it returns
    #[arg(
        long,
        env = "SALESAI_ALERT_COOLDOWN_MINS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub alert_cooldown_mins: Option<u64>,
    /// Alert when more than this percentage of job attempts fail in 10 minutes (P1)
    #[arg(
        long,
        env = "SALESAI_ALERT_FAILURE_RATE",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub alert_failure_rate: Option<f64>,
    /// Alert when a queue has more jobs waiting (P2)
    #[arg(
        long,
        env = "SALESAI_ALERT_QUEUE_DEPTH",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub alert_queue_depth: Option<u64>,
    /// Alert when a job or a conversation waits longer, minutes (P2)
    #[arg(
        long,
        env = "SALESAI_ALERT_MAX_WAIT_MINS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub alert_max_wait_mins: Option<u64>,
    /// Alert when more Slack requests fail their signature in 10 minutes (P2)
    #[arg(
        long,
        env = "SALESAI_ALERT_SIGNATURE_FAILURES",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub alert_signature_failures: Option<u64>,
    /// Statements averaging longer than this are slow (P2), milliseconds
    #[arg(
        long,
        env = "SALESAI_ALERT_SLOW_QUERY_MS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub alert_slow_query_ms: Option<f64>,
    /// Post a daily health summary to SLACK_WEBHOOK_URL at this local time (HH:MM) [default: off]
    #[arg(
        long,
        env = "SALESAI_DAILY_SUMMARY_AT",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub daily_summary_at: Option<String>,
}

/// The Slack app: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct SlackSettings {
    /// Slack app signing secret (Basic Information → App Credentials); enables /slack/*
    #[arg(
        long,
        env = "SLACK_SIGNING_SECRET",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_signing_secret: Option<String>,
    /// Slack bot token, xoxb-… (OAuth & Permissions)
    #[arg(
        long,
        env = "SLACK_BOT_TOKEN",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_bot_token: Option<String>,
    /// Slack Web API base; files download only from its host when overridden
    #[arg(
        long,
        env = "SLACK_API_URL",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_api_url: Option<String>,
    /// Channels watched for recordings and their product lines: C0123=ichef,C0456=beauty
    #[arg(
        long,
        env = "SLACK_CHANNELS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_channels: Option<String>,
    /// Product line of recordings sent to the app in a DM
    #[arg(
        long,
        env = "SLACK_DM_PRODUCT_LINE",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_dm_product_line: Option<String>,
    /// Largest file downloaded from Slack, in megabytes
    #[arg(
        long,
        env = "SLACK_MAX_DOWNLOAD_MB",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_max_download_mb: Option<u64>,
    /// Slack app client id (Basic Information → App Credentials); with the secret, enables Sign in with Slack
    #[arg(
        long,
        env = "SLACK_CLIENT_ID",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_client_id: Option<String>,
    /// Slack app client secret (Basic Information → App Credentials)
    #[arg(
        long,
        env = "SLACK_CLIENT_SECRET",
        global = true,
        hide_env_values = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_client_secret: Option<String>,
    /// Slack's OpenID Connect issuer
    #[arg(
        long,
        env = "SLACK_OIDC_ISSUER",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_oidc_issuer: Option<String>,
    /// Your Slack workspace's id (T…, in the workspace's URL or `auth.test`): Sign in with Slack accepts only its members; required with SLACK_CLIENT_ID [default: none]
    #[arg(
        long,
        env = "SLACK_TEAM_ID",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub slack_team_id: Option<String>,
}

/// Workers: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct WorkerSettings {
    /// This process's worker id in leases and logs, unique per running process (a process that starts under it takes back the leases still held under it) [default: <hostname>-<pid>]
    #[arg(
        long,
        env = "SALESAI_WORKER_ID",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub worker_id: Option<String>,
    /// Queues this node works on, comma-separated [default: conversations,notifications,maintenance]
    #[arg(
        long,
        env = "SALESAI_WORKER_QUEUES",
        global = true,
        value_delimiter = ',',
        help_heading = "Settings",
        hide = true
    )]
    pub worker_queues: Option<Vec<String>>,
    /// Milliseconds an idle worker waits before polling again
    #[arg(
        long,
        env = "SALESAI_WORKER_POLL_MS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub worker_poll_ms: Option<u64>,
    /// Seconds shutdown waits for running jobs before returning them to the queue
    #[arg(
        long,
        env = "SALESAI_SHUTDOWN_GRACE_SECS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub shutdown_grace_secs: Option<u64>,
}

/// Scheduled backups, retention and job-history purge: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct ScheduleSettings {
    /// Retention schedule: every day delete completed conversations older than this, e.g. 90d [default: off]
    #[arg(
        long,
        env = "SALESAI_PRUNE_COMPLETED_OLDER_THAN",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub prune_completed_older_than: Option<String>,
    /// The scheduled retention deletes only the audio, keeping transcript and analysis
    #[arg(long, env = "SALESAI_PRUNE_AUDIO_ONLY", global = true, value_parser = BoolishValueParser::new(), help_heading = "Settings", hide = true)]
    pub prune_audio_only: Option<bool>,
    /// Local time of the scheduled retention run (HH:MM)
    #[arg(
        long,
        env = "SALESAI_PRUNE_AT",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub prune_at: Option<String>,
    /// Days completed jobs are kept before the daily purge deletes them; 0 keeps them forever
    #[arg(
        long,
        env = "SALESAI_JOBS_KEEP_DAYS",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub jobs_keep_days: Option<u64>,
    /// Local time of the daily purge of completed jobs (HH:MM)
    #[arg(
        long,
        env = "SALESAI_JOBS_PURGE_AT",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub jobs_purge_at: Option<String>,
    /// Take a backup every day at this local time (HH:MM in SALESAI_TIME_ZONE) [default: off]
    #[arg(
        long,
        env = "SALESAI_BACKUP_AT",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub backup_at: Option<String>,
    /// Folder for backups [default: <data_dir>/backups]
    #[arg(
        long,
        env = "SALESAI_BACKUP_DIR",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub backup_dir: Option<PathBuf>,
    /// Scheduled backups to keep
    #[arg(
        long,
        env = "SALESAI_BACKUP_KEEP",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub backup_keep: Option<usize>,
}

/// Logs and time: flags, environment variables and `salesai.toml` keys.
#[derive(clap::Args, Debug, Default, Clone, Serialize, Deserialize)]
pub struct LogSettings {
    /// The team's time zone (IANA name) for case-number months and daily reports
    #[arg(
        long,
        env = "SALESAI_TIME_ZONE",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub time_zone: Option<String>,
    /// Log format: json or text
    #[arg(
        long,
        env = "SALESAI_LOG_FORMAT",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or salesai_worker=debug,info [default: info for serve/worker, warn otherwise]
    #[arg(
        long,
        env = "SALESAI_LOG",
        global = true,
        help_heading = "Settings",
        hide = true
    )]
    pub log: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line with a stable `event` field.
    Json,
    /// Human-readable lines.
    Text,
}

/// The resolved configuration. `Debug` redacts every secret.
#[derive(Clone)]
pub struct Config {
    /// Whether this command may create the SQLite database when its file does not exist:
    /// `serve`, `worker` and `migrate` do (the README's first command creates it); any other
    /// command stops instead, saying where it looked, unless given `--init` (a command run in
    /// another folder would otherwise make a new empty database there and work on it).
    pub create_database: bool,
    /// The data folder.
    pub data_dir: PathBuf,
    /// The database URL (may hold a password).
    pub database_url: SecretString,
    /// Whether the database was configured (rather than the embedded default).
    pub database_configured: bool,
    /// Pool size.
    pub db_max_connections: u32,
    /// The database URL is PgBouncer's (transaction pooling).
    pub db_pgbouncer: bool,
    /// The blob URL as given.
    pub blob_url: String,
    /// Blob storage.
    pub blob: BlobConfig,
    /// Speech-to-text, when configured.
    pub stt: Option<salesai_providers::stt::SttConfig>,
    /// LLM agents, when configured (otherwise the offline rules engine).
    pub llm: Option<salesai_providers::llm::LlmConfig>,
    /// Prompt overrides folder.
    pub prompts_dir: Option<PathBuf>,
    /// Product-line files folder (adds to and overrides the built-in lines).
    pub lines_dir: Option<PathBuf>,
    /// Talk analytics' healthy ranges.
    pub talk_targets: salesai_core::talk::TalkTargets,
    /// Largest upload, megabytes.
    pub max_upload_mb: u64,
    /// Listen address.
    pub bind: SocketAddr,
    /// The team's time zone.
    pub time_zone: chrono_tz::Tz,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter, when set.
    pub log: Option<String>,
    /// This node's worker id.
    pub worker_id: String,
    /// Queues this node works on.
    pub worker_queues: Vec<String>,
    /// Idle poll interval.
    pub worker_poll_ms: u64,
    /// Shutdown grace period.
    pub shutdown_grace_secs: u64,
    /// The Slack app, when both of its secrets are set.
    pub slack: Option<salesai_slack::SlackConfig>,
    /// The public base URL.
    pub public_url: Option<url::Url>,
    /// The OpenID Connect sign-in providers (Slack's, a company's).
    pub sign_in: Vec<salesai_core::access::OidcProvider>,
    /// The reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<salesai_core::net::IpRange>,
    /// The daily backup's local time, when scheduled.
    pub backup_at: Option<chrono::NaiveTime>,
    /// Where backups go.
    pub backup_dir: PathBuf,
    /// Scheduled backups kept.
    pub backup_keep: usize,
    /// Ops alerts.
    pub alerts: AlertSettings,
    /// The retention schedule, when set.
    pub prune: Option<PruneSchedule>,
    /// Days completed jobs are kept (0: forever).
    pub jobs_keep_days: u64,
    /// The local time of the daily purge of completed jobs.
    pub jobs_purge_at: chrono::NaiveTime,
}

/// Alert settings.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Where alerts go (a Slack incoming webhook).
    pub webhook: Option<url::Url>,
    /// How often conditions are evaluated.
    pub interval: std::time::Duration,
    /// A cleared condition that returns within this is not announced again.
    pub cooldown: chrono::Duration,
    /// The thresholds.
    pub thresholds: salesai_core::doctor::Thresholds,
    /// The daily summary's local time.
    pub summary_at: Option<chrono::NaiveTime>,
}

/// The scheduled retention run.
#[derive(Debug, Clone)]
pub struct PruneSchedule {
    /// Completed conversations older than this are pruned.
    pub older_than: chrono::Duration,
    /// Only their audio.
    pub audio_only: bool,
    /// The local time of day.
    pub at: chrono::NaiveTime,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &salesai_db::redact_url(self.database_url.expose_secret()),
            )
            .field("db_max_connections", &self.db_max_connections)
            .field("db_pgbouncer", &self.db_pgbouncer)
            .field("blob", &self.blob)
            .field("stt", &self.stt)
            .field("llm", &self.llm)
            .field("bind", &self.bind)
            .field("time_zone", &self.time_zone)
            .field("log_format", &self.log_format)
            .field("worker_id", &self.worker_id)
            .field("worker_queues", &self.worker_queues)
            .field("slack", &self.slack)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Resolves the configuration from the flags/environment and the config file.
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
        let args = &args.with_file()?;
        let public_url = args
            .web
            .public_url
            .clone()
            .filter(|s| !s.is_empty())
            .map(|raw| {
                let with_slash = if raw.ends_with('/') {
                    raw.clone()
                } else {
                    format!("{raw}/")
                };
                url::Url::parse(&with_slash)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        anyhow::anyhow!("SALESAI_PUBLIC_URL {raw:?} is not an http(s) URL")
                    })
            })
            .transpose()?;
        let slack = slack_config(args, public_url.clone())?;
        let alerts = alert_settings(args)?;
        let prune = args
            .schedules
            .prune_completed_older_than
            .clone()
            .filter(|s| !s.trim().is_empty())
            .map(|raw| -> anyhow::Result<PruneSchedule> {
                let older_than = salesai_core::queue::parse_age(raw.trim()).map_err(|e| {
                    anyhow::anyhow!("SALESAI_PRUNE_COMPLETED_OLDER_THAN {raw:?}: {e}")
                })?;
                if older_than < chrono::Duration::days(1) {
                    bail!("SALESAI_PRUNE_COMPLETED_OLDER_THAN must be at least 1d (got {raw:?})");
                }
                Ok(PruneSchedule {
                    older_than,
                    audio_only: args
                        .schedules
                        .prune_audio_only
                        .unwrap_or(default::PRUNE_AUDIO_ONLY),
                    at: parse_time(
                        "SALESAI_PRUNE_AT",
                        &args
                            .schedules
                            .prune_at
                            .clone()
                            .unwrap_or_else(|| default::PRUNE_AT.into()),
                    )?,
                })
            })
            .transpose()?;
        let backup_at = args
            .schedules
            .backup_at
            .clone()
            .filter(|s| !s.trim().is_empty())
            .map(|raw| {
                chrono::NaiveTime::parse_from_str(raw.trim(), "%H:%M").map_err(|_| {
                    anyhow::anyhow!(
                        "SALESAI_BACKUP_AT {raw:?} is not a time like 03:00 (HH:MM, local time)"
                    )
                })
            })
            .transpose()?;
        let backup_keep = args
            .schedules
            .backup_keep
            .unwrap_or(default::BACKUP_KEEP)
            .max(1);
        let backup_dir = args.schedules.backup_dir.clone();
        let data_dir = args
            .database
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(default::DATA_DIR));
        let configured_url = args.database.database_url.clone().filter(|s| !s.is_empty());
        let database_configured = configured_url.is_some();
        let database_url = configured_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("salesai.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got {})",
                salesai_db::redact_url(&database_url)
            );
        }
        let blob_url = args
            .storage
            .blob_url
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| data_dir.join("blobs").display().to_string());
        let s3 = S3Config {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: args.storage.s3_endpoint.clone().filter(|s| !s.is_empty()),
            region: args
                .storage
                .s3_region
                .clone()
                .unwrap_or_else(|| default::S3_REGION.into()),
            access_key_id: args.storage.s3_access_key_id.clone(),
            secret_access_key: args
                .storage
                .s3_secret_access_key
                .clone()
                .map(SecretString::from),
            allow_http: args.storage.s3_allow_http.unwrap_or(default::S3_ALLOW_HTTP),
            virtual_hosted_style: args
                .storage
                .s3_virtual_hosted_style
                .unwrap_or(default::S3_VIRTUAL_HOSTED_STYLE),
        };
        let blob = BlobConfig::parse(&blob_url, s3).map_err(anyhow::Error::msg)?;
        let time_zone_name = args
            .logs
            .time_zone
            .clone()
            .unwrap_or_else(|| default::TIME_ZONE.into());
        let time_zone: chrono_tz::Tz = time_zone_name.parse().map_err(|_| {
            anyhow::anyhow!(
                "unknown time zone {time_zone_name:?}; use an IANA name such as Asia/Taipei or Europe/Berlin"
            )
        })?;
        let log_format = match args
            .logs
            .log_format
            .clone()
            .unwrap_or_else(|| default::LOG_FORMAT.into())
            .as_str()
        {
            "json" => LogFormat::Json,
            "text" | "pretty" => LogFormat::Text,
            other => bail!("unknown log format {other:?}; use json or text"),
        };
        let worker_queues = args.workers.worker_queues.clone().unwrap_or_else(|| {
            salesai_core::queue::BUILTIN_QUEUES
                .iter()
                .map(|q| q.to_string())
                .collect()
        });
        for queue in &worker_queues {
            salesai_core::queue::parse_queue_name(queue).map_err(|e| anyhow::anyhow!(e.0))?;
        }
        let backup_dir = backup_dir.unwrap_or_else(|| data_dir.join("backups"));
        let jobs_purge_at = parse_time(
            "SALESAI_JOBS_PURGE_AT",
            &args
                .schedules
                .jobs_purge_at
                .clone()
                .unwrap_or_else(|| default::JOBS_PURGE_AT.into()),
        )?;
        Ok(Config {
            create_database: false,
            data_dir,
            database_url: SecretString::from(database_url),
            database_configured,
            db_max_connections: args
                .database
                .db_max_connections
                .unwrap_or(default::DB_MAX_CONNECTIONS),
            db_pgbouncer: args.database.db_pgbouncer.unwrap_or(default::DB_PGBOUNCER),
            blob_url,
            blob,
            stt: {
                let base = args.stt.stt_base_url.clone().filter(|s| !s.is_empty());
                let groq = args.stt.groq_api_key.clone().filter(|s| !s.is_empty());
                let limits = salesai_core::audio::ChunkLimits {
                    max_ms: bounded(
                        "SALESAI_STT_MAX_CHUNK_SECS",
                        args.stt.stt_max_chunk_secs,
                        default::STT_MAX_CHUNK_SECS,
                        10,
                        7200,
                    )? * 1000,
                    max_bytes: bounded(
                        "SALESAI_STT_MAX_CHUNK_MB",
                        args.stt.stt_max_chunk_mb,
                        default::STT_MAX_CHUNK_MB,
                        1,
                        1024,
                    )? * 1024
                        * 1024,
                    ..Default::default()
                };
                let model = args.stt.stt_model.clone();
                let common =
                    |provider: &str, base_url: String, key: Option<String>, default_model: &str| {
                        salesai_providers::stt::SttConfig {
                            provider: provider.to_owned(),
                            base_url,
                            api_key: key.map(SecretString::from),
                            model: model.clone().unwrap_or_else(|| default_model.to_owned()),
                            timeout: std::time::Duration::from_secs(
                                args.stt
                                    .stt_timeout_secs
                                    .unwrap_or(default::STT_TIMEOUT_SECS),
                            ),
                            max_concurrency: args
                                .stt
                                .stt_concurrency
                                .unwrap_or(default::STT_CONCURRENCY)
                                .max(1),
                            limits,
                            requests_per_minute: args.stt.stt_requests_per_minute,
                        }
                    };
                match (base, groq) {
                    (Some(base), _) => Some(common(
                        "custom",
                        base,
                        args.stt.stt_api_key.clone(),
                        "whisper-1",
                    )),
                    (None, Some(key)) => Some(common(
                        "groq",
                        salesai_providers::stt::GROQ_BASE_URL.into(),
                        Some(key),
                        salesai_providers::stt::GROQ_DEFAULT_MODEL,
                    )),
                    (None, None) => None,
                }
            },
            llm: {
                let base = args.llm.llm_base_url.clone().filter(|s| !s.is_empty());
                let gemini = args.llm.gemini_api_key.clone().filter(|s| !s.is_empty());
                let model = args.llm.llm_model.clone();
                let mut agent_models = std::collections::BTreeMap::new();
                for pair in args.llm.llm_agent_models.clone().unwrap_or_default() {
                    let (agent, agent_model) = pair.split_once('=').ok_or_else(|| {
                        anyhow::anyhow!(
                            "SALESAI_LLM_AGENT_MODELS entries are agent=model (got {pair:?})"
                        )
                    })?;
                    let agent = agent.trim();
                    if !salesai_core::analysis::AGENTS
                        .iter()
                        .any(|a| a.as_str() == agent)
                    {
                        bail!(
                            "unknown agent {agent:?} in SALESAI_LLM_AGENT_MODELS; agents are context, buyer, seller, crm, summary, coach"
                        );
                    }
                    agent_models.insert(agent.to_owned(), agent_model.trim().to_owned());
                }
                let timeout = std::time::Duration::from_secs(
                    args.llm
                        .llm_timeout_secs
                        .unwrap_or(default::LLM_TIMEOUT_SECS),
                );
                let make = |provider: &str,
                            base_url: String,
                            key: Option<String>,
                            default_model: Option<&str>|
                 -> anyhow::Result<salesai_providers::llm::LlmConfig> {
                    Ok(salesai_providers::llm::LlmConfig {
                        provider: provider.to_owned(),
                        base_url,
                        api_key: key.map(SecretString::from),
                        model: model.clone().or(default_model.map(str::to_owned)).ok_or_else(|| {
                            anyhow::anyhow!("SALESAI_LLM_BASE_URL is set but SALESAI_LLM_MODEL is not; name the model to use")
                        })?,
                        agent_models: agent_models.clone(),
                        timeout,
                        budget: std::time::Duration::from_secs(bounded(
                            "SALESAI_LLM_BUDGET_SECS",
                            args.llm.llm_budget_secs,
                            default::LLM_BUDGET_SECS,
                            10,
                            86_400,
                        )?),
                        strict: args
                            .llm.analysis_strict
                            .unwrap_or(default::ANALYSIS_STRICT),
                    })
                };
                match (base, gemini) {
                    (Some(base), _) => {
                        Some(make("custom", base, args.llm.llm_api_key.clone(), None)?)
                    }
                    (None, Some(key)) => Some(make(
                        "gemini",
                        salesai_providers::llm::GEMINI_BASE_URL.into(),
                        Some(key),
                        Some(salesai_providers::llm::GEMINI_DEFAULT_MODEL),
                    )?),
                    (None, None) => None,
                }
            },
            prompts_dir: args.llm.prompts_dir.clone(),
            lines_dir: args.llm.lines_dir.clone(),
            talk_targets: match args.llm.talk_targets.as_deref() {
                Some(raw) => salesai_core::talk::TalkTargets::parse(raw)
                    .map_err(|e| anyhow::anyhow!("SALESAI_TALK_TARGETS: {e}"))?,
                None => salesai_core::talk::TalkTargets::default(),
            },
            max_upload_mb: args.web.max_upload_mb.unwrap_or(default::MAX_UPLOAD_MB),
            bind: args
                .web
                .bind
                .unwrap_or_else(|| SocketAddr::from(default::BIND_ADDR)),
            time_zone,
            log_format,
            log: args.logs.log.clone(),
            worker_id: args
                .workers
                .worker_id
                .clone()
                .unwrap_or_else(default_worker_id),
            worker_queues,
            worker_poll_ms: args
                .workers
                .worker_poll_ms
                .unwrap_or(default::WORKER_POLL_MS),
            shutdown_grace_secs: args
                .workers
                .shutdown_grace_secs
                .unwrap_or(default::SHUTDOWN_GRACE_SECS),
            slack,
            sign_in: sign_in_providers(args)?,
            trusted_proxies: salesai_core::net::IpRange::parse_list(
                args.web.trusted_proxies.as_deref().unwrap_or_default(),
            )
            .map_err(|e| anyhow::anyhow!("SALESAI_TRUSTED_PROXIES: {e}"))?,
            public_url,
            backup_at,
            backup_dir,
            backup_keep,
            alerts,
            prune,
            jobs_keep_days: bounded(
                "SALESAI_JOBS_KEEP_DAYS",
                args.schedules.jobs_keep_days,
                default::JOBS_KEEP_DAYS,
                0,
                3660,
            )?,
            jobs_purge_at,
        })
    }
}

/// The Slack app's settings: both secrets or neither; mapped channels must name known product
/// lines.
fn slack_config(
    args: &ConfigArgs,
    public_url: Option<url::Url>,
) -> anyhow::Result<Option<salesai_slack::SlackConfig>> {
    let pick = |a: &Option<String>| a.clone().filter(|s| !s.trim().is_empty());
    let secret = pick(&args.slack.slack_signing_secret);
    let token = pick(&args.slack.slack_bot_token);
    let (secret, token) = match (secret, token) {
        (None, None) => return Ok(None),
        (Some(_), None) => bail!(
            "SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not; set both to enable Slack"
        ),
        (None, Some(_)) => bail!(
            "SLACK_BOT_TOKEN is set but SLACK_SIGNING_SECRET is not; set both to enable Slack"
        ),
        (Some(s), Some(t)) => (s, t),
    };
    let api = pick(&args.slack.slack_api_url).unwrap_or_else(|| default::SLACK_API_URL.to_owned());
    let api_url = url::Url::parse(&api)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| anyhow::anyhow!("SLACK_API_URL {api:?} is not an http(s) URL"))?;
    let channels = salesai_slack::SlackConfig::parse_channels(
        &pick(&args.slack.slack_channels).unwrap_or_default(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let lines = salesai_core::product_line::builtin();
    let dm_product_line = pick(&args.slack.slack_dm_product_line)
        .unwrap_or_else(|| default::SLACK_DM_PRODUCT_LINE.into());
    for line in channels.values().chain(std::iter::once(&dm_product_line)) {
        salesai_core::product_line::find(&lines, line).map_err(|e| {
            anyhow::anyhow!(
                "Slack setting names a product line salesai does not have: {}",
                e.0
            )
        })?;
    }
    Ok(Some(salesai_slack::SlackConfig {
        signing_secret: SecretString::from(secret),
        bot_token: SecretString::from(token),
        api_url,
        channels,
        dm_product_line,
        public_base_url: public_url,
        max_download_bytes: bounded(
            "SLACK_MAX_DOWNLOAD_MB",
            args.slack.slack_max_download_mb,
            default::SLACK_MAX_DOWNLOAD_MB,
            1,
            10_240,
        )? * 1024
            * 1024,
    }))
}

/// The organisation single sign-on is pinned to: `SALESAI_OIDC_TENANT` as Google's `hd` or
/// Entra's `tid` (by the issuer), or `claim=value`. Google's issuer serves every Google account,
/// so it cannot be used without one.
fn tenant_pin(
    issuer: &str,
    raw: Option<String>,
) -> anyhow::Result<Option<salesai_core::access::TenantPin>> {
    let host = url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    let google = host == "accounts.google.com";
    let entra = host == "login.microsoftonline.com" || host.ends_with(".ciamlogin.com");
    let Some(raw) = raw else {
        if google {
            bail!(
                "single sign-on with Google needs SALESAI_OIDC_TENANT, your Google Workspace domain (example.com): without it any Google account could sign in"
            );
        }
        return Ok(None);
    };
    let (claim, value) = match raw.split_once('=') {
        Some((claim, value)) => (claim.trim().to_owned(), value.trim().to_owned()),
        None if google => ("hd".to_owned(), raw.clone()),
        None if entra => ("tid".to_owned(), raw.clone()),
        None => bail!(
            "SALESAI_OIDC_TENANT {raw:?}: for an issuer other than Google or Entra, name the claim too (claim=value), or leave it unset (the issuer is the organisation)"
        ),
    };
    if claim.is_empty() || value.is_empty() {
        bail!("SALESAI_OIDC_TENANT {raw:?} needs a claim and a value (claim=value)");
    }
    Ok(Some(salesai_core::access::TenantPin { claim, value }))
}

/// The OpenID Connect sign-in providers: Slack's when its client id and secret are set, a
/// company's when an issuer is set (with its client id and secret, else an error that names
/// what is missing).
fn sign_in_providers(args: &ConfigArgs) -> anyhow::Result<Vec<salesai_core::access::OidcProvider>> {
    let pick = |a: &Option<String>| {
        a.clone()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let domains: Vec<String> = pick(&args.web.sign_in_domains)
        .unwrap_or_default()
        .split(',')
        .map(|d| d.trim().trim_start_matches('@').to_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    if let Some(bad) = domains
        .iter()
        .find(|d| !d.contains('.') || d.contains(['/', ':', ' ']))
    {
        bail!(
            "SALESAI_SIGN_IN_DOMAINS has {bad:?}, which is not an e-mail domain; give domains like example.com,example.tw"
        );
    }
    let issuer_url = |name: &str, raw: String| -> anyhow::Result<String> {
        url::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .map(|_| raw.trim_end_matches('/').to_owned())
            .ok_or_else(|| anyhow::anyhow!("{name} {raw:?} is not an http(s) URL"))
    };
    let mut providers = Vec::new();
    match (
        pick(&args.slack.slack_client_id),
        pick(&args.slack.slack_client_secret),
    ) {
        (None, None) => {}
        (Some(_), None) => bail!(
            "SLACK_CLIENT_ID is set but SLACK_CLIENT_SECRET is not; set both to enable Sign in with Slack"
        ),
        (None, Some(_)) => bail!(
            "SLACK_CLIENT_SECRET is set but SLACK_CLIENT_ID is not; set both to enable Sign in with Slack"
        ),
        (Some(client_id), Some(client_secret)) => {
            let Some(team) = pick(&args.slack.slack_team_id) else {
                bail!(
                    "Sign in with Slack needs SLACK_TEAM_ID, your workspace's id (T…): without it anyone with an account in any Slack workspace could sign in"
                );
            };
            providers.push(salesai_core::access::OidcProvider {
                tenant: Some(salesai_core::access::TenantPin {
                    claim: "https://slack.com/team_id".into(),
                    value: team,
                }),
                id: "slack".into(),
                label: "Slack".into(),
                issuer: issuer_url(
                    "SLACK_OIDC_ISSUER",
                    pick(&args.slack.slack_oidc_issuer)
                        .unwrap_or_else(|| default::SLACK_OIDC_ISSUER.into()),
                )?,
                client_id,
                client_secret,
                allowed_domains: domains.clone(),
                slack: true,
            })
        }
    }
    let issuer = pick(&args.web.oidc_issuer);
    let id = pick(&args.web.oidc_client_id);
    let secret = pick(&args.web.oidc_client_secret);
    match (issuer, id, secret) {
        (None, None, None) => {}
        (Some(issuer), Some(client_id), Some(client_secret)) => {
            let issuer = issuer_url("SALESAI_OIDC_ISSUER", issuer)?;
            let tenant = tenant_pin(&issuer, pick(&args.web.oidc_tenant))?;
            providers.push(salesai_core::access::OidcProvider {
                tenant,
                id: "sso".into(),
                label: pick(&args.web.oidc_name).unwrap_or_else(|| default::OIDC_NAME.into()),
                issuer,
                client_id,
                client_secret,
                allowed_domains: domains,
                slack: false,
            })
        }
        (issuer, id, secret) => {
            let missing: Vec<&str> = [
                ("SALESAI_OIDC_ISSUER", issuer.is_none()),
                ("SALESAI_OIDC_CLIENT_ID", id.is_none()),
                ("SALESAI_OIDC_CLIENT_SECRET", secret.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, gone)| gone.then_some(name))
            .collect();
            bail!(
                "single sign-on needs SALESAI_OIDC_ISSUER, SALESAI_OIDC_CLIENT_ID and SALESAI_OIDC_CLIENT_SECRET; {} {} not set",
                missing.join(" and "),
                if missing.len() == 1 { "is" } else { "are" }
            )
        }
    }
    Ok(providers)
}

/// A local time of day, `HH:MM`.
fn parse_time(name: &str, raw: &str) -> anyhow::Result<chrono::NaiveTime> {
    chrono::NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .map_err(|_| anyhow::anyhow!("{name} {raw:?} is not a time like 09:00 (HH:MM, local time)"))
}

fn alert_settings(args: &ConfigArgs) -> anyhow::Result<AlertSettings> {
    let webhook = args
        .alerts
        .slack_webhook_url
        .clone()
        .filter(|s| !s.trim().is_empty())
        .map(|raw| {
            url::Url::parse(raw.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| anyhow::anyhow!("SLACK_WEBHOOK_URL is not an http(s) URL"))
        })
        .transpose()?;
    let rate = args
        .alerts
        .alert_failure_rate
        .unwrap_or(default::ALERT_FAILURE_RATE);
    if !(0.0..=100.0).contains(&rate) {
        bail!("SALESAI_ALERT_FAILURE_RATE is a percentage (0–100), got {rate}");
    }
    Ok(AlertSettings {
        webhook,
        interval: std::time::Duration::from_secs(bounded(
            "SALESAI_ALERT_INTERVAL_SECS",
            args.alerts.alert_interval_secs,
            default::ALERT_INTERVAL_SECS,
            1,
            86_400,
        )?),
        cooldown: chrono::Duration::minutes(bounded(
            "SALESAI_ALERT_COOLDOWN_MINS",
            args.alerts.alert_cooldown_mins,
            default::ALERT_COOLDOWN_MINS,
            0,
            10_080,
        )? as i64),
        thresholds: salesai_core::doctor::Thresholds {
            failure_rate: rate / 100.0,
            queue_depth: args
                .alerts
                .alert_queue_depth
                .unwrap_or(default::ALERT_QUEUE_DEPTH),
            max_wait_secs: 60
                * bounded(
                    "SALESAI_ALERT_MAX_WAIT_MINS",
                    args.alerts.alert_max_wait_mins,
                    default::ALERT_MAX_WAIT_MINS,
                    1,
                    10_080,
                )?,
            signature_failures: args
                .alerts
                .alert_signature_failures
                .unwrap_or(default::ALERT_SIGNATURE_FAILURES),
            slow_query_ms: args
                .alerts
                .alert_slow_query_ms
                .unwrap_or(default::ALERT_SLOW_QUERY_MS)
                .max(1.0),
        },
        summary_at: args
            .alerts
            .daily_summary_at
            .clone()
            .filter(|s| !s.trim().is_empty())
            .map(|raw| parse_time("SALESAI_DAILY_SUMMARY_AT", &raw))
            .transpose()?,
    })
}

impl ConfigArgs {
    /// These settings (flags and environment) over `file`'s: a setting given here wins, the
    /// file fills in the rest, field by field.
    pub fn over(&self, file: ConfigArgs) -> anyhow::Result<ConfigArgs> {
        let serde_json::Value::Object(mut merged) = serde_json::to_value(file)? else {
            bail!("settings serialise to an object");
        };
        let serde_json::Value::Object(given) = serde_json::to_value(self)? else {
            bail!("settings serialise to an object");
        };
        for (key, value) in given {
            if !value.is_null() {
                merged.insert(key, value);
            }
        }
        let mut out: ConfigArgs = serde_json::from_value(serde_json::Value::Object(merged))?;
        out.config = self.config.clone();
        Ok(out)
    }
}

/// Every setting's default that is one value, written once: [`Config::load`] falls back to it,
/// and `salesai help settings` and `salesai config` show it (through [`shown_defaults`]).
/// Defaults that are a rule (the database in the data folder, the model of the provider) stay
/// in the setting's help.
pub mod default {
    pub const DB_MAX_CONNECTIONS: u32 = salesai_db::DEFAULT_POOL_MAX;
    pub const DB_PGBOUNCER: bool = false;
    pub const DATA_DIR: &str = "./data";
    pub const S3_REGION: &str = "auto";
    pub const S3_ALLOW_HTTP: bool = false;
    pub const S3_VIRTUAL_HOSTED_STYLE: bool = false;
    pub const STT_CONCURRENCY: usize = 4;
    pub const STT_MAX_CHUNK_SECS: u64 = 600;
    pub const STT_MAX_CHUNK_MB: u64 = 24;
    pub const STT_TIMEOUT_SECS: u64 = 180;
    pub const LLM_TIMEOUT_SECS: u64 = 60;
    pub const LLM_BUDGET_SECS: u64 = 900;
    pub const ANALYSIS_STRICT: bool = false;
    pub const MAX_UPLOAD_MB: u64 = 500;
    pub const BIND_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 3000);
    pub const OIDC_NAME: &str = "Single sign-on";
    pub const ALERT_INTERVAL_SECS: u64 = 60;
    pub const ALERT_COOLDOWN_MINS: u64 = 30;
    pub const ALERT_FAILURE_RATE: f64 = 5.0;
    pub const ALERT_QUEUE_DEPTH: u64 = 100;
    pub const ALERT_MAX_WAIT_MINS: u64 = 20;
    pub const ALERT_SIGNATURE_FAILURES: u64 = 20;
    pub const ALERT_SLOW_QUERY_MS: f64 = 500.0;
    pub const SLACK_API_URL: &str = salesai_slack::DEFAULT_API_URL;
    pub const SLACK_DM_PRODUCT_LINE: &str = "default";
    pub const SLACK_MAX_DOWNLOAD_MB: u64 = 500;
    pub const SLACK_OIDC_ISSUER: &str = "https://slack.com";
    pub const WORKER_POLL_MS: u64 = 250;
    pub const SHUTDOWN_GRACE_SECS: u64 = 30;
    pub const PRUNE_AUDIO_ONLY: bool = false;
    pub const PRUNE_AT: &str = "04:00";
    pub const JOBS_KEEP_DAYS: u64 = 7;
    pub const JOBS_PURGE_AT: &str = "04:30";
    pub const BACKUP_KEEP: usize = 7;
    pub const TIME_ZONE: &str = "Asia/Taipei";
    pub const LOG_FORMAT: &str = "json";
}

/// The defaults of [`default`] by setting key, as `salesai help settings` shows them.
fn shown_defaults() -> Vec<(&'static str, String)> {
    use default::*;
    vec![
        ("db_max_connections", DB_MAX_CONNECTIONS.to_string()),
        ("db_pgbouncer", DB_PGBOUNCER.to_string()),
        ("data_dir", DATA_DIR.to_string()),
        ("s3_region", S3_REGION.to_string()),
        ("s3_allow_http", S3_ALLOW_HTTP.to_string()),
        (
            "s3_virtual_hosted_style",
            S3_VIRTUAL_HOSTED_STYLE.to_string(),
        ),
        ("stt_concurrency", STT_CONCURRENCY.to_string()),
        ("stt_max_chunk_secs", STT_MAX_CHUNK_SECS.to_string()),
        ("stt_max_chunk_mb", STT_MAX_CHUNK_MB.to_string()),
        ("stt_timeout_secs", STT_TIMEOUT_SECS.to_string()),
        ("llm_timeout_secs", LLM_TIMEOUT_SECS.to_string()),
        ("llm_budget_secs", LLM_BUDGET_SECS.to_string()),
        ("analysis_strict", ANALYSIS_STRICT.to_string()),
        ("max_upload_mb", MAX_UPLOAD_MB.to_string()),
        ("bind", std::net::SocketAddr::from(BIND_ADDR).to_string()),
        ("oidc_name", OIDC_NAME.to_string()),
        ("alert_interval_secs", ALERT_INTERVAL_SECS.to_string()),
        ("alert_cooldown_mins", ALERT_COOLDOWN_MINS.to_string()),
        ("alert_failure_rate", ALERT_FAILURE_RATE.to_string()),
        ("alert_queue_depth", ALERT_QUEUE_DEPTH.to_string()),
        ("alert_max_wait_mins", ALERT_MAX_WAIT_MINS.to_string()),
        (
            "alert_signature_failures",
            ALERT_SIGNATURE_FAILURES.to_string(),
        ),
        ("alert_slow_query_ms", ALERT_SLOW_QUERY_MS.to_string()),
        ("slack_api_url", SLACK_API_URL.to_string()),
        ("slack_dm_product_line", SLACK_DM_PRODUCT_LINE.to_string()),
        ("slack_max_download_mb", SLACK_MAX_DOWNLOAD_MB.to_string()),
        ("slack_oidc_issuer", SLACK_OIDC_ISSUER.to_string()),
        ("worker_poll_ms", WORKER_POLL_MS.to_string()),
        ("shutdown_grace_secs", SHUTDOWN_GRACE_SECS.to_string()),
        ("prune_audio_only", PRUNE_AUDIO_ONLY.to_string()),
        ("prune_at", PRUNE_AT.to_string()),
        ("jobs_keep_days", JOBS_KEEP_DAYS.to_string()),
        ("jobs_purge_at", JOBS_PURGE_AT.to_string()),
        ("backup_keep", BACKUP_KEEP.to_string()),
        ("time_zone", TIME_ZONE.to_string()),
        ("log_format", LOG_FORMAT.to_string()),
    ]
}

/// Every shared setting as clap knows it — key, flag, environment variable, help (with its
/// default), whether its value is secret — by subsystem, in the order `salesai help settings`
/// lists them. The subsystem is the struct that declares the setting.
pub fn settings() -> Vec<SettingInfo> {
    use clap::Args;
    let groups: [(&'static str, clap::Command); 11] = [
        ("Configuration file", {
            // `--config` alone, as `ConfigArgs` declares it.
            let all = ConfigArgs::augment_args(clap::Command::new("all"));
            let config = all
                .get_arguments()
                .find(|a| a.get_id() == "config")
                .cloned();
            clap::Command::new("config").args(config)
        }),
        (
            "Database",
            DatabaseSettings::augment_args(clap::Command::new("database")),
        ),
        (
            "Storage",
            StorageSettings::augment_args(clap::Command::new("storage")),
        ),
        (
            "Speech-to-text",
            SttSettings::augment_args(clap::Command::new("stt")),
        ),
        (
            "Analysis (LLM)",
            LlmSettings::augment_args(clap::Command::new("llm")),
        ),
        (
            "Web server",
            WebSettings::augment_args(clap::Command::new("web")),
        ),
        (
            "Slack",
            SlackSettings::augment_args(clap::Command::new("slack")),
        ),
        (
            "Alerts",
            AlertsSettings::augment_args(clap::Command::new("alerts")),
        ),
        (
            "Workers",
            WorkerSettings::augment_args(clap::Command::new("workers")),
        ),
        (
            "Schedules",
            ScheduleSettings::augment_args(clap::Command::new("schedules")),
        ),
        (
            "Logs and time",
            LogSettings::augment_args(clap::Command::new("logs")),
        ),
    ];
    let defaults = shown_defaults();
    groups
        .iter()
        .flat_map(|(subsystem, command)| {
            let defaults = &defaults;
            command.get_arguments().filter_map(move |arg| {
                let key = arg.get_id().as_str().to_owned();
                let mut help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if let Some((_, value)) = defaults.iter().find(|(k, _)| *k == key) {
                    help = format!("{help} [default: {value}]");
                }
                Some(SettingInfo {
                    subsystem,
                    flag: format!("--{}", arg.get_long()?),
                    env: arg.get_env()?.to_string_lossy().into_owned(),
                    key,
                    help,
                    secret: arg.is_hide_env_values_set(),
                })
            })
        })
        .collect()
}

/// One setting, as `settings()` describes it.
#[derive(Debug, Clone)]
pub struct SettingInfo {
    /// Its subsystem.
    pub subsystem: &'static str,
    /// Its key in `salesai.toml`.
    pub key: String,
    /// Its flag.
    pub flag: String,
    /// Its environment variable.
    pub env: String,
    /// What it does, with its default.
    pub help: String,
    /// Whether its value is a secret (never printed).
    pub secret: bool,
}

/// `salesai help settings`: every shared setting by subsystem.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Every command takes these settings as a flag, an environment variable or a key of salesai.toml \
         (--config); a flag beats the environment, which beats the file, which beats the default. \
         `salesai config` shows the value each one resolves to, and where it came from.\n",
    );
    let mut group = "";
    for s in settings() {
        if s.subsystem != group {
            group = s.subsystem;
            out.push_str(&format!("\n{group}:\n"));
        }
        out.push_str(&format!(
            "  {}  {}  ({})\n      {}\n",
            s.flag, s.env, s.key, s.help
        ));
    }
    out
}

impl ConfigArgs {
    /// The settings as resolved: these (flags and environment) over the config file's.
    pub fn with_file(&self) -> anyhow::Result<ConfigArgs> {
        self.over(self.file()?)
    }

    /// The config file's settings: `--config`, else `./salesai.toml` when it exists, else none.
    fn file(&self) -> anyhow::Result<ConfigArgs> {
        match &self.config {
            Some(path) => read_file(path),
            None if Path::new("salesai.toml").exists() => read_file(Path::new("salesai.toml")),
            None => Ok(ConfigArgs::default()),
        }
    }

    /// `salesai config`: every setting with the value it resolves to and where that came from
    /// (`flag`, `env`, `file` or `default`); secrets show only whether they are set, a database
    /// URL without its password. `given` says which settings came from the command line or the
    /// environment.
    pub fn report(&self, given: impl Fn(&str) -> Option<&'static str>) -> anyhow::Result<String> {
        let file = self.file()?;
        let merged = serde_json::to_value(self.over(file.clone())?)?;
        let file = serde_json::to_value(file)?;
        let mut out = String::new();
        let mut group = "";
        for s in settings() {
            if s.subsystem != group {
                group = s.subsystem;
                out.push_str(&format!("{group}\n"));
            }
            let value = &merged[&s.key];
            let source = given(&s.key).unwrap_or(if !file[&s.key].is_null() {
                "file"
            } else {
                "default"
            });
            let shown = match value {
                serde_json::Value::Null => default_of(&s.help).unwrap_or("(not set)").to_owned(),
                _ if s.secret && s.key == "database_url" => {
                    salesai_db::redact_url(value.as_str().unwrap_or_default())
                }
                _ if s.secret => "(set, hidden)".to_owned(),
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            out.push_str(&format!("  {:<28} {:<8} {shown}\n", s.key, source));
        }
        Ok(out)
    }
}

/// The `[default: …]` a setting's help names.
fn default_of(help: &str) -> Option<&str> {
    let start = help.find("[default: ")? + "[default: ".len();
    let end = help[start..].find(']')? + start;
    Some(&help[start..end])
}

fn read_file(path: &Path) -> anyhow::Result<ConfigArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read config file {}", path.display()))?;
    let invalid = || {
        format!(
            "config file {} is not valid (keys are the setting names of `salesai help settings`, with _ for -)",
            path.display()
        )
    };
    let table: toml::Table = toml::from_str(&text).with_context(invalid)?;
    let known: Vec<String> = settings().into_iter().map(|s| s.key).collect();
    if let Some(unknown) = table.keys().find(|k| *k == "config" || !known.contains(k)) {
        return Err(anyhow::anyhow!("unknown setting {unknown:?}")).with_context(invalid);
    }
    toml::from_str(&text).with_context(invalid)
}

/// A numeric setting: its value (or `default`), refused outside `min..=max` with its name,
/// so no setting can overflow the arithmetic it feeds (a size in bytes, an age) later.
fn bounded(
    name: &str,
    value: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> anyhow::Result<u64> {
    let value = value.unwrap_or(default);
    if !(min..=max).contains(&value) {
        bail!("{name} is {value}; give a number from {min} to {max}");
    }
    Ok(value)
}

fn default_worker_id() -> String {
    salesai_worker::default_worker_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_default_is_written_once_and_shown() {
        let settings = settings();
        for (key, value) in shown_defaults() {
            let s = settings
                .iter()
                .find(|s| s.key == key)
                .unwrap_or_else(|| panic!("{key} is not a setting"));
            assert_eq!(
                s.help.matches("[default: ").count(),
                1,
                "{key}: its help names a default of its own beside the code's: {}",
                s.help
            );
            assert_eq!(default_of(&s.help), Some(value.as_str()), "{key}");
        }
        // `salesai config` shows the value the code uses.
        let report = ConfigArgs {
            config: Some(PathBuf::from("/dev/null")),
            ..Default::default()
        }
        .report(|_| None)
        .unwrap();
        assert!(
            report.contains(&format!(
                "stt_timeout_secs             default  {}",
                default::STT_TIMEOUT_SECS
            )),
            "{report}"
        );
    }

    #[test]
    fn defaults_need_nothing() {
        let config = Config::load(&ConfigArgs {
            config: Some(PathBuf::from("/dev/null")),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            config.database_url.expose_secret(),
            "sqlite://./data/salesai.db"
        );
        assert_eq!(config.blob_url, "./data/blobs");
        assert_eq!(config.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(config.time_zone, chrono_tz::Asia::Taipei);
    }

    #[test]
    fn sign_in_providers_need_all_their_settings() {
        let with = |web: WebSettings, slack: SlackSettings| {
            Config::load(&ConfigArgs {
                config: Some(PathBuf::from("/dev/null")),
                web,
                slack,
                ..Default::default()
            })
        };
        assert!(
            with(Default::default(), Default::default())
                .unwrap()
                .sign_in
                .is_empty()
        );
        let web = WebSettings {
            oidc_issuer: Some("https://accounts.google.com/".into()),
            oidc_client_id: Some("id".into()),
            oidc_client_secret: Some("secret".into()),
            sign_in_domains: Some("Example.com, @example.tw".into()),
            oidc_tenant: Some("example.com".into()),
            ..Default::default()
        };
        let slack = SlackSettings {
            slack_client_id: Some("1.2".into()),
            slack_client_secret: Some("s".into()),
            slack_team_id: Some("T0TEAM".into()),
            ..Default::default()
        };
        let config = with(web.clone(), slack.clone()).unwrap();
        let pin = |i: usize| {
            config.sign_in[i]
                .tenant
                .as_ref()
                .map(|t| (t.claim.as_str(), t.value.as_str()))
        };
        assert_eq!(pin(0), Some(("https://slack.com/team_id", "T0TEAM")));
        assert_eq!(pin(1), Some(("hd", "example.com")));
        // Google without a domain, Slack without a workspace: anyone could sign in.
        let err = with(
            WebSettings {
                oidc_tenant: None,
                ..web.clone()
            },
            Default::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SALESAI_OIDC_TENANT"), "{err}");
        let err = with(
            Default::default(),
            SlackSettings {
                slack_team_id: None,
                ..slack
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SLACK_TEAM_ID"), "{err}");
        // Entra: a bare tenant id is `tid`; another issuer needs the claim named.
        let entra = with(
            WebSettings {
                oidc_issuer: Some("https://login.microsoftonline.com/abc/v2.0".into()),
                oidc_tenant: Some("abc".into()),
                ..web.clone()
            },
            Default::default(),
        )
        .unwrap();
        assert_eq!(entra.sign_in[0].tenant.as_ref().unwrap().claim, "tid");
        assert!(
            with(
                WebSettings {
                    oidc_issuer: Some("https://id.example.com".into()),
                    oidc_tenant: Some("abc".into()),
                    ..web.clone()
                },
                Default::default(),
            )
            .is_err()
        );
        let okta = with(
            WebSettings {
                oidc_issuer: Some("https://id.example.com".into()),
                oidc_tenant: Some("org = acme".into()),
                ..web.clone()
            },
            Default::default(),
        )
        .unwrap();
        assert_eq!(
            okta.sign_in[0].tenant,
            Some(salesai_core::access::TenantPin {
                claim: "org".into(),
                value: "acme".into()
            })
        );
        let ids: Vec<_> = config
            .sign_in
            .iter()
            .map(|p| (p.id.as_str(), p.issuer.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("slack", "https://slack.com"),
                ("sso", "https://accounts.google.com")
            ]
        );
        assert_eq!(
            config.sign_in[1].allowed_domains,
            ["example.com", "example.tw"]
        );
        let err = with(
            WebSettings {
                oidc_client_secret: None,
                oidc_client_id: None,
                ..web.clone()
            },
            Default::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("SALESAI_OIDC_CLIENT_ID and SALESAI_OIDC_CLIENT_SECRET are not set"),
            "{err}"
        );
        let err = with(
            Default::default(),
            SlackSettings {
                slack_client_id: Some("1.2".into()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SLACK_CLIENT_SECRET"), "{err}");
        let err = with(
            WebSettings {
                sign_in_domains: Some("https://example.com".into()),
                ..web
            },
            Default::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not an e-mail domain"), "{err}");
    }

    #[test]
    fn file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("salesai.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/salesai\"\nbind = \"0.0.0.0:8080\"\ndatabase_url = \"postgres://u:pw@db/x\"\n",
        )
        .unwrap();
        let config = Config::load(&ConfigArgs {
            config: Some(path.clone()),
            web: WebSettings {
                bind: Some("127.0.0.1:9000".parse().unwrap()),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:9000", "flag beats file");
        assert_eq!(config.blob_url, "/srv/salesai/blobs", "file beats default");
        let debug = format!("{config:?}");
        assert!(!debug.contains("pw"), "Debug redacts the password: {debug}");

        std::fs::write(&path, "bnid = \"typo\"\n").unwrap();
        let err = Config::load(&ConfigArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("bnid"), "{err:#}");
    }

    #[test]
    fn bad_values_say_what_to_do() {
        let bad_db = Config::load(&ConfigArgs {
            config: Some(PathBuf::from("/dev/null")),
            database: DatabaseSettings {
                database_url: Some("mysql://x".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(
            bad_db
                .unwrap_err()
                .to_string()
                .contains("sqlite:// or postgres://")
        );
        let bad_tz = Config::load(&ConfigArgs {
            config: Some(PathBuf::from("/dev/null")),
            logs: LogSettings {
                time_zone: Some("Mars/Base".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        assert!(bad_tz.unwrap_err().to_string().contains("IANA"));
    }
}
