//! Every bad input of issue #25, replayed: each answered with its status and error code (the
//! JSON error for the API, a page in the reader's language for the web app), and the stored
//! data unchanged afterwards. Then the holes that were open: a borrowed Idempotency-Key, a
//! demoted admin's token, the last admin, a cross-site sign-in link, a limiter anyone could
//! trip, dangerous links in meeting notes.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, RANGE};
use salesai_core::domain::Role;
use salesai_core::store::PersonChange;
use salesai_core::transcript::Segment;
use salesai_db::story;
use salesai_db::testing::TestDb;
use serde_json::Value;

use super::TestApp;
use super::web::{Cast, FormBody, no_redirects};

/// What the suite compares before and after: every conversation, person, token, queue
/// setting, job and edited note.
async fn snapshot(t: &TestApp) -> String {
    let store = &t.app.store;
    let calls = store
        .list_conversations(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            format!(
                "{} {} {:?} {} {}",
                c.id,
                c.status.as_str(),
                c.rep_user_id,
                c.customer_name,
                c.metadata
            )
        })
        .collect::<Vec<_>>();
    let people = store
        .people()
        .await
        .unwrap()
        .into_iter()
        .map(|p| {
            format!(
                "{:?} {} {} {:?} {:?} {}",
                p.user.email,
                p.user.display_name,
                p.user.role.as_str(),
                p.team,
                p.manages,
                p.active
            )
        })
        .collect::<Vec<_>>();
    let tokens = store
        .list_api_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| format!("{} {} {:?}", t.name, t.role.as_str(), t.revoked_at))
        .collect::<Vec<_>>();
    let queues = store
        .queue_settings()
        .await
        .unwrap()
        .into_iter()
        .map(|q| format!("{q:?}"))
        .collect::<Vec<_>>();
    let jobs = store
        .list_jobs(&salesai_core::queue::JobFilter {
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|j| format!("{} {} {}", j.id, j.kind, j.status.as_str()))
        .collect::<Vec<_>>();
    let mut notes = Vec::new();
    for c in store.list_conversations(&Default::default()).await.unwrap() {
        notes.push(format!("{:?}", store.meeting_notes(&c.id).await.unwrap()));
    }
    format!("{calls:#?}\n{people:#?}\n{tokens:#?}\n{queues:#?}\n{jobs:#?}\n{notes:#?}")
}

