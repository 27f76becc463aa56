//! The conversations API: upload a recording or transcript, follow it through the pipeline,
//! retry a failure, re-run an analysis.

use std::collections::BTreeMap;

use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use salesai_core::App;
use salesai_core::access::Principal;
use salesai_core::blob::{BlobKey, StoreLimitedError, Stored, store_limited};
use salesai_core::domain::{
    Conversation, ConversationStatus, ConversationType, CreatedConversation, CustomerNumber, Media,
    Role,
};
use salesai_core::intake::{Intake, Source};
use salesai_core::media::{ACCEPTED, MediaKind, sniff};
use salesai_core::store::ConversationFilter;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{Authorize, Caller};
use crate::error::ApiError;
use salesai_core::access::Reach;

use salesai_core::pipeline::RestartError;

/// The routes, nested under `/api/v1/conversations`.
pub fn routes() -> Router<App> {
    Router::new()
        .route(
            "/",
            post(create).layer(DefaultBodyLimit::disable()).get(list),
        )
        .route("/{id}", get(show).delete(remove))
        .route("/{id}/retry", post(retry))
        .route("/{id}/reanalyze", post(reanalyze))
}

const UPLOADERS: &[Role] = &[Role::Admin, Role::Service, Role::Rep, Role::Manager];

/// One part an upload may carry besides its product line's form. The handler accepts exactly
/// these (and the form's fields) and the OpenAPI document describes them from this list, so
/// the reference cannot name a field the server does not read.
pub struct UploadField {
    /// The part's name.
    pub name: &'static str,
    /// What it holds, for the reference.
    pub description: &'static str,
    /// Whether every upload must send it.
    pub required: bool,
    /// A file part (the recording or transcript), not a text field.
    pub file: bool,
    /// Another name the same part is accepted under (not documented on its own).
    pub alias_of: Option<&'static str>,
}

const fn text(name: &'static str, description: &'static str) -> UploadField {
    UploadField {
        name,
        description,
        required: false,
        file: false,
        alias_of: None,
    }
}

const fn alias(name: &'static str, of: &'static str, file: bool) -> UploadField {
    UploadField {
        name,
        description: "",
        required: false,
        file,
        alias_of: Some(of),
    }
}

/// Every part of an upload besides the product line's own form fields.
pub const UPLOAD_PARTS: &[UploadField] = &[
    UploadField {
        name: "audio",
        description: "The recording (mp3, m4a, wav, ogg, opus, webm, flac, mp4) or transcript (txt, vtt, srt, json) as a file part; also accepted as `transcript` or `file`. Send it last: the fields before it are read first.",
        required: true,
        file: true,
        alias_of: None,
    },
    alias("transcript", "audio", true),
    alias("file", "audio", true),
    UploadField {
        name: "customer_number",
        description: "The customer's number in your CRM (letters, digits, - and _).",
        required: true,
        file: false,
        alias_of: None,
    },
    text(
        "customer_name",
        "The customer's name; kept from the first call when left out.",
    ),
    text(
        "product_line",
        "The product line id (default: default); its form's fields may follow.",
    ),
    text(
        "type",
        "The kind of call: discovery_call (default), demo, follow_up, negotiation, closing, support. Also accepted as `conversation_type`.",
    ),
    alias("conversation_type", "type", false),
    text(
        "conversation_date",
        "When the call was held: YYYY-MM-DD or RFC 3339, 1990 to today. Lists order and filter by it (the upload time when left out).",
    ),
    text("title", "A short title."),
    text(
        "rep_email",
        "The rep's e-mail, to credit the call to them (admins and service tokens; a person's token uploads as that person).",
    ),
    text("rep_slack_id", "The rep's Slack user id, like rep_email."),
    text(
        "speaker_channels",
        "A stereo recording with one side per channel: rep_left or rep_right. Leave it out for a mixed recording.",
    ),
    text("contact_name", "The customer's contact person."),
    text("contact_phone", "The contact's phone."),
    text("contact_email", "The contact's e-mail."),
];

/// Whether `name` is one of [`UPLOAD_PARTS`]' text fields (under its name or an alias).
fn is_upload_field(name: &str) -> bool {
    UPLOAD_PARTS.iter().any(|p| !p.file && p.name == name)
}

