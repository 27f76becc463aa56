//! Domain newtypes that validate when built ("parse, don't validate"), so that code holding a
//! `CustomerNumber` or a `CaseNumber` never has to check it again.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

pub use crate::error::InvalidInput;

/// The customer's number in the sales team's CRM: the only key an opportunity is found by.
///
/// The original matched customers by company name among the latest 100 rows and attached calls
/// to the wrong customer; a number cannot be misspelled into someone else's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerNumber(String);

impl CustomerNumber {
    /// Trims and checks a customer number: 1–64 letters, digits, `-`, `_` or `.`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(InvalidInput(
                "customer number must be 1 to 64 characters".to_owned(),
            ));
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(InvalidInput(format!(
                "customer number {trimmed:?} may only hold letters, digits, '-', '_' and '.'"
            )));
        }
        Ok(CustomerNumber(trimmed.to_owned()))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CustomerNumber {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CustomerNumber::parse(&value)
    }
}

impl From<CustomerNumber> for String {
    fn from(value: CustomerNumber) -> Self {
        value.0
    }
}

/// A product line's case-number prefix, such as `IC` (iCHEF) or `BT` (beauty).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CasePrefix(String);

impl CasePrefix {
    /// 1–8 upper-case ASCII letters or digits.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.is_empty()
            || raw.len() > 8
            || !raw
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(InvalidInput(format!(
                "case prefix {raw:?} must be 1 to 8 upper-case letters or digits"
            )));
        }
        Ok(CasePrefix(raw.to_owned()))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A case number, `YYYYMM-<prefix><seq>`, for example `202611-IC0042`.
///
/// The month is the month in the team's time zone when the conversation was created; the
/// sequence restarts every month per prefix and is allocated atomically by the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct CaseNumber(String);

impl CaseNumber {
    /// Builds a case number from its parts; the sequence is zero-padded to four digits.
    pub fn new(period: &CasePeriod, prefix: &CasePrefix, sequence: u64) -> Self {
        CaseNumber(format!("{}-{}{:04}", period.0, prefix.0, sequence))
    }

    /// Parses `YYYYMM-<PREFIX><digits>`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let bad = || {
            InvalidInput(format!(
                "case number {raw:?} is not of the form YYYYMM-<PREFIX><number>, e.g. 202611-IC0042"
            ))
        };
        let (period, rest) = raw.trim().split_once('-').ok_or_else(bad)?;
        if period.len() != 6 || !period.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let digits_at = rest.find(|c: char| c.is_ascii_digit()).ok_or_else(bad)?;
        let (prefix, digits) = rest.split_at(digits_at);
        CasePrefix::parse(prefix).map_err(|_| bad())?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(CaseNumber(raw.trim().to_owned()))
    }

    /// The case number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CaseNumber {
    type Error = InvalidInput;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CaseNumber::parse(&value)
    }
}

impl From<CaseNumber> for String {
    fn from(value: CaseNumber) -> Self {
        value.0
    }
}

impl std::fmt::Display for CaseNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `YYYYMM` month a case number belongs to, computed in the team's time zone.
///
/// The original computed day and month boundaries in UTC, so a Taipei call at 07:00 on the 1st
/// landed in the previous month.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CasePeriod(String);

impl CasePeriod {
    /// The period containing `at` in time zone `tz`.
    pub fn at(at: DateTime<Utc>, tz: chrono_tz::Tz) -> Self {
        let local = at.with_timezone(&tz);
        CasePeriod(format!("{:04}{:02}", local.year(), local.month()))
    }

    /// The period as text, `YYYYMM`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a user may do. Roles are stored as these lower-case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including queue operations and token management.
    Admin,
    /// Reads the team's conversations and reports.
    Manager,
    /// A machine client (an integration) that uploads and reads conversations.
    Service,
    /// A sales rep: their own conversations.
    Rep,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Service => "service",
            Role::Rep => "rep",
        }
    }

    /// Parses a stored or typed role name.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "manager" => Ok(Role::Manager),
            "service" => Ok(Role::Service),
            "rep" => Ok(Role::Rep),
            other => Err(InvalidInput(format!(
                "unknown role {other:?}; use admin, manager, service or rep"
            ))),
        }
    }

    /// Whether everything this role may do, `other` may do too: a rep's powers are within
    /// every role's, a manager's and a service's within an admin's, and each role within
    /// itself. Managers and services are not within each other (one reaches teams, the other
    /// acts for anyone).
    pub fn is_within(self, other: Role) -> bool {
        self == other || self == Role::Rep || other == Role::Admin
    }

    /// The widest role within both `self` and `other`: what a person's API token may do when
    /// the token was made with `self` and the person now holds `other` (a token can only narrow
    /// its person's role, and a demotion applies to it at once).
    pub fn meet(self, other: Role) -> Role {
        if self.is_within(other) {
            self
        } else if other.is_within(self) {
            other
        } else {
            Role::Rep
        }
    }
}

