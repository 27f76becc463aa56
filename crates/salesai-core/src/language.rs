//! The one language type of the project: what a product line, a transcript, a Slack message
//! or a report is written in.

use crate::transcript::Segment;

/// A language salesai writes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Traditional Chinese (Taiwan).
    ZhTw,
    /// English.
    En,
}

impl Language {
    /// The language a tag names (`zh`, `zh-TW`, `zh-Hant` are Traditional Chinese; anything else
    /// English).
    pub fn of(tag: &str) -> Language {
        if tag.trim().to_ascii_lowercase().starts_with("zh") {
            Language::ZhTw
        } else {
            Language::En
        }
    }

    /// Its tag: `zh-TW` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Language::ZhTw => "zh-TW",
            Language::En => "en",
        }
    }

    /// The English or the Chinese text, in this language.
    pub fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Language::ZhTw => zh,
            Language::En => en,
        }
    }

    /// The language a transcript is mostly in.
    pub fn detect(segments: &[Segment]) -> Language {
        let (cjk, other) =
            segments
                .iter()
                .flat_map(|s| s.text.chars())
                .fold((0, 0), |(c, o), ch| {
                    if crate::transcript::is_cjk(ch) {
                        (c + 1, o)
                    } else if ch.is_alphabetic() {
                        (c, o + 1)
                    } else {
                        (c, o)
                    }
                });
        // A CJK character carries about as much as a short English word.
        if cjk * 4 >= other {
            Language::ZhTw
        } else {
            Language::En
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Language;

    #[test]
    fn tags_and_picks() {
        assert_eq!(Language::of("zh-TW"), Language::ZhTw);
        assert_eq!(Language::of("ZH"), Language::ZhTw);
        assert_eq!(Language::of("en-US"), Language::En);
        assert_eq!(Language::ZhTw.pick("yes", "是"), "是");
        assert_eq!(Language::En.code(), "en");
    }
}