/// Whether `name` is the file part (under its name or an alias).
fn is_upload_file(name: &str) -> bool {
    UPLOAD_PARTS.iter().any(|p| p.file && p.name == name)
}

/// The metadata key of an upload's request fingerprint: salesai's own bookkeeping, not shown
/// in the API (keys starting with `_` never are).
const FINGERPRINT_KEY: &str = "_request_fingerprint";

/// The longest `Idempotency-Key` accepted (Stripe's limit).
const MAX_IDEMPOTENCY_KEY: usize = 255;
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// The most form fields an upload may carry, and the longest field name: field names become
/// metadata keys.
const MAX_FIELDS: usize = 50;
const MAX_FIELD_NAME: usize = 64;

struct Upload {
    key: BlobKey,
    bytes: u64,
    kind: MediaKind,
    file_name: Option<String>,
    /// The file's first bytes (for sniffing and the request fingerprint).
    head: Vec<u8>,
}

/// Streams one file part to blob storage, counting bytes and keeping the first 64 for sniffing.
async fn store_part(
    app: &App,
    field: axum::extract::multipart::Field<'_>,
) -> Result<Upload, ApiError> {
    let file_name = field
        .file_name()
        .map(|s| s.chars().take(200).collect::<String>());
    let now = Utc::now();
    let key = BlobKey::parse(&format!(
        "uploads/{}/{}",
        now.format("%Y/%m"),
        uuid::Uuid::now_v7()
    ))
    .expect("generated keys are valid");
    let limit = app.max_upload_bytes;
    let chunks = futures_util::stream::unfold(field, |mut field| async move {
        match field.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), field)),
            Ok(None) => None,
            Err(err) => Some((Err(err), field)),
        }
    });
    let Stored { bytes, head } = store_limited(app.blobs.as_ref(), &key, chunks, limit)
        .await
        .map_err(|e| match e {
            StoreLimitedError::TooLarge(_) => ApiError::PayloadTooLarge(format!(
                "the upload is larger than {} MB; split the recording or raise SALESAI_MAX_UPLOAD_MB",
                limit / (1024 * 1024)
            )),
            StoreLimitedError::Source(err) => {
                ApiError::BadRequest(format!("the upload was cut off: {err}"))
            }
            StoreLimitedError::Storage(err) => {
                ApiError::Unavailable(salesai_core::ErrorCode::StorageError, err.to_string())
            }
        })?;
    let Some(kind) = sniff(&head) else {
        let _ = app.blobs.delete(&key).await;
        return Err(ApiError::UnsupportedMedia(format!(
            "the file is not a recording or transcript salesai can read; send {ACCEPTED}"
        )));
    };
    Ok(Upload {
        key,
        bytes,
        kind,
        file_name,
        head,
    })
}

/// A field name that may become a metadata key: 1–64 letters, digits, `_`, `-`, `.`.
fn check_field_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > MAX_FIELD_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        let shown: String = name.chars().take(40).collect();
        return Err(ApiError::BadRequest(format!(
            "field name {shown:?} is not allowed: use 1 to {MAX_FIELD_NAME} letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(())
}

/// Text fields hold no control characters (tabs and line breaks aside): a NUL is stored by
/// SQLite but refused by PostgreSQL, and no person types one.
fn check_text(name: &str, value: &str) -> Result<(), ApiError> {
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::BadRequest(format!(
            "field {name} holds the control character U+{:04X}; send plain text",
            u32::from(c)
        )));
    }
    Ok(())
}

async fn text_field(field: axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    let name = field.name().unwrap_or_default().to_owned();
    let mut field = field;
    let mut out = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::BadRequest(format!("field {name}: {e}")))?
    {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_FIELD_BYTES {
            return Err(ApiError::BadRequest(format!(
                "field {name} is longer than 64 KB"
            )));
        }
    }
    let text = String::from_utf8(out)
        .map_err(|_| ApiError::BadRequest(format!("field {name} is not UTF-8 text")))?;
    check_text(&name, &text)?;
    Ok(text)
}

/// A date the field `name` gives: `YYYY-MM-DD` or RFC 3339.
fn parse_date(name: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        })
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name} {raw:?} is not a date: give YYYY-MM-DD or RFC 3339"
            ))
        })
}

