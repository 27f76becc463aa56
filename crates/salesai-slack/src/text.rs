//! The words salesai says in Slack, in each product line's language (`zh-TW` or English).

/// A message language: the project's one language type.
pub use salesai_core::language::Language;

/// A Slack text whose key is only known at run time (a stage name, a form's base field): the
/// catalogue's `slack_<key>` (`salesai_core::i18n`), a dash when there is none — a programming
/// error the tests catch (a wire name is never shown). Code that knows its text uses the
/// catalogue's field.
pub fn t(lang: Language, key: &str) -> &'static str {
    lang.t().get(&format!("slack_{key}")).unwrap_or("—")
}

/// What an error code means, for a rep (shared with the web app).
pub use salesai_core::pipeline::explain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_time_keys_are_in_the_catalogue() {
        for key in [
            "customer_number",
            "customer_name",
            "contact_name",
            "contact_phone",
            "contact_email",
            "downloading",
            "checking_file",
            "pending",
            "preparing",
            "transcribing",
            "analyzing",
            "completed",
            "failed",
        ] {
            for lang in [Language::En, Language::ZhTw] {
                assert!(
                    lang.t().get(&format!("slack_{key}")).is_some(),
                    "slack_{key} is missing from the catalogue"
                );
            }
        }
        assert_eq!(t(Language::ZhTw, "retry"), "重試");
        assert_eq!(t(Language::En, "retry"), "Retry");
        assert!(explain(Language::ZhTw, "FILE_DOWNLOAD_FAILED").contains("files:read"));
    }
}
