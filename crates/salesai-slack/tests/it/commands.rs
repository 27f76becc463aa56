//! Every slash command, its usage text, and `/report` through `response_url`.

use salesai_core::domain::Role;
use salesai_db::story;
use salesai_db::testing::TestDb;

use crate::*;

fn text(answer: &Value) -> String {
    assert_eq!(answer["response_type"], "ephemeral");
    answer["text"].as_str().unwrap().to_owned()
}

story!(slash_commands_answer_and_explain_themselves);
async fn slash_commands_answer_and_explain_themselves(db: &TestDb) {
    let h = Harness::start(db).await;
    // Una is a rep salesai knows by her Slack id.
    h.app
        .store
        .find_or_create_user(Some("u1@example.com"), Some("U1"), "Una One")
        .await
        .unwrap();
    // Usage for help, nothing, and nonsense.
    for cmd in ["/analyze", "/opportunity", "/report"] {
        let usage = text(&h.command(cmd, "help", "U1", EN_CHANNEL).await);
        assert!(usage.contains(cmd), "{cmd}: {usage}");
        if cmd != "/report" {
            // (An empty /report is the rep's own report.)
            assert_eq!(text(&h.command(cmd, "", "U1", EN_CHANNEL).await), usage);
        }
    }
    assert!(
        text(&h.command("/analyze", "a b c", "U1", EN_CHANNEL).await)
            .contains("/analyze <case number")
    );
    assert!(
        text(
            &h.command("/report", "everyone please", "U1", EN_CHANNEL)
                .await
        )
        .contains("/report team")
    );
    let unknown = text(&h.command("/dance", "", "U1", EN_CHANNEL).await);
    assert!(unknown.contains("does not know /dance") && unknown.contains("/opportunity"));

    // /opportunity create, duplicate, lookup by number and by name, list.
    let created = text(
        &h.command(
            "/opportunity",
            "create C-500 Blue Harbor Cafe",
            "U1",
            ZH_CHANNEL,
        )
        .await,
    );
    assert!(
        created.contains("已建立 `C-500` Blue Harbor Cafe (iCHEF 餐飲)"),
        "{created}"
    );
    let again = text(
        &h.command("/opportunity", "create C-500 Other", "U1", ZH_CHANNEL)
            .await,
    );
    assert!(again.contains("已被使用"), "{again}");
    assert!(
        text(&h.command("/opportunity", "create", "U1", ZH_CHANNEL).await).contains("不是客戶編號")
    );
    assert!(
        text(
            &h.command("/opportunity", "create C-501", "U1", ZH_CHANNEL)
                .await
        )
        .contains("請輸入客戶名稱")
    );
    h.command("/opportunity", "create C-600 Red Lantern", "U1", EN_CHANNEL)
        .await;
    let by_number = text(&h.command("/opportunity", "C-500", "U1", EN_CHANNEL).await);
    assert!(
        by_number.contains("Blue Harbor Cafe") && by_number.contains("latest score *–*"),
        "{by_number}"
    );
    let by_name = text(&h.command("/opportunity", "harbor", "U1", EN_CHANNEL).await);
    assert!(by_name.contains("C-500"), "{by_name}");
    let none = text(&h.command("/opportunity", "nobody", "U1", EN_CHANNEL).await);
    assert!(none.contains("None of your customers matches"), "{none}");
    let list = text(&h.command("/opportunity", "list", "U1", EN_CHANNEL).await);
    assert!(list.contains("C-500") && list.contains("C-600"), "{list}");

    // /analyze of an unknown case, then of a real one.
    assert!(
        text(
            &h.command("/analyze", "202611-SA9999", "U1", EN_CHANNEL)
                .await
        )
        .contains("No conversation")
    );
    h.fake.add_user("U1", "u1@example.com", "Una One");
    h.fake.add_file(
        "F0CMD",
        vtt_file("call.vtt", english_transcript()),
        EN_CHANNEL,
        "1700000000.000100",
    );
    h.event("EvC", file_shared("F0CMD", EN_CHANNEL, "U1"), &[])
        .await;
    h.fake
        .wait_until("the prompt", std::time::Duration::from_secs(30), |c| {
            c.iter().any(|c| c.method == "chat.postMessage")
        })
        .await;
    let prompt = h.fake.calls_of("chat.postMessage")[0].body.clone();
    let meta = prompt["blocks"][1]["elements"][0]["value"].clone();
    h.interaction(json!({
        "type": "view_submission", "user": { "id": "U1", "name": "una" },
        "view": { "callback_id": "salesai_upload", "private_metadata": meta,
                  "state": { "values": state_values(&[("customer_number", "C-500"), ("customer_name", "Blue Harbor Cafe")], &[("decision_maker_present", "yes")]) } },
    }))
    .await;
    eventually("completed", || async {
        let list = h
            .app
            .store
            .list_conversations(&Default::default())
            .await
            .unwrap();
        list.first()
            .is_some_and(|c| c.status == salesai_core::domain::ConversationStatus::Completed)
    })
    .await;
    let case = h
        .app
        .store
        .list_conversations(&Default::default())
        .await
        .unwrap()[0]
        .case_number
        .as_str()
        .to_owned();
    let status = text(&h.command("/analyze", &case, "U1", EN_CHANNEL).await);
    assert!(
        status.contains(&case) && status.contains("Done") && status.contains("Overall"),
        "{status}"
    );
    let zh = text(&h.command("/analyze", &case, "U1", ZH_CHANNEL).await);
    assert!(
        zh.contains("完成") && zh.contains("總分") && zh.contains("完整報告"),
        "{zh}"
    );
    let looked_up = text(&h.command("/opportunity", "C-500", "U1", EN_CHANNEL).await);
    assert!(
        looked_up.contains(&case) && !looked_up.contains("latest score *–*"),
        "{looked_up}"
    );

    // /report: acknowledged at once, answered through response_url.
    let ack = text(&h.command("/report", "", "U1", EN_CHANNEL).await);
    assert!(ack.contains("Preparing your report"));
    h.fake
        .wait_until("the report", std::time::Duration::from_secs(30), |c| {
            c.iter().any(|c| c.method == "hook:report-U1")
        })
        .await;
    let report = h.fake.calls_of("hook:report-U1")[0].body["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        report.contains("Uploads *1*")
            && report.contains("Average score")
            && report.contains("Weakest dimension"),
        "{report}"
    );

    // /report team is for managers: a rep is told at once.
    let refusal = text(&h.command("/report", "team", "U1", EN_CHANNEL).await);
    assert!(refusal.contains("for managers"), "{refusal}");
    // A manager of Una's team (invited by e-mail, linked to their Slack id by `/salesai
    // login`) gets the team's.
    let manager = h
        .app
        .store
        .invite_person("boss@example.com", "Boss", Role::Manager, None)
        .await
        .unwrap()
        .user
        .id;
    let una = h
        .app
        .store
        .person_by_identity(Some("U1"), None)
        .await
        .unwrap()
        .unwrap();
    for (who, change) in [
        (
            &una.user.id,
            salesai_core::store::PersonChange {
                team: Some(Some("north".into())),
                ..Default::default()
            },
        ),
        (
            &manager,
            salesai_core::store::PersonChange {
                manages: Some(vec!["north".into()]),
                ..Default::default()
            },
        ),
    ] {
        h.app.store.update_person(who, &change).await.unwrap();
    }
    h.fake.add_user("U0BOSS", "boss@example.com", "Boss");
    // Unknown by Slack id until then.
    assert!(
        text(&h.command("/report", "team", "U0BOSS", EN_CHANNEL).await)
            .contains("does not know your Slack account")
    );
    h.command("/salesai", "login", "U0BOSS", EN_CHANNEL).await;
    h.fake
        .wait_until("the link", std::time::Duration::from_secs(30), |c| {
            c.iter().any(|c| c.method == "hook:salesai-U0BOSS")
        })
        .await;
    h.command("/report", "team", "U0BOSS", EN_CHANNEL).await;
    h.fake
        .wait_until("the team report", std::time::Duration::from_secs(30), |c| {
            c.iter().any(|c| c.method == "hook:report-U0BOSS")
        })
        .await;
    let team = h.fake.calls_of("hook:report-U0BOSS")[0].body["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        team.contains("Team report")
            && team.contains("By rep")
            && team.contains("• Una One — 1 uploads"),
        "{team}"
    );
    let boss = h.app.store.get_user(&manager).await.unwrap().unwrap();
    assert_eq!(boss.slack_user_id.as_deref(), Some("U0BOSS"));
    assert_eq!(boss.role, Role::Manager);
}

