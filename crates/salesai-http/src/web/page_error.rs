//! The HTML error page: a refusal or a failure, with its status and what to do, in the reader's
//! language.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salesai_core::store::StoreError;

use super::i18n::Lang;

/// A page that could not be shown: an HTML error page with the status, in the viewer's language
/// when known (both languages otherwise).
#[derive(Debug)]
pub struct PageError {
    /// The status.
    pub status: StatusCode,
    lang: Option<Lang>,
    message: String,
}

impl PageError {
    /// An error page.
    pub fn new(status: StatusCode, lang: Option<Lang>, message: &str) -> PageError {
        PageError {
            status,
            lang,
            message: message.to_owned(),
        }
    }

    /// 404 for a call or page that is not there.
    pub fn not_found(lang: Lang) -> PageError {
        PageError::new(
            StatusCode::NOT_FOUND,
            Some(lang),
            lang.t().there_is_no_such_page_or,
        )
    }

    /// 403 with the reason.
    pub fn forbidden(lang: Lang, reason: &str) -> PageError {
        PageError::new(StatusCode::FORBIDDEN, Some(lang), reason)
    }
}

impl From<StoreError> for PageError {
    fn from(err: StoreError) -> PageError {
        let status = match &err {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(event = "web.store_error", error = %err, "a page could not be read");
        }
        let message = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                "The database cannot be reached right now. Try again in a minute. · 目前無法連線到資料庫，請稍後再試。".to_owned()
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                "Something went wrong; the server log has the details. · 系統發生錯誤，詳情請見伺服器記錄。".to_owned()
            }
            _ => err.to_string(),
        };
        PageError {
            status,
            lang: None,
            message,
        }
    }
}

impl PageError {
    /// An API refusal as a page, keeping its status and its message (which says what to do).
    pub fn from_api(lang: Lang, err: crate::ApiError) -> PageError {
        use crate::ApiError as E;
        let message = match &err {
            E::BadRequest(m)
            | E::Forbidden(m)
            | E::NotFound(m)
            | E::Conflict(m)
            | E::Unprocessable(_, m)
            | E::PayloadTooLarge(m)
            | E::UnsupportedMedia(m) => Some(m.clone()),
            _ => None,
        };
        let status = err.into_response().status();
        match message {
            Some(m) => PageError::new(status, Some(lang), &m),
            None => PageError::new(
                status,
                Some(lang),
                lang.t().salesai_cannot_do_this_right_now,
            ),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let lang = self
            .lang
            .unwrap_or(Lang(salesai_core::language::Language::ZhTw));
        let title = match self.status {
            StatusCode::NOT_FOUND => lang.t().not_found,
            StatusCode::FORBIDDEN => lang.t().not_allowed,
            StatusCode::BAD_REQUEST => lang.t().cannot_do_that,
            StatusCode::CONFLICT => lang.t().not_now,
            StatusCode::TOO_MANY_REQUESTS => lang.t().too_many_tries,
            _ => lang.t().something_went_wrong,
        };
        let body = super::layout::bare(
            lang,
            title,
            maud::html! {
                main.narrow {
                    section.card.error-card {
                        p.error-code { (self.status.as_u16()) }
                        h1 { (title) }
                        p { (self.message) }
                        p { a.button href="/" { (lang.t().go_to_home_page) } }
                    }
                }
            },
        );
        (self.status, body).into_response()
    }
}