/// The date of a call: [`parse_date`], and between 1990 and two days from now
/// ("+99999-01-01" is valid RFC 3339).
fn parse_call_date(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let date = parse_date("conversation_date", raw)?;
    let earliest = NaiveDate::from_ymd_opt(1990, 1, 1)
        .expect("a valid date")
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    if date < earliest || date > Utc::now() + chrono::Duration::days(2) {
        return Err(ApiError::BadRequest(format!(
            "conversation_date {raw:?} is not a date a call can have happened on (1990 to today)"
        )));
    }
    Ok(date)
}

/// The Idempotency-Key as stored: a SHA-256 of the whole key, so keys of any length are
/// compared whole and none is cut.
fn idempotency_digest(key: &str) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}

/// Who an idempotency key belongs to: the person behind the token, or the token itself (a
/// service token), so two callers' keys never meet.
fn caller_scope(caller: &Caller) -> String {
    match &caller.principal.user_id {
        Some(user) => format!("user:{user}"),
        None => format!("token:{}", caller.token.id),
    }
}

/// What makes two uploads "the same request": every form field, the media kind and size and
/// the file's first bytes. A reused key with a different fingerprint is refused.
fn request_fingerprint(fields: &BTreeMap<String, String>, upload: &Upload) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for (k, v) in fields {
        hash.update(k.as_bytes());
        hash.update([0]);
        hash.update(v.as_bytes());
        hash.update([0]);
    }
    hash.update(upload.kind.extension().as_bytes());
    hash.update(upload.bytes.to_le_bytes());
    hash.update(&upload.head);
    hex::encode(hash.finalize())
}

/// `POST /api/v1/conversations` (multipart).
async fn create(
    caller: Caller,
    State(app): State<App>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    caller.require(UPLOADERS)?;
    let idempotency_key = match headers.get("idempotency-key") {
        None => None,
        Some(raw) => {
            let key = raw.to_str().map(str::trim).map_err(|_| {
                ApiError::BadRequest("Idempotency-Key must be visible ASCII text".into())
            })?;
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
                return Err(ApiError::BadRequest(format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters (a UUID is fine)"
                )));
            }
            // Scoped to the caller: another caller's key never finds this one's upload.
            Some(idempotency_digest(&format!(
                "{}\n{key}",
                caller_scope(&caller)
            )))
        }
    };
    let created = receive(&app, &caller.principal, multipart, idempotency_key, None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            links: Links {
                this: format!("/api/v1/conversations/{}", created.id),
            },
            id: created.id,
            case_number: created.case_number.to_string(),
            status: ConversationStatus::Pending,
            created: created.created,
        }),
    ))
}

/// An upload accepted: the conversation it made (or, with the same `Idempotency-Key`, the one
/// it made before).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Accepted {
    /// The conversation id.
    pub id: String,
    /// Its case number, e.g. `202611-SA0001`.
    pub case_number: String,
    /// Always `pending` on acceptance.
    pub status: ConversationStatus,
    /// False when an earlier upload with the same idempotency key made it.
    pub created: bool,
    /// Where to follow it.
    pub links: Links,
}

/// Related resources.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Links {
    /// The conversation itself.
    #[serde(rename = "self")]
    pub this: String,
}

/// One conversation with everything known about it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConversationDetail {
    /// The conversation.
    pub conversation: Conversation,
    /// Its pipeline stage (its status).
    pub stage: ConversationStatus,
    /// Rough progress through the pipeline, 0–100.
    pub progress: u8,
    /// Why it failed, when it did.
    pub error: Option<salesai_core::domain::StageError>,
    /// Its stage history.
    pub stages: Vec<salesai_core::store::StageEvent>,
    /// Its transcript (empty until transcribed).
    pub transcript: TranscriptBody,
    /// True when the transcript's times are estimated (a plain-text upload has none).
    pub estimated_times: bool,
    /// Its analysis, once analysed.
    pub analysis: Option<AnalysisBody>,
    /// How the rep ran the call, once the transcript's speakers have sides (and its times are
    /// real).
    pub talk: Option<salesai_core::report::TalkReport>,
    /// Agents whose stored output could not be read (analyse the call again to rebuild them).
    pub unreadable: Vec<String>,
}

