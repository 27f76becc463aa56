//! The web app: server-rendered pages on the same port as the API, in zh-TW and English,
//! readable with JavaScript off and at phone width. Assets are embedded in the binary.
//!
//! Every page handler takes a [`session::Viewer`] (a signed-in person, else a redirect to the
//! sign-in page) and asks its principal — the same rules as the JSON API
//! (`salesai_core::access`). Every state-changing form carries the session's CSRF token.

mod apidocs;
mod assets;
mod calls;
mod chart;
mod cookies;
mod form;
mod i18n;
mod layout;
pub mod markdown;
mod oidc;
mod ops;
mod page_error;
mod people;
mod session;
mod signin;
mod upload;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use salesai_core::App;

pub use i18n::Lang;
pub use session::{SESSION_COOKIE, Viewer};

/// The pages, merged at the root of the router.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/", get(calls::home))
        .route("/calls", get(calls::list))
        .route("/calls/{id}", get(calls::show))
        .route("/calls/{id}/audio", get(calls::audio))
        .route("/calls/{id}/status", get(calls::status))
        .route("/calls/{id}/retry", post(calls::retry))
        .route("/calls/{id}/reanalyze", post(calls::reanalyze))
        .route("/calls/{id}/delete", post(calls::delete))
        .route("/calls/{id}/notes", post(calls::notes))
        .route("/calls/{id}/speakers", post(calls::speakers))
        .route("/login", get(signin::login_page))
        .route(
            "/login/link/{secret}",
            get(signin::link_page).post(signin::use_link),
        )
        .route("/login/oidc/{provider}", get(oidc::start))
        .route("/login/oidc/{provider}/callback", get(oidc::callback))
        .route("/logout", post(signin::logout))
        .route("/logout/everywhere", post(signin::logout_everywhere))
        .route("/lang", get(signin::set_language))
        .route("/api", get(apidocs::reference))
        .route("/ops", get(ops::show))
        .route("/ops/queues/{name}/{action}", post(ops::set_paused))
        .route("/ops/jobs/{id}/retry", post(ops::retry_one))
        .route("/ops/jobs", post(ops::bulk))
        .route("/people", get(people::list).post(people::invite))
        .route("/people/{id}", post(people::change))
        .route(
            "/upload",
            get(upload::form)
                .post(upload::submit)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/assets/{file}", get(assets::serve))
}

/// Any path no route serves: the 404 page in the reader's language (the browser's own English
/// error page otherwise); under `/api/` the API's JSON error instead.
pub async fn not_found(lang: Lang, uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    page_error::PageError::not_found(lang).into_response()
}

/// The security headers of every response that is not the JSON API's: no inline script, no
/// framing, no MIME sniffing, no referrer to other sites.
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// The client's address: the connecting address, or — when that is a trusted reverse proxy
/// (`SALESAI_TRUSTED_PROXIES`) — the client it forwards in `X-Forwarded-For`
/// (`salesai_core::net::client_address`). `None` when the server runs without connection info
/// (in-process tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl axum::extract::FromRequestParts<App> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
        else {
            return Ok(ClientAddr(None));
        };
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(ClientAddr(Some(salesai_core::net::client_address(
            peer,
            &forwarded,
            &app.trusted_proxies,
        ))))
    }
}

/// `http://<Host>` of a request: the base of links shown when no public URL is configured.
pub fn origin(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}
