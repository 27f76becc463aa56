//! One intake: every new conversation — an API upload, a Slack form, `salesai analyze`, the
//! benchmarks — is assembled here, so the case number, the limits on names and titles, what the
//! upload is and the first job are decided the same way wherever a call comes in.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::{
    CasePeriod, ConversationType, CustomerNumber, InvalidInput, Media, NewConversation, SlackThread,
};
use crate::pipeline::{DownloadJob, PrepareJob};
use crate::product_line::ProductLine;
use crate::queue::NewJob;

/// The longest customer name kept, in characters.
pub const MAX_CUSTOMER_NAME: usize = 200;
/// The longest title kept, in characters.
pub const MAX_TITLE: usize = 300;

/// Where a conversation came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `POST /api/v1/conversations`.
    Api,
    /// The Slack upload form.
    Slack,
    /// The web app's upload page.
    Web,
    /// `salesai analyze`.
    Cli,
    /// `salesai bench`.
    Bench,
}

impl Source {
    /// The name recorded in the conversation's metadata (`source`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Slack => "slack",
            Source::Web => "web",
            Source::Cli => "cli",
            Source::Bench => "bench",
        }
    }
}

/// A call coming in: what its source knows. [`Intake::conversation`] turns it into the
/// conversation to create.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Where it came in.
    pub source: Source,
    /// The customer it was with.
    pub customer_number: CustomerNumber,
    /// The customer's name (the customer number when not given).
    pub customer_name: Option<String>,
    /// The kind of call.
    pub conversation_type: ConversationType,
    /// A title (the file name when not given).
    pub title: Option<String>,
    /// When the call took place, if known.
    pub conversation_date: Option<DateTime<Utc>>,
    /// The rep's user id, if known.
    pub rep_user_id: Option<String>,
    /// Where the upload is stored; `None` while it is still in Slack.
    pub blob_key: Option<String>,
    /// What the upload is, as far as known.
    pub media: Media,
    /// Other answers (contact fields, the product line's form, the source's own ids).
    pub fields: Map<String, Value>,
    /// A repeated intake with this key returns the first conversation.
    pub idempotency_key: Option<String>,
    /// The Slack thread to report to.
    pub slack: Option<SlackThread>,
}

impl Intake {
    /// An intake from `source` for `customer_number`, everything else unknown.
    pub fn new(source: Source, customer_number: CustomerNumber) -> Intake {
        Intake {
            source,
            customer_number,
            customer_name: None,
            conversation_type: ConversationType::DiscoveryCall,
            title: None,
            conversation_date: None,
            rep_user_id: None,
            blob_key: None,
            media: Media::default(),
            fields: Map::new(),
            idempotency_key: None,
            slack: None,
        }
    }