/// A transcript.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TranscriptBody {
    /// Timed lines.
    pub segments: Vec<salesai_core::transcript::Segment>,
}

/// An analysis: the scores and each agent's output.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AnalysisBody {
    /// The overall and PDCM scores, qualification and derived results.
    pub scores: salesai_core::store::StoredAnalysis,
    /// Each agent's run, by agent name.
    pub agents: BTreeMap<String, AgentRun>,
}

/// One agent's run.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AgentRun {
    /// `rules` or `llm`.
    pub engine: String,
    /// The model, for LLM runs.
    pub model: Option<String>,
    /// How long it took.
    pub latency_ms: Option<i64>,
    /// Prompt tokens used.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens used.
    pub completion_tokens: Option<i64>,
    /// Why the rules engine stood in for the LLM, when it did.
    pub fallback: Option<String>,
    /// The agent's output (its schema is the analysis contract's, per agent).
    pub output: Value,
}

/// A page of conversations.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ConversationList {
    /// The conversations, newest first.
    pub conversations: Vec<Conversation>,
    /// The `offset` of the next page, when there may be one (offset paging only).
    pub next_offset: Option<u32>,
    /// The `after` of the next page, when there may be one.
    pub next_after: Option<String>,
}

/// Receives an upload (the API's and the web app's): streams the file part to storage, reads
/// the form fields, and creates the conversation through the one intake. With `csrf` (the web
/// app), the first part must be a `csrf` field holding that token — checked before any file
/// byte is stored. Whatever fails, nothing stays behind.
pub(crate) async fn receive(
    app: &App,
    principal: &Principal,
    mut multipart: Multipart,
    idempotency_key: Option<String>,
    csrf: Option<&str>,
) -> Result<CreatedConversation, ApiError> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut upload: Option<Upload> = None;
    let mut csrf_seen = csrf.is_none();
    let outcome = async {
        while let Some(field) = multipart.next_field().await.map_err(|e| {
            ApiError::BadRequest(format!("the request is not valid multipart/form-data: {e}"))
        })? {
            let name = field.name().unwrap_or_default().to_owned();
            if !csrf_seen {
                let given = if name == "csrf" { text_field(field).await? } else { String::new() };
                // Compared in constant time: the token is a secret.
                if !csrf.is_some_and(|expected| {
                    salesai_core::token::constant_time_eq(expected.as_bytes(), given.as_bytes())
                }) {
                    return Err(ApiError::Forbidden(
                        "this upload form is out of date or did not come from salesai; reload the page".into(),
                    ));
                }
                csrf_seen = true;
                continue;
            }
            match name.as_str() {
                file if is_upload_file(file) => {
                    if upload.is_some() {
                        return Err(ApiError::BadRequest(
                            "send exactly one `audio` or `transcript` file part".into(),
                        ));
                    }
                    // A text field of that name (`-F audio=call.m4a`, the file's name rather
                    // than the file) would be taken for a tiny transcript.
                    if field.file_name().is_none() && field.content_type().is_none() {
                        return Err(ApiError::BadRequest(format!(
                            "`{name}` must be a file part, not a text field: with curl, -F {name}=@call.m4a"
                        )));
                    }
                    upload = Some(store_part(app, field).await?);
                }
                _ => {
                    check_field_name(&name)?;
                    if fields.len() >= MAX_FIELDS {
                        return Err(ApiError::BadRequest(format!(
                            "more than {MAX_FIELDS} form fields; send the documented ones and the product line's form"
                        )));
                    }
                    if fields.contains_key(&name) {
                        return Err(ApiError::BadRequest(format!(
                            "field {name} was sent twice; send it once"
                        )));
                    }
                    let value = text_field(field).await?;
                    fields.insert(name, value.trim().to_owned());
                }
            }
        }
        if !csrf_seen {
            return Err(ApiError::Forbidden(
                "this upload form is out of date or did not come from salesai; reload the page".into(),
            ));
        }
        let Some(stored) = upload.as_ref() else {
            return Err(ApiError::BadRequest(
                "send one `audio` or `transcript` file part".into(),
            ));
        };
        let source = if csrf.is_some() { Source::Web } else { Source::Api };
        build(app, principal, &fields, stored, idempotency_key.clone(), source).await
    }
    .await;
    if outcome.is_err()
        && let Some(stored) = &upload
    {
        let _ = app.blobs.delete(&stored.key).await;
    }
    outcome
}

