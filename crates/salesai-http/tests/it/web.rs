//! The web app over HTTP: signing in with one-time links, sessions, CSRF, the pages each kind
//! of person may open (an authorisation matrix over every page route), search, and the audio
//! stream with Range requests.

use std::collections::BTreeSet;

use futures_util::StreamExt as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, COOKIE, LOCATION, RANGE, SET_COOKIE};
use salesai_core::access::{LINK_TTL, SETUP_LINK_TTL, issue_link};
use salesai_core::blob::BlobKey;
use salesai_core::domain::{Media, Role, UploadKind};
use salesai_core::store::PersonChange;
use salesai_core::transcript::Segment;
use salesai_db::story;
use salesai_db::testing::TestDb;

use super::TestApp;

/// A form body, as a browser sends it (reqwest's `form` feature is not built here).
pub(crate) trait FormBody {
    fn fields<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn fields<K: AsRef<str>, V: AsRef<str>>(self, pairs: &[(K, V)]) -> Self {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        };
        let body = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k.as_ref()), enc(v.as_ref())))
            .collect::<Vec<_>>()
            .join("&");
        self.header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
    }
}

/// A call of `rep`, waiting in the queue.
pub(crate) fn new_call_for(rep: &str) -> salesai_core::domain::NewConversation {
    use salesai_core::domain::{CasePeriod, CasePrefix, ConversationType, CustomerNumber};
    salesai_core::domain::NewConversation {
        customer_number: CustomerNumber::parse("C-1").unwrap(),
        customer_name: "Ramen House".into(),
        product_line: "default".into(),
        case_prefix: CasePrefix::parse("SA").unwrap(),
        case_period: CasePeriod::at(chrono::Utc::now(), chrono_tz::Asia::Taipei),
        conversation_type: ConversationType::DiscoveryCall,
        title: "first call".into(),
        conversation_date: Some(chrono::Utc::now()),
        rep_user_id: Some(rep.into()),
        blob_key: None,
        media: Default::default(),
        metadata: serde_json::json!({}),
        first_job: salesai_core::queue::NewJob::new(
            salesai_core::queue::CONVERSATIONS,
            "test.hold",
            serde_json::json!({}),
        ),
        idempotency_key: None,
        slack: None,
    }
}

/// The people of the authorisation matrices: two reps (Amy north, Bob south), their managers
/// (Mia manages north, Max south), an admin (Ada) and Gus, who is deactivated by the tests
/// after they have signed in (an admin for the pages, a rep for the API).
pub(crate) struct Cast {
    pub amy: salesai_core::store::Person,
    pub bob: salesai_core::store::Person,
    pub mia: salesai_core::store::Person,
    pub max: salesai_core::store::Person,
    pub ada: salesai_core::store::Person,
    pub gus: salesai_core::store::Person,
}