/// Where a conversation is in its life.
///
/// `pending → preparing → transcribing → analyzing → completed`, or `failed` from any stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// Stored, waiting for a worker.
    Pending,
    /// Probing and normalising the audio, planning chunks.
    Preparing,
    /// Speech-to-text running on the chunks.
    Transcribing,
    /// The agents are scoring the transcript.
    Analyzing,
    /// Analysis saved and the rep notified.
    Completed,
    /// Stopped with an error; see the conversation's error.
    Failed,
}

impl ConversationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Pending => "pending",
            ConversationStatus::Preparing => "preparing",
            ConversationStatus::Transcribing => "transcribing",
            ConversationStatus::Analyzing => "analyzing",
            ConversationStatus::Completed => "completed",
            ConversationStatus::Failed => "failed",
        }
    }

    /// Parses a stored status.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Ok(match raw {
            "pending" => ConversationStatus::Pending,
            "preparing" => ConversationStatus::Preparing,
            "transcribing" => ConversationStatus::Transcribing,
            "analyzing" => ConversationStatus::Analyzing,
            "completed" => ConversationStatus::Completed,
            "failed" => ConversationStatus::Failed,
            other => {
                return Err(InvalidInput(format!(
                    "unknown conversation status {other:?}"
                )));
            }
        })
    }
}

/// The kind of sales conversation, as the rep picks it on upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationType {
    /// First call: needs and pains.
    DiscoveryCall,
    /// Product demonstration.
    Demo,
    /// Any later call.
    FollowUp,
    /// Price and terms.
    Negotiation,
    /// Asking for the signature.
    Closing,
    /// After-sales support.
    Support,
}

impl ConversationType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationType::DiscoveryCall => "discovery_call",
            ConversationType::Demo => "demo",
            ConversationType::FollowUp => "follow_up",
            ConversationType::Negotiation => "negotiation",
            ConversationType::Closing => "closing",
            ConversationType::Support => "support",
        }
    }

    /// Parses a stored or submitted type.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Ok(match raw.trim() {
            "discovery_call" => ConversationType::DiscoveryCall,
            "demo" => ConversationType::Demo,
            "follow_up" => ConversationType::FollowUp,
            "negotiation" => ConversationType::Negotiation,
            "closing" => ConversationType::Closing,
            "support" => ConversationType::Support,
            other => {
                return Err(InvalidInput(format!(
                    "unknown conversation type {other:?}; use discovery_call, demo, follow_up, negotiation, closing or support"
                )));
            }
        })
    }
}

/// A score on the one scale salesai uses everywhere: an integer from 0 to 100.
///
/// The original mixed 1–5 and 0–100 scales and broke its own alerts; this type cannot hold
/// anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Score(u8);

impl Score {
    /// Checks that `value` is within 0–100.
    pub fn new(value: i64) -> Result<Self, InvalidInput> {
        if (0..=100).contains(&value) {
            Ok(Score(value as u8))
        } else {
            Err(InvalidInput(format!("score {value} is outside 0 to 100")))
        }
    }

    /// The score as a number.
    pub fn value(self) -> u8 {
        self.0
    }
}

impl schemars::JsonSchema for Score {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Score".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 0,
            "maximum": 100,
            "description": "an integer score from 0 to 100"
        })
    }
}

impl TryFrom<i64> for Score {
    type Error = InvalidInput;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Score::new(value)
    }
}

impl From<Score> for i64 {
    fn from(value: Score) -> Self {
        i64::from(value.0)
    }
}

/// The stage and cause of a conversation's failure, as shown in the API and in Slack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StageError {
    /// The status the conversation was in when it failed.
    pub stage: ConversationStatus,
    /// The stable error code.
    pub code: String,
    /// A plain-language message.
    pub message: String,
    /// Whether `retry` can help.
    pub retryable: bool,
}