async fn build(
    app: &App,
    caller: &Principal,
    fields: &BTreeMap<String, String>,
    upload: &Upload,
    idempotency_key: Option<String>,
    source: Source,
) -> Result<CreatedConversation, ApiError> {
    let get = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let customer_number = CustomerNumber::parse(get("customer_number").unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("customer_number: {}", e.0)))?;
    let product_line_id = get("product_line").unwrap_or("default");
    let line = salesai_core::product_line::find(&app.product_lines, product_line_id)
        .map_err(|e| ApiError::BadRequest(e.0))?;
    // Every field is one salesai reads: a misspelt or unknown one is refused with the list,
    // never kept as if it had been understood.
    for name in fields.keys() {
        if !is_upload_field(name) && !line.form.iter().any(|f| f.id == *name) {
            let form: Vec<&str> = line.form.iter().map(|f| f.id.as_str()).collect();
            return Err(ApiError::BadRequest(format!(
                "unknown field {name:?}; send the documented fields ({}) or product line {}'s form ({})",
                UPLOAD_PARTS
                    .iter()
                    .filter(|p| !p.file)
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", "),
                line.id,
                if form.is_empty() {
                    "none".to_owned()
                } else {
                    form.join(", ")
                }
            )));
        }
    }
    let kind = match (get("type"), get("conversation_type")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "send the call's kind once, as `type` (`conversation_type` is the same field)"
                    .into(),
            ));
        }
        (kind, alias) => kind.or(alias).unwrap_or("discovery_call"),
    };
    let conversation_type = ConversationType::parse(kind)
        .map_err(|e| ApiError::BadRequest(format!("type: {}", e.0)))?;
    let conversation_date = get("conversation_date").map(parse_call_date).transpose()?;
    if let Some(channels) = get("speaker_channels")
        && !matches!(channels, "rep_left" | "rep_right")
    {
        return Err(ApiError::BadRequest(format!(
            "speaker_channels {channels:?} is not rep_left or rep_right (leave it out for a mixed recording)"
        )));
    }
    for (name, choice) in fields {
        if let Some(field) = line.form.iter().find(|f| f.id == *name)
            && !field.options.is_empty()
            && !choice.is_empty()
            && !field.options.iter().any(|o| o.value == *choice)
        {
            return Err(ApiError::BadRequest(format!(
                "{name} {choice:?} is not one of {}",
                field
                    .options
                    .iter()
                    .map(|o| o.value.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut intake = Intake::new(source, customer_number);
    for (k, v) in fields {
        if !matches!(
            k.as_str(),
            "customer_number"
                | "customer_name"
                | "product_line"
                | "type"
                | "conversation_type"
                | "conversation_date"
                | "title"
                | "rep_email"
                | "rep_slack_id"
        ) {
            intake.fields.insert(k.clone(), Value::String(v.clone()));
        }
    }
    let fingerprint = request_fingerprint(fields, upload);
    if idempotency_key.is_some() {
        intake
            .fields
            .insert(FINGERPRINT_KEY.into(), json!(fingerprint));
    }
    intake.customer_name = get("customer_name").map(str::to_owned);
    intake.conversation_type = conversation_type;
    intake.title = get("title").map(str::to_owned);
    intake.conversation_date = conversation_date;
    for (name, value) in [
        ("rep_email", get("rep_email")),
        ("rep_slack_id", get("rep_slack_id")),
    ] {
        if let Some(value) = value
            && value.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(ApiError::BadRequest(format!(
                "{name} {value:?} holds spaces or line breaks; send one value"
            )));
        }
    }
    intake.rep_user_id = match (get("rep_email"), get("rep_slack_id")) {
        // A token that belongs to a person uploads as that person; only admin and
        // service tokens name someone else.
        (email, slack) if !caller.may_act_for_others() => {
            let own = caller
                .user_id
                .clone()
                .expect("a principal acting for itself is a person");
            if email.is_some() || slack.is_some() {
                let me = app.store.get_user(&own).await?;
                let same = me.as_ref().is_some_and(|u| {
                    email.is_none_or(|e| {
                        u.email
                            .as_deref()
                            .is_some_and(|m| m.eq_ignore_ascii_case(e))
                    }) && slack.is_none_or(|s| u.slack_user_id.as_deref() == Some(s))
                });
                if !same {
                    return Err(ApiError::Forbidden(
                        "this token uploads its own calls only; leave out rep_email and rep_slack_id (admin and service tokens upload for others)".into(),
                    ));
                }
            }
            Some(own)
        }
        // A person's own token (an admin's too) uploads as that person unless it names
        // someone else; a service token names the rep or leaves the call without one.
        (None, None) => caller.user_id.clone(),
        (email, slack) => {
            if let Some(e) = email
                && !(e.contains('@') && e.len() <= 254)
            {
                return Err(ApiError::BadRequest(format!(
                    "rep_email {e:?} is not an e-mail address"
                )));
            }
            Some(
                app.store
                    .find_or_create_user(email, slack, email.unwrap_or_default())
                    .await?,
            )
        }
    };
    intake.blob_key = Some(upload.key.as_str().to_owned());
    intake.media = Media::sniffed(upload.kind, upload.bytes, upload.file_name.clone());
    intake.idempotency_key = idempotency_key;
    let new = intake
        .conversation(line, Utc::now(), app.time_zone)
        .map_err(|e| ApiError::BadRequest(e.0))?;
    let created = app.store.create_conversation(new).await?;
    if created.created {
        // The job was enqueued with the conversation; it learns its id from the row.
        tracing::info!(event = "conversation.created", conversation_id = %created.id, case_number = %created.case_number, media = upload.kind.extension(), bytes = upload.bytes, "conversation created");
    } else {
        // A repeated upload: the first one stands; this copy is not kept. The same key with a
        // different request is a client bug, answered as one rather than silently.
        let _ = app.blobs.delete(&upload.key).await;
        let first = app.store.get_conversation(&created.id).await?;
        let same = first
            .as_ref()
            .and_then(|c| {
                c.metadata
                    .get(FINGERPRINT_KEY)
                    .or_else(|| c.metadata.get("request_fingerprint"))
            })
            .and_then(Value::as_str)
            .is_none_or(|f| f == fingerprint);
        if !same {
            return Err(ApiError::Unprocessable(
                "IDEMPOTENCY_KEY_REUSED",
                format!(
                    "this Idempotency-Key was used for a different upload (conversation {}); use a new key for a new upload",
                    created.case_number
                ),
            ));
        }
    }
    Ok(created)
}

/// A conversation as the API shows it: without salesai's own bookkeeping in its metadata
/// (keys starting with `_`, and what older releases kept there: the request fingerprint and
/// the rep's e-mail or Slack id as uploaded — the rep is `rep_user_id`).
fn public(mut conversation: Conversation) -> Conversation {
    if let Value::Object(map) = &mut conversation.metadata {
        map.retain(|k, _| {
            !k.starts_with('_')
                && !matches!(
                    k.as_str(),
                    "request_fingerprint" | "rep_email" | "rep_slack_id"
                )
        });
    }
    conversation
}

async fn find(app: &App, id_or_case: &str) -> Result<Conversation, ApiError> {
    salesai_core::pipeline::find(app.store.as_ref(), id_or_case)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no conversation {id_or_case:?}")))
}

fn restart_error(err: RestartError) -> ApiError {
    match err {
        RestartError::Conflict(msg) => ApiError::Conflict(msg),
        RestartError::Invalid(msg) => ApiError::BadRequest(msg),
        RestartError::Store(e) => e.into(),
    }
}

fn progress(status: ConversationStatus) -> u8 {
    match status {
        ConversationStatus::Pending => 0,
        ConversationStatus::Preparing => 20,
        ConversationStatus::Transcribing => 40,
        ConversationStatus::Analyzing => 70,
        ConversationStatus::Completed => 100,
        ConversationStatus::Failed => 0,
    }
}

/// `GET /api/v1/conversations/{id}` (an id or a case number).
async fn show(
    caller: Caller,
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    caller.require(UPLOADERS)?;
    let conversation = find(&app, &id).await?;
    caller
        .may_reach(&app, conversation.rep_user_id.as_deref())
        .await?;
    let report =
        salesai_core::report::CallReport::load(app.store.as_ref(), conversation, &app.talk_targets)
            .await?;
    let agents: BTreeMap<String, AgentRun> = report
        .runs
        .iter()
        .map(|run| {
            (
                run.agent.clone(),
                AgentRun {
                    engine: run.engine.clone(),
                    model: run.model.clone(),
                    latency_ms: run.latency_ms,
                    prompt_tokens: run.prompt_tokens,
                    completion_tokens: run.completion_tokens,
                    fallback: run.fallback.clone(),
                    output: run.output.clone(),
                },
            )
        })
        .collect();
    let estimated_times = report.estimated_times();
    let status = report.conversation.status;
    Ok(Json(ConversationDetail {
        talk: report.talk,
        stage: status,
        progress: progress(status),
        error: report.conversation.error.clone(),
        stages: report.events,
        transcript: TranscriptBody {
            segments: report.transcript,
        },
        estimated_times,
        unreadable: report.unreadable,
        analysis: report.analysis.map(|a| AnalysisBody {
            scores: a.scores,
            agents,
        }),
        conversation: public(report.conversation),
    }))
}

/// List filters. An unknown parameter is refused (a misspelt filter would list everything).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this status: pending, preparing, transcribing, analyzing, completed, failed.
    status: Option<String>,
    /// Only this product line.
    product_line: Option<String>,
    /// Only this rep's calls (a user id).
    rep: Option<String>,
    /// Only this customer's calls.
    customer_number: Option<String>,
    /// Held on or after (YYYY-MM-DD or RFC 3339): the call's `conversation_date`, else its
    /// upload time. The list is newest call first by the same date.
    from: Option<String>,
    /// Held before (YYYY-MM-DD or RFC 3339), by the same date as `from`.
    to: Option<String>,
    /// Page size, 1–500 (default 50); anything else is refused.
    limit: Option<u32>,
    /// The page after this one: the `next_after` of the previous page. Stays fast however deep.
    after: Option<String>,
    /// Skip this many (slower the deeper it goes; prefer `after`).
    offset: Option<u32>,
}

/// `GET /api/v1/conversations`.
async fn list(
    caller: Caller,
    State(app): State<App>,
    Query(p): Query<ListParams>,
) -> Result<Json<ConversationList>, ApiError> {
    caller.require(UPLOADERS)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range; give 1 to 500"
        )));
    }
    let offset = p.offset.unwrap_or(0);
    let after = match p.after.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => None,
        Some(raw) => Some(salesai_core::store::CallCursor::decode(raw).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "after {raw:?} is not a page cursor; pass the next_after of the previous page"
            ))
        })?),
    };
    if after.is_some() && offset > 0 {
        return Err(ApiError::BadRequest(
            "give after or offset, not both".into(),
        ));
    }
    let filter = ConversationFilter {
        status: p
            .status
            .as_deref()
            .map(ConversationStatus::parse)
            .transpose()
            .map_err(|e| ApiError::BadRequest(e.0))?,
        product_line: p.product_line,
        rep_user_id: match caller.reach() {
            Reach::Own(user) => {
                if p.rep.as_deref().is_some_and(|r| r != user) {
                    return Err(ApiError::Forbidden(
                        "a rep's token lists only their own calls; leave out `rep`".into(),
                    ));
                }
                Some(user)
            }
            _ => p.rep,
        },
        reach: Some(caller.reach()),
        customer_number: p.customer_number,
        from: p
            .from
            .as_deref()
            .map(|d| parse_date("from", d))
            .transpose()?,
        to: p.to.as_deref().map(|d| parse_date("to", d)).transpose()?,
        limit,
        offset,
        after,
        ..Default::default()
    };
    let conversations = app.store.list_conversations(&filter).await?;
    let full = conversations.len() as u32 == limit;
    let next_after = conversations
        .last()
        .filter(|_| full)
        .map(|c| salesai_core::store::CallCursor::after(c, None).encode());
    Ok(Json(ConversationList {
        next_offset: (full && filter.after.is_none()).then(|| offset + limit),
        next_after,
        conversations: conversations.into_iter().map(public).collect(),
    }))
}