impl Cast {
    pub(crate) async fn invite(
        store: &std::sync::Arc<dyn salesai_core::store::Store>,
        gus_role: Role,
    ) -> Cast {
        let invite = |email: &'static str, role: Role, team: &'static str| async move {
            store
                .invite_person(email, email, role, Some(team))
                .await
                .unwrap()
        };
        let cast = Cast {
            amy: invite("amy@example.com", Role::Rep, "north").await,
            bob: invite("bob@example.com", Role::Rep, "south").await,
            mia: invite("mia@example.com", Role::Manager, "north").await,
            max: invite("max@example.com", Role::Manager, "south").await,
            ada: invite("ada@example.com", Role::Admin, "ops").await,
            gus: invite("gus@example.com", gus_role, "ops").await,
        };
        for (p, team) in [(&cast.mia, "north"), (&cast.max, "south")] {
            store
                .update_person(
                    &p.user.id,
                    &PersonChange {
                        manages: Some(vec![team.into()]),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
        }
        cast
    }
}

/// A browser's worth of state for one person: their session cookie and CSRF token.
pub(crate) struct Browser {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `name=value` of a `Set-Cookie` header named `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let pair = v.split(';').next().unwrap().to_owned();
            (pair, v.to_owned())
        })
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a form with a CSRF token");
    html[at + 19..].split('"').next().unwrap().to_owned()
}

impl TestApp {
    /// Signs `user_id` in through a fresh one-time link, as a browser would.
    pub(crate) async fn sign_in(&self, user_id: &str) -> Browser {
        let http = no_redirects();
        let path = issue_link(self.app.store.as_ref(), Some(user_id), None, LINK_TTL)
            .await
            .unwrap();
        let used = http
            .post(format!("{}{path}", self.base))
            .fields::<&str, &str>(&[])
            .send()
            .await
            .unwrap();
        assert_eq!(used.status(), StatusCode::SEE_OTHER);
        let (cookie, _) = set_cookie(&used, "salesai_session").expect("a session cookie");
        let home = http
            .get(format!("{}/", self.base))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(home.status(), StatusCode::OK);
        let csrf = csrf_of(&home.text().await.unwrap());
        Browser { cookie, csrf }
    }

    /// A call of `rep` whose upload is a recording of `size` bytes, stored in 700-byte pieces
    /// so that a range crosses piece boundaries. Returns the call's id and the bytes.
    pub(crate) async fn audio_call(
        &self,
        rep: &str,
        customer: &str,
        size: u32,
    ) -> (String, Vec<u8>) {
        let key = format!("uploads/test/{}", uuid::Uuid::now_v7());
        let mut new = new_call_for(rep);
        new.media = Media {
            kind: Some(UploadKind::Audio),
            format: Some("mp3".into()),
            bytes: Some(u64::from(size)),
            file_name: Some("a.mp3".into()),
        };
        new.blob_key = Some(key.clone());
        new.customer_name = customer.into();
        let call = self.app.store.create_conversation(new).await.unwrap().id;
        let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let pieces: Vec<_> = bytes
            .chunks(700)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        self.app
            .blobs
            .put_stream(
                &BlobKey::parse(&key).unwrap(),
                Box::pin(futures_util::stream::iter(pieces)),
            )
            .await
            .unwrap();
        (call, bytes)
    }

    pub(crate) async fn page(&self, who: Option<&Browser>, path: &str) -> (StatusCode, String) {
        let mut req = no_redirects().get(format!("{}{path}", self.base));
        if let Some(b) = who {
            req = req.header(COOKIE, &b.cookie);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.text().await.unwrap_or_default())
    }

    pub(crate) async fn submit(
        &self,
        who: Option<&Browser>,
        path: &str,
        fields: &[(&str, &str)],
        with_csrf: bool,
    ) -> StatusCode {
        let mut form: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut req = no_redirects().post(format!("{}{path}", self.base));
        if let Some(b) = who {
            req = req.header(COOKIE, &b.cookie);
            if with_csrf {
                form.push(("csrf".into(), b.csrf.clone()));
            }
        }
        req.fields(&form).send().await.unwrap().status()
    }
}

story!(first_admin_signs_in_with_the_setup_link);
async fn first_admin_signs_in_with_the_setup_link(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let http = no_redirects();
    // Anonymous: every page leads to sign-in, remembering where it was going.
    let home = http
        .get(format!("{}/calls?q=x", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), StatusCode::SEE_OTHER);
    assert_eq!(home.headers()[LOCATION], "/login?next=/calls%3Fq%3Dx");
    let path = issue_link(t.app.store.as_ref(), None, None, SETUP_LINK_TTL)
        .await
        .unwrap();
    // The link's page shows the form and uses nothing (a chat preview cannot spend it).
    for _ in 0..2 {
        let (status, html) = t.page(None, &path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("name=\"email\""), "{html}");
    }
    let bad = http
        .post(format!("{}{path}", t.base))
        .fields(&[("name", "Ann"), ("email", "not-an-address")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let done = http
        .post(format!("{}{path}", t.base))
        .fields(&[("name", "Ann Admin"), ("email", "ann@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let (cookie, raw) = set_cookie(&done, "salesai_session").unwrap();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Lax"),
        "{raw}"
    );
    assert!(
        !raw.contains("Secure"),
        "plain http without a public https URL: {raw}"
    );
    let page = http
        .get(format!("{}/", t.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(page.text().await.unwrap().contains("Ann Admin"));
    assert!(t.app.store.has_admin().await.unwrap());
    // Used: a second try finds it gone.
    let again = http
        .post(format!("{}{path}", t.base))
        .fields(&[("name", "Eve"), ("email", "eve@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
}

story!(sessions_end_and_forms_need_their_token);
async fn sessions_end_and_forms_need_their_token(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let rep = t
        .app
        .store
        .invite_person("rita@example.com", "Rita", Role::Rep, Some("north"))
        .await
        .unwrap();
    // The page a person wanted before signing in is where the link lands them.
    let http = no_redirects();
    let login = http
        .get(format!("{}/login?next=/calls%3Fstatus%3Dfailed", t.base))
        .send()
        .await
        .unwrap();
    let (next_cookie, _) = set_cookie(&login, "salesai_next").unwrap();
    let path = issue_link(t.app.store.as_ref(), Some(&rep.user.id), None, LINK_TTL)
        .await
        .unwrap();
    let used = http
        .post(format!("{}{path}", t.base))
        .header(COOKIE, &next_cookie)
        .fields::<&str, &str>(&[])
        .send()
        .await
        .unwrap();
    assert_eq!(used.headers()[LOCATION], "/calls?status=failed");
    let (cookie, _) = set_cookie(&used, "salesai_session").unwrap();
    let (status, html) = t
        .page(
            Some(&Browser {
                cookie: cookie.clone(),
                csrf: String::new(),
            }),
            "/",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let b = Browser {
        cookie,
        csrf: csrf_of(&html),
    };
    // A state-changing request without the token, with a wrong one, or from another site: refused.
    assert_eq!(
        t.submit(Some(&b), "/logout", &[], false).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.submit(Some(&b), "/logout", &[("csrf", "forged")], false)
            .await,
        StatusCode::FORBIDDEN
    );
    let cross = no_redirects()
        .post(format!("{}/logout", t.base))
        .header(COOKIE, &b.cookie)
        .header("sec-fetch-site", "cross-site")
        .fields(&[("csrf", b.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        t.page(Some(&b), "/").await.0,
        StatusCode::OK,
        "still signed in"
    );
    // Signed out: the old cookie is refused.
    assert_eq!(
        t.submit(Some(&b), "/logout", &[], true).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(t.page(Some(&b), "/").await.0, StatusCode::SEE_OTHER);
    // Sign out everywhere ends both of two sessions.
    let (one, two) = (t.sign_in(&rep.user.id).await, t.sign_in(&rep.user.id).await);
    assert_eq!(
        t.submit(Some(&one), "/logout/everywhere", &[], true).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(t.page(Some(&two), "/").await.0, StatusCode::SEE_OTHER);
    // Deactivated: the session stops at once.
    let three = t.sign_in(&rep.user.id).await;
    t.app
        .store
        .update_person(
            &rep.user.id,
            &PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.page(Some(&three), "/").await.0, StatusCode::SEE_OTHER);
}

/// The page routes of the web app, read from its router's source so that a new route without a
/// row in the matrix below fails this test.
fn page_routes() -> BTreeSet<String> {
    let source = include_str!("../../src/web/mod.rs");
    source
        .split(".route(")
        .skip(1)
        .map(|rest| {
            let path = rest.trim_start().trim_start_matches('"');
            path[..path.find('"').unwrap()].to_owned()
        })
        .collect()
}

story!(every_page_route_answers_each_kind_of_person);
async fn every_page_route_answers_each_kind_of_person(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let Cast {
        amy,
        bob,
        mia,
        max,
        ada,
        gus,
    } = Cast::invite(&store, Role::Admin).await;
    // Amy's call: an audio upload, so the audio route has something to stream.
    let (call, _) = t.audio_call(&amy.user.id, "Ramen House", 1000).await;
    let people: Vec<(&str, Option<Browser>)> = vec![
        ("anonymous", None),
        ("rep", Some(t.sign_in(&amy.user.id).await)),
        ("other_rep", Some(t.sign_in(&bob.user.id).await)),
        ("manager", Some(t.sign_in(&mia.user.id).await)),
        ("other_manager", Some(t.sign_in(&max.user.id).await)),
        ("admin", Some(t.sign_in(&ada.user.id).await)),
        ("deactivated", Some(t.sign_in(&gus.user.id).await)),
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
    let signin = S::SEE_OTHER;
    // (route, method, path, [anonymous, rep, other_rep, manager, other_manager, admin, deactivated])
    let rows: Vec<(&str, &str, String, [S; 7])> = vec![
        (
            "/",
            "GET",
            "/".into(),
            [signin, S::OK, S::OK, S::OK, S::OK, S::OK, signin],
        ),
        (
            "/calls",
            "GET",
            "/calls".into(),
            [signin, S::OK, S::OK, S::OK, S::OK, S::OK, signin],
        ),
        (
            "/calls/{id}",
            "GET",
            format!("/calls/{call}"),
            [
                signin,
                S::OK,
                S::FORBIDDEN,
                S::OK,
                S::FORBIDDEN,
                S::OK,
                signin,
            ],
        ),
        (
            "/calls/{id}/audio",
            "GET",
            format!("/calls/{call}/audio"),
            [
                signin,
                S::OK,
                S::FORBIDDEN,
                S::OK,
                S::FORBIDDEN,
                S::OK,
                signin,
            ],
        ),
        (
            "/calls/{id}/status",
            "GET",
            format!("/calls/{call}/status"),
            [
                signin,
                S::OK,
                S::FORBIDDEN,
                S::OK,
                S::FORBIDDEN,
                S::OK,
                signin,
            ],
        ),
        // A pending call: retry and re-analysis are refused as "not now" to those who may act.
        (
            "/calls/{id}/retry",
            "POST",
            format!("/calls/{call}/retry"),
            [
                signin,
                S::CONFLICT,
                S::FORBIDDEN,
                S::CONFLICT,
                S::FORBIDDEN,
                S::CONFLICT,
                signin,
            ],
        ),
        (
            "/calls/{id}/reanalyze",
            "POST",
            format!("/calls/{call}/reanalyze"),
            [
                signin,
                S::CONFLICT,
                S::FORBIDDEN,
                S::CONFLICT,
                S::FORBIDDEN,
                S::CONFLICT,
                signin,
            ],
        ),
        // No action chosen: a clear 400 for those who may edit the call's notes.
        (
            "/calls/{id}/notes",
            "POST",
            format!("/calls/{call}/notes"),
            [
                signin,
                S::BAD_REQUEST,
                S::FORBIDDEN,
                S::BAD_REQUEST,
                S::FORBIDDEN,
                S::BAD_REQUEST,
                signin,
            ],
        ),
        // No side chosen: a clear 400 for those who may correct the call's speakers.
        (
            "/calls/{id}/speakers",
            "POST",
            format!("/calls/{call}/speakers"),
            [
                signin,
                S::BAD_REQUEST,
                S::FORBIDDEN,
                S::BAD_REQUEST,
                S::FORBIDDEN,
                S::BAD_REQUEST,
                signin,
            ],
        ),
        (
            "/people",
            "GET",
            "/people".into(),
            [
                signin,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::OK,
                signin,
            ],
        ),
        (
            "/people",
            "POST",
            "/people".into(),
            [
                signin,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::BAD_REQUEST,
                signin,
            ],
        ),
        (
            "/people/{id}",
            "POST",
            format!("/people/{}", bob.user.id),
            [
                signin,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::BAD_REQUEST,
                signin,
            ],
        ),
        (
            "/api",
            "GET",
            "/api".into(),
            [signin, S::OK, S::OK, S::OK, S::OK, S::OK, signin],
        ),
        (
            "/ops",
            "GET",
            "/ops".into(),
            [
                signin,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::OK,
                signin,
            ],
        ),
        (
            "/ops/queues/{name}/{action}",
            "POST",
            "/ops/queues/maintenance/resume".into(),
            [
                signin,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::SEE_OTHER,
                signin,
            ],
        ),
        (
            "/ops/jobs/{id}/retry",
            "POST",
            "/ops/jobs/987654/retry".into(),
            [
                signin,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::NOT_FOUND,
                signin,
            ],
        ),
        // No filter: refused, as the CLI refuses a purge without one.
        (
            "/ops/jobs",
            "POST",
            "/ops/jobs".into(),
            [
                signin,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::BAD_REQUEST,
                signin,
            ],
        ),
        // Delete after the other call routes: it removes the call.
        (
            "/calls/{id}/delete",
            "POST",
            format!("/calls/{call}/delete"),
            [
                signin,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::FORBIDDEN,
                S::SEE_OTHER,
                signin,
            ],
        ),
        (
            "/upload",
            "GET",
            "/upload".into(),
            [signin, S::OK, S::OK, S::OK, S::OK, S::OK, signin],
        ),
        // Not multipart: refused as a bad request once signed in.
        (
            "/upload",
            "POST",
            "/upload".into(),
            [
                signin,
                S::BAD_REQUEST,
                S::BAD_REQUEST,
                S::BAD_REQUEST,
                S::BAD_REQUEST,
                S::BAD_REQUEST,
                signin,
            ],
        ),
        // Sign-out last: "everywhere" ends the person's other sessions too.
        (
            "/logout/everywhere",
            "POST",
            "/logout/everywhere".into(),
            [
                signin,
                S::SEE_OTHER,
                S::SEE_OTHER,
                S::SEE_OTHER,
                S::SEE_OTHER,
                S::SEE_OTHER,
                signin,
            ],
        ),
        (
            "/logout",
            "POST",
            "/logout".into(),
            [
                signin,
                S::SEE_OTHER,
                S::SEE_OTHER,
                S::SEE_OTHER,
                S::SEE_OTHER,
                S::SEE_OTHER,
                signin,
            ],
        ),
        // Open to everyone.
        ("/login", "GET", "/login".into(), [S::OK; 7]),
        (
            "/login/link/{secret}",
            "GET",
            "/login/link/nosuch".into(),
            [S::GONE; 7],
        ),
        // No provider configured here (the OpenID Connect tests configure one).
        (
            "/login/oidc/{provider}",
            "GET",
            "/login/oidc/slack".into(),
            [S::NOT_FOUND; 7],
        ),
        (
            "/login/oidc/{provider}/callback",
            "GET",
            "/login/oidc/slack/callback?code=c&state=s".into(),
            [S::NOT_FOUND; 7],
        ),
        (
            "/lang",
            "GET",
            "/lang?to=en&next=/calls".into(),
            [S::SEE_OTHER; 7],
        ),
        (
            "/assets/{file}",
            "GET",
            "/assets/app.css".into(),
            [S::OK; 7],
        ),
    ];
    let covered: BTreeSet<String> = rows.iter().map(|r| r.0.to_owned()).collect();
    assert_eq!(
        covered,
        page_routes(),
        "every page route has a row in the matrix"
    );
    // Sign-out rows end sessions: run them per person last but before delete, in a fresh
    // session each, so the other rows keep theirs.
    for (route, method, path, expected) in &rows {
        for (i, (who, browser)) in people.iter().enumerate() {
            let fresh;
            let browser =
                if route.starts_with("/logout") && browser.is_some() && *who != "deactivated" {
                    let id = match *who {
                        "rep" => &amy.user.id,
                        "other_rep" => &bob.user.id,
                        "manager" => &mia.user.id,
                        "other_manager" => &max.user.id,
                        _ => &ada.user.id,
                    };
                    fresh = t.sign_in(id).await;
                    Some(&fresh)
                } else {
                    browser.as_ref()
                };
            let got = match *method {
                "GET" => t.page(browser, path).await.0,
                _ => t.submit(browser, path, &[], true).await,
            };
            assert_eq!(got, expected[i], "{method} {path} as {who}");
        }
    }
    assert!(
        store.get_conversation(&call).await.unwrap().is_none(),
        "the admin deleted it"
    );
}

story!(audio_streams_with_ranges_and_search_finds_chinese);
async fn audio_streams_with_ranges_and_search_finds_chinese(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let amy = store
        .invite_person("amy@example.com", "Amy", Role::Rep, None)
        .await
        .unwrap();
    let (call, bytes) = t.audio_call(&amy.user.id, "大安咖啡館", 5000).await;
    store
        .save_transcript(
            &call,
            &[
                Segment {
                    speaker: Some("業務".into()),
                    start_ms: 0,
                    end_ms: 3_000,
                    text: "請問您目前怎麼接單？".into(),
                    ..Default::default()
                },
                Segment {
                    speaker: Some("客戶".into()),
                    start_ms: 63_000,
                    end_ms: 66_000,
                    text: "我們每個月的預算大概五萬".into(),
                    ..Default::default()
                },
            ],
        )
        .await
        .unwrap();
    let b = t.sign_in(&amy.user.id).await;
    let http = no_redirects();
    let get = |range: Option<&'static str>| {
        let mut req = http
            .get(format!("{}/calls/{call}/audio", t.base))
            .header(COOKIE, &b.cookie);
        if let Some(r) = range {
            req = req.header(RANGE, r);
        }
        req.send()
    };
    let whole = get(None).await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap().to_vec(), bytes);
    for (range, lo, hi) in [
        ("bytes=690-1410", 690usize, 1411usize),
        ("bytes=4990-", 4990, 5000),
        ("bytes=-3", 4997, 5000),
    ] {
        let part = get(Some(range)).await.unwrap();
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            part.headers()[CONTENT_RANGE],
            format!("bytes {lo}-{}/5000", hi - 1)
        );
        let mut body = Vec::new();
        let mut stream = part.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(body, bytes[lo..hi], "{range}");
    }
    let refused = get(Some("bytes=6000-")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(refused.headers()[CONTENT_RANGE], "bytes */5000");
    // Search: a Chinese phrase lands on its moment, highlighted; the customer's name is found.
    let (status, html) = t.page(Some(&b), "/calls?q=%E9%A0%90%E7%AE%97").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("/calls/{call}?t=63#hit")), "{html}");
    assert!(html.contains("<mark>預算</mark>"), "{html}");
    let (_, html) = t.page(Some(&b), "/calls?q=%E5%92%96%E5%95%A1").await;
    assert!(html.contains("大安咖啡館"));
    let (_, html) = t.page(Some(&b), "/calls?q=nothing-like-this").await;
    assert!(!html.contains("大安咖啡館"));
    // The call page: the player with the moment, the transcript lines that seek.
    let (status, html) = t.page(Some(&b), &format!("/calls/{call}?t=63")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(&format!("src=\"/calls/{call}/audio#t=63\"")),
        "{html}"
    );
    assert!(
        html.contains("<li data-t=\"1:03\" id=\"hit\">"),
        "the line at the moment is marked: {html}"
    );
    // Bad filters are a clear 400, not a crash.
    assert_eq!(
        t.page(Some(&b), "/calls?min=500").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        t.page(Some(&b), "/calls?sort=random").await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, sorted) = t.page(Some(&b), "/calls?sort=score_low").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        sorted.contains("<option value=\"score_low\" selected"),
        "{sorted}"
    );
    assert_eq!(
        t.page(Some(&b), "/calls?from=+99999-01-01").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        t.page(Some(&b), "/calls?after=garbage").await.0,
        StatusCode::OK
    );
}

story!(uploads_from_the_page_need_the_form_token_first);
async fn uploads_from_the_page_need_the_form_token_first(db: &TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let blobs: std::sync::Arc<dyn salesai_core::blob::BlobStore> =
        std::sync::Arc::new(salesai_providers::blob::ObjectBlobStore::folder(dir.path()).unwrap());
    let folder = dir.path().to_owned();
    let t = TestApp::spawn_with(db, blobs, dir).await;
    let amy = t
        .app
        .store
        .invite_person("amy@example.com", "Amy", Role::Rep, None)
        .await
        .unwrap();
    let b = t.sign_in(&amy.user.id).await;
    let (status, html) = t.page(Some(&b), "/upload?line=ichef").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("name=\"product_line\" value=\"ichef\""),
        "the line's form"
    );
    let send = |csrf: Option<String>| {
        let mut form = reqwest::multipart::Form::new();
        if let Some(token) = csrf {
            form = form.text("csrf", token);
        }
        let form = form
            .text("product_line", "ichef")
            .text("customer_number", "C-9")
            .text("customer_name", "大安咖啡館")
            .part(
                "file",
                reqwest::multipart::Part::bytes(crate::pipeline::CALL.as_bytes().to_vec())
                    .file_name("call.vtt"),
            );
        no_redirects()
            .post(format!("{}/upload", t.base))
            .header(COOKIE, &b.cookie)
            .multipart(form)
            .send()
    };
    let files = || walk(&folder);
    for forged in [None, Some("forged".to_owned())] {
        let refused = send(forged).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(files(), 0, "nothing stored for a forged form");
    }
    let done = send(Some(b.csrf.clone())).await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let to = done.headers()[LOCATION].to_str().unwrap().to_owned();
    let id = to.trim_start_matches("/calls/");
    let call = t.app.store.get_conversation(id).await.unwrap().unwrap();
    assert_eq!(
        call.rep_user_id.as_deref(),
        Some(amy.user.id.as_str()),
        "uploaded as the signed-in rep"
    );
    assert_eq!(call.customer_name, "大安咖啡館");
    assert_eq!(call.metadata["source"], "web");
    assert_eq!(files(), 1);
    let (status, html) = t.page(Some(&b), &to).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("data-status-url"),
        "a call in the pipeline follows itself"
    );
}

/// How many files are under a folder.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() { walk(&p) } else { 1 }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A doctor with one finding, as the binary's would report a stuck queue.
struct OneFinding;

#[async_trait::async_trait]
impl salesai_core::doctor::Doctor for OneFinding {
    async fn findings(&self) -> Vec<salesai_core::doctor::Finding> {
        vec![salesai_core::doctor::Finding {
            severity: salesai_core::doctor::Severity::P1,
            area: "queue".into(),
            title: "1 dead job in conversations".into(),
            evidence: "INVALID_INPUT × 1".into(),
            action: "salesai queue retry --status dead".into(),
            title_zh: "conversations 佇列有 1 個失敗的工作".into(),
            action_zh: "修正原因後執行 salesai queue retry --status dead".into(),
            evidence_zh: "INVALID_INPUT 共 1 次".into(),
        }]
    }
}

story!(operations_page_runs_the_runbook);
async fn operations_page_runs_the_runbook(db: &TestDb) {
    use salesai_core::queue::{CONVERSATIONS, JobFailure, JobStatus, NewJob};
    let dir = tempfile::tempdir().unwrap();
    let blobs =
        std::sync::Arc::new(salesai_providers::blob::ObjectBlobStore::folder(dir.path()).unwrap());
    let t = TestApp::serve(
        salesai_core::App {
            doctor: Some(std::sync::Arc::new(OneFinding)),
            ..salesai_core::App::new(db.store(), blobs)
        },
        dir,
    )
    .await;
    let store = t.app.store.clone();
    let ada = store
        .invite_person("ada@example.com", "Ada", Role::Admin, None)
        .await
        .unwrap();
    let admin = t.sign_in(&ada.user.id).await;
    // Two dead jobs and one waiting.
    for _ in 0..2 {
        store
            .enqueue(NewJob::new(
                CONVERSATIONS,
                "test.dead",
                serde_json::json!({}),
            ))
            .await
            .unwrap();
        let claimed = store.claim(CONVERSATIONS, "w", 1).await.unwrap();
        store
            .fail(
                &claimed[0].lease().unwrap(),
                &JobFailure {
                    code: "INVALID_INPUT".into(),
                    message: "<b>bad</b> file".into(),
                    retryable: false,
                },
            )
            .await
            .unwrap();
    }
    let (status, html) = t.page(Some(&admin), "/ops").await;
    assert_eq!(status, StatusCode::OK);
    // The page's language (zh-TW by default): the finding in Traditional Chinese, its
    // command as typed.
    assert!(
        html.contains("conversations 佇列有 1 個失敗的工作"),
        "{html}"
    );
    assert!(!html.contains("1 dead job in conversations"));
    assert!(html.contains("salesai queue retry --status dead"));
    assert!(
        html.contains("INVALID_INPUT 共 1 次"),
        "the evidence in zh-TW"
    );
    assert!(!html.contains("INVALID_INPUT × 1"));
    assert!(
        html.contains("&lt;b&gt;bad&lt;/b&gt; file"),
        "error text is escaped"
    );
    let dead = store
        .list_jobs(&salesai_core::queue::JobFilter {
            status: Some(JobStatus::Dead),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 2);

    // Pause and resume, as `salesai queue pause` does.
    assert_eq!(
        t.submit(Some(&admin), "/ops/queues/conversations/pause", &[], true)
            .await,
        StatusCode::SEE_OTHER
    );
    assert!(
        store
            .get_queue_settings(CONVERSATIONS)
            .await
            .unwrap()
            .paused
    );
    assert_eq!(
        t.submit(Some(&admin), "/ops/queues/conversations/pause", &[], false)
            .await,
        StatusCode::FORBIDDEN,
        "no CSRF token"
    );
    assert_eq!(
        t.submit(Some(&admin), "/ops/queues/no-such-queue/pause", &[], true)
            .await,
        StatusCode::NOT_FOUND,
        "no phantom queues"
    );
    assert_eq!(
        t.submit(Some(&admin), "/ops/queues/conversations/resume", &[], true)
            .await,
        StatusCode::SEE_OTHER
    );
    assert!(
        !store
            .get_queue_settings(CONVERSATIONS)
            .await
            .unwrap()
            .paused
    );

    // Retry one dead job.
    let one = dead[0].id.to_string();
    assert_eq!(
        t.submit(Some(&admin), &format!("/ops/jobs/{one}/retry"), &[], true)
            .await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        store.get_job(dead[0].id).await.unwrap().unwrap().job.status,
        JobStatus::Queued
    );
    // Retrying it again: it is no longer dead.
    assert_eq!(
        t.submit(Some(&admin), &format!("/ops/jobs/{one}/retry"), &[], true)
            .await,
        StatusCode::NOT_FOUND
    );

    // Purge: the first post only shows what would go; nothing is deleted until confirmed.
    let preview = no_redirects()
        .post(format!("{}/ops/jobs", t.base))
        .header(COOKIE, &admin.cookie)
        .fields(&[
            ("csrf", admin.csrf.as_str()),
            ("action", "purge"),
            ("status", "dead"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(preview.status(), StatusCode::OK);
    let page = preview.text().await.unwrap();
    assert!(page.contains(&format!("#{}", dead[1].id)), "{page}");
    assert!(page.contains("name=\"confirm\" value=\"yes\""));
    assert!(store.get_job(dead[1].id).await.unwrap().is_some());
    assert_eq!(
        t.submit(
            Some(&admin),
            "/ops/jobs",
            &[("action", "purge"), ("status", "dead"), ("confirm", "yes")],
            true
        )
        .await,
        StatusCode::SEE_OTHER
    );
    assert!(store.get_job(dead[1].id).await.unwrap().is_none());
    // The retried job (queued) was not touched by a purge of dead jobs.
    assert!(store.get_job(dead[0].id).await.unwrap().is_some());
    // A bad age is a clear refusal.
    assert_eq!(
        t.submit(
            Some(&admin),
            "/ops/jobs",
            &[("action", "retry"), ("older_than_hours", "-3")],
            true
        )
        .await,
        StatusCode::BAD_REQUEST
    );
}

/// A 60-minute call as WebVTT: 720 five-second cues, rep and customer in turn, Chinese lines of
/// the length people speak in five seconds.
fn sixty_minute_vtt() -> String {
    let lines = [
        (
            "業務",
            "老闆您好，今天想跟您聊聊店裡點餐和出單的流程，大概會花半小時。",
        ),
        (
            "客戶",
            "我們現在都是手寫單，尖峰時段常常漏單，客人等太久就走了。",
        ),
        (
            "業務",
            "一個禮拜大概會漏幾次？每次漏單對營收的影響大概多少？",
        ),
        (
            "客戶",
            "至少十幾次吧，一次損失幾百塊，一個月下來也要兩三萬。",
        ),
        (
            "業務",
            "了解，如果點餐直接送到廚房，出單時間可以縮短一半以上。",
        ),
        (
            "客戶",
            "聽起來不錯，但預算大概只有五萬，而且要跟合夥人討論。",
        ),
        ("業務", "沒問題，我們有分期方案，也可以先試用兩週看看效果。"),
        ("客戶", "隔壁那家用的是別家的系統，他們說月費比較便宜。"),
        (
            "業務",
            "月費我們差不多，但我們有在地客服，半夜出問題也有人接。",
        ),
        ("客戶", "那你下週二下午兩點帶試算表過來，我請合夥人一起聽。"),
    ];
    let mut vtt = String::from("WEBVTT\n\n");
    for i in 0..720u32 {
        let (who, text) = lines[(i as usize * 7) % lines.len()];
        let clock = |ms: u32| {
            format!(
                "{:02}:{:02}:{:02}.{:03}",
                ms / 3_600_000,
                ms / 60_000 % 60,
                ms / 1000 % 60,
                ms % 1000
            )
        };
        vtt.push_str(&format!(
            "{} --> {}\n<v {who}>{text}\n\n",
            clock(i * 5000),
            clock(i * 5000 + 4800)
        ));
    }
    vtt
}

story!(a_sixty_minute_call_page_stays_under_100_kb);
async fn a_sixty_minute_call_page_stays_under_100_kb(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let worker = super::pipeline::start_worker(&t.app);
    let ada = t
        .app
        .store
        .invite_person("ada@example.com", "Ada", Role::Admin, None)
        .await
        .unwrap();
    let admin = t.sign_in(&ada.user.id).await;
    let token = t.token("svc", Role::Service).await;
    let form = reqwest::multipart::Form::new()
        .text("customer_number", "C-60")
        .text("customer_name", "好食餐廳")
        .text("product_line", "default")
        .part(
            "file",
            reqwest::multipart::Part::bytes(sixty_minute_vtt().into_bytes()).file_name("sixty.vtt"),
        );
    let created: serde_json::Value = t
        .post("/api/v1/conversations", &token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let mut html = String::new();
    for _ in 0..600 {
        let (status, page) = t.page(Some(&admin), &format!("/calls/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        if !page.contains("id=\"live\"") {
            html = page;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    worker.cancel();
    assert!(!html.is_empty(), "the call never completed");
    assert_eq!(
        html.matches("<li data-t=").count(),
        720,
        "every line of the hour is on the page"
    );
    let kb = html.len() as f64 / 1024.0;
    println!("60-minute call page: {kb:.1} KB");
    assert!(html.len() <= 100 * 1024, "the page is {kb:.1} KB");
}

story!(meeting_notes_are_edited_on_the_call_page);
async fn meeting_notes_are_edited_on_the_call_page(db: &TestDb) {
    let t = TestApp::spawn(db).await;
    let store = t.app.store.clone();
    let amy = store
        .invite_person("amy@example.com", "Amy", Role::Rep, Some("north"))
        .await
        .unwrap();
    let bob = store
        .invite_person("bob@example.com", "Bob", Role::Rep, Some("south"))
        .await
        .unwrap();
    // Amy's call, through the real pipeline (the notes belong to a completed analysis).
    let worker = super::pipeline::start_worker(&t.app);
    let token = t.token("svc", Role::Service).await;
    let form = reqwest::multipart::Form::new()
        .text("customer_number", "C-7")
        .text("product_line", "default")
        .text("rep_email", "amy@example.com")
        .part(
            "file",
            reqwest::multipart::Part::bytes(super::pipeline::CALL.as_bytes().to_vec())
                .file_name("call.vtt"),
        );
    let created: serde_json::Value = t
        .post("/api/v1/conversations", &token)
        .multipart(form)
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
    let generated = store
        .get_agent_outputs(&call)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.agent == "summary")
        .expect("a summary")
        .output["meeting_notes_markdown"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_line = generated
        .lines()
        .find(|l| l.starts_with("- "))
        .unwrap()
        .trim_start_matches("- ")
        .to_owned();
    let a = t.sign_in(&amy.user.id).await;
    let b = t.sign_in(&bob.user.id).await;
    let (_, html) = t.page(Some(&a), &format!("/calls/{call}")).await;
    let escaped = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    assert!(
        html.contains(&escaped(&first_line)),
        "{first_line} in {html}"
    );
    assert!(html.contains(&format!("action=\"/calls/{call}/notes\"")));
    // Saved: shown instead of the generated notes, raw HTML as text, with who edited them.
    let edited = "## Agreed\n- demo on **Tuesday**\n<script>alert(1)</script>";
    assert_eq!(
        t.submit(
            Some(&a),
            &format!("/calls/{call}/notes"),
            &[("action", "save"), ("markdown", edited)],
            true
        )
        .await,
        StatusCode::SEE_OTHER
    );
    let (_, html) = t.page(Some(&a), &format!("/calls/{call}")).await;
    assert!(html.contains("<strong>Tuesday</strong>"), "{html}");
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("Amy"));
    assert!(!html.contains(&format!("<li>{}</li>", escaped(&first_line))));
    // Another team's rep may not; no token, no change; empty notes are refused.
    assert_eq!(
        t.submit(
            Some(&b),
            &format!("/calls/{call}/notes"),
            &[("action", "save"), ("markdown", "hijack")],
            true
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.submit(
            Some(&a),
            &format!("/calls/{call}/notes"),
            &[("action", "save"), ("markdown", "no token")],
            false
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.submit(
            Some(&a),
            &format!("/calls/{call}/notes"),
            &[("action", "save"), ("markdown", "  ")],
            true
        )
        .await,
        StatusCode::BAD_REQUEST
    );
    assert!(
        store
            .meeting_notes(&call)
            .await
            .unwrap()
            .unwrap()
            .markdown
            .contains("Tuesday")
    );
    // Restored: the generated notes again.
    assert_eq!(
        t.submit(
            Some(&a),
            &format!("/calls/{call}/notes"),
            &[("action", "restore")],
            true
        )
        .await,
        StatusCode::SEE_OTHER
    );
    let (_, html) = t.page(Some(&a), &format!("/calls/{call}")).await;
    assert!(html.contains(&escaped(&first_line)));
    assert!(store.meeting_notes(&call).await.unwrap().is_none());
}
