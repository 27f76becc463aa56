//! The page frame: head, top bar with navigation, the language switch and sign-out.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::i18n::Lang;
use super::session::Viewer;

/// Which top-bar entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The home page.
    Home,
    /// The calls list and call pages.
    Calls,
    /// The upload page.
    Upload,
    /// People (admins).
    People,
    /// Operations (admins).
    Ops,
    /// A page with no menu entry of its own (the API reference).
    Other,
}

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="same-origin";
            title { (title) " · salesai" }
            link rel="stylesheet" href=(super::assets::url("app.css"));
            link rel="icon" href=(super::assets::url("icon.svg")) type="image/svg+xml";
            script src=(super::assets::url("app.js")) defer {}
            meta name="salesai-lang" content=(lang.code());
        }
    }
}

/// The language switch: a link to the other language that comes back to `here`.
fn switch(lang: Lang, here: &str) -> Markup {
    let (code, label) = match lang.0 {
        salesai_core::language::Language::ZhTw => ("en", "English"),
        salesai_core::language::Language::En => ("zh-TW", "中文"),
    };
    html! {
        a.lang-switch href={ "/lang?to=" (code) "&next=" (super::session::encode(here)) } hreflang=(code) lang=(code) { (label) }
    }
}

/// A page for a signed-in person.
pub fn page(viewer: &Viewer, nav: Nav, here: &str, title: &str, body: Markup) -> Html<String> {
    let lang = viewer.lang;
    let person = &viewer.session.person;
    let item = |target: Nav, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(nav == target).then_some("page")] { (label) }
        }
    };
    Html(
        html! {
            (DOCTYPE)
            html lang=(lang.code()) {
                (head(lang, title))
                body {
                    a.skip href="#main" { (lang.t().skip_to_content) }
                    header.topbar {
                        a.brand href="/" { span.logo aria-hidden="true" { "◆" } " salesai" }
                        nav.mainnav aria-label=(lang.t().main) {
                            (item(Nav::Home, "/", lang.t().home))
                            (item(Nav::Calls, "/calls", lang.t().calls))
                            (item(Nav::Upload, "/upload", lang.t().upload))
                            @if viewer.principal.is_admin() {
                                (item(Nav::People, "/people", lang.t().people))
                                (item(Nav::Ops, "/ops", lang.t().operations))
                            }
                        }
                        div.who {
                            span.person title=(person.user.email.clone().unwrap_or_default()) {
                                (viewer.principal.name) " · " (lang.role(person.user.role))
                            }
                            (switch(lang, here))
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(viewer.session.csrf_token);
                                button.link type="submit" { (lang.t().sign_out) }
                            }
                        }
                    }
                    main #main { (body) }
                }
            }
        }
        .into_string(),
    )
}

/// A page without the signed-in frame (sign-in, errors).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang=(lang.code()) {
                (head(lang, title))
                body.bare {
                    header.topbar {
                        a.brand href="/" { span.logo aria-hidden="true" { "◆" } " salesai" }
                        div.who { (switch(lang, "/login")) }
                    }
                    (body)
                }
            }
        }
        .into_string(),
    )
}
