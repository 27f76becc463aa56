//! Signing in and out: the sign-in page, one-time links (and the first-run setup link), the
//! language switch.
//!
//! A link's page (GET) only shows who it signs in; the sign-in happens on its button (POST), so
//! a chat app that previews the link cannot use it up.

use super::form::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use salesai_core::App;
use salesai_core::access::is_local_path;
use salesai_core::store::{LinkPurpose, StoreError};
use serde::Deserialize;

use super::cookies;
use super::i18n::{LANG_COOKIE, Lang};
use super::layout::bare;
use super::session::{self, CsrfForm, PageError, SESSION_COOKIE, Viewer};

/// Failed sign-in attempts (a link that does not exist or no longer works) one client address
/// may make in ten minutes; past them it waits. Successes are never counted.
const FAILURES_PER_10_MIN: i64 = 30;

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login`.
pub async fn login_page(
    State(app): State<App>,
    lang: Lang,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    // Signed in already: straight on.
    if let Some(secret) = cookies::app_cookie(&app, &headers, SESSION_COOKIE)
        && let Ok(Some(_)) = app
            .store
            .find_session(&salesai_core::token::hash_token(&secret), session::IDLE)
            .await
    {
        let next = q.next.filter(|n| is_local_path(n)).unwrap_or("/".into());
        return Redirect::to(&next).into_response();
    }
    // Where to go after signing in, kept for the link the person will open next (the link was
    // made elsewhere, by an admin or Slack, without knowing the page).
    let remember = q
        .next
        .as_deref()
        .filter(|n| is_local_path(n) && *n != "/")
        .map(|n| cookies::set_cookie(&app, NEXT_COOKIE, &cookies::encode(n), 3600, false));
    let page = bare(
        lang,
        lang.t().sign_in,
        html! {
            main.narrow {
                section.card {
                    h1 { (lang.t().sign_in_to_salesai) }
                    @if !app.sign_in.is_empty() {
                        div.sign-in-providers {
                            @for provider in app.sign_in.iter() {
                                a.button.primary href={ "/login/oidc/" (provider.id) } {
                                    (salesai_core::i18n::fill(lang.t().sign_in_with, &[("provider", &provider.label)]))
                                }
                            }
                        }
                        p.or-divider { span { (lang.t().or) } }
                    }
                    p { (lang.t().salesai_signs_you_in_with_one) }
                    p { (lang.t().in_slack_type) code { "/salesai login" } (lang.t().for_link_only_you_see) }
                    p.muted { (lang.t().link_works_once_for_15_minutes) }
                }
            }
        },
    );
    match remember {
        Some(cookie) => ([(header::SET_COOKIE, cookie)], page).into_response(),
        None => page.into_response(),
    }
}

/// The cookie that remembers the page a person wanted before signing in.
const NEXT_COOKIE: &str = "salesai_next";

/// Decodes a percent-encoded cookie value.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /login/link/{secret}`: who the link signs in, with the button that does it.
pub async fn link_page(
    State(app): State<App>,
    lang: Lang,
    Path(secret): Path<String>,
) -> Result<Response, PageError> {
    let link = app
        .store
        .peek_login_link(&salesai_core::token::hash_token(&secret))
        .await?;
    let Some(link) = link else {
        return Ok(link_gone(lang));
    };
    let action = format!("/login/link/{secret}");
    let body = match (link.purpose, &link.person) {
        (LinkPurpose::Setup, _) => html! {
            section.card {
                h1 { (lang.t().welcome_to_salesai) }
                p { (lang.t().no_one_runs_this_salesai_yet) }
                form.stack method="post" action=(action) {
                    label { (lang.t().your_name)
                        input name="name" required maxlength="200" autocomplete="name"; }
                    label { (lang.t().your_work_e_mail)
                        input type="email" name="email" required maxlength="254" autocomplete="email"; }
                    button.primary type="submit" { (lang.t().create_my_admin_account) }
                }
            }
        },
        (LinkPurpose::Signin, Some(person)) => html! {
            section.card {
                h1 { (lang.t().sign_in) }
                p { (lang.t().this_link_signs_in) }
                p.identity {
                    strong { (person.user.display_name) }
                    @if let Some(email) = &person.user.email { br; span.muted { (email) } }
                }
                form method="post" action=(action) {
                    button.primary type="submit" { (lang.t().continue_) }
                }
                p.muted { (lang.t().not_you_close_this_page) }
            }
        },
        (LinkPurpose::Signin, None) => return Ok(link_gone(lang)),
    };
    Ok(bare(lang, lang.t().sign_in, html! { main.narrow { (body) } }).into_response())
}

