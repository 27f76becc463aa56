//! Sign-in through OpenID Connect against a real provider running locally: the PyPI package
//! `oidc-provider-mock` (an Authlib-based OpenID Provider that signs RS256 ID tokens with its
//! own key and publishes it at its JWKS URI). CI installs it; elsewhere these tests are skipped
//! with a note unless `CI=true`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use salesai_core::App;
use salesai_core::access::{OidcProvider, TenantPin};
use salesai_core::domain::Role;
use salesai_core::store::PersonChange;
use salesai_db::story;
use salesai_db::testing::TestDb;
use salesai_providers::blob::ObjectBlobStore;

use super::TestApp;

/// A running `oidc-provider-mock`, stopped on drop.
struct Provider {
    issuer: String,
    child: tokio::process::Child,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Provider {
    async fn start() -> Option<Provider> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new("oidc-provider-mock")
            .args(["--port", &port.to_string(), "--require-nonce", "true"])
            .env("PYTHONWARNINGS", "ignore")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "oidc-provider-mock is required in CI (pip install oidc-provider-mock): {e}"
                );
                eprintln!(
                    "note: oidc-provider-mock not found ({e}); skipping the OpenID Connect test"
                );
                return None;
            }
        };
        let issuer = format!("http://127.0.0.1:{port}");
        let provider = Provider { issuer, child };
        let discovery = format!("{}/.well-known/openid-configuration", provider.issuer);
        for _ in 0..200 {
            if reqwest::get(&discovery)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Some(provider);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oidc-provider-mock did not answer at {discovery} within 20 s");
    }

    /// Sets the claims the provider will assert for `sub`.
    async fn user(&self, sub: &str, claims: serde_json::Value) {
        let r = reqwest::Client::new()
            .put(format!("{}/users/{sub}", self.issuer))
            .json(&claims)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    fn config(&self, id: &str, slack: bool, domains: &[&str]) -> OidcProvider {
        OidcProvider {
            id: id.into(),
            label: if slack { "Slack" } else { "Example SSO" }.into(),
            issuer: self.issuer.clone(),
            client_id: format!("salesai-{id}"),
            client_secret: "the-client-secret".into(),
            allowed_domains: domains.iter().map(|d| d.to_string()).collect(),
            slack,
            // Slack's workspace is always pinned (the settings require it).
            tenant: slack.then(|| TenantPin {
                claim: "https://slack.com/team_id".into(),
                value: "T1".into(),
            }),
        }
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn cookie_pair(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

/// What one trip through the provider ended in.
struct Outcome {
    status: StatusCode,
    /// The session cookie, when one was set.
    session: Option<String>,
    body: String,
    /// The provider's redirect back to salesai, to replay.
    callback: String,
    flow: String,
}

impl TestApp {
    /// Walks a browser through `/login/oidc/{id}`: salesai → the provider's authorisation page,
    /// where `sub` approves → salesai's callback.
    async fn through_provider(&self, id: &str, sub: &str) -> Outcome {
        let http = no_redirects();
        let start = http
            .get(format!("{}/login/oidc/{id}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), StatusCode::SEE_OTHER);
        let flow = cookie_pair(&start, "salesai_oidc").expect("the attempt's cookie");
        let authorize = start.headers()[LOCATION].to_str().unwrap().to_owned();
        for wanted in [
            "code_challenge_method=S256",
            "code_challenge=",
            "nonce=",
            "state=",
            "scope=openid",
        ] {
            assert!(authorize.contains(wanted), "{authorize} lacks {wanted}");
        }
        let approved = http
            .post(&authorize)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(format!("sub={sub}"))
            .send()
            .await
            .unwrap();
        assert_eq!(approved.status(), StatusCode::FOUND, "{authorize}");
        let callback = approved.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(
            callback.starts_with(&format!("{}/login/oidc/{id}/callback?", self.base)),
            "{callback}"
        );
        self.callback(&callback, &flow).await
    }

    async fn callback(&self, callback: &str, flow: &str) -> Outcome {
        let back = no_redirects()
            .get(callback)
            .header(COOKIE, flow)
            .send()
            .await
            .unwrap();
        let status = back.status();
        let session = cookie_pair(&back, "salesai_session").filter(|c| c.len() > 20);
        Outcome {
            status,
            session,
            body: back.text().await.unwrap(),
            callback: callback.to_owned(),
            flow: flow.to_owned(),
        }
    }

    async fn home_as(&self, session: &str) -> String {
        let r = no_redirects()
            .get(format!("{}/", self.base))
            .header(COOKIE, session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    }
}

async fn spawn(db: &TestDb, providers: Vec<OidcProvider>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(ObjectBlobStore::folder(dir.path()).unwrap());
    let app = App {
        sign_in: Arc::new(providers),
        ..App::new(db.store(), blobs)
    };
    TestApp::serve(app, dir).await
}

story!(single_sign_on_signs_in_invited_people_and_allowed_domains_only);
async fn single_sign_on_signs_in_invited_people_and_allowed_domains_only(db: &TestDb) {
    let Some(idp) = Provider::start().await else {
        return;
    };
    let t = spawn(db, vec![idp.config("sso", false, &["example.com"])]).await;
    // The sign-in page offers the provider.
    let login = t
        .client
        .get(format!("{}/login", t.base))
        .send()
        .await
        .unwrap();
    assert!(login.text().await.unwrap().contains("/login/oidc/sso"));

    // An invited person, matched by verified e-mail (case aside).
    let ann = t
        .app
        .store
        .invite_person("ann@example.com", "Ann Lin", Role::Manager, Some("north"))
        .await
        .unwrap();
    idp.user(
        "ann-sub",
        serde_json::json!({"email": "Ann@Example.com", "email_verified": true, "name": "Ann"}),
    )
    .await;
    let ok = t.through_provider("sso", "ann-sub").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    let session = ok.session.expect("a session");
    assert!(t.home_as(&session).await.contains("Ann Lin"));
    let sessions_now = t.app.store.end_sessions_of(&ann.user.id).await.unwrap();
    assert_eq!(sessions_now, 1);

    // The provider's answer replayed (same code, same attempt cookie): refused.
    let again = t.callback(&ok.callback, &ok.flow).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.session.is_none());

    // A state that is not the attempt's, or no attempt cookie at all: refused before any code
    // is exchanged.
    let fresh = t.through_provider("sso", "ann-sub").await;
    assert!(fresh.session.is_some());
    let forged = fresh.callback.replace("state=", "state=x");
    let bad_state = t.callback(&forged, &fresh.flow).await;
    assert_eq!(bad_state.status, StatusCode::BAD_REQUEST);
    let no_cookie = t.callback(&fresh.callback, "other=1").await;
    assert_eq!(no_cookie.status, StatusCode::BAD_REQUEST);
    // Pages default to zh-TW without Accept-Language.
    assert!(
        no_cookie.body.contains("請從登入頁重新開始"),
        "{}",
        no_cookie.body
    );

    // Someone new from an allowed domain joins as a rep with no team.
    idp.user(
        "cat-sub",
        serde_json::json!({"email": "cat@example.com", "email_verified": true, "name": "Cat Wu"}),
    )
    .await;
    let cat = t.through_provider("sso", "cat-sub").await;
    assert_eq!(cat.status, StatusCode::SEE_OTHER, "{}", cat.body);
    assert!(cat.session.is_some());
    let joined = t
        .app
        .store
        .person_by_identity(None, Some("cat@example.com"))
        .await
        .unwrap()
        .expect("Cat joined");
    assert_eq!(joined.user.role, Role::Rep);
    assert_eq!(joined.user.display_name, "Cat Wu");

    // Another domain, or an unverified address: not let in, nobody created.
    for (sub, claims, why) in [
        (
            "eve-sub",
            serde_json::json!({"email": "eve@evil.example", "email_verified": true}),
            "邀請",
        ),
        (
            "dan-sub",
            serde_json::json!({"email": "dan@example.com", "email_verified": false}),
            "沒有確認",
        ),
    ] {
        idp.user(sub, claims).await;
        let refused = t.through_provider("sso", sub).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{sub}");
        assert!(refused.session.is_none());
        assert!(refused.body.contains(why), "{}", refused.body);
    }
    for email in ["eve@evil.example", "dan@example.com"] {
        assert!(
            t.app
                .store
                .person_by_identity(None, Some(email))
                .await
                .unwrap()
                .is_none()
        );
    }

    // A deactivated person is refused even with a valid ID token.
    t.app
        .store
        .update_person(
            &ann.user.id,
            &PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let gone = t.through_provider("sso", "ann-sub").await;
    assert_eq!(gone.status, StatusCode::FORBIDDEN);
    assert!(gone.body.contains("已停用"));

    // A provider that does not exist here.
    let r = t
        .client
        .get(format!("{}/login/oidc/nosuch", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

story!(sign_in_with_slack_matches_the_slack_user_id_first);
async fn sign_in_with_slack_matches_the_slack_user_id_first(db: &TestDb) {
    let Some(idp) = Provider::start().await else {
        return;
    };
    // No allowed domains: only people salesai knows.
    let t = spawn(db, vec![idp.config("slack", true, &[])]).await;
    // Bo is known from Slack (a recording he dropped), under another e-mail than Slack now says.
    let bo = t
        .app
        .store
        .find_or_create_user(Some("bo@old.example.com"), Some("U0BO"), "Bo Chen")
        .await
        .unwrap();
    idp.user(
        "slack-bo",
        serde_json::json!({"email": "bo@new.example.com", "email_verified": true,
            "https://slack.com/user_id": "U0BO", "https://slack.com/team_id": "T1"}),
    )
    .await;
    let ok = t.through_provider("slack", "slack-bo").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(t.home_as(&ok.session.unwrap()).await.contains("Bo Chen"));
    assert_eq!(t.app.store.end_sessions_of(&bo).await.unwrap(), 1);

    // A member of another Slack workspace, even one with Bo's user id: refused.
    idp.user(
        "slack-bo-elsewhere",
        serde_json::json!({"email": "bo@new.example.com", "email_verified": true,
            "https://slack.com/user_id": "U0BO", "https://slack.com/team_id": "T666"}),
    )
    .await;
    let elsewhere = t.through_provider("slack", "slack-bo-elsewhere").await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    assert!(elsewhere.session.is_none());
    assert!(elsewhere.body.contains("其他組織"), "{}", elsewhere.body);

    // Unknown Slack user with an unknown e-mail: refused (no allow-list), nobody created.
    idp.user(
        "slack-zed",
        serde_json::json!({"email": "zed@example.com", "email_verified": true,
            "https://slack.com/user_id": "U0ZED", "https://slack.com/team_id": "T1"}),
    )
    .await;
    let refused = t.through_provider("slack", "slack-zed").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        t.app
            .store
            .person_by_identity(Some("U0ZED"), Some("zed@example.com"))
            .await
            .unwrap()
            .is_none()
    );
}

story!(sign_in_cannot_be_borrowed);
/// The holes an attacker with their own account at the provider tried: an unverified e-mail,
/// a second account for a linked person, a token for other audiences too, another tenant.
/// Each is refused with a page that says why, and the person's own account keeps working.
async fn sign_in_cannot_be_borrowed(db: &TestDb) {
    let Some(idp) = Provider::start().await else {
        return;
    };
    let mut sso = idp.config("sso", false, &[]);
    sso.tenant = Some(TenantPin {
        claim: "hd".into(),
        value: "example.com".into(),
    });
    let t = spawn(db, vec![sso]).await;
    let rep = t
        .app
        .store
        .invite_person("rep@example.com", "Rita Rep", Role::Rep, Some("north"))
        .await
        .unwrap();
    let admin = t
        .app
        .store
        .invite_person("boss@example.com", "Bea Boss", Role::Admin, None)
        .await
        .unwrap();
    let english = |o: &Outcome| o.body.clone();

    // 1. The attacker's account says it is rep@example.com, without `email_verified`.
    idp.user(
        "attacker",
        serde_json::json!({"email": "rep@example.com", "hd": "example.com"}),
    )
    .await;
    let borrowed = t.through_provider("sso", "attacker").await;
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN, "{}", borrowed.body);
    assert!(borrowed.session.is_none());
    assert!(english(&borrowed).contains("沒有確認"), "{}", borrowed.body);
    // …nor `email_verified: "false"`, nor as the admin.
    idp.user(
        "attacker2",
        serde_json::json!({"email": "boss@example.com", "email_verified": "false", "hd": "example.com"}),
    )
    .await;
    let as_admin = t.through_provider("sso", "attacker2").await;
    assert_eq!(as_admin.status, StatusCode::FORBIDDEN);
    assert!(as_admin.session.is_none());

    // 2. The rep's own account links at the first sign-in…
    idp.user(
        "rep-sub",
        serde_json::json!({"email": "rep@example.com", "email_verified": true, "hd": "example.com"}),
    )
    .await;
    let own = t.through_provider("sso", "rep-sub").await;
    assert_eq!(own.status, StatusCode::SEE_OTHER, "{}", own.body);
    assert!(t.home_as(&own.session.unwrap()).await.contains("Rita Rep"));
    // …and from then on the account decides, whatever e-mail it later shows.
    idp.user(
        "rep-sub",
        serde_json::json!({"email": "rita.new@example.com", "email_verified": true, "hd": "example.com"}),
    )
    .await;
    let renamed = t.through_provider("sso", "rep-sub").await;
    assert_eq!(renamed.status, StatusCode::SEE_OTHER, "{}", renamed.body);
    assert!(
        t.home_as(&renamed.session.unwrap())
            .await
            .contains("Rita Rep")
    );

    // 3. A second account with the rep's verified e-mail: the rep is taken.
    idp.user(
        "rep-sub-2",
        serde_json::json!({"email": "rep@example.com", "email_verified": true, "hd": "example.com"}),
    )
    .await;
    let second = t.through_provider("sso", "rep-sub-2").await;
    assert_eq!(second.status, StatusCode::FORBIDDEN);
    assert!(second.session.is_none());
    assert!(second.body.contains("另一個帳號"), "{}", second.body);

    // 4. A token issued for other audiences too (no `azp`): refused as unverifiable.
    idp.user(
        "admin-sub",
        serde_json::json!({"email": "boss@example.com", "email_verified": true, "hd": "example.com",
            "aud": ["salesai-sso", "another-client"]}),
    )
    .await;
    let extra = t.through_provider("sso", "admin-sub").await;
    assert_eq!(extra.status, StatusCode::BAD_REQUEST, "{}", extra.body);
    assert!(extra.session.is_none());
    assert!(extra.body.contains("無法驗證"), "{}", extra.body);

    // 5. Another Google Workspace domain (or none: a consumer account).
    for (sub, hd) in [("outsider", Some("evil.example")), ("gmail", None)] {
        let mut claims = serde_json::json!({"email": "boss@example.com", "email_verified": true});
        if let Some(hd) = hd {
            claims["hd"] = hd.into();
        }
        idp.user(sub, claims).await;
        let other = t.through_provider("sso", sub).await;
        assert_eq!(other.status, StatusCode::FORBIDDEN, "{sub}");
        assert!(other.session.is_none());
        assert!(other.body.contains("其他組織"), "{}", other.body);
    }

    // The admin's own account still signs in (nothing above linked it to anyone).
    idp.user(
        "admin-sub",
        serde_json::json!({"email": "boss@example.com", "email_verified": true, "hd": "example.com"}),
    )
    .await;
    let ok = t.through_provider("sso", "admin-sub").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(t.home_as(&ok.session.unwrap()).await.contains("Bea Boss"));
    assert_eq!(
        t.app.store.end_sessions_of(&admin.user.id).await.unwrap(),
        1
    );
    assert!(t.app.store.person(&rep.user.id).await.unwrap().is_some());
}

story!(a_provider_that_is_down_gets_a_clear_page);
async fn a_provider_that_is_down_gets_a_clear_page(db: &TestDb) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = OidcProvider {
        id: "sso".into(),
        label: "SSO".into(),
        issuer: format!("http://127.0.0.1:{port}"),
        client_id: "c".into(),
        client_secret: "s".into(),
        allowed_domains: vec![],
        slack: false,
        tenant: None,
    };
    let t = spawn(db, vec![down]).await;
    let r = no_redirects()
        .get(format!("{}/login/oidc/sso", t.base))
        .header("accept-language", "zh-TW")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("一次性登入連結"));
}
