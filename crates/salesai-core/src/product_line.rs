//! Product lines: one binary serves every line (the original copied its whole Slack bot per
//! line and the copies drifted). A product line is configuration: its case prefix, language,
//! competitors and methodology. Built-in defaults for `ichef`, `beauty` and `default`.

use serde::{Deserialize, Serialize};

use crate::analysis::derive::Methodology;
use crate::analysis::rules::Language;
use crate::domain::{CasePrefix, InvalidInput};

/// One product line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductLine {
    /// Its id, as used in uploads and URLs.
    pub id: String,
    /// Its name for people.
    pub display_name: String,
    /// The case-number prefix.
    pub case_prefix: String,
    /// `zh-TW` or `en`: the language of messages and of the rules engine's text.
    pub language: String,
    /// Speech-to-text language hint (ISO-639-1).
    pub stt_language: String,
    /// Competitors to watch for.
    pub competitors: Vec<String>,
    /// Convert speech-to-text output from Simplified to Traditional Chinese (Taiwan phrasing):
    /// Whisper often answers Taiwanese Mandarin in Simplified characters.
    pub convert_to_traditional: bool,
    /// Weights and thresholds.
    pub methodology: Methodology,
    /// The questions asked about a call when it is uploaded (besides the customer and contact
    /// fields every line asks): the Slack modal is built from these.
    #[serde(default)]
    pub form: Vec<FormField>,
    /// Where Slack progress and results go: the file's thread in the channel, or a DM to the rep.
    #[serde(default)]
    pub slack_reply: SlackReply,
}

/// Where a product line's Slack messages go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlackReply {
    /// In the thread of the message that shared the file.
    #[default]
    Thread,
    /// In a direct message to the rep who uploaded it.
    Dm,
}

/// One question of a product line's upload form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormField {
    /// The key its answer is stored under in the conversation's metadata.
    pub id: String,
    /// The label, in the line's language.
    pub label: String,
    /// Must it be answered.
    #[serde(default)]
    pub required: bool,
    /// The choices; an empty list makes it a free-text field.
    #[serde(default)]
    pub options: Vec<FormOption>,
}

/// One choice of a select field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormOption {
    /// The stored value.
    pub value: String,
    /// What people see.
    pub label: String,
}

impl FormField {
    fn select(id: &str, label: &str, required: bool, options: &[(&str, &str)]) -> Self {
        FormField {
            id: id.into(),
            label: label.into(),
            required,
            options: options
                .iter()
                .map(|(value, label)| FormOption {
                    value: (*value).into(),
                    label: (*label).into(),
                })
                .collect(),
        }
    }
}

fn yes_no_zh() -> [(&'static str, &'static str); 2] {
    [("yes", "是"), ("no", "否")]
}

impl ProductLine {
    /// The case prefix, checked.
    pub fn prefix(&self) -> Result<CasePrefix, InvalidInput> {
        CasePrefix::parse(&self.case_prefix)
    }

    /// The rules engine's language.
    pub fn rules_language(&self) -> Language {
        if self.language.starts_with("zh") {
            Language::ZhTw
        } else {
            Language::En
        }
    }
}

/// The built-in product lines.
pub fn builtin() -> Vec<ProductLine> {
    vec![
        ProductLine {
            id: "ichef".into(),
            display_name: "iCHEF".into(),
            case_prefix: "IC".into(),
            language: "zh-TW".into(),
            stt_language: "zh".into(),
            competitors: [
                "Toast",
                "Square",
                "肚肚",
                "Dudoo",
                "Ocard",
                "eats365",
                "FoodPanda",
            ]
            .map(String::from)
            .to_vec(),
            convert_to_traditional: true,
            methodology: Methodology::default(),
            form: vec![
                FormField::select(
                    "store_type",
                    "店型",
                    true,
                    &[
                        ("restaurant", "餐廳"),
                        ("cafe", "咖啡廳"),
                        ("drinks", "飲料店"),
                        ("snack", "小吃"),
                        ("bar", "酒吧"),
                        ("other", "其他"),
                    ],
                ),
                FormField::select(
                    "service_type",
                    "服務型態",
                    false,
                    &[
                        ("dine_in", "內用"),
                        ("takeaway", "外帶"),
                        ("delivery", "外送"),
                        ("mixed", "混合"),
                    ],
                ),
                FormField::select(
                    "current_system",
                    "目前系統",
                    false,
                    &[
                        ("none", "無"),
                        ("paper", "手寫單"),
                        ("pos_other", "其他 POS"),
                        ("competitor", "競品"),
                    ],
                ),
                FormField::select("decision_maker_present", "決策者在場", true, &yes_no_zh()),
            ],
            slack_reply: SlackReply::Thread,
        },
        ProductLine {
            id: "beauty".into(),
            display_name: "Beauty".into(),
            case_prefix: "BT".into(),
            language: "zh-TW".into(),
            stt_language: "zh".into(),
            competitors: ["Fresha", "Booksy", "Square", "SimplyBook", "Line 預約"]
                .map(String::from)
                .to_vec(),
            convert_to_traditional: true,
            methodology: Methodology::default(),
            form: vec![
                FormField::select(
                    "store_type",
                    "店型",
                    true,
                    &[
                        ("hair", "美髮"),
                        ("nail", "美甲"),
                        ("beauty", "美容"),
                        ("spa", "SPA"),
                        ("other", "其他"),
                    ],
                ),
                FormField::select(
                    "service_type",
                    "服務型態",
                    false,
                    &[
                        ("appointment", "預約制"),
                        ("walk_in", "現場"),
                        ("mixed", "混合"),
                    ],
                ),
                FormField::select(
                    "current_system",
                    "目前系統",
                    false,
                    &[
                        ("none", "無"),
                        ("paper", "紙本"),
                        ("line", "LINE"),
                        ("competitor", "競品"),
                    ],
                ),
                FormField::select("decision_maker_present", "決策者在場", true, &yes_no_zh()),
            ],
            slack_reply: SlackReply::Thread,
        },
        ProductLine {
            id: "default".into(),
            display_name: "Default".into(),
            case_prefix: "SA".into(),
            language: "en".into(),
            stt_language: "en".into(),
            competitors: Vec::new(),
            convert_to_traditional: false,
            methodology: Methodology::default(),
            form: vec![
                FormField::select(
                    "company_size",
                    "Company size",
                    false,
                    &[
                        ("1-10", "1–10"),
                        ("11-50", "11–50"),
                        ("51-200", "51–200"),
                        ("200+", "200+"),
                    ],
                ),
                FormField {
                    id: "current_system".into(),
                    label: "Current system".into(),
                    required: false,
                    options: Vec::new(),
                },
                FormField::select(
                    "decision_maker_present",
                    "Decision maker present",
                    true,
                    &[("yes", "Yes"), ("no", "No")],
                ),
            ],
            slack_reply: SlackReply::Thread,
        },
    ]
}

/// Finds a product line by id among `lines`.
pub fn find<'a>(lines: &'a [ProductLine], id: &str) -> Result<&'a ProductLine, InvalidInput> {
    lines.iter().find(|l| l.id == id).ok_or_else(|| {
        InvalidInput(format!(
            "unknown product line {id:?}; known: {}",
            lines
                .iter()
                .map(|l| l.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtins_are_valid() {
        let lines = super::builtin();
        for line in &lines {
            assert!(line.prefix().is_ok());
            assert!(line.methodology.validate().is_ok());
        }
        assert!(super::find(&lines, "ichef").is_ok());
        assert!(
            super::find(&lines, "nope")
                .unwrap_err()
                .0
                .contains("ichef, beauty, default")
        );
    }
}