/// `POST /api/v1/conversations/{id}/retry`: resumes a failed conversation at its first
/// unfinished step (the transcript and finished agents are kept).
async fn retry(
    caller: Caller,
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(UPLOADERS)?;
    let conversation = find(&app, &id).await?;
    caller
        .may_reach(&app, conversation.rep_user_id.as_deref())
        .await?;
    let restarted = salesai_core::pipeline::retry(app.store.as_ref(), &conversation)
        .await
        .map_err(restart_error)?;
    tracing::info!(event = "conversation.retried", conversation_id = %conversation.id, resume_at = restarted.resumes_at, by = %caller.token.name, "conversation retried");
    Ok((StatusCode::ACCEPTED, Json(json!(restarted))))
}

/// `DELETE /api/v1/conversations/{id}` (admins): the conversation with everything that hangs
/// off it, and its stored upload. `salesai smoke` cleans up with it.
async fn remove(
    caller: Caller,
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Admin])?;
    let conversation = find(&app, &id).await?;
    delete_with_upload(&app, &conversation).await?;
    tracing::info!(event = "conversation.deleted", conversation_id = %conversation.id, case_number = conversation.case_number.as_str(), by = %caller.token.name, "conversation deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a conversation and its stored upload (the API's DELETE and the web app's delete).
pub(crate) async fn delete_with_upload(
    app: &App,
    conversation: &Conversation,
) -> Result<(), ApiError> {
    if let Some(key) = conversation
        .blob_key
        .as_deref()
        .and_then(|k| BlobKey::parse(k).ok())
    {
        app.blobs.delete(&key).await.map_err(|e| {
            ApiError::Unavailable(salesai_core::ErrorCode::StorageError, e.to_string())
        })?;
    }
    app.store.delete_conversation(&conversation.id).await?;
    Ok(())
}

/// `POST /api/v1/conversations/{id}/reanalyze`: keeps the transcript, runs the agents again.
async fn reanalyze(
    caller: Caller,
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require(UPLOADERS)?;
    let conversation = find(&app, &id).await?;
    caller
        .may_reach(&app, conversation.rep_user_id.as_deref())
        .await?;
    let restarted = salesai_core::pipeline::reanalyze(app.store.as_ref(), &conversation)
        .await
        .map_err(restart_error)?;
    tracing::info!(event = "conversation.reanalyzed", conversation_id = %conversation.id, by = %caller.token.name, "conversation re-analysis queued");
    Ok((StatusCode::ACCEPTED, Json(json!(restarted))))
}

#[cfg(test)]
mod fuzz {
    //! The multipart form's field handling against any input: names, text values and dates
    //! are accepted or refused with a 400, never a panic, and what is accepted is clean.

    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn field_names(name in "\\PC{0,300}", bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            for n in [name, String::from_utf8_lossy(&bytes).into_owned()] {
                if check_field_name(&n).is_ok() {
                    prop_assert!(!n.is_empty() && n.len() <= MAX_FIELD_NAME);
                    prop_assert!(n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')));
                }
            }
        }

        #[test]
        fn text_values(value in "\\PC{0,200}", control in any::<char>()) {
            let _ = check_text("title", &value);
            let with_control = format!("{value}{control}");
            if check_text("title", &with_control).is_ok() {
                prop_assert!(!with_control.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')));
            }
        }

        #[test]
        fn dates(raw in "\\PC{0,40}", year in any::<i32>(), month in 0u32..14, day in 0u32..33) {
            let _ = parse_date("from", &raw);
            let _ = parse_call_date(&raw);
            let iso = format!("{year:04}-{month:02}-{day:02}");
            let _ = parse_date("from", &iso);
            if let Ok(at) = parse_call_date(&iso) {
                prop_assert!((1990..=chrono::Datelike::year(&Utc::now()) + 1).contains(&chrono::Datelike::year(&at)), "{} → {}", iso, at);
            }
        }

        #[test]
        fn idempotency_keys(key in "\\PC{0,500}") {
            let digest = idempotency_digest(&key);
            prop_assert!(digest.len() <= 128);
            prop_assert_eq!(digest, idempotency_digest(&key));
        }
    }
}