fn link_gone(lang: Lang) -> Response {
    (
        StatusCode::GONE,
        bare(
            lang,
            lang.t().link_expired,
            html! {
                main.narrow { section.card.error-card {
                    h1 { (lang.t().this_link_no_longer_works) }
                    p { (lang.t().sign_in_links_work_once_and) }
                    p { a.button href="/login" { (lang.t().how_to_sign_in) } }
                } }
            },
        ),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub struct SetupForm {
    name: Option<String>,
    email: Option<String>,
}

/// `POST /login/link/{secret}`: uses the link and starts a session.
pub async fn use_link(
    State(app): State<App>,
    lang: Lang,
    headers: HeaderMap,
    peer: super::ClientAddr,
    Path(secret): Path<String>,
    Form(form): Form<SetupForm>,
) -> Result<Response, PageError> {
    // Another site's page posting a link (the sender's own) would sign the visitor in as the
    // sender: refused like every cross-site form, before anything is counted or used.
    session::refuse_cross_site(&app, &axum::http::Method::POST, &headers, lang)?;
    check_attempts(&app, lang, &peer).await?;
    let hash = salesai_core::token::hash_token(&secret);
    let Some(link) = app.store.peek_login_link(&hash).await? else {
        count_failure(&app, &peer).await;
        return Ok(link_gone(lang));
    };
    let (person, back) = match link.purpose {
        LinkPurpose::Signin => match app.store.redeem_login_link(&hash).await? {
            Some(found) => found,
            None => {
                count_failure(&app, &peer).await;
                return Ok(link_gone(lang));
            }
        },
        LinkPurpose::Setup => {
            let email = form.email.unwrap_or_default();
            let name = form.name.unwrap_or_default();
            match app.store.complete_setup(&hash, &email, &name).await {
                Ok(Some(person)) => (person, None),
                Ok(None) => return Ok(link_gone(lang)),
                Err(StoreError::InvalidInput(msg)) | Err(StoreError::Conflict(msg)) => {
                    return Err(PageError::new(StatusCode::BAD_REQUEST, Some(lang), &msg));
                }
                Err(other) => return Err(other.into()),
            }
        }
    };
    signed_in(&app, &headers, &person.user.id, back, link.purpose.as_str()).await
}

/// The limiter's counter for a client address (`unknown` when the server runs without
/// connection info).
fn limiter_key(peer: &super::ClientAddr) -> String {
    format!(
        "signin:{}",
        peer.0
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into())
    )
}

/// Refuses a sign-in from a client address with [`FAILURES_PER_10_MIN`] failures in the last
/// ten minutes (counted across nodes, in the database). Only failures count, and the address is
/// the client's own (behind a trusted proxy, the one it forwards), so no one can lock others out.
pub async fn check_attempts(
    app: &App,
    lang: Lang,
    peer: &super::ClientAddr,
) -> Result<(), PageError> {
    let minute = chrono::Utc::now().timestamp() / 60;
    let recent = app
        .store
        .sum_counter(&limiter_key(peer), minute - 9)
        .await?;
    if recent >= FAILURES_PER_10_MIN {
        return Err(PageError::new(
            StatusCode::TOO_MANY_REQUESTS,
            Some(lang),
            lang.t().too_many_failed_sign_in_attempts,
        ));
    }
    Ok(())
}

/// Counts one failed sign-in attempt from this client address. A database error is logged, not
/// raised: the person is already being told why their attempt failed.
pub async fn count_failure(app: &App, peer: &super::ClientAddr) {
    let minute = chrono::Utc::now().timestamp() / 60;
    if let Err(err) = app
        .store
        .add_counter("web", &limiter_key(peer), minute, 1)
        .await
    {
        tracing::warn!(event = "web.signin_count_failed", error = %err, "could not count a failed sign-in attempt");
    }
}

/// Starts a session for a person who just proved who they are (`via`: a link, Slack, single
/// sign-on) and sends them on: to `back`, else the page they wanted before signing in, else
/// home.
pub async fn signed_in(
    app: &App,
    headers: &HeaderMap,
    person_id: &str,
    back: Option<String>,
    via: &str,
) -> Result<Response, PageError> {
    let cookie = session::start(app, person_id).await?;
    tracing::info!(event = "web.signed_in", user_id = %person_id, via, "signed in");
    let wanted = cookies::app_cookie(app, headers, NEXT_COOKIE).map(|v| decode(&v));
    let to = back
        .or(wanted)
        .filter(|b| is_local_path(b))
        .unwrap_or_else(|| "/".into());
    let mut response = Redirect::to(&to).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie.parse().expect("a cookie is a valid header"),
    );
    h.append(
        header::SET_COOKIE,
        cookies::set_cookie(app, NEXT_COOKIE, "", 0, false)
            .parse()
            .expect("a cookie is a valid header"),
    );
    Ok(response)
}

/// `POST /logout`.
pub async fn logout(
    State(app): State<App>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    app.store.end_session(&viewer.session.id_hash).await?;
    Ok(signed_out(&app))
}

/// `POST /logout/everywhere`: ends every session of the person.
pub async fn logout_everywhere(
    State(app): State<App>,
    viewer: Viewer,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(&form.csrf)?;
    let ended = app
        .store
        .end_sessions_of(&viewer.session.person.user.id)
        .await?;
    tracing::info!(event = "web.signed_out_everywhere", user_id = %viewer.session.person.user.id, ended, "signed out everywhere");
    Ok(signed_out(&app))
}

fn signed_out(app: &App) -> Response {
    (
        [(
            header::SET_COOKIE,
            cookies::set_cookie(app, SESSION_COOKIE, "", 0, false),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_decoding_survives_anything() {
        assert_eq!(super::decode("%2Fcalls%3Fq%3D%E9%A0%90"), "/calls?q=預");
        assert_eq!(super::decode("%"), "%");
        assert_eq!(super::decode("%zz%4"), "%zz%4");
        assert_eq!(super::decode("%é1"), "%é1");
    }
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    to: String,
    next: Option<String>,
}

/// `GET /lang?to=en&next=/calls`: remembers the language (a display preference, nothing else)
/// and goes back.
pub async fn set_language(State(app): State<App>, Query(q): Query<LangQuery>) -> Response {
    let lang = salesai_core::language::Language::of(&q.to);
    let next = q.next.filter(|n| is_local_path(n)).unwrap_or("/".into());
    (
        [(
            header::SET_COOKIE,
            cookies::set_cookie(&app, LANG_COOKIE, lang.code(), 365 * 24 * 3600, false),
        )],
        Redirect::to(&next),
    )
        .into_response()
}
