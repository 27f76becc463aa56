//! The OpenAPI document against the routers: every route of the JSON API is documented (read
//! from the routers' source, so a new route without a row in `routes/openapi.rs` fails here),
//! nothing documented is missing, and the live server answers every documented operation with
//! its handler (not "no route", not "method not allowed").

use std::collections::BTreeSet;

use reqwest::StatusCode;
use salesai_core::domain::Role;
use salesai_db::story;
use salesai_db::testing::TestDb;
use serde_json::Value;

use super::TestApp;

/// `(METHOD, path)` of every route in the API routers' source, with their mount prefixes.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let sources = [
        ("", include_str!("../../src/routes/health.rs")),
        ("", include_str!("../../src/routes/openapi.rs")),
        ("/api/v1/admin", include_str!("../../src/routes/admin.rs")),
        (
            "/api/v1/conversations",
            include_str!("../../src/routes/conversations.rs"),
        ),
    ];
    let mut out = BTreeSet::new();
    for (prefix, source) in sources {
        for call in source.split(".route(").skip(1) {
            // The call's text up to the next route (or the end of the router function).
            let call = call.split("\n}").next().unwrap();
            let rest = call.trim_start().trim_start_matches('"');
            let path = &rest[..rest.find('"').unwrap()];
            let full = match (prefix, path) {
                (p, "/") if !p.is_empty() => p.to_owned(),
                (p, path) => format!("{p}{path}"),
            };
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = call.match_indices(&format!("{method}(")).any(|(at, _)| {
                    at == 0
                        || !call.as_bytes()[at - 1].is_ascii_alphanumeric()
                            && call.as_bytes()[at - 1] != b'_'
                });
                if called {
                    out.insert((method.to_uppercase(), full.clone()));
                }
            }
        }
    }
    out
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

story!(the_document_covers_every_api_route);
async fn the_document_covers_every_api_route(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let r = t
        .client
        .get(format!("{}/api/v1/openapi.json", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let in_source = routes_in_source();
    assert!(in_source.len() >= 20, "parsed {in_source:?}");
    let described = documented(&doc);
    let missing: Vec<_> = in_source.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in routes/openapi.rs: {missing:?}"
    );
    let stale: Vec<_> = described.difference(&in_source).collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");

    // Every documented operation reaches its handler on the live server.
    let admin = t.token("admin", Role::Admin).await;
    for (method, path) in &described {
        let url = format!(
            "{}{}",
            t.base,
            path.replace("{id}", "1").replace("{name}", "conversations")
        );
        let request = t
            .client
            .request(method.parse().unwrap(), &url)
            .bearer_auth(&admin);
        let request = if method == "PATCH" || path.ends_with("/retry") || path.ends_with("/purge") {
            request.json(&serde_json::json!({}))
        } else {
            request
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !body.contains("no route"),
            "{method} {path} is documented but not routed: {body}"
        );
        // Each documented status list covers what came back (or the operation's success).
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(
            op["responses"].get(status.as_str()).is_some(),
            "{method} {path} answered {status}, which the document does not list: {body}"
        );
    }
}
