//! Forms read strictly: `Form` with the same rules for text as the JSON API's fields.
//!
//! axum's `Form` decodes `application/x-www-form-urlencoded` leniently: bytes that are not
//! UTF-8 become U+FFFD and control characters pass through, so a page stored what the API
//! refuses. [`Form`] here checks every name and value first — valid UTF-8, no control
//! characters but tab and line breaks (which only multi-line fields keep; the store checks
//! single-line ones) — and refuses anything else with a 400 page in the reader's language.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::i18n::Lang;
use super::session::PageError;

/// The largest form body read (meeting notes are the largest field, 20,000 characters).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// A form whose text passed [`check`], deserialised like axum's `Form`.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let lang = Lang(super::i18n::of_request(request.headers()));
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                PageError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Some(lang),
                    lang.t().this_form_is_too_large_to,
                )
            })?;
        if let Err(field) = check(&bytes) {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                Some(lang),
                &lang
                    .t()
                    .field_field_holds_characters_that_are
                    .replace("{field}", &field),
            ));
        }
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(Form(value)),
            Err(rejection) => Err(PageError::new(
                rejection.status(),
                Some(lang),
                lang.t().this_form_could_not_be_read,
            )),
        }
    }
}

/// Checks an urlencoded body: every name and value is valid UTF-8 once percent-decoded, with
/// no control character but tab, CR and LF. `Err` names the first field that is not.
pub fn check(body: &[u8]) -> Result<(), String> {
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut halves = pair.splitn(2, |b| *b == b'=');
        let name = decode(halves.next().unwrap_or_default());
        let value = decode(halves.next().unwrap_or_default());
        let shown = || {
            String::from_utf8_lossy(&name)
                .chars()
                .filter(|c| !c.is_control())
                .take(40)
                .collect::<String>()
        };
        for text in [&name, &value] {
            match std::str::from_utf8(text) {
                Ok(text)
                    if !text
                        .chars()
                        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r')) => {}
                _ => return Err(shown()),
            }
        }
    }
    Ok(())
}

/// Percent-decodes one urlencoded name or value (`+` is a space).
fn decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(raw[i + 1]), hex(raw[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_passes_and_control_characters_and_broken_utf8_do_not() {
        assert_eq!(
            check(b"csrf=abc&markdown=%E9%A0%90%E7%AE%97%0A-+a%09b"),
            Ok(())
        );
        assert_eq!(check(b""), Ok(()));
        assert_eq!(check(b"name=Ann%00"), Err("name".into()));
        assert_eq!(check(b"notes=a%01b"), Err("notes".into()));
        assert_eq!(check(b"notes=%FF%FE"), Err("notes".into()));
        assert_eq!(
            check(b"notes=%E9%A0"),
            Err("notes".into()),
            "a cut character"
        );
        assert_eq!(check(b"n%00ame=x"), Err("name".into()));
        assert_eq!(check(b"a=%"), Ok(()), "a lone % is a percent sign");
        assert_eq!(check(b"a=%4"), Ok(()));
        assert_eq!(check(b"a=%zz"), Ok(()));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = check(&body);
        }
    }
}
