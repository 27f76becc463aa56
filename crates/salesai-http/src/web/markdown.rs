//! Markdown for people's text on pages (meeting notes): CommonMark with tables and
//! strikethrough, and nothing that can run or load anything.
//!
//! Raw HTML in the source is shown as text. A link keeps its `href` only when it is a path on
//! this server or an `http:`, `https:` or `mailto:` URL — after the browser's own clean-up of
//! the URL (entities decoded by the parser, whitespace and control characters dropped, letters
//! of any case), so `javascript:`, `JaVaScRiPt:`, `java\tscript:`, `data:` and `vbscript:` never
//! reach an attribute; an unsafe link is left as its text. Images are never loaded (the page's
//! policy would block other sites anyway, and a notes image is a tracking pixel): an image
//! becomes its description, as a link when its URL is safe.

use maud::{Markup, PreEscaped};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// Renders `source` as safe HTML.
pub fn render(source: &str) -> Markup {
    let parser = Parser::new_ext(
        source,
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH,
    );
    // Which open links were dropped (so their end is dropped too): links do not nest, but an
    // image inside a link does, so this is a stack.
    let mut dropped: Vec<bool> = Vec::new();
    let mut events: Vec<Event<'_>> = Vec::new();
    for event in parser {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => events.push(Event::Text(raw)),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let safe = is_safe_url(&dest_url);
                dropped.push(!safe);
                if safe {
                    events.push(Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    }));
                }
            }
            Event::End(TagEnd::Link) => {
                if !dropped.pop().unwrap_or(true) {
                    events.push(Event::End(TagEnd::Link));
                }
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let safe = is_safe_url(&dest_url);
                dropped.push(!safe);
                if safe {
                    events.push(Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    }));
                }
            }
            Event::End(TagEnd::Image) => {
                if !dropped.pop().unwrap_or(true) {
                    events.push(Event::End(TagEnd::Link));
                }
            }
            other => events.push(other),
        }
    }
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events.into_iter());
    PreEscaped(out)
}

/// Whether a link's destination may be an `href`: a path, fragment or query on this server,
/// or an http(s) or mailto URL. Decided on the URL as a browser reads it.
pub fn is_safe_url(url: &CowStr<'_>) -> bool {
    // Browsers drop ASCII tab and newlines anywhere in a URL and leading/trailing C0 controls
    // and spaces before they look for the scheme.
    let cleaned: String = url
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| c.is_ascii_control() || c == ' ');
    if cleaned.is_empty() {
        return false;
    }
    if cleaned.chars().any(|c| c.is_control()) {
        return false;
    }
    match scheme(cleaned) {
        Some(scheme) => matches!(scheme.as_str(), "http" | "https" | "mailto"),
        // No scheme: relative. `//host` is another site (scheme-relative): refused too.
        None => {
            !cleaned.starts_with("//") && !cleaned.starts_with("/\\") && !cleaned.starts_with("\\")
        }
    }
}