/// Sends `request` as raw bytes and returns the status and the body.
async fn raw_request(base: &str, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    // The server may answer (and close) before it has read everything: write what it takes.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("every API error is JSON, got {status}: {text:?}"));
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Makes `call` a finished call with a transcript (one voice) and an analysis, as the pipeline
/// leaves one: its page shows the analysis and the meeting notes.
async fn finish(t: &TestApp, call: &str) {
    let store = &t.app.store;
    store
        .save_transcript(
            call,
            &[Segment {
                speaker: Some("Speaker 1".into()),
                ..Segment::said(0, 2000, "hello")
            }],
        )
        .await
        .unwrap();
    let s = salesai_core::domain::Score::new(50).unwrap();
    store
        .complete_analysis(
            call,
            &salesai_core::store::StoredAnalysis {
                engine: "rules".into(),
                overall_score: s,
                qualification: "medium".into(),
                pain_score: s,
                decision_score: s,
                champion_score: s,
                metrics_score: s,
                result: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
}

/// A multipart upload with the usual fields, each of `fields` added (duplicates allowed: the
/// point of some cases), and the transcript as a file part unless `file` says otherwise.
fn upload_form(fields: &[(&str, &str)], file: Option<&str>) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new()
        .text("customer_number", "C-BAD")
        .text("customer_name", "Bad Input Diner");
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    match file {
        Some(text_instead) => form.text("file", text_instead.to_owned()),
        None => form.part(
            "transcript",
            reqwest::multipart::Part::bytes(b"WEBVTT\n\n00:00.000 --> 00:02.000\nhello\n".to_vec())
                .file_name("call.vtt"),
        ),
    }
}

story!(every_bad_input_is_refused_and_changes_nothing);
async fn every_bad_input_is_refused_and_changes_nothing(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let cast = Cast::invite(&store, Role::Admin).await;
    let service = t.token("crm", Role::Service).await;
    let admin_token = t
        .token_of("ada", Role::Admin, Some(&cast.ada.user.id))
        .await;
    let (call, _) = t.audio_call(&cast.amy.user.id, "Ramen House", 3000).await;
    finish(&t, &call).await;
    let ada = t.sign_in(&cast.ada.user.id).await;
    let amy = t.sign_in(&cast.amy.user.id).await;
    let before = snapshot(&t).await;

    let post = |form: reqwest::multipart::Form| {
        t.client
            .post(format!("{}/api/v1/conversations", t.base))
            .bearer_auth(&service)
            .multipart(form)
    };
    let get = |path: &str| {
        t.client
            .get(format!("{}{path}", t.base))
            .bearer_auth(&admin_token)
    };
    // (case, request, status, code, words the message holds)
    let api: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str, &str)> = vec![
        (
            "a kind of call that does not exist",
            post(upload_form(&[("conversation_type", "party")], None)),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "discovery_call",
        ),
        (
            "speaker_channels nobody reads",
            post(upload_form(&[("speaker_channels", "rep_middle")], None)),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "rep_left",
        ),
        (
            "a field sent twice",
            post(upload_form(&[("customer_number", "C-OTHER")], None)),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "twice",
        ),
        (
            "a text field where the file goes",
            post(upload_form(&[], Some("notafile"))),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "-F file=@",
        ),
        (
            "an unknown field",
            post(upload_form(&[("colour", "blue")], None)),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "unknown field",
        ),
        (
            "a form choice that is not one",
            post(upload_form(&[("decision_maker_present", "maybe")], None)),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "yes, no",
        ),
        (
            "a rep e-mail with a line break",
            post(upload_form(&[("rep_email", "a\r\nb@example.com")], None)),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "rep_email",
        ),
        (
            "a 10 KB Idempotency-Key",
            post(upload_form(&[], None)).header("Idempotency-Key", "k".repeat(10_240)),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "Idempotency-Key",
        ),
        (
            "limit=0",
            get("/api/v1/conversations?limit=0"),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "1 to 500",
        ),
        (
            "limit=501",
            get("/api/v1/conversations?limit=501"),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "1 to 500",
        ),
        (
            "a misspelt filter",
            get("/api/v1/conversations?stauts=failed"),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "stauts",
        ),
        (
            "a date that is not one blames its own field",
            get("/api/v1/conversations?from=2026-13-45"),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "from \"2026-13-45\"",
        ),
        (
            "a typo in a queue setting",
            t.client
                .patch(format!("{}/api/v1/admin/queues/conversations", t.base))
                .bearer_auth(&admin_token)
                .json(&serde_json::json!({"max_concurency": 10})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNPROCESSABLE",
            "max_concurency",
        ),
        (
            "retry every dead job without a filter",
            t.client
                .post(format!("{}/api/v1/admin/jobs/retry", t.base))
                .bearer_auth(&admin_token)
                .json(&serde_json::json!({})),
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "\"all\": true",
        ),
        (
            "a queue that does not exist",
            t.client
                .patch(format!("{}/api/v1/admin/queues/nope", t.base))
                .bearer_auth(&admin_token)
                .json(&serde_json::json!({"max_batch": 2})),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no queue",
        ),
        (
            "retry a call that completed",
            t.client
                .post(format!("{}/api/v1/conversations/{call}/retry", t.base))
                .bearer_auth(&admin_token),
            StatusCode::CONFLICT,
            "CONFLICT",
            "nothing to retry",
        ),
    ];
    let mut wrong = Vec::new();
    for (case, request, status, code, words) in api {
        let (got, got_code, message) = error_of(request.send().await.unwrap()).await;
        if (got, got_code.as_str()) != (status, code) || !message.contains(words) {
            wrong.push(format!(
                "{case}: {got} {got_code} {message:?}, expected {status} {code} with {words:?}"
            ));
        }
    }

    // A 100 KB cursor: past what hyper reads of a URL, answered with the JSON error all the
    // same (sent by hand: no HTTP client builds such a URL).
    let (status, body) = raw_request(
        &t.base,
        &format!(
            "GET /api/v1/conversations?after={} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin_token}\r\n\r\n",
            "a".repeat(100_000)
        ),
    )
    .await;
    let json: Value = serde_json::from_str(&body).unwrap_or_default();
    if status != 414
        || json["error"]["code"] != "INVALID_INPUT"
        || !json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("64 KB")
    {
        wrong.push(format!("a 100 KB cursor: {status} {body:?}"));
    }

    // The web app's forms: control characters and broken UTF-8 are refused as the API
    // refuses them; a speaker the call does not have is a bad request, not "not now".
    let raw_post = |who: &super::web::Browser, path: &str, body: Vec<u8>| {
        no_redirects()
            .post(format!("{}{path}", t.base))
            .header(COOKIE, &who.cookie)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
    };
    let web: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            "an invited name with a NUL",
            raw_post(
                &ada,
                "/people",
                format!(
                    "csrf={}&email=nul%40example.com&name=Eve%00&role=rep",
                    ada.csrf
                )
                .into_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "notes with \\x01",
            raw_post(
                &amy,
                &format!("/calls/{call}/notes"),
                format!("csrf={}&action=save&markdown=a%01b", amy.csrf).into_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "markdown",
        ),
        (
            "notes that are not UTF-8",
            raw_post(
                &amy,
                &format!("/calls/{call}/notes"),
                format!("csrf={}&action=save&markdown=%FF%FEx", amy.csrf).into_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "markdown",
        ),
        (
            "a speaker the call does not have",
            raw_post(
                &amy,
                &format!("/calls/{call}/speakers"),
                format!("csrf={}&speaker=Nobody&role=rep", amy.csrf).into_bytes(),
            ),
            StatusCode::BAD_REQUEST,
            "Nobody",
        ),
    ];
    for (case, request, status, words) in web {
        let response = request.send().await.unwrap();
        let got = response.status();
        let page = response.text().await.unwrap();
        if got != status || !page.contains(words) {
            wrong.push(format!(
                "{case}: {got}, expected {status} with {words:?}: {page}"
            ));
        }
    }

    // Range: what RFC 9110 says to ignore is ignored (the whole file, 200), not refused.
    for range in ["bytes=0-1,5-6", "items=0-5", "bytes=x-1"] {
        let response = no_redirects()
            .get(format!("{}/calls/{call}/audio", t.base))
            .header(COOKIE, &amy.cookie)
            .header(RANGE, range)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        if status != StatusCode::OK || body.len() != 3000 {
            wrong.push(format!("Range {range}: {status}, {} bytes", body.len()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(snapshot(&t).await, before, "nothing stored changed");
}

story!(borrowed_keys_demoted_tokens_and_the_last_admin);
async fn borrowed_keys_demoted_tokens_and_the_last_admin(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let ada = store
        .invite_person("ada@example.com", "Ada", Role::Admin, None)
        .await
        .unwrap();
    let amy = store
        .invite_person("amy@example.com", "Amy", Role::Rep, Some("north"))
        .await
        .unwrap();
    let bob = store
        .invite_person("bob@example.com", "Bob", Role::Rep, Some("south"))
        .await
        .unwrap();
    let ada_token = t.token_of("ada", Role::Admin, Some(&ada.user.id)).await;
    let amy_token = t.token_of("amy", Role::Rep, Some(&amy.user.id)).await;
    let bob_token = t.token_of("bob", Role::Rep, Some(&bob.user.id)).await;
    let upload = |token: &str, key: &str, name: &str| {
        t.client
            .post(format!("{}/api/v1/conversations", t.base))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .multipart(
                reqwest::multipart::Form::new()
                    .text("customer_number", "C-1")
                    .text("customer_name", name.to_owned())
                    .part(
                        "transcript",
                        reqwest::multipart::Part::bytes(
                            b"WEBVTT\n\n00:00.000 --> 00:02.000\nhello\n".to_vec(),
                        )
                        .file_name("c.vtt"),
                    ),
            )
            .send()
    };
    // Amy's key, sent by Bob: Bob's own new upload, never Amy's case (nor a 422 naming it).
    let amys: Value = upload(&amy_token, "shared-key", "Amy's")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bobs = upload(&bob_token, "shared-key", "Bob's other")
        .await
        .unwrap();
    assert_eq!(bobs.status(), StatusCode::ACCEPTED);
    let bobs: Value = bobs.json().await.unwrap();
    assert_eq!(bobs["created"], true);
    assert_ne!(bobs["id"], amys["id"]);
    assert_ne!(bobs["case_number"], amys["case_number"]);
    // The API shows no internal bookkeeping.
    let shown: Value = t
        .client
        .get(format!(
            "{}/api/v1/conversations/{}",
            t.base,
            amys["id"].as_str().unwrap()
        ))
        .bearer_auth(&amy_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metadata = shown["conversation"]["metadata"].as_object().unwrap();
    assert!(
        metadata
            .keys()
            .all(|k| !k.starts_with('_') && k != "request_fingerprint" && k != "rep_email"),
        "{metadata:?}"
    );
    // An admin's own token uploads as the admin.
    let admins: Value = upload(&ada_token, "ada-1", "Ada's")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored = store
        .get_conversation(admins["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.rep_user_id.as_deref(), Some(ada.user.id.as_str()));

    // The only admin cannot be demoted or deactivated, from the store or the page.
    let admin_page = t.sign_in(&ada.user.id).await;
    for (fields, refused) in [
        (vec![("do", "save"), ("role", "rep")], StatusCode::CONFLICT),
        // (No one deactivates themselves from the page.)
        (vec![("do", "deactivate")], StatusCode::BAD_REQUEST),
    ] {
        let status = t
            .submit(
                Some(&admin_page),
                &format!("/people/{}", ada.user.id),
                &fields,
                true,
            )
            .await;
        assert_eq!(status, refused, "{fields:?}");
    }
    assert!(matches!(
        store
            .update_person(
                &ada.user.id,
                &PersonChange {
                    active: Some(false),
                    ..Default::default()
                },
            )
            .await,
        Err(salesai_core::store::StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .update_person(
                &ada.user.id,
                &PersonChange {
                    role: Some(Role::Rep),
                    ..Default::default()
                },
            )
            .await,
        Err(salesai_core::store::StoreError::Conflict(_))
    ));
    assert_eq!(
        store.person(&ada.user.id).await.unwrap().unwrap().user.role,
        Role::Admin
    );

    // With a second admin, Ada may be demoted: her token loses the admin API at once.
    store
        .invite_person("root@example.com", "Root", Role::Admin, None)
        .await
        .unwrap();
    let pause = || {
        t.client
            .post(format!("{}/api/v1/admin/queues/maintenance/pause", t.base))
            .bearer_auth(&ada_token)
            .send()
    };
    assert_eq!(pause().await.unwrap().status(), StatusCode::OK);
    store
        .set_user_role("ada@example.com", Role::Rep)
        .await
        .unwrap();
    assert_eq!(pause().await.unwrap().status(), StatusCode::FORBIDDEN);
    // …and reaches only her own calls now.
    let list: Value = t
        .client
        .get(format!("{}/api/v1/conversations", t.base))
        .bearer_auth(&ada_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![admins["id"].as_str().unwrap()]);
    // Deactivated: nothing at all.
    store
        .update_person(
            &ada.user.id,
            &PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        t.client
            .get(format!("{}/api/v1/conversations", t.base))
            .bearer_auth(&ada_token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

story!(sign_in_links_refuse_other_sites_and_the_limiter_counts_only_failures);
async fn sign_in_links_refuse_other_sites_and_the_limiter_counts_only_failures(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let blobs =
        std::sync::Arc::new(salesai_providers::blob::ObjectBlobStore::folder(dir.path()).unwrap());
    // Behind a reverse proxy on this machine: every request comes from 127.0.0.1, and the
    // proxy names the client in X-Forwarded-For.
    let app = salesai_core::App {
        trusted_proxies: std::sync::Arc::new(
            salesai_core::net::IpRange::parse_list("127.0.0.1").unwrap(),
        ),
        ..salesai_core::App::new(db.store(), blobs)
    };
    let t = TestApp::serve(app, dir).await;
    let store = t.app.store.clone();
    let rep = store
        .invite_person("rep@example.com", "Rita", Role::Rep, None)
        .await
        .unwrap();
    let link = |_: ()| {
        salesai_core::access::issue_link(
            store.as_ref(),
            Some(&rep.user.id),
            None,
            salesai_core::access::LINK_TTL,
        )
    };
    let http = no_redirects();
    let use_link = |path: String, headers: Vec<(&'static str, String)>| {
        let mut request = http
            .post(format!("{}{path}", t.base))
            .fields::<&str, &str>(&[]);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request.send()
    };

    // Another site's page posting a link: refused, and the link still works afterwards.
    let path = link(()).await.unwrap();
    for headers in [
        vec![
            ("origin", "https://evil.example".to_owned()),
            ("sec-fetch-site", "cross-site".to_owned()),
        ],
        // An older browser without Sec-Fetch-Site: its Origin is not this server.
        vec![("origin", "https://evil.example".to_owned())],
    ] {
        let refused = use_link(path.clone(), headers).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert!(refused.headers().get("set-cookie").is_none());
    }
    let ok = use_link(
        path.clone(),
        vec![
            ("origin", t.base.clone()),
            ("sec-fetch-site", "same-origin".to_owned()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        ok.status(),
        StatusCode::SEE_OTHER,
        "the link was not spent by the refusals"
    );

    // A hundred failed attempts from one client behind the proxy…
    for n in 0..100 {
        let r = use_link(
            format!("/login/link/garbage{n}"),
            vec![("x-forwarded-for", "198.51.100.7".to_owned())],
        )
        .await
        .unwrap();
        assert!(
            matches!(r.status(), StatusCode::GONE | StatusCode::TOO_MANY_REQUESTS),
            "{}",
            r.status()
        );
    }
    // …lock out that client only.
    let locked = use_link(
        link(()).await.unwrap(),
        vec![("x-forwarded-for", "198.51.100.7".to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let other = use_link(
        link(()).await.unwrap(),
        vec![("x-forwarded-for", "203.0.113.9".to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(
        other.status(),
        StatusCode::SEE_OTHER,
        "another client signs in"
    );
    // Successes are never counted: the same client signs in thirty-one times in a row.
    for _ in 0..31 {
        let r = use_link(
            link(()).await.unwrap(),
            vec![("x-forwarded-for", "192.0.2.44".to_owned())],
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
    // A forged X-Forwarded-For from a client that is not the proxy is not believed: here every
    // request comes from 127.0.0.1, the proxy, so its last hop is the client.
    assert!(link(()).await.is_ok());

    // "Sign out everywhere" voids the links given before it.
    let unused = link(()).await.unwrap();
    store.end_sessions_of(&rep.user.id).await.unwrap();
    let gone = use_link(unused, vec![]).await.unwrap();
    assert_eq!(gone.status(), StatusCode::GONE);
}

story!(meeting_notes_keep_no_dangerous_link);
async fn meeting_notes_keep_no_dangerous_link(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let cast = Cast::invite(&store, Role::Admin).await;
    // Amy's call, through the real pipeline (the notes belong to a completed analysis).
    let worker = super::pipeline::start_worker(&t.app);
    let token = t.token_of("amy", Role::Rep, Some(&cast.amy.user.id)).await;
    let created: Value = t
        .client
        .post(format!("{}/api/v1/conversations", t.base))
        .bearer_auth(&token)
        .multipart(
            reqwest::multipart::Form::new()
                .text("customer_number", "C-7")
                .part(
                    "file",
                    reqwest::multipart::Part::bytes(super::pipeline::CALL.as_bytes().to_vec())
                        .file_name("call.vtt"),
                ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call = created["id"].as_str().unwrap().to_owned();
    for _ in 0..400 {
        let c = store.get_conversation(&call).await.unwrap().unwrap();
        if c.status == salesai_core::domain::ConversationStatus::Completed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    worker.cancel();
    let amy = t.sign_in(&cast.amy.user.id).await;
    let notes = "# Notes\n\n[x](javascript:alert(1)) ![i](javascript:alert(2)) \
                 [d](data:text/html;base64,PHNjcmlwdD4=) [J](JaVaScRiPt:alert(3)) \
                 [e](jav&#x61;script:alert(4)) [ok](https://example.com/next)";
    let status = t
        .submit(
            Some(&amy),
            &format!("/calls/{call}/notes"),
            &[("action", "save"), ("markdown", notes)],
            true,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = t.page(Some(&amy), &format!("/calls/{call}")).await;
    assert!(
        page.contains("href=\"https://example.com/next\""),
        "the notes are on the page"
    );
    let lower = page.to_ascii_lowercase();
    for bad in [
        "href=\"javascript",
        "src=\"javascript",
        "href=\"data:",
        "<img",
    ] {
        assert!(!lower.contains(bad), "{bad} in the call page");
    }
}
