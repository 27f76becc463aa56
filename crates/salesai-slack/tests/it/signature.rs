//! Every endpoint refuses what is not signed by Slack with our secret, within five minutes.

use salesai_db::story;
use salesai_db::testing::TestDb;
use salesai_slack::signature::sign;

use crate::{Harness, SECRET};

story!(every_endpoint_checks_the_signature);
async fn every_endpoint_checks_the_signature(db: &TestDb) {
    let h = Harness::start(db).await;
    let now = chrono::Utc::now().timestamp();
    let cases: [(&str, &str, &str); 3] = [
        (
            "/slack/events",
            r#"{"type":"url_verification","challenge":"c-123"}"#,
            "application/json",
        ),
        (
            "/slack/commands",
            "command=%2Fanalyze&text=help&user_id=U1&channel_id=C0EN",
            "application/x-www-form-urlencoded",
        ),
        (
            "/slack/interactions",
            "payload=%7B%22type%22%3A%22block_actions%22%2C%22actions%22%3A%5B%7B%22action_id%22%3A%22salesai_report_link%22%7D%5D%7D",
            "application/x-www-form-urlencoded",
        ),
    ];
    let mut refused = 0;
    for (path, body, content_type) in cases {
        let send = |ts: Option<String>, sig: Option<String>, body: String| {
            let mut r = h
                .http
                .post(format!("{}{path}", h.base))
                .header("content-type", content_type)
                .body(body);
            if let Some(ts) = ts {
                r = r.header("x-slack-request-timestamp", ts);
            }
            if let Some(sig) = sig {
                r = r.header("x-slack-signature", sig);
            }
            r.send()
        };
        let ts = now.to_string();
        // Valid.
        let ok = send(
            Some(ts.clone()),
            Some(sign(SECRET.as_bytes(), &ts, body.as_bytes())),
            body.into(),
        )
        .await
        .unwrap();
        assert_eq!(ok.status(), 200, "{path} with a valid signature");
        if path == "/slack/events" {
            let answer: serde_json::Value = ok.json().await.unwrap();
            assert_eq!(answer["challenge"], "c-123");
        }
        // Wrong secret.
        let r = send(
            Some(ts.clone()),
            Some(sign(b"not-the-secret", &ts, body.as_bytes())),
            body.into(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 401, "{path} wrong secret");
        assert!(r.text().await.unwrap().is_empty(), "a 401 says nothing");
        // Changed body.
        let r = send(
            Some(ts.clone()),
            Some(sign(SECRET.as_bytes(), &ts, body.as_bytes())),
            format!("{body} "),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 401, "{path} changed body");
        // Older than five minutes.
        let old = (now - 301).to_string();
        let r = send(
            Some(old.clone()),
            Some(sign(SECRET.as_bytes(), &old, body.as_bytes())),
            body.into(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 401, "{path} stale");
        // Missing headers.
        let r = send(
            None,
            Some(sign(SECRET.as_bytes(), &ts, body.as_bytes())),
            body.into(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 401, "{path} no timestamp");
        let r = send(Some(ts.clone()), None, body.into()).await.unwrap();
        assert_eq!(r.status(), 401, "{path} no signature");
        refused += 5;
    }
    assert_eq!(h.app.metrics.slack_signature_failures_total(), refused);
    let metrics = h.app.metrics.render();
    assert!(
        metrics.contains(
            "salesai_slack_signature_failures_total{endpoint=\"commands\",reason=\"stale\"} 1"
        ),
        "{metrics}"
    );
    // Nothing reached the queue or Slack.
    assert!(h.fake.calls().is_empty());
}
