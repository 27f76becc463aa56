//! The message catalogue: every word salesai shows people — pages, Slack messages, e-mails,
//! error pages — in each language it speaks, from `crates/salesai-core/messages/<code>.toml`.
//!
//! A text is a field of [`Messages`] (`lang.t().sign_in`), so a misspelt key does not compile;
//! the build fails when a language lacks a key or changes a text's `{placeholders}`
//! (`build.rs`). Adding a language is adding its file. Enum values are never shown by their
//! wire name: each has its label here too ([`Label`]).

include!(concat!(env!("OUT_DIR"), "/messages.rs"));

/// One language of the catalogue.
#[derive(Debug)]
pub struct Locale {
    /// Its tag, `en` or `zh-TW`.
    pub code: &'static str,
    /// Its name in itself, for the language switch (`English`, `中文`).
    pub name: &'static str,
    /// Its texts.
    pub messages: &'static Messages,
}

impl Locale {
    /// The locale a tag names: the same tag, else the same primary language (`zh-Hant` →
    /// `zh-TW`, `en-GB` → `en`), else `None`.
    pub fn find(tag: &str) -> Option<&'static Locale> {
        let tag = tag.trim();
        LOCALES
            .iter()
            .find(|l| l.code.eq_ignore_ascii_case(tag))
            .or_else(|| {
                let primary = tag.split(['-', '_']).next().unwrap_or_default();
                LOCALES.iter().find(|l| {
                    l.code
                        .split('-')
                        .next()
                        .is_some_and(|p| p.eq_ignore_ascii_case(primary))
                })
            })
    }

    /// The locale a tag names, English when none does.
    pub fn of(tag: &str) -> &'static Locale {
        Locale::find(tag).unwrap_or(&LOCALES[0])
    }
}

/// A text with its `{placeholders}` filled: `fill(m.n_calls, &[("n", &3)])`. A placeholder
/// without a value stays as written (the build guarantees every language has the same ones).
pub fn fill(text: &str, values: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut out = text.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), &value.to_string());
    }
    out
}

/// A value shown to people by its label in their language, never by its wire name.
pub trait Label {
    /// The label.
    fn label(&self, m: &'static Messages) -> &'static str;
}

impl Label for crate::domain::ConversationStatus {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::domain::ConversationStatus as S;
        match self {
            S::Pending => m.status_pending,
            S::Preparing => m.status_preparing,
            S::Transcribing => m.status_transcribing,
            S::Analyzing => m.status_analyzing,
            S::Completed => m.status_completed,
            S::Failed => m.status_failed,
        }
    }
}

impl Label for crate::domain::ConversationType {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::domain::ConversationType as T;
        match self {
            T::DiscoveryCall => m.call_type_discovery_call,
            T::Demo => m.call_type_demo,
            T::FollowUp => m.call_type_follow_up,
            T::Negotiation => m.call_type_negotiation,
            T::Closing => m.call_type_closing,
            T::Support => m.call_type_support,
        }
    }
}

impl Label for crate::domain::Role {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::domain::Role;
        match self {
            Role::Admin => m.role_admin,
            Role::Manager => m.role_manager,
            Role::Service => m.role_service,
            Role::Rep => m.role_rep,
        }
    }
}

impl Label for crate::analysis::derive::Qualification {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::analysis::derive::Qualification as Q;
        match self {
            Q::Strong => m.qualification_strong,
            Q::Medium => m.qualification_medium,
            Q::Weak => m.qualification_weak,
            Q::AtRisk => m.qualification_at_risk,
        }
    }
}

impl Label for crate::analysis::Strategy {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::analysis::Strategy as S;
        match self {
            S::CloseNow => m.strategy_close_now,
            S::SmallStep => m.strategy_small_step,
            S::KeepWarm => m.strategy_keep_warm,
        }
    }
}

impl Label for crate::analysis::Level {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::analysis::Level;
        match self {
            Level::Low => m.level_low,
            Level::Medium => m.level_medium,
            Level::High => m.level_high,
        }
    }
}

impl Label for crate::report::Standing {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::report::Standing as S;
        match self {
            S::Won => m.deal_stage_closed_won,
            S::Lost => m.deal_stage_closed_lost,
            S::Band(band) => band.label(m),
        }
    }
}

impl Label for crate::report::DealStage {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::report::DealStage as D;
        match self {
            D::Qualification => m.deal_stage_qualification,
            D::NeedsAnalysis => m.deal_stage_needs_analysis,
            D::Proposal => m.deal_stage_proposal,
            D::Negotiation => m.deal_stage_negotiation,
            D::ClosedWon => m.deal_stage_closed_won,
            D::ClosedLost => m.deal_stage_closed_lost,
        }
    }
}

impl Label for crate::report::Attitude {
    fn label(&self, m: &'static Messages) -> &'static str {
        use crate::report::Attitude as A;
        match self {
            A::Positive => m.attitude_positive,
            A::Neutral => m.attitude_neutral,
            A::Negative => m.attitude_negative,
        }
    }
}

impl crate::language::Language {
    /// This language's texts.
    pub fn t(self) -> &'static Messages {
        Locale::of(self.code()).messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_key_and_the_same_placeholders() {
        // The build already refuses a catalogue that fails this; the test says so in the suite.
        assert!(LOCALES.len() >= 2 && LOCALES[0].code == "en");
        for locale in LOCALES {
            for key in KEYS {
                let text = locale.messages.get(key).expect("every key");
                assert!(!text.trim().is_empty(), "{} {key}", locale.code);
                let english = LOCALES[0].messages.get(key).unwrap();
                let holes = |t: &str| {
                    t.match_indices('{')
                        .filter_map(|(i, _)| t[i + 1..].split_once('}').map(|(h, _)| h.to_owned()))
                        .filter(|h| {
                            !h.is_empty()
                                && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        })
                        .collect::<std::collections::BTreeSet<_>>()
                };
                assert_eq!(holes(text), holes(english), "{} {key}", locale.code);
            }
        }
    }

    #[test]
    fn tags_find_their_locale() {
        assert_eq!(Locale::of("zh-TW").code, "zh-TW");
        assert_eq!(Locale::of("zh-Hant").code, "zh-TW");
        assert_eq!(Locale::of("ZH").code, "zh-TW");
        assert_eq!(Locale::of("en-GB").code, "en");
        assert_eq!(Locale::of("fr").code, "en");
        assert!(Locale::find("fr").is_none());
        assert_eq!(fill("{n} calls, {n} done", &[("n", &3)]), "3 calls, 3 done");
    }
}