/// The URL's scheme, lower case, when it has one (`letter *(letter / digit / + / - / .)` before
/// the first `:` that comes before any `/`, `?` or `#`).
fn scheme(url: &str) -> Option<String> {
    let end = url.find([':', '/', '?', '#'])?;
    if !url[end..].starts_with(':') {
        return None;
    }
    let candidate = &url[..end];
    let mut chars = candidate.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        // Not a scheme: a browser reads the whole thing as a path.
        return None;
    }
    Some(candidate.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(source: &str) -> String {
        render(source).into_string()
    }

    #[test]
    fn raw_html_is_text() {
        let out = html("# Notes\n\n<script>alert(1)</script>\n\n- **a** <img src=x onerror=y>");
        assert!(!out.contains("<script") && !out.contains("<img"), "{out}");
        assert!(out.contains("<strong>a</strong>") && out.contains("&lt;script&gt;"));
    }

    #[test]
    fn only_safe_links_keep_their_href() {
        for (source, kept) in [
            ("[x](https://example.com/a)", true),
            ("[x](http://example.com)", true),
            ("[x](mailto:ann@example.com)", true),
            ("[x](/calls/1)", true),
            ("[x](#top)", true),
            ("[x](javascript:alert(1))", false),
            ("[x](JaVaScRiPt:alert(1))", false),
            ("[x](jav&#x61;script:alert(1))", false),
            ("[x](java&#9;script:alert(1))", false),
            ("[x](<java\nscript:alert(1)>)", false),
            ("[x](%20javascript:alert(1))", true), // a relative path that starts with %20
            ("[x](data:text/html;base64,PHNjcmlwdD4=)", false),
            ("[x](vbscript:msgbox)", false),
            ("[x](//evil.example/x)", false),
            ("<javascript:alert(1)>", false),
            ("[x][r]\n\n[r]: javascript:alert(1)", false),
        ] {
            let out = html(source);
            assert_eq!(out.contains("href="), kept, "{source} → {out}");
            assert!(
                out.contains('x') || source.starts_with('<'),
                "{source} → {out}"
            );
            let lower = out.to_ascii_lowercase();
            assert!(
                !lower.contains("href=\"javascript") && !lower.contains("href=\"data"),
                "{source} → {out}"
            );
        }
    }

    #[test]
    fn images_are_never_loaded() {
        for source in [
            "![i](javascript:alert(1))",
            "![i](https://tracker.example/p.png)",
            "![i](data:image/png;base64,AAAA)",
        ] {
            let out = html(source);
            assert!(!out.contains("<img") && !out.contains("src="), "{out}");
            assert!(out.contains('i'), "{out}");
        }
        assert!(
            html("![i](https://example.com/p.png)").contains("href=\"https://example.com/p.png\"")
        );
    }

    /// Every `href` value in rendered HTML, as a browser reads it (entities decoded).
    fn hrefs(out: &str) -> Vec<String> {
        out.split("href=\"")
            .skip(1)
            .map(|rest| {
                let raw = &rest[..rest.find('"').unwrap_or(rest.len())];
                raw.replace("&quot;", "\"")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&#39;", "'")
                    .replace("&amp;", "&")
            })
            .collect()
    }

    /// The scheme a browser would see: whitespace and controls dropped, lower case.
    fn browser_scheme(href: &str) -> String {
        let cleaned: String = href
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect::<String>()
            .to_ascii_lowercase();
        cleaned.split(':').next().unwrap_or_default().to_owned()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Hostile link shapes: no script or data URL survives in any spelling.
        #[test]
        fn no_script_or_data_url_survives(
            lead in "[ \t\n]{0,2}",
            scheme in "(?i)(javascript|data|vbscript|jav&#x61;script|java&#9;script|java\tscript|j&#97;vascript|&#106;avascript)",
            rest in "[:a-z0-9()%&#;=/ ]{0,24}",
            kind in 0..4usize,
        ) {
            let url = format!("{lead}{scheme}:{rest}");
            let source = match kind {
                0 => format!("[x]({url})"),
                1 => format!("![x]({url})"),
                2 => format!("[x][r]\n\n[r]: {url}"),
                _ => format!("[x](<{url}>)"),
            };
            let out = html(&source);
            proptest::prop_assert!(!out.contains("<img") && !out.contains("src="), "{}", out);
            for href in hrefs(&out) {
                let scheme = browser_scheme(&href);
                proptest::prop_assert!(
                    !["javascript", "data", "vbscript"].contains(&scheme.as_str()),
                    "{source:?} gave href {href:?}"
                );
            }
        }

        /// Anything at all: no raw HTML element, no loaded resource, every href safe.
        #[test]
        fn any_text_renders_safely(source in "\\PC{0,200}") {
            let out = html(&source);
            for tag in ["<script", "<img", "<iframe", "<object", "<svg", "<style", "<a on"] {
                proptest::prop_assert!(!out.contains(tag), "{} in {}", tag, out);
            }
            for href in hrefs(&out) {
                let scheme = browser_scheme(&href);
                proptest::prop_assert!(
                    !["javascript", "data", "vbscript"].contains(&scheme.as_str()),
                    "{source:?} gave href {href:?}"
                );
            }
        }
    }
}
