//! Cookies and query values: reading a cookie by its exact name, setting one for this app
//! (`__Host-` prefixed and Secure over https), and percent-encoding a value.

use axum::http::{HeaderMap, header};
use salesai_core::App;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::session::SESSION_COOKIE;
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
