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