/// What an upload supplies to create a conversation.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// The customer the call was with; the opportunity is found or created by this.
    pub customer_number: CustomerNumber,
    /// The customer's display name, used when the opportunity is created.
    pub customer_name: String,
    /// The product line's id (`ichef`, `beauty`, `default`, …).
    pub product_line: String,
    /// The product line's case prefix.
    pub case_prefix: CasePrefix,
    /// The month the case number is allocated in.
    pub case_period: CasePeriod,
    /// The kind of call.
    pub conversation_type: ConversationType,
    /// A short title; may be empty.
    pub title: String,
    /// When the call took place, if known.
    pub conversation_date: Option<DateTime<Utc>>,
    /// The rep's salesai user id, if known.
    pub rep_user_id: Option<String>,
    /// Where the recording or transcript is stored, if already uploaded.
    pub blob_key: Option<String>,
    /// What was uploaded (as much as is known before the file is read).
    pub media: Media,
    /// Free-form upload metadata (contact fields, the product line's form answers).
    pub metadata: serde_json::Value,
    /// The first job of the conversation's pipeline, enqueued in the same transaction.
    pub first_job: crate::queue::NewJob,
    /// An upload's idempotency key: a repeated upload with the same key returns the first.
    pub idempotency_key: Option<String>,
    /// The Slack thread the rep hears back in, for conversations started from Slack.
    pub slack: Option<SlackThread>,
}

/// Whether an upload is a recording or a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UploadKind {
    /// A recording: goes through speech-to-text.
    Audio,
    /// A transcript file (WebVTT, SRT, JSON segments, text): parsed, no speech-to-text.
    Transcript,
}

impl UploadKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Audio => "audio",
            UploadKind::Transcript => "transcript",
        }
    }

    /// Parses the stored name.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        match raw {
            "audio" => Ok(UploadKind::Audio),
            "transcript" => Ok(UploadKind::Transcript),
            other => Err(InvalidInput(format!(
                "media kind {other:?} is neither audio nor transcript"
            ))),
        }
    }
}

/// The upload a conversation is made from. A file shared in Slack is known by name and size
/// first; its kind and format once it is downloaded and sniffed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Media {
    /// Recording or transcript; `None` until the file has been read.
    pub kind: Option<UploadKind>,
    /// The format's file extension (`mp3`, `m4a`, `vtt`, …).
    pub format: Option<String>,
    /// The upload's size.
    pub bytes: Option<u64>,
    /// The uploaded file's name.
    pub file_name: Option<String>,
}

impl Media {
    /// Whether the transcript's times are estimated: a plain-text upload has none, so they are
    /// derived from the text's length (`transcript::parse`). Every view that shows a time says so.
    pub fn times_estimated(&self) -> bool {
        self.format.as_deref() == Some("txt")
    }

    /// An upload whose first bytes have been read.
    pub fn sniffed(kind: crate::media::MediaKind, bytes: u64, file_name: Option<String>) -> Media {
        Media {
            kind: Some(if kind.is_audio() {
                UploadKind::Audio
            } else {
                UploadKind::Transcript
            }),
            format: Some(kind.extension().to_owned()),
            bytes: Some(bytes),
            file_name,
        }
    }

    /// Whether the upload is a transcript file (unknown counts as a recording).
    pub fn is_transcript(&self) -> bool {
        self.kind == Some(UploadKind::Transcript)
    }
}

/// Where in Slack a conversation reports back: a channel (or DM) and the thread in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SlackThread {
    /// The channel or DM id.
    pub channel_id: String,
    /// The thread's parent message; `None` posts at the top level.
    pub thread_ts: Option<String>,
}

/// A customer being sold to, found by its customer number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opportunity {
    /// Its id.
    pub id: String,
    /// The customer number (unique).
    pub customer_number: String,
    /// The company's name.
    pub company_name: String,
    /// The product line.
    pub product_line: String,
    /// The owning rep's user id.
    pub owner_user_id: Option<String>,
    /// The pipeline status (`new`, …).
    pub status: String,
    /// The latest completed conversation's overall score.
    pub latest_score: Option<u8>,
    /// How many conversations it has.
    pub conversations: u64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A person who uses salesai.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Its id.
    pub id: String,
    /// E-mail, when known.
    pub email: Option<String>,
    /// Name for people.
    pub display_name: String,
    /// What they may do.
    pub role: Role,
    /// Their Slack user id, when linked.
    pub slack_user_id: Option<String>,
}

/// A freshly created conversation's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CreatedConversation {
    /// The conversation id (a UUID).
    pub id: String,
    /// The allocated case number.
    pub case_number: CaseNumber,
    /// The opportunity the conversation belongs to.
    pub opportunity_id: String,
    /// The id of the first pipeline job.
    pub job_id: i64,
    /// False when an earlier upload with the same idempotency key was returned instead.
    pub created: bool,
}

