//! The page frame: head, top bar with navigation, the language switch and sign-out.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::i18n::Lang;

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

/// The language switch: a link to each other language of the catalogue, coming back to
/// `here`, each named in itself.
fn switch(lang: Lang, here: &str) -> Markup {
    html! {
        @for locale in salesai_core::i18n::LOCALES.iter().filter(|l| l.code != lang.code()) {
            a.lang-switch href={ "/lang?to=" (locale.code) "&next=" (super::cookies::encode(here)) } hreflang=(locale.code) lang=(locale.code) { (locale.name) }
        }
    }
}

/// What the frame of a page shows of the signed-in person.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The page language.
    pub lang: Lang,
    /// Their name.
    pub name: &'a str,
    /// Their e-mail (a tooltip).
    pub email: &'a str,
    /// Their role.
    pub role: salesai_core::domain::Role,
    /// Whether the menu has the admin pages.
    pub is_admin: bool,
    /// The session's CSRF token (the sign-out form).
    pub csrf: &'a str,
}

/// Whoever a page is for (the web session's `Viewer`).
pub trait Framed {
    /// What the frame shows of them.
    fn frame(&self) -> Frame<'_>;
}

/// A page for a signed-in person.
pub fn page(viewer: &impl Framed, nav: Nav, here: &str, title: &str, body: Markup) -> Html<String> {
    let who = viewer.frame();
    let lang = who.lang;
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
                            @if who.is_admin {
                                (item(Nav::People, "/people", lang.t().people))
                                (item(Nav::Ops, "/ops", lang.t().operations))
                            }
                        }
                        div.who {
                            span.person title=(who.email) {
                                (who.name) " · " (lang.role(who.role))
                            }
                            (switch(lang, here))
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(who.csrf);
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