story!(salesai_login_gives_a_private_one_time_link);
/// `/salesai login` answers only the person who asked, with a link that signs them in once;
/// a deactivated person gets none.
async fn salesai_login_gives_a_private_one_time_link(db: &TestDb) {
    let h = Harness::start(db).await;
    let usage = text(&h.command("/salesai", "", "U7", EN_CHANNEL).await);
    assert!(usage.contains("/salesai login"), "{usage}");
    // Someone salesai does not know: looked up by their Slack profile's e-mail, which no one
    // invited — told what to do, and nobody is created.
    h.fake.add_user("U7", "seven@example.com", "Sam Seven");
    let looking = text(&h.command("/salesai", "login", "U7", EN_CHANNEL).await);
    assert!(looking.contains("Looking up"), "{looking}");
    h.fake
        .wait_until("the answer", std::time::Duration::from_secs(30), |c| {
            c.iter().any(|c| c.method == "hook:salesai-U7")
        })
        .await;
    let answer = h.fake.calls_of("hook:salesai-U7")[0].body["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        answer.contains("invite") && !answer.contains("/login/link/"),
        "{answer}"
    );
    let store = h.app.store.clone();
    assert!(
        store
            .person_by_identity(Some("U7"), Some("seven@example.com"))
            .await
            .unwrap()
            .is_none()
    );
    // Invited by e-mail: the next `/salesai login` finds them through Slack's profile and
    // links their Slack id; from then on the link comes at once.
    store
        .invite_person("seven@example.com", "Sam Seven", Role::Rep, None)
        .await
        .unwrap();
    h.command("/salesai", "login", "U7", EN_CHANNEL).await;
    h.fake
        .wait_until("the link", std::time::Duration::from_secs(30), |c| {
            c.iter().filter(|c| c.method == "hook:salesai-U7").count() == 2
        })
        .await;
    let answer = h.fake.calls_of("hook:salesai-U7")[1].body["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(answer.contains("/login/link/"), "{answer}");
    let answer = text(&h.command("/salesai", "login", "U7", EN_CHANNEL).await);
    let link = answer
        .split_whitespace()
        .find(|w| w.starts_with("https://salesai.example.com/login/link/"))
        .unwrap_or_else(|| panic!("a link in {answer}"))
        .to_owned();
    let secret = link.rsplit('/').next().unwrap();
    let (person, _) = store
        .redeem_login_link(&salesai_core::token::hash_token(secret))
        .await
        .unwrap()
        .expect("the link signs the person in");
    assert_eq!(person.user.slack_user_id.as_deref(), Some("U7"));
    assert!(
        store
            .redeem_login_link(&salesai_core::token::hash_token(secret))
            .await
            .unwrap()
            .is_none(),
        "once"
    );
    let zh = text(&h.command("/salesai", "login", "U7", ZH_CHANNEL).await);
    assert!(zh.contains("登入連結"), "{zh}");
    store
        .update_person(
            &person.user.id,
            &salesai_core::store::PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let refused = text(&h.command("/salesai", "login", "U7", EN_CHANNEL).await);
    assert!(
        refused.contains("deactivated") && !refused.contains("/login/link/"),
        "{refused}"
    );
}

story!(what_people_type_is_never_slack_markup);
/// A customer named to ping the whole channel or to disguise a link: every answer shows the
/// name as typed, escaped, never as a mention or a link.
async fn what_people_type_is_never_slack_markup(db: &TestDb) {
    let h = Harness::start(db).await;
    h.app
        .store
        .find_or_create_user(Some("u1@example.com"), Some("U1"), "Una One")
        .await
        .unwrap();
    let hostile = "<!channel> <https://evil.example|Full report> & <@U0BOSS>";
    let created = text(
        &h.command(
            "/opportunity",
            &format!("create C-EVIL {hostile}"),
            "U1",
            EN_CHANNEL,
        )
        .await,
    );
    for answer in [
        created,
        text(&h.command("/opportunity", "C-EVIL", "U1", EN_CHANNEL).await),
        text(&h.command("/opportunity", "list", "U1", EN_CHANNEL).await),
        text(
            &h.command("/opportunity", "evil.example", "U1", EN_CHANNEL)
                .await,
        ),
        text(&h.command("/analyze", "<!here>", "U1", EN_CHANNEL).await),
        text(&h.command("/<!channel>", "", "U1", EN_CHANNEL).await),
    ] {
        assert!(
            !answer.contains("<!") && !answer.contains("<https://evil") && !answer.contains("<@"),
            "{answer}"
        );
    }
    let shown = text(&h.command("/opportunity", "C-EVIL", "U1", EN_CHANNEL).await);
    assert!(
        shown.contains(
            "&lt;!channel&gt; &lt;https://evil.example|Full report&gt; &amp; &lt;@U0BOSS&gt;"
        ),
        "{shown}"
    );
}
