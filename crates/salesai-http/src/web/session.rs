//! Web sessions: the cookie, who it belongs to, CSRF, and the page errors.
//!
//! A session is a random secret in an HttpOnly, SameSite=Lax cookie (Secure when the public URL
//! is https); the database keeps only its hash, with an idle and an absolute expiry, so a
//! session works on every node and ends everywhere at once (sign out, deactivation).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use salesai_core::App;
use salesai_core::access::Principal;
use salesai_core::store::{NewSession, StoreError, WebSession};

use super::i18n::Lang;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "salesai_session";

/// A session ends after this long without a request.
pub const IDLE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A session ends this long after sign-in, however active.
pub const ABSOLUTE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether this app's cookies are `Secure` (its public URL is https).
fn secure(app: &App) -> bool {
    app.public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

/// A cookie's name as this app sets and reads it: `__Host-<name>` when served over https (the
/// browser then accepts it only when Secure, for path `/` and with no Domain, so no sibling
/// subdomain can plant or shadow it), the plain name over http (a local install).
pub fn cookie_name(app: &App, name: &str) -> String {
    if secure(app) {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// A `Set-Cookie` value for this app: path `/`, SameSite=Lax, HttpOnly unless `script`
/// (never for the session), Secure and `__Host-` prefixed when the public URL is https.
pub fn set_cookie(app: &App, name: &str, value: &str, max_age_secs: u64, script: bool) -> String {
    format!(
        "{}={value}; Path=/; Max-Age={max_age_secs}; SameSite=Lax{}{}",
        cookie_name(app, name),
        if script { "" } else { "; HttpOnly" },
        if secure(app) { "; Secure" } else { "" }
    )
}

/// The value of one of this app's cookies (by its unprefixed name; see [`cookie_name`]).
pub fn app_cookie(app: &App, headers: &HeaderMap, name: &str) -> Option<String> {
    cookie(headers, &cookie_name(app, name))
}

/// Whether a request was made by another site's page: the browser says so (`Sec-Fetch-Site:
/// cross-site`), or, from a browser that does not send that header, its `Origin` is neither
/// this request's host nor the configured public URL's. State-changing requests and sign-in
/// POSTs made this way are refused (a sign-in link auto-submitted from another site would sign
/// the victim into the sender's account).
pub fn is_cross_site(app: &App, headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("sec-fetch-site") {
        Some(site) => site == "cross-site",
        None => {
            let Some(origin) = text("origin") else {
                return false;
            };
            let authority = |url: &str| {
                url::Url::parse(url).ok().and_then(|u| {
                    u.host_str()
                        .map(|h| match u.port() {
                            Some(p) => format!("{h}:{p}"),
                            None => h.to_owned(),
                        })
                        .map(|a| a.to_ascii_lowercase())
                })
            };
            let Some(from) = authority(origin) else {
                return true;
            };
            let host = text("host").map(str::to_ascii_lowercase);
            let public = app.public_url.as_deref().and_then(authority);
            host.as_deref() != Some(from.as_str()) && public.as_deref() != Some(from.as_str())
        }
    }
}

/// Refuses (403, nothing done) a state-changing request another site's page made.
pub fn refuse_cross_site(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    lang: Lang,
) -> Result<(), PageError> {
    if method != Method::GET && method != Method::HEAD && is_cross_site(app, headers) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            Some(lang),
            lang.t().another_site_tried_to_act_in,
        ));
    }
    Ok(())
}

/// The signed-in person of a page request.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Their session.
    pub session: WebSession,
    /// Who they are for the rules.
    pub principal: Principal,
    /// The page language.
    pub lang: Lang,
}

impl crate::auth::Authorize for Viewer {
    fn principal(&self) -> &Principal {
        &self.principal
    }
}

impl Viewer {
    /// Fails with 403 unless `submitted` is this session's CSRF token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), PageError> {
        // Compared in constant time: the token is a secret.
        if salesai_core::token::constant_time_eq(
            self.session.csrf_token.as_bytes(),
            submitted.as_bytes(),
        ) {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                Some(self.lang),
                self.lang.t().this_form_is_out_of_date,
            ))
        }
    }
}

impl FromRequestParts<App> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let lang = Lang(super::i18n::of_request(&parts.headers));
        // A state-changing request another site's page made: refused before anything else.
        refuse_cross_site(app, &parts.method, &parts.headers, lang)
            .map_err(IntoResponse::into_response)?;
        let signin = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let next = if parts.method == Method::GET {
                next
            } else {
                "/"
            };
            Redirect::to(&format!("/login?next={}", encode(next))).into_response()
        };
        let Some(secret) = app_cookie(app, &parts.headers, SESSION_COOKIE) else {
            return Err(signin());
        };
        let hash = salesai_core::token::hash_token(&secret);
        let session = app
            .store
            .find_session(&hash, IDLE)
            .await
            .map_err(|e| PageError::from(e).into_response())?;
        let Some(session) = session else {
            return Err(signin());
        };
        let principal = Principal::person(&session.person);
        Ok(Viewer {
            session,
            principal,
            lang,
        })
    }
}

/// A form that only carries the CSRF token (sign out, retry…). Missing fields read as empty, so
/// a forged form is refused by the CSRF check (403), not by the form parser.
#[derive(Debug, serde::Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// Starts a session for `person_id`: stores it and returns the `Set-Cookie` value.
pub async fn start(app: &App, person_id: &str) -> Result<String, StoreError> {
    let secret = salesai_core::token::generate_token();
    let csrf = salesai_core::token::generate_token();
    app.store
        .create_session(&NewSession {
            id_hash: salesai_core::token::hash_token(&secret),
            user_id: person_id.to_owned(),
            csrf_token: csrf,
            expires_at: chrono::Utc::now()
                + chrono::Duration::from_std(ABSOLUTE).expect("30 days fit"),
        })
        .await?;
    Ok(set_cookie(
        app,
        SESSION_COOKIE,
        &secret,
        ABSOLUTE.as_secs(),
        false,
    ))
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("x_salesai_session=no; a=1"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("salesai_session=yes"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("yes"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