/// A conversation as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Conversation {
    /// The conversation id.
    pub id: String,
    /// Its case number.
    pub case_number: CaseNumber,
    /// The opportunity it belongs to.
    pub opportunity_id: String,
    /// The customer's number (the opportunity's).
    #[serde(default)]
    pub customer_number: String,
    /// The customer's name (the opportunity's).
    #[serde(default)]
    pub customer_name: String,
    /// The product line id.
    pub product_line: String,
    /// The kind of call.
    pub conversation_type: ConversationType,
    /// The title.
    pub title: String,
    /// Its current status.
    pub status: ConversationStatus,
    /// The failure, when `status` is `failed`.
    pub error: Option<StageError>,
    /// Where the media is stored.
    pub blob_key: Option<String>,
    /// The rep's user id.
    pub rep_user_id: Option<String>,
    /// When the call took place.
    pub conversation_date: Option<DateTime<Utc>>,
    /// What was uploaded.
    #[serde(default)]
    pub media: Media,
    /// Upload metadata: the contact fields and the product line's form answers.
    pub metadata: serde_json::Value,
    /// The Slack thread it reports to, if it came from Slack.
    pub slack: Option<SlackThread>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Conversation {
    /// When the call happened as lists order, filter and count it: the date given at upload,
    /// else the upload time (the store's `call_at` column is the same expression).
    pub fn call_at(&self) -> DateTime<Utc> {
        self.conversation_date.unwrap_or(self.created_at)
    }
}

/// Which conversations a principal reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reach {
    /// Every conversation: admins, service tokens, and tokens that belong to no person.
    All,
    /// The person's own calls and those of the reps in the teams they manage (managers).
    Teams(String),
    /// Only the person's own calls (reps).
    Own(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_token_role_only_narrows_its_person() {
        use Role::*;
        assert_eq!(Admin.meet(Rep), Rep, "a demoted admin's token");
        assert_eq!(Rep.meet(Admin), Rep);
        assert_eq!(Manager.meet(Admin), Manager);
        assert_eq!(Admin.meet(Manager), Manager);
        assert_eq!(Service.meet(Manager), Rep);
        assert_eq!(Manager.meet(Service), Rep);
        for role in [Admin, Manager, Service, Rep] {
            assert_eq!(role.meet(role), role);
            assert!(Rep.is_within(role) && role.is_within(Admin));
        }
        assert!(!Admin.is_within(Manager) && !Service.is_within(Manager));
    }

    #[test]
    fn customer_numbers_are_trimmed_and_checked() {
        assert_eq!(CustomerNumber::parse("  C-001 ").unwrap().as_str(), "C-001");
        assert!(CustomerNumber::parse("").is_err());
        assert!(CustomerNumber::parse("a b").is_err());
        assert!(CustomerNumber::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn case_numbers_format_and_parse() {
        let period = CasePeriod("202611".into());
        let prefix = CasePrefix::parse("IC").unwrap();
        let case = CaseNumber::new(&period, &prefix, 42);
        assert_eq!(case.as_str(), "202611-IC0042");
        assert_eq!(CaseNumber::parse("202611-IC0042").unwrap(), case);
        assert_eq!(
            CaseNumber::parse("202611-BT12345").unwrap().as_str(),
            "202611-BT12345"
        );
        for bad in [
            "",
            "202611",
            "2026-IC1",
            "202611-ic1",
            "202611-IC",
            "202611-1",
        ] {
            assert!(CaseNumber::parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn case_period_uses_the_team_time_zone() {
        // 2026-11-30 17:00 UTC is already 1 December in Taipei.
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 0).unwrap();
        assert_eq!(
            CasePeriod::at(at, chrono_tz::Asia::Taipei).as_str(),
            "202612"
        );
        assert_eq!(CasePeriod::at(at, chrono_tz::UTC).as_str(), "202611");
    }

    #[test]
    fn scores_stay_within_0_to_100() {
        assert_eq!(Score::new(0).unwrap().value(), 0);
        assert_eq!(Score::new(100).unwrap().value(), 100);
        assert!(Score::new(101).is_err());
        assert!(Score::new(-1).is_err());
        assert!(serde_json::from_str::<Score>("150").is_err());
    }

    #[test]
    fn roles_and_types_parse() {
        assert_eq!(Role::parse("Admin").unwrap(), Role::Admin);
        assert!(Role::parse("root").is_err());
        assert_eq!(
            ConversationType::parse("follow_up").unwrap().as_str(),
            "follow_up"
        );
        assert!(ConversationStatus::parse("done").is_err());
    }
}
