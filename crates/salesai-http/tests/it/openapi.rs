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

story!(every_api_route_answers_each_kind_of_token);
async fn every_api_route_answers_each_kind_of_token(db: &TestDb) {
    use salesai_core::store::PersonChange;
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let super::web::Cast {
        amy,
        bob,
        mia,
        max,
        ada,
        gus,
    } = super::web::Cast::invite(&store, Role::Rep).await;
    let call = store
        .create_conversation(super::web::new_call_for(&amy.user.id))
        .await
        .unwrap()
        .id;
    let tokens: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        (
            "admin",
            Some(t.token_of("a", Role::Admin, Some(&ada.user.id)).await),
        ),
        ("service", Some(t.token_of("s", Role::Service, None).await)),
        (
            "manager",
            Some(t.token_of("m", Role::Manager, Some(&mia.user.id)).await),
        ),
        (
            "other_manager",
            Some(t.token_of("x", Role::Manager, Some(&max.user.id)).await),
        ),
        (
            "rep",
            Some(t.token_of("r", Role::Rep, Some(&amy.user.id)).await),
        ),
        (
            "other_rep",
            Some(t.token_of("o", Role::Rep, Some(&bob.user.id)).await),
        ),
        (
            "deactivated",
            Some(t.token_of("g", Role::Rep, Some(&gus.user.id)).await),
        ),
    ];
    store
        .update_person(
            &gus.user.id,
            &PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    use StatusCode as S;
    let (ok, no, bad, gone) = (S::OK, S::UNAUTHORIZED, S::BAD_REQUEST, S::FORBIDDEN);
    // (method, documented path, request path, [none, admin, service, manager, other_manager,
    //  rep (the call's), other_rep, deactivated]). A pending call: retry and re-analysis are
    // "not now" (409) to whoever may act on it.
    let rows: Vec<(&str, &str, String, [S; 8])> = vec![
        ("GET", "/health", "/health".into(), [ok; 8]),
        ("GET", "/ready", "/ready".into(), [ok; 8]),
        ("GET", "/metrics", "/metrics".into(), [ok; 8]),
        (
            "GET",
            "/api/v1/openapi.json",
            "/api/v1/openapi.json".into(),
            [ok; 8],
        ),
        (
            "GET",
            "/api/v1/conversations",
            "/api/v1/conversations".into(),
            [no, ok, ok, ok, ok, ok, ok, no],
        ),
        // Not multipart: refused as a bad request once the caller may upload.
        (
            "POST",
            "/api/v1/conversations",
            "/api/v1/conversations".into(),
            [no, bad, bad, bad, bad, bad, bad, no],
        ),
        (
            "GET",
            "/api/v1/conversations/{id}",
            format!("/api/v1/conversations/{call}"),
            [no, ok, ok, ok, gone, ok, gone, no],
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/retry",
            format!("/api/v1/conversations/{call}/retry"),
            [
                no,
                S::CONFLICT,
                S::CONFLICT,
                S::CONFLICT,
                gone,
                S::CONFLICT,
                gone,
                no,
            ],
        ),
        (
            "POST",
            "/api/v1/conversations/{id}/reanalyze",
            format!("/api/v1/conversations/{call}/reanalyze"),
            [
                no,
                S::CONFLICT,
                S::CONFLICT,
                S::CONFLICT,
                gone,
                S::CONFLICT,
                gone,
                no,
            ],
        ),
        (
            "GET",
            "/api/v1/admin/queues",
            "/api/v1/admin/queues".into(),
            [no, ok, gone, gone, gone, gone, gone, no],
        ),
        (
            "PATCH",
            "/api/v1/admin/queues/{name}",
            "/api/v1/admin/queues/maintenance".into(),
            [no, ok, gone, gone, gone, gone, gone, no],
        ),
        (
            "POST",
            "/api/v1/admin/queues/{name}/pause",
            "/api/v1/admin/queues/maintenance/pause".into(),
            [no, ok, gone, gone, gone, gone, gone, no],
        ),
        (
            "POST",
            "/api/v1/admin/queues/{name}/resume",
            "/api/v1/admin/queues/maintenance/resume".into(),
            [no, ok, gone, gone, gone, gone, gone, no],
        ),
        (
            "GET",
            "/api/v1/admin/jobs",
            "/api/v1/admin/jobs".into(),
            [no, ok, gone, gone, gone, gone, gone, no],
        ),
        (
            "GET",
            "/api/v1/admin/jobs/{id}",
            "/api/v1/admin/jobs/987654".into(),
            [no, S::NOT_FOUND, gone, gone, gone, gone, gone, no],
        ),
        (
            "POST",
            "/api/v1/admin/jobs/{id}/retry",
            "/api/v1/admin/jobs/987654/retry".into(),
            [no, S::NOT_FOUND, gone, gone, gone, gone, gone, no],
        ),
        // Retrying every dead job needs `"all": true` (or a filter).
        (
            "POST",
            "/api/v1/admin/jobs/retry",
            "/api/v1/admin/jobs/retry".into(),
            [no, bad, gone, gone, gone, gone, gone, no],
        ),
        // Purge needs a filter.
        (
            "POST",
            "/api/v1/admin/jobs/purge",
            "/api/v1/admin/jobs/purge".into(),
            [no, bad, gone, gone, gone, gone, gone, no],
        ),
        (
            "POST",
            "/api/v1/admin/db/analyze",
            "/api/v1/admin/db/analyze".into(),
            [no, ok, gone, gone, gone, gone, gone, no],
        ),
        // SQLite has no server connections to end (400); PostgreSQL ends the idle ones (200).
        (
            "POST",
            "/api/v1/admin/db/terminate-idle",
            "/api/v1/admin/db/terminate-idle".into(),
            [no, ok, gone, gone, gone, gone, gone, no],
        ),
        // Last: deleting removes the call (admins only).
        (
            "DELETE",
            "/api/v1/conversations/{id}",
            format!("/api/v1/conversations/{call}"),
            [no, S::NO_CONTENT, gone, gone, gone, gone, gone, no],
        ),
    ];
    // Every documented operation has a row: a new API route without a rule fails here.
    let doc: Value = t
        .client
        .get(format!("{}/api/v1/openapi.json", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let described = documented(&doc);
    let covered: BTreeSet<(String, String)> = rows
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = described.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "API routes without a row in the token matrix: {missing:?}"
    );
    let backend_postgres = matches!(db.database, salesai_db::Database::Postgres(_));
    let mut wrong = Vec::new();
    for (method, _, path, expected) in &rows {
        for ((who, token), want) in tokens.iter().zip(expected) {
            let mut request = t
                .client
                .request(method.parse().unwrap(), format!("{}{path}", t.base));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if *method == "PATCH" || path.ends_with("/jobs/retry") || path.ends_with("/purge") {
                request = request.json(&serde_json::json!({}));
            }
            let got = request.send().await.unwrap().status();
            let want = match (path.ends_with("terminate-idle"), *who) {
                (true, "admin") if backend_postgres => S::OK,
                (true, "admin") => S::BAD_REQUEST,
                _ => *want,
            };
            if got != want {
                wrong.push(format!("{method} {path} as {who}: {got}, expected {want}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Checks one answer against the document: its status is the operation's success or one of
/// its listed errors, and an error's code is in that response's `code` enum.
fn conforms(
    doc: &Value,
    method: &str,
    path: &str,
    status: u16,
    body: &str,
) -> Result<Option<String>, String> {
    let op = &doc["paths"][path][method.to_lowercase()];
    let Some(response) = op["responses"].get(status.to_string()) else {
        return Err(format!(
            "{method} {path} answered {status}, which the document does not list: {body}"
        ));
    };
    if status < 400 {
        return Ok(None);
    }
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("{method} {path} {status}: not the JSON error: {body}"))?;
    let listed = &response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]
        ["properties"]["code"]["enum"];
    if !listed
        .as_array()
        .is_some_and(|codes| codes.iter().any(|c| c == code.as_str()))
    {
        return Err(format!(
            "{method} {path} {status} carried {code}, not one of {listed}: {body}"
        ));
    }
    Ok(Some(format!("{status} {code}")))
}

story!(every_error_the_api_answers_is_in_the_document);
async fn every_error_the_api_answers_is_in_the_document(db: &TestDb) {
    // Hostile and careless requests to every documented operation: no token, a rep's token,
    // unknown ids, broken and mislabelled JSON, unknown fields, bad queries, bad uploads. Each
    // answer's status must be listed for its operation and its code in that status's enum,
    // and the codes the issue found missing must all have been seen.
    let t = TestApp::spawn(db).await;
    let admin = t.token("admin", Role::Admin).await;
    let rep = t.token("rep", Role::Rep).await;
    let doc: Value = t
        .client
        .get(format!("{}/api/v1/openapi.json", t.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    let mut check = |method: &str, path: &str, status: u16, body: String| match conforms(
        &doc, method, path, status, &body,
    ) {
        Ok(Some(pair)) => {
            seen.insert(pair);
        }
        Ok(None) => {}
        Err(e) => wrong.push(e),
    };
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        if op
            .get("security")
            .is_some_and(|s| s == &serde_json::json!([]))
        {
            continue;
        }
        let url = |id: &str| {
            format!(
                "{}{}",
                t.base,
                path.replace("{id}", id).replace("{name}", id)
            )
        };
        let json_body = op["requestBody"]["content"]
            .get("application/json")
            .is_some();
        let mut probes: Vec<reqwest::RequestBuilder> = vec![
            t.client.request(method.parse().unwrap(), url("x1")),
            t.client
                .request(method.parse().unwrap(), url("x1"))
                .bearer_auth(&rep),
            t.client
                .request(method.parse().unwrap(), url("no-such-thing"))
                .bearer_auth(&admin),
        ];
        if op
            .get("parameters")
            .is_some_and(|p| p.as_array().unwrap().iter().any(|p| p["in"] == "query"))
        {
            probes.push(
                t.client
                    .request(
                        method.parse().unwrap(),
                        format!("{}?limit=many&zzz=1", url("conversations")),
                    )
                    .bearer_auth(&admin),
            );
        }
        if json_body {
            let at = url("conversations");
            for (content_type, body) in [
                ("application/json", "{".to_owned()),
                ("text/plain", "{}".to_owned()),
                ("application/json", r#"{"zzz": 1}"#.to_owned()),
                (
                    "application/json",
                    r#"{"state": 5, "all": "yes"}"#.to_owned(),
                ),
                ("application/json", format!("\"{}\"", "x".repeat(3 << 20))),
            ] {
                probes.push(
                    t.client
                        .request(method.parse().unwrap(), &at)
                        .bearer_auth(&admin)
                        .header("content-type", content_type)
                        .body(body),
                );
            }
        }
        for probe in probes {
            // A body over the limit is refused before it is read: the server may close the
            // connection while the client still writes, which the client sees as an error.
            // The same request again until the answer is read.
            let mut tries = 0;
            let response = loop {
                tries += 1;
                match probe.try_clone().unwrap().send().await {
                    Ok(r) => break r,
                    Err(e) if tries < 10 => {
                        let _ = e;
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("{method} {path}: {e}"),
                }
            };
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            check(&method, &path, status, body);
        }
    }
    // Uploads: no file, an unknown field, a file that is not a call, the same key for a
    // different upload.
    let upload = |form: reqwest::multipart::Form| {
        t.client
            .post(format!("{}/api/v1/conversations", t.base))
            .bearer_auth(&admin)
            .multipart(form)
    };
    let call = || {
        reqwest::multipart::Part::bytes(b"Rep: hello\nCustomer: we lose orders".to_vec())
            .file_name("call.txt")
            .mime_str("text/plain")
            .unwrap()
    };
    let probes = vec![
        upload(reqwest::multipart::Form::new().text("customer_number", "C-1")),
        upload(
            reqwest::multipart::Form::new()
                .text("customer_number", "C-1")
                .text("colour", "red")
                .part("audio", call()),
        ),
        upload(
            reqwest::multipart::Form::new()
                .text("customer_number", "C-1")
                .part(
                    "audio",
                    reqwest::multipart::Part::bytes(vec![0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0])
                        .file_name("setup.exe")
                        .mime_str("application/octet-stream")
                        .unwrap(),
                ),
        ),
        upload(
            reqwest::multipart::Form::new()
                .text("customer_number", "C-1")
                .part("audio", call()),
        )
        .header("idempotency-key", "same-key"),
        upload(
            reqwest::multipart::Form::new()
                .text("customer_number", "C-2")
                .part("audio", call()),
        )
        .header("idempotency-key", "same-key"),
    ];
    for probe in probes {
        let response = probe.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        check("POST", "/api/v1/conversations", status, body);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for pair in [
        "400 INVALID_INPUT",
        "401 UNAUTHORIZED",
        "403 FORBIDDEN",
        "404 NOT_FOUND",
        "413 PAYLOAD_TOO_LARGE",
        "415 UNSUPPORTED_MEDIA_TYPE",
        "422 UNPROCESSABLE",
        "422 IDEMPOTENCY_KEY_REUSED",
    ] {
        assert!(seen.contains(pair), "never seen {pair}: {seen:?}");
    }
    // The upload's documented parts are the names the server reads (`audio`, `type`), not
    // their aliases.
    let parts = doc["paths"]["/api/v1/conversations"]["post"]["requestBody"]["content"]
        ["multipart/form-data"]["schema"]["properties"]
        .as_object()
        .unwrap();
    for name in ["audio", "customer_number", "type", "conversation_date"] {
        assert!(parts.contains_key(name), "{name} is not documented");
    }
    for alias in ["file", "conversation_type", "transcript"] {
        assert!(
            !parts.contains_key(alias),
            "{alias} is an alias, not a field"
        );
    }
}
