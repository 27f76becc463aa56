//! The page language: the person's choice (a cookie set by the language switch), else the
//! browser's `Accept-Language`, else Traditional Chinese (the team's language). Every text on a
//! page comes from the message catalogue (`lang.t().key`, `salesai_core::i18n`), whose build
//! fails when a language lacks a text; values are shown by their label (`Label`), never their
//! wire name.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use salesai_core::analysis::derive::Qualification;
use salesai_core::domain::{ConversationStatus, ConversationType};
use salesai_core::i18n::Label;
use salesai_core::language::Language;

/// The cookie that keeps the chosen language.
pub const LANG_COOKIE: &str = "salesai_lang";

/// The language of the page being rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lang(pub Language);

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang(of_request(&parts.headers)))
    }
}

/// The language a request asks for.
pub fn of_request(headers: &axum::http::HeaderMap) -> Language {
    // Set as `__Host-salesai_lang` over https, `salesai_lang` over http.
    if let Some(chosen) = super::cookies::cookie(headers, &format!("__Host-{LANG_COOKIE}"))
        .or_else(|| super::cookies::cookie(headers, LANG_COOKIE))
    {
        return Language::of(&chosen);
    }
    let Some(accept) = headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Language::ZhTw;
    };
    // The first language with the highest weight that salesai speaks.
    let mut best: Option<(f32, Language)> = None;
    for part in accept.split(',') {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = pieces
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let lang = if tag.starts_with("zh") {
            Language::ZhTw
        } else if tag.starts_with("en") {
            Language::En
        } else {
            continue;
        };
        if best.is_none_or(|(w, _)| q > w) {
            best = Some((q, lang));
        }
    }
    best.map(|(_, l)| l).unwrap_or(Language::En)
}

impl Lang {
    /// The page's texts, from the message catalogue (`salesai_core::i18n`).
    pub fn t(self) -> &'static salesai_core::i18n::Messages {
        self.0.t()
    }

    /// The `lang` attribute of the page.
    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// A conversation status's label.
    pub fn status(self, status: ConversationStatus) -> &'static str {
        status.label(self.t())
    }

    /// A qualification band's label, from its stored name (`—` when there is none).
    pub fn qualification(self, band: &str) -> &'static str {
        Qualification::parse(band).map_or("—", |q| q.label(self.t()))
    }

    /// A kind of call's label, from its stored name.
    pub fn call_type(self, kind: &str) -> &'static str {
        ConversationType::parse(kind).map_or(self.t().call_type_other, |k| k.label(self.t()))
    }

    /// A role's label.
    pub fn role(self, role: salesai_core::domain::Role) -> &'static str {
        role.label(self.t())
    }
}

/// A catalogue text whose `{placeholders}` are commands or codes, each shown as `<code>` (typed
/// as is, in every language); the text around them is escaped.
pub fn with_code(text: &str, codes: &[(&str, &str)]) -> maud::Markup {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        let Some((_, code)) = codes.iter().find(|(n, _)| *n == name) else {
            out.push_str(&maud::html! { (rest[..open + close + 1]) }.into_string());
            rest = &rest[open + close + 1..];
            continue;
        };
        out.push_str(&maud::html! { (rest[..open]) code { (code) } }.into_string());
        rest = &rest[open + close + 1..];
    }
    out.push_str(&maud::html! { (rest) }.into_string());
    maud::PreEscaped(out)
}

/// A time in the team's time zone, as `2026-11-29 14:05`.
pub fn when(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// A date in the team's time zone.
pub fn day(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%d").to_string()
}

/// A position or length in a recording: `m:ss`, or `h:mm:ss` from an hour.
pub fn clock(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn language_comes_from_choice_then_browser() {
        assert_eq!(of_request(&headers(&[])), Language::ZhTw);
        assert_eq!(
            of_request(&headers(&[("accept-language", "en-US,en;q=0.9")])),
            Language::En
        );
        assert_eq!(
            of_request(&headers(&[(
                "accept-language",
                "fr-FR, en;q=0.5, zh-TW;q=0.8"
            )])),
            Language::ZhTw
        );
        assert_eq!(
            of_request(&headers(&[("accept-language", "de")])),
            Language::En
        );
        assert_eq!(
            of_request(&headers(&[
                ("accept-language", "zh-TW"),
                ("cookie", "a=b; salesai_lang=en")
            ])),
            Language::En
        );
    }

    #[test]
    fn clock_reads_like_a_player() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(65_400), "1:05");
        assert_eq!(clock(3_725_000), "1:02:05");
        assert_eq!(clock(-5), "0:00");
    }
}
