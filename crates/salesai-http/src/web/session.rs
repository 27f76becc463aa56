//! Web sessions: the cookie, who it belongs to, CSRF, and the page errors.
//!
//! A session is a random secret in an HttpOnly, SameSite=Lax cookie (Secure when the public URL
//! is https); the database keeps only its hash, with an idle and an absolute expiry, so a
//! session works on every node and ends everywhere at once (sign out, deactivation).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use salesai_core::App;
use salesai_core::access::Principal;
use salesai_core::store::{NewSession, StoreError, WebSession};

use super::cookies::{app_cookie, encode, set_cookie};
use super::i18n::Lang;
pub use super::page_error::PageError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "salesai_session";

/// A session ends after this long without a request.
pub const IDLE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A session ends this long after sign-in, however active.
pub const ABSOLUTE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

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

impl super::layout::Framed for Viewer {
    fn frame(&self) -> super::layout::Frame<'_> {
        let person = &self.session.person;
        super::layout::Frame {
            lang: self.lang,
            name: &self.principal.name,
            email: person.user.email.as_deref().unwrap_or_default(),
            role: person.user.role,
            is_admin: self.principal.is_admin(),
            csrf: &self.session.csrf_token,
        }
    }
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