    /// The conversation to create, on product line `line`, numbered in the month of `now` in
    /// `tz`. Its first job downloads the file from Slack when it is not stored yet, otherwise
    /// prepares it.
    pub fn conversation(
        self,
        line: &ProductLine,
        now: DateTime<Utc>,
        tz: chrono_tz::Tz,
    ) -> Result<NewConversation, InvalidInput> {
        let customer_name = clip(self.customer_name.as_deref(), MAX_CUSTOMER_NAME)
            .unwrap_or_else(|| self.customer_number.as_str().to_owned());
        let title = clip(self.title.as_deref(), MAX_TITLE)
            .or_else(|| clip(self.media.file_name.as_deref(), MAX_TITLE))
            .unwrap_or_default();
        let first_job = if self.blob_key.is_none() && self.slack.is_some() {
            NewJob::of(&DownloadJob {})
        } else {
            NewJob::of(&PrepareJob {})
        };
        let mut metadata = match without_nul(Value::Object(self.fields)) {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        metadata.insert("source".into(), Value::from(self.source.as_str()));
        let mut media = self.media;
        media.file_name = media.file_name.map(|n| n.replace('\0', ""));
        Ok(NewConversation {
            customer_number: self.customer_number,
            customer_name,
            product_line: line.id.clone(),
            case_prefix: line.prefix()?,
            case_period: CasePeriod::at(now, tz),
            conversation_type: self.conversation_type,
            title,
            conversation_date: self.conversation_date,
            rep_user_id: self.rep_user_id,
            blob_key: self.blob_key,
            media,
            metadata: Value::Object(metadata),
            first_job,
            idempotency_key: self.idempotency_key,
            slack: self.slack,
        })
    }
}

/// `text` on one line (a NUL dropped, other control characters made spaces), trimmed and cut
/// to `max` characters; `None` when empty.
fn clip(text: Option<&str>, max: usize) -> Option<String> {
    let line: String = text?
        .chars()
        .filter(|c| *c != '\0')
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    (!line.is_empty()).then(|| line.chars().take(max).collect())
}

/// `value` with every NUL taken out of its strings and keys: PostgreSQL stores neither in
/// text nor in `jsonb`, and one would refuse the whole write. Used for what people type and
/// for what providers answer (the store's agent outputs, analyses, chunk transcripts).
pub fn without_nul(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(s.replace('\0', "")),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.replace('\0', ""), without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UploadKind;
    use crate::pipeline::{DOWNLOAD, PREPARE};

    fn line() -> ProductLine {
        crate::product_line::builtin()
            .into_iter()
            .find(|l| l.id == "default")
            .expect("the default line")
    }

    #[test]
    fn an_upload_is_numbered_titled_and_prepared() {
        let mut intake = Intake::new(Source::Api, CustomerNumber::parse("C-1").unwrap());
        intake.blob_key = Some("uploads/x.mp3".into());
        intake.media = Media::sniffed(
            crate::media::MediaKind::Mp3,
            10,
            Some(format!("  {}  ", "n".repeat(400))),
        );
        let new = intake
            .conversation(&line(), Utc::now(), chrono_tz::Asia::Taipei)
            .unwrap();
        assert_eq!(
            new.customer_name, "C-1",
            "the number stands in for a missing name"
        );
        assert_eq!(
            new.title.chars().count(),
            MAX_TITLE,
            "the file name, clipped"
        );
        assert_eq!(new.media.kind, Some(UploadKind::Audio));
        assert_eq!(new.first_job.kind, PREPARE);
        assert_eq!(new.metadata["source"], "api");
    }

    #[test]
    fn hostile_text_comes_out_storable() {
        let mut intake = Intake::new(Source::Api, CustomerNumber::parse("C-1").unwrap());
        intake.customer_name = Some("好食\0餐廳\n".into());
        intake.title = Some("\u{0}\t".into());
        intake.media.file_name = Some("call\0.vtt".into());
        intake.fields.insert(
            "contact\0".into(),
            serde_json::json!({ "name": "A\u{0}my", "phones": ["0912\u{0}"] }),
        );
        let new = intake
            .conversation(&line(), Utc::now(), chrono_tz::Asia::Taipei)
            .unwrap();
        assert_eq!(new.customer_name, "好食餐廳");
        assert_eq!(
            new.title, "call.vtt",
            "an empty title falls back to the file name"
        );
        assert_eq!(new.media.file_name.as_deref(), Some("call.vtt"));
        assert_eq!(new.metadata["contact"]["name"], "Amy");
        assert_eq!(new.metadata["contact"]["phones"][0], "0912");
        assert!(!new.metadata.to_string().contains("\\u0000"));
    }

    #[test]
    fn a_slack_file_not_yet_stored_is_downloaded_first() {
        let mut intake = Intake::new(Source::Slack, CustomerNumber::parse("C-2").unwrap());
        intake.slack = Some(SlackThread {
            channel_id: "C1".into(),
            thread_ts: None,
        });
        intake.customer_name = Some("  ".into());
        let new = intake
            .conversation(&line(), Utc::now(), chrono_tz::Asia::Taipei)
            .unwrap();
        assert_eq!(new.first_job.kind, DOWNLOAD);
        assert_eq!(new.customer_name, "C-2");
        assert_eq!(new.media.kind, None, "unknown until downloaded");
    }
}
