//! Sign-in, sessions, people and teams, and the calls list as the web app reads it.

use std::time::Duration;

use chrono::Utc;
use salesai_core::access::Reach;
use salesai_core::domain::Role;
use salesai_core::store::{
    CallCursor, ConversationFilter, LinkPurpose, NewLoginLink, NewSession, PersonChange, StoreError,
};
use salesai_core::transcript::Segment;
use salesai_db::story;
use salesai_db::testing::TestDb;

use crate::new_conversation;

fn link(hash: &str, user: Option<&str>, purpose: LinkPurpose, ttl_secs: i64) -> NewLoginLink {
    NewLoginLink {
        token_hash: hash.into(),
        user_id: user.map(Into::into),
        purpose,
        return_to: Some("/calls".into()),
        expires_at: Utc::now() + chrono::Duration::seconds(ttl_secs),
    }
}

story!(setup_link_makes_the_first_admin_once);
async fn setup_link_makes_the_first_admin_once(db: &TestDb) {
    let store = db.store();
    assert!(!store.has_admin().await.unwrap());
    store
        .create_login_link(&link("setup1", None, LinkPurpose::Setup, 600))
        .await
        .unwrap();
    store
        .create_login_link(&link("setup2", None, LinkPurpose::Setup, 600))
        .await
        .unwrap();
    let peeked = store.peek_login_link("setup1").await.unwrap().unwrap();
    assert_eq!(peeked.purpose, LinkPurpose::Setup);
    assert!(peeked.person.is_none());
    // A setup link never signs anyone in as a sign-in link.
    assert!(store.redeem_login_link("setup1").await.unwrap().is_none());
    let admin = store
        .complete_setup("setup1", " Ann@Example.com ", "Ann")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.user.role, Role::Admin);
    assert_eq!(admin.user.email.as_deref(), Some("ann@example.com"));
    assert!(store.has_admin().await.unwrap());
    // Used once; a second setup link cannot make a second admin.
    assert!(store.peek_login_link("setup1").await.unwrap().is_none());
    assert!(matches!(
        store
            .complete_setup("setup2", "eve@example.com", "Eve")
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .complete_setup("setup2", "not an address", "Eve")
            .await,
        Err(StoreError::InvalidInput(_))
    ));
}

story!(signin_links_work_once_and_expire);
async fn signin_links_work_once_and_expire(db: &TestDb) {
    let store = db.store();
    let rep = store
        .invite_person("rep@example.com", "Rita", Role::Rep, Some(" north "))
        .await
        .unwrap();
    assert_eq!(rep.team.as_deref(), Some("north"));
    store
        .create_login_link(&link("l1", Some(&rep.user.id), LinkPurpose::Signin, 600))
        .await
        .unwrap();
    store
        .create_login_link(&link("old", Some(&rep.user.id), LinkPurpose::Signin, -1))
        .await
        .unwrap();
    assert!(store.peek_login_link("old").await.unwrap().is_none());
    assert!(store.redeem_login_link("old").await.unwrap().is_none());
    assert_eq!(
        store
            .peek_login_link("l1")
            .await
            .unwrap()
            .unwrap()
            .person
            .unwrap()
            .user
            .id,
        rep.user.id
    );
    // Eight concurrent redemptions: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.redeem_login_link("l1").await.unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        if let Some((person, back)) = task.await.unwrap() {
            won += 1;
            assert_eq!(person.user.id, rep.user.id);
            assert_eq!(back.as_deref(), Some("/calls"));
        }
    }
    assert_eq!(won, 1);
    // A deactivated person's link does not work.
    store
        .create_login_link(&link("l2", Some(&rep.user.id), LinkPurpose::Signin, 600))
        .await
        .unwrap();
    let change = PersonChange {
        active: Some(false),
        ..Default::default()
    };
    store.update_person(&rep.user.id, &change).await.unwrap();
    assert!(store.peek_login_link("l2").await.unwrap().is_none());
    assert!(store.redeem_login_link("l2").await.unwrap().is_none());
}

story!(sessions_end_on_sign_out_idle_and_deactivation);
async fn sessions_end_on_sign_out_idle_and_deactivation(db: &TestDb) {
    let store = db.store();
    let mgr = store
        .invite_person("mia@example.com", "Mia", Role::Manager, Some("north"))
        .await
        .unwrap();
    let session = |hash: &str| NewSession {
        id_hash: hash.into(),
        user_id: mgr.user.id.clone(),
        csrf_token: format!("csrf-{hash}"),
        expires_at: Utc::now() + chrono::Duration::hours(12),
    };
    for hash in ["s1", "s2", "s3"] {
        store.create_session(&session(hash)).await.unwrap();
    }
    let hour = Duration::from_secs(3600);
    let found = store.find_session("s1", hour).await.unwrap().unwrap();
    assert_eq!(found.csrf_token, "csrf-s1");
    assert_eq!(found.person.user.id, mgr.user.id);
    // Idle for longer than allowed: gone.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        store
            .find_session("s1", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none()
    );
    store.end_session("s1").await.unwrap();
    assert!(store.find_session("s1", hour).await.unwrap().is_none());
    assert!(store.find_session("s2", hour).await.unwrap().is_some());
    // Absolute expiry.
    store
        .create_session(&NewSession {
            expires_at: Utc::now() - chrono::Duration::seconds(1),
            ..session("gone")
        })
        .await
        .unwrap();
    assert!(store.find_session("gone", hour).await.unwrap().is_none());
    // Teams they manage, then deactivation ends every session in the same change.
    let changed = store
        .update_person(
            &mgr.user.id,
            &PersonChange {
                manages: Some(vec![
                    "south".into(),
                    "north".into(),
                    "north".into(),
                    " ".into(),
                ]),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        changed.manages,
        vec!["north".to_string(), "south".to_string()]
    );
    let off = store
        .update_person(
            &mgr.user.id,
            &PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!off.active);
    assert!(store.find_session("s2", hour).await.unwrap().is_none());
    assert!(store.find_session("s3", hour).await.unwrap().is_none());
    // Reactivated, old sessions stay ended; "sign out everywhere" ends new ones.
    store
        .update_person(
            &mgr.user.id,
            &PersonChange {
                active: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(store.find_session("s3", hour).await.unwrap().is_none());
    store.create_session(&session("s4")).await.unwrap();
    store.create_session(&session("s5")).await.unwrap();
    assert_eq!(store.end_sessions_of(&mgr.user.id).await.unwrap(), 2);
    assert!(
        store
            .update_person("nobody", &PersonChange::default())
            .await
            .unwrap()
            .is_none()
    );
    let people = store.people().await.unwrap();
    assert_eq!(people.len(), 1);
    assert_eq!(people[0].manages.len(), 2);
}

story!(calls_list_filters_by_reach_search_and_keyset);
async fn calls_list_filters_by_reach_search_and_keyset(db: &TestDb) {
    let store = db.store();
    let ann = store
        .invite_person("ann@example.com", "Ann", Role::Rep, Some("north"))
        .await
        .unwrap();
    let bob = store
        .invite_person("bob@example.com", "Bob", Role::Rep, Some("south"))
        .await
        .unwrap();
    let mia = store
        .invite_person("mia@example.com", "Mia", Role::Manager, Some("north"))
        .await
        .unwrap();
    store
        .update_person(
            &mia.user.id,
            &PersonChange {
                manages: Some(vec!["north".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut new = new_conversation(&format!("C-{i}"), None);
        new.rep_user_id = Some(if i % 2 == 0 { &ann } else { &bob }.user.id.clone());
        new.customer_name = if i == 3 {
            "大安咖啡館".into()
        } else {
            format!("Shop {i}")
        };
        let created = store.create_conversation(new).await.unwrap();
        ids.push(created.id);
    }
    store
        .save_transcript(
            &ids[4],
            &[
                Segment {
                    speaker: Some("客戶".into()),
                    start_ms: 1_000,
                    end_ms: 4_000,
                    text: "我們每個月的預算大概五萬".into(),
                    ..Default::default()
                },
                Segment {
                    speaker: Some("業務".into()),
                    start_ms: 65_000,
                    end_ms: 70_500,
                    text: "The 100% Discount_code plan".into(),
                    ..Default::default()
                },
            ],
        )
        .await
        .unwrap();
    let list = |filter: ConversationFilter| {
        let store = store.clone();
        async move { store.list_calls(&filter).await.unwrap() }
    };
    let all = list(ConversationFilter {
        limit: 50,
        ..Default::default()
    })
    .await;
    assert_eq!(all.len(), 7);
    assert_eq!(all[0].conversation.id, ids[6], "newest first");
    let own = list(ConversationFilter {
        limit: 50,
        reach: Some(Reach::Own(ann.user.id.clone())),
        ..Default::default()
    })
    .await;
    assert_eq!(own.len(), 4);
    assert!(own.iter().all(|c| c.rep_name.as_deref() == Some("Ann")));
    let managed = list(ConversationFilter {
        limit: 50,
        reach: Some(Reach::Teams(mia.user.id.clone())),
        ..Default::default()
    })
    .await;
    assert_eq!(managed.len(), 4, "Mia manages north: Ann's calls");
    let south = list(ConversationFilter {
        limit: 50,
        team: Some("south".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(south.len(), 3);
    // Search: Chinese without spaces, in the customer's name and in the transcript, with the
    // matching line; LIKE's wildcards are taken literally.
    let cafe = list(ConversationFilter {
        limit: 50,
        search: Some("咖啡".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(cafe.len(), 1);
    assert_eq!(cafe[0].conversation.customer_name, "大安咖啡館");
    let budget = list(ConversationFilter {
        limit: 50,
        search: Some("預算".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(budget.len(), 1);
    let hit = budget[0].hit.as_ref().unwrap();
    assert_eq!((hit.seq, hit.start_ms), (0, 1_000));
    assert_eq!(budget[0].duration_ms, Some(70_500));
    for (term, expect) in [
        ("100%", 1),
        ("discount_code", 1),
        ("%", 1),
        ("_", 1),
        ("1000%", 0),
    ] {
        let found = list(ConversationFilter {
            limit: 50,
            search: Some(term.into()),
            ..Default::default()
        })
        .await;
        assert_eq!(found.len(), expect, "search {term:?}");
    }
    // Keyset paging walks the whole list in pages of two, each call once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(ConversationFilter {
            limit: 2,
            after: after.clone(),
            ..Default::default()
        })
        .await;
        if page.is_empty() {
            break;
        }
        let last = &page.last().unwrap().conversation;
        after = Some(CallCursor::after(last, None));
        let encoded = after.as_ref().unwrap().encode();
        assert_eq!(CallCursor::decode(&encoded), after);
        seen.extend(page.into_iter().map(|c| c.conversation.id));
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);
    let stats = store
        .call_stats(
            &Reach::Own(bob.user.id.clone()),
            Utc::now() - chrono::Duration::days(7),
        )
        .await
        .unwrap();
    assert_eq!((stats.total, stats.completed, stats.in_progress), (3, 0, 3));
    assert_eq!(stats.average_score, None);
}

/// The ids of the calls a search finds (first page of 50), sorted.
async fn found(store: &std::sync::Arc<dyn salesai_core::store::Store>, term: &str) -> Vec<String> {
    let mut ids: Vec<String> = store
        .list_calls(&ConversationFilter {
            limit: 50,
            search: Some(term.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.conversation.id)
        .collect();
    ids.sort();
    ids
}

/// The matching line of the first call a search finds.
async fn first_hit(
    store: &std::sync::Arc<dyn salesai_core::store::Store>,
    term: &str,
) -> salesai_core::store::SearchHit {
    store
        .list_calls(&ConversationFilter {
            limit: 50,
            search: Some(term.into()),
            ..Default::default()
        })
        .await
        .unwrap()[0]
        .hit
        .clone()
        .unwrap()
}

/// `n` new calls for customers `{prefix}-0`, `{prefix}-1`…, oldest first.
async fn calls(
    store: &std::sync::Arc<dyn salesai_core::store::Store>,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let created = store
            .create_conversation(new_conversation(&format!("{prefix}-{i}"), None))
            .await
            .unwrap();
        ids.push(created.id);
    }
    ids
}

story!(search_answers_the_same_from_the_index_and_the_scan);
async fn search_answers_the_same_from_the_index_and_the_scan(db: &TestDb) {
    // A common phrase (in more lines than the index probe counts: answered by scanning the
    // newest calls) and rare ones (answered from the trigram index) must find exactly the calls
    // that hold them, and deleting or re-transcribing a call must leave the index in step.
    let store = db.store();
    let ids = calls(&store, "S", 6).await;
    let line = |text: String| Segment {
        speaker: None,
        start_ms: 0,
        end_ms: 1_000,
        text,
        ..Default::default()
    };
    // Call 0: 2,100 lines of the common phrase; calls 1 and 2: one line each.
    let common: Vec<Segment> = (0..2_100)
        .map(|i| line(format!("line {i}: the monthly budget is fine")))
        .collect();
    store.save_transcript(&ids[0], &common).await.unwrap();
    for id in &ids[1..3] {
        store
            .save_transcript(id, &[line("Our Monthly Budget is tight".into())])
            .await
            .unwrap();
    }
    store
        .save_transcript(&ids[3], &[line("競爭對手報價比較低，老闆想再比較".into())])
        .await
        .unwrap();
    store
        .save_transcript(&ids[4], &[line("rare zebra-7 mention".into())])
        .await
        .unwrap();
    let search = |term: &'static str| found(&store, term);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(search("monthly budget").await, sorted(ids[0..3].to_vec()));
    assert_eq!(search("MONTHLY BUDGET").await, sorted(ids[0..3].to_vec()));
    assert_eq!(search("競爭對手").await, vec![ids[3].clone()]);
    assert_eq!(search("對手報價").await, vec![ids[3].clone()]);
    assert_eq!(search("zebra-7").await, vec![ids[4].clone()]);
    assert_eq!(search("zebra-8").await, Vec::<String>::new());
    // The matching line comes with the rare hit too.
    assert_eq!(
        first_hit(&store, "zebra-7").await.text,
        "rare zebra-7 mention"
    );
    // Deleted: gone from the index.
    store.delete_conversation(&ids[4]).await.unwrap();
    assert_eq!(search("zebra-7").await, Vec::<String>::new());
    // Re-transcribed (the transcript replaced): the old words go, the new ones come.
    store
        .save_transcript(&ids[3], &[line("價格可以接受，下週簽約".into())])
        .await
        .unwrap();
    assert_eq!(search("競爭對手").await, Vec::<String>::new());
    assert_eq!(search("下週簽約").await, vec![ids[3].clone()]);
}

story!(short_chinese_terms_are_answered_from_the_gram_index);
async fn short_chinese_terms_are_answered_from_the_gram_index(db: &TestDb) {
    // One or two Chinese (or Japanese, Korean) characters are too short for a trigram index.
    // The gram index answers them with exactly the calls a line-by-line scan finds, in
    // transcripts and summaries, and stays in step when a transcript is replaced, an analysis
    // is cleared, a call is deleted and the schema is migrated.
    let store = db.store();
    let ids = calls(&store, "G", 5).await;
    let lines = |texts: &[&str]| -> Vec<Segment> {
        texts
            .iter()
            .map(|t| Segment {
                text: (*t).into(),
                end_ms: 1_000,
                ..Default::default()
            })
            .collect()
    };
    store
        .save_transcript(&ids[0], &lines(&["斑馬線專案 zebra rollout", "預算 5 萬"]))
        .await
        .unwrap();
    // 斑 and 馬 apart: "斑馬" is not in this call (a scan would not find it either).
    store
        .save_transcript(&ids[1], &lines(&["我們 斑 馬 分開寫", "斑"]))
        .await
        .unwrap();
    store
        .save_transcript(&ids[2], &lines(&["馬上處理"]))
        .await
        .unwrap();
    let summary = salesai_core::store::AgentRun {
        agent: "summary".into(),
        engine: "rules".into(),
        model: None,
        output: serde_json::json!({ "meeting_notes_markdown": "- 客戶想要**斑馬**紋的外觀" }),
        prompt_tokens: None,
        completion_tokens: None,
        latency_ms: None,
        fallback: None,
    };
    store.save_agent_output(&ids[3], &summary).await.unwrap();
    store
        .save_transcript(&ids[4], &lines(&["新しいカタログ", "한국어 자료"]))
        .await
        .unwrap();
    let search = |term: &'static str| found(&store, term);
    let these = |which: &[usize]| {
        let mut v: Vec<String> = which.iter().map(|&i| ids[i].clone()).collect();
        v.sort();
        v
    };
    assert_eq!(search("斑馬").await, these(&[0, 3]));
    assert_eq!(search(" 斑馬 ").await, these(&[0, 3]));
    assert_eq!(search("斑").await, these(&[0, 1, 3]));
    assert_eq!(search("馬").await, these(&[0, 1, 2, 3]));
    assert_eq!(search("馬上").await, these(&[2]));
    assert_eq!(search("萬").await, these(&[0]));
    assert_eq!(search("線專").await, these(&[0]));
    assert_eq!(search("タロ").await, these(&[4]));
    assert_eq!(search("한국").await, these(&[4]));
    assert_eq!(search("어자").await, these(&[]), "not across a space");
    assert_eq!(search("鯨").await, these(&[]));
    // Hostile terms: a NUL (PostgreSQL's text cannot hold one), LIKE's wildcards, FTS5 syntax.
    for term in ["斑\0馬", "\0", "%_\\", "\"斑\" OR 馬", "NEAR(斑 馬)", "馬*"] {
        let found = store
            .list_calls(&ConversationFilter {
                limit: 50,
                search: Some(term.into()),
                ..Default::default()
            })
            .await;
        assert!(found.is_ok(), "{term:?}: {found:?}");
    }
    assert_eq!(search("斑\0馬").await, these(&[0, 3]), "the NUL is dropped");
    // Text with a NUL is saved without it (PostgreSQL cannot hold one) and found.
    store
        .save_transcript(&ids[1], &lines(&["我們 斑 馬 分開寫\0", "斑"]))
        .await
        .unwrap();
    assert_eq!(
        store.get_transcript(&ids[1]).await.unwrap()[0].text,
        "我們 斑 馬 分開寫"
    );
    assert_eq!(first_hit(&store, "分開寫").await.text, "我們 斑 馬 分開寫");
    assert_eq!(search("斑").await, these(&[0, 1, 3]));
    // The matching line comes with the hit, for the link to its moment.
    assert_eq!(first_hit(&store, "萬").await.text, "預算 5 萬");

    // The answer comes from the index: with one call's grams removed behind the store's back,
    // the rare short term no longer finds it (a scan would).
    raw(
        db,
        &format!(
            "DELETE FROM search_grams WHERE conversation_id = '{}'",
            ids[2]
        ),
    )
    .await;
    assert_eq!(search("馬上").await, these(&[]));
    // Saving a transcript writes its grams again, replacing the old ones.
    store
        .save_transcript(&ids[2], &lines(&["馬上簽約"]))
        .await
        .unwrap();
    assert_eq!(search("馬上").await, these(&[2]));
    assert_eq!(search("簽約").await, these(&[2]));
    store
        .save_transcript(&ids[0], &lines(&["價格可以"]))
        .await
        .unwrap();
    assert_eq!(search("斑馬").await, these(&[3]));
    assert_eq!(search("萬").await, these(&[]));
    // A re-analysis clears the summary and its grams.
    store
        .restart_conversation(
            &ids[3],
            salesai_core::domain::ConversationStatus::Analyzing,
            crate::job("conversation.analyze"),
            true,
        )
        .await
        .unwrap();
    assert_eq!(search("斑馬").await, these(&[]));
    store.save_agent_output(&ids[3], &summary).await.unwrap();
    assert_eq!(search("斑馬").await, these(&[3]));
    // A deleted call leaves the index.
    store.delete_conversation(&ids[4]).await.unwrap();
    assert_eq!(search("タロ").await, these(&[]));

    // An older release on another node (a rolling upgrade) saves a transcript and a summary
    // without grams; the next start of this release writes them.
    raw(
        db,
        &format!(
            "DELETE FROM search_grams WHERE conversation_id IN ('{}', '{}')",
            ids[2], ids[3]
        ),
    )
    .await;
    assert_eq!(search("馬上").await, these(&[]));
    assert_eq!(search("斑馬").await, these(&[]));
    let (_, applied) = db.database.clone().migrate().await.unwrap();
    assert!(applied.is_empty());
    assert_eq!(search("馬上").await, these(&[2]));
    assert_eq!(search("斑馬").await, these(&[3]));

    // Migration 0013 builds the index for calls saved before it, from their transcripts and
    // summaries; it reads lines 20,000 at a time, and a long call's words on both sides of
    // a page's end are found.
    let long = store
        .create_conversation(new_conversation("G-LONG", None))
        .await
        .unwrap()
        .id;
    let mut many: Vec<&str> = vec!["海豹"];
    many.extend(std::iter::repeat_n("just words", 20_001));
    many.push("鯨豚");
    store.save_transcript(&long, &lines(&many)).await.unwrap();
    let migrator = db.database.migrator();
    migrator.down_to(12).await.unwrap();
    assert_eq!(migrator.up().await.unwrap(), vec![13, 14, 15]);
    assert_eq!(search("斑馬").await, these(&[3]));
    assert_eq!(search("馬上").await, these(&[2]));
    assert_eq!(search("斑").await, these(&[1, 3]));
    assert_eq!(search("海豹").await, vec![long.clone()]);
    assert_eq!(search("鯨豚").await, vec![long.clone()]);
}

/// Runs SQL straight on the test database, behind the store's back.
async fn raw(db: &TestDb, sql: &str) {
    match &db.database {
        salesai_db::Database::Sqlite(s) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(s.pool())
                .await
                .unwrap();
        }
        salesai_db::Database::Postgres(s) => {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(s.pool())
                .await
                .unwrap();
        }
    }
}

story!(meeting_notes_are_edited_searched_and_restored);
async fn meeting_notes_are_edited_searched_and_restored(db: &TestDb) {
    let store = db.store();
    let editor = store
        .invite_person("eva@example.com", "Eva", Role::Rep, None)
        .await
        .unwrap();
    let call = store
        .create_conversation(new_conversation("N-1", None))
        .await
        .unwrap()
        .id;
    let other = store
        .create_conversation(new_conversation("N-2", None))
        .await
        .unwrap()
        .id;
    let summary = |notes: &str| salesai_core::store::AgentRun {
        agent: "summary".into(),
        engine: "rules".into(),
        model: None,
        output: serde_json::json!({ "meeting_notes_markdown": notes, "follow_up_message": "" }),
        prompt_tokens: None,
        completion_tokens: None,
        latency_ms: None,
        fallback: None,
    };
    store
        .save_agent_output(
            &call,
            &summary("## 你們的挑戰\n- 尖峰時段漏單，外送單要手動輸入"),
        )
        .await
        .unwrap();
    let search = |term: &'static str| {
        let store = store.clone();
        async move {
            store
                .list_calls(&ConversationFilter {
                    limit: 50,
                    search: Some(term.into()),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.conversation.id)
                .collect::<Vec<_>>()
        }
    };
    // The generated summary is searched (from the index: a rare phrase; and by the two-char scan).
    assert_eq!(search("外送單要手動").await, vec![call.clone()]);
    assert_eq!(search("漏單").await, vec![call.clone()]);
    // A new summary (re-analysis) replaces the old words in the index.
    store
        .save_agent_output(&call, &summary("- 月費太貴，想比價"))
        .await
        .unwrap();
    assert!(search("外送單要手動").await.is_empty());
    assert_eq!(search("想比價").await, vec![call.clone()]);
    // Edited notes: saved, found by search, shown with their editor, restored.
    assert!(store.meeting_notes(&call).await.unwrap().is_none());
    store
        .save_meeting_notes(&call, "## 下一步\n- 週二 14:00 到店簡報", &editor.user.id)
        .await
        .unwrap();
    let notes = store.meeting_notes(&call).await.unwrap().unwrap();
    assert_eq!(notes.edited_by_name.as_deref(), Some("Eva"));
    assert!(notes.markdown.contains("週二"));
    assert_eq!(search("到店簡報").await, vec![call.clone()]);
    store
        .save_meeting_notes(&call, "- 改成週三", &editor.user.id)
        .await
        .unwrap();
    assert_eq!(
        store.meeting_notes(&call).await.unwrap().unwrap().markdown,
        "- 改成週三"
    );
    assert!(store.clear_meeting_notes(&call).await.unwrap());
    assert!(!store.clear_meeting_notes(&call).await.unwrap());
    assert!(store.meeting_notes(&call).await.unwrap().is_none());
    // Bad input: an unknown call, notes too long.
    assert!(matches!(
        store
            .save_meeting_notes("no-such-call", "x", &editor.user.id)
            .await,
        Err(salesai_core::store::StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .save_meeting_notes(&other, &"長".repeat(20_001), &editor.user.id)
            .await,
        Err(salesai_core::store::StoreError::InvalidInput(_))
    ));
    // Deleting the call takes its summary out of the index.
    store.delete_conversation(&call).await.unwrap();
    assert!(search("想比價").await.is_empty());
}

story!(the_calls_list_sorts_and_pages_in_every_order);
async fn the_calls_list_sorts_and_pages_in_every_order(db: &TestDb) {
    use salesai_core::domain::Score;
    use salesai_core::store::{CallSort, StoredAnalysis};
    let store = db.store();
    // An analysis whose every score is `score`.
    let analysis = |score: i64| {
        let s = Score::new(score).unwrap();
        StoredAnalysis {
            engine: "rules".into(),
            overall_score: s,
            qualification: "medium".into(),
            pain_score: s,
            decision_score: s,
            champion_score: s,
            metrics_score: s,
            result: serde_json::json!({}),
        }
    };
    // Seven calls; five analysed with scores that tie (40 twice), two not analysed.
    let scores = [Some(70), None, Some(40), Some(90), Some(40), None, Some(10)];
    let mut ids = Vec::new();
    for (i, score) in scores.iter().enumerate() {
        let id = store
            .create_conversation(new_conversation(&format!("O-{i}"), None))
            .await
            .unwrap()
            .id;
        if let Some(score) = score {
            store
                .complete_analysis(&id, &analysis(*score))
                .await
                .unwrap();
        }
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    // Every order, walked two calls a page with the cursor the web app makes.
    let walk = |sort: CallSort| {
        let store = store.clone();
        async move {
            let mut seen: Vec<(String, Option<u8>)> = Vec::new();
            let mut after = None;
            loop {
                let page = store
                    .list_calls(&ConversationFilter {
                        limit: 2,
                        sort,
                        after: after.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                let Some(last) = page.last() else { break };
                after = Some(CallCursor::after(
                    &last.conversation,
                    last.score.filter(|_| sort.by_score()),
                ));
                let encoded = after.as_ref().unwrap().encode();
                assert_eq!(CallCursor::decode(&encoded), after, "{encoded}");
                seen.extend(page.iter().map(|c| (c.conversation.id.clone(), c.score)));
                assert!(seen.len() <= 7, "pages repeat: {seen:?}");
            }
            seen
        }
    };
    let newest: Vec<String> = walk(CallSort::Newest)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(newest, expected);
    let oldest: Vec<String> = walk(CallSort::Oldest)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(oldest, ids);
    // By score: analysed calls only; ties newest first.
    let low = walk(CallSort::ScoreLow).await;
    assert_eq!(
        low,
        vec![
            (ids[6].clone(), Some(10)),
            (ids[4].clone(), Some(40)),
            (ids[2].clone(), Some(40)),
            (ids[0].clone(), Some(70)),
            (ids[3].clone(), Some(90)),
        ]
    );
    let high = walk(CallSort::ScoreHigh).await;
    assert_eq!(
        high,
        vec![
            (ids[3].clone(), Some(90)),
            (ids[0].clone(), Some(70)),
            (ids[4].clone(), Some(40)),
            (ids[2].clone(), Some(40)),
            (ids[6].clone(), Some(10)),
        ]
    );
    // Offset pages (the API's `offset=`, read by key after the call just before the page) give
    // the same calls in the same order as the cursor walk, in every order, and nothing past
    // the end.
    for sort in [
        CallSort::Newest,
        CallSort::Oldest,
        CallSort::ScoreLow,
        CallSort::ScoreHigh,
    ] {
        let walked: Vec<String> = walk(sort).await.into_iter().map(|(id, _)| id).collect();
        let mut by_offset = Vec::new();
        let mut by_offset_api = Vec::new();
        for offset in (0..10).step_by(2) {
            let filter = ConversationFilter {
                limit: 2,
                offset,
                sort,
                ..Default::default()
            };
            let page = store.list_calls(&filter).await.unwrap();
            by_offset.extend(page.into_iter().map(|c| c.conversation.id));
            let page = store.list_conversations(&filter).await.unwrap();
            by_offset_api.extend(page.into_iter().map(|c| c.id));
        }
        assert_eq!(by_offset, walked, "{sort:?}");
        assert_eq!(by_offset_api, walked, "{sort:?}");
    }
    // The score beside the call follows its analysis: analysed again with a new score, the
    // call moves; its analysis cleared (a re-analysis on its way), it leaves the sorted list.
    store
        .complete_analysis(&ids[6], &analysis(95))
        .await
        .unwrap();
    store.clear_analysis(&ids[3]).await.unwrap();
    let high = walk(CallSort::ScoreHigh).await;
    assert_eq!(
        high,
        vec![
            (ids[6].clone(), Some(95)),
            (ids[0].clone(), Some(70)),
            (ids[4].clone(), Some(40)),
            (ids[2].clone(), Some(40)),
        ]
    );
    assert_eq!(CallSort::parse("score_low"), Some(CallSort::ScoreLow));
    assert_eq!(CallSort::parse("random"), None);
    assert_eq!(CallCursor::decode("s101~1~x"), None, "a score above 100");
}

story!(a_new_person_seen_twice_at_once_is_one_person);
async fn a_new_person_seen_twice_at_once_is_one_person(db: &TestDb) {
    // Two files from a rep salesai has never seen, handled at the same moment on two workers.
    let store = db.store();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .find_or_create_user(Some("new.rep@example.com"), Some("U0NEW"), "New Rep")
                .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().expect("no conflict error"));
    }
    assert_eq!(ids.len(), 1, "one person: {ids:?}");
}

story!(text_with_a_nul_is_refused_as_bad_input_not_a_failure);
async fn text_with_a_nul_is_refused_as_bad_input_not_a_failure(db: &TestDb) {
    // PostgreSQL can hold no NUL in text; where one reaches it, the error says what to do and
    // is the input's fault (a 4xx, a terminal job failure), not a server failure retried in
    // vain. SQLite stores it.
    // A person's name is one line of plain text on both: refused before it is stored.
    assert!(matches!(
        db.store()
            .invite_person("nul@example.com", "Bad\0Name", Role::Rep, None)
            .await,
        Err(StoreError::InvalidInput(m)) if m.contains("one line")
    ));
    let result = db
        .store()
        .create_opportunity("NUL-CO", "Bad\0Co", "default", None)
        .await;
    match (db.database.backend(), result) {
        (salesai_core::store::Backend::Sqlite, Ok(_)) => {}
        (salesai_core::store::Backend::Postgres, Err(StoreError::InvalidInput(message))) => {
            assert!(
                message.contains("NUL") && message.contains("remove it"),
                "{message}"
            );
        }
        (backend, other) => panic!("{backend:?}: {other:?}"),
    }
    // Meeting notes drop it on both.
    let call = db
        .store()
        .create_conversation(new_conversation("NUL-1", None))
        .await
        .unwrap()
        .id;
    let editor = db
        .store()
        .invite_person("eve@example.com", "Eve", Role::Rep, None)
        .await
        .unwrap();
    db.store()
        .save_meeting_notes(&call, "- 下週\0再談", &editor.user.id)
        .await
        .unwrap();
    assert_eq!(
        db.store()
            .meeting_notes(&call)
            .await
            .unwrap()
            .unwrap()
            .markdown,
        "- 下週再談"
    );
    // A provider's answer with a NUL is stored without it, on both.
    let run = salesai_core::store::AgentRun {
        agent: "summary".into(),
        engine: "llm".into(),
        model: Some("m".into()),
        output: serde_json::json!({ "meeting_notes_markdown": "- 預算\u{0}五萬", "x\u{0}": [1] }),
        prompt_tokens: None,
        completion_tokens: None,
        latency_ms: None,
        fallback: None,
    };
    db.store().save_agent_output(&call, &run).await.unwrap();
    let saved = db.store().get_agent_outputs(&call).await.unwrap();
    assert_eq!(
        saved[0].output,
        serde_json::json!({ "meeting_notes_markdown": "- 預算五萬", "x": [1] })
    );
}

story!(two_setup_links_used_at_once_make_one_admin);
/// Two first-admin links used at the same moment (on PostgreSQL, two transactions that each
/// saw no admin): exactly one becomes the admin; the other is told the link is spent.
async fn two_setup_links_used_at_once_make_one_admin(db: &TestDb) {
    let store = db.store();
    for hash in ["setup-a", "setup-b"] {
        store
            .create_login_link(&link(hash, None, LinkPurpose::Setup, 600))
            .await
            .unwrap();
    }
    let (first, second) = tokio::join!(
        store.complete_setup("setup-a", "one@example.com", "One"),
        store.complete_setup("setup-b", "two@example.com", "Two"),
    );
    let made = [&first, &second]
        .iter()
        .filter(|r| matches!(r, Ok(Some(_))))
        .count();
    assert_eq!(made, 1, "one admin from two links: {first:?} {second:?}");
    let admins = store
        .people()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.user.role == Role::Admin)
        .count();
    assert_eq!(admins, 1, "{first:?} {second:?}");
}

story!(the_last_admin_stays_whatever_changes_them);
async fn the_last_admin_stays_whatever_changes_them(db: &TestDb) {
    let store = db.store();
    // No admin yet: people change freely.
    let rep = store
        .invite_person("rep@example.com", "Rep", Role::Rep, None)
        .await
        .unwrap();
    store
        .set_user_role(&rep.user.id, Role::Manager)
        .await
        .unwrap();
    let ada = store
        .invite_person("ada@example.com", "Ada", Role::Admin, None)
        .await
        .unwrap();
    fn refused<T>(r: &Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::Conflict(m)) if m.contains("only active admin"))
    }
    // Demoted, deactivated, re-invited as a rep: each refused, nothing changed.
    let demote = store
        .update_person(
            &ada.user.id,
            &PersonChange {
                role: Some(Role::Rep),
                ..Default::default()
            },
        )
        .await;
    assert!(refused(&demote), "{demote:?}");
    let off = store
        .update_person(
            &ada.user.id,
            &PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await;
    assert!(refused(&off), "{off:?}");
    assert!(refused(
        &store.set_user_role("ada@example.com", Role::Rep).await
    ));
    assert!(refused(
        &store
            .invite_person("ada@example.com", "Ada", Role::Manager, None)
            .await
            .map(|_| ())
    ));
    let now = store.person(&ada.user.id).await.unwrap().unwrap();
    assert_eq!((now.user.role, now.active), (Role::Admin, true));
    // Two admins demoting each other at once: one stays.
    let bea = store
        .invite_person("bea@example.com", "Bea", Role::Admin, None)
        .await
        .unwrap();
    let change = PersonChange {
        role: Some(Role::Rep),
        ..Default::default()
    };
    let (x, y) = tokio::join!(
        store.update_person(&ada.user.id, &change),
        store.update_person(&bea.user.id, &change),
    );
    assert!(x.is_ok() != y.is_ok(), "exactly one demotion: {x:?} {y:?}");
    assert!(store.has_admin().await.unwrap());
}

story!(an_account_at_a_provider_is_one_person_for_good);
async fn an_account_at_a_provider_is_one_person_for_good(db: &TestDb) {
    use salesai_core::store::{IdentityMatch, ProvenIdentity};
    let store = db.store();
    let ann = store
        .invite_person("ann@example.com", "Ann", Role::Rep, None)
        .await
        .unwrap();
    let proven = |sub: &str, email: Option<&str>, may_join: bool| ProvenIdentity {
        issuer: "https://id.example.com".into(),
        subject: sub.into(),
        verified_email: email.map(Into::into),
        slack_user_id: None,
        may_join,
        display_name: "Someone".into(),
    };
    // The first sign-in links by the verified e-mail…
    let first = store
        .sign_in_identity(&proven("ann-1", Some("ann@example.com"), false))
        .await
        .unwrap();
    assert!(matches!(&first, IdentityMatch::Known(p) if p.user.id == ann.user.id));
    // …after which the account is Ann whatever e-mail it shows, or none.
    let again = store
        .sign_in_identity(&proven("ann-1", None, false))
        .await
        .unwrap();
    assert!(matches!(&again, IdentityMatch::Known(p) if p.user.id == ann.user.id));
    // A second account with Ann's verified e-mail is not given Ann.
    assert_eq!(
        store
            .sign_in_identity(&proven("ann-2", Some("ann@example.com"), true))
            .await
            .unwrap(),
        IdentityMatch::OtherAccount
    );
    // The same subject at another issuer is another account.
    let elsewhere = ProvenIdentity {
        issuer: "https://other.example.com".into(),
        ..proven("ann-1", None, false)
    };
    assert_eq!(
        store.sign_in_identity(&elsewhere).await.unwrap(),
        IdentityMatch::Unknown
    );
    // Someone new joins only when allowed, linked from then on.
    assert_eq!(
        store
            .sign_in_identity(&proven("cat-1", Some("cat@example.com"), false))
            .await
            .unwrap(),
        IdentityMatch::Unknown
    );
    let joined = store
        .sign_in_identity(&proven("cat-1", Some("cat@example.com"), true))
        .await
        .unwrap();
    let IdentityMatch::Joined(cat) = joined else {
        panic!("{joined:?}")
    };
    assert_eq!(cat.user.role, Role::Rep);
    assert!(matches!(
        store.sign_in_identity(&proven("cat-1", None, false)).await.unwrap(),
        IdentityMatch::Known(p) if p.user.id == cat.user.id
    ));
    // A deactivated person is found (to be refused) but never linked.
    let dan = store
        .invite_person("dan@example.com", "Dan", Role::Rep, None)
        .await
        .unwrap();
    store
        .update_person(
            &dan.user.id,
            &PersonChange {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        store.sign_in_identity(&proven("dan-1", Some("dan@example.com"), false)).await.unwrap(),
        IdentityMatch::Known(p) if !p.active
    ));
    store
        .update_person(
            &dan.user.id,
            &PersonChange {
                active: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(
            store.sign_in_identity(&proven("dan-2", Some("dan@example.com"), false)).await.unwrap(),
            IdentityMatch::Known(p) if p.active
        ),
        "dan-1 was never linked, so dan-2 may be"
    );
}

story!(calls_uploaded_out_of_order_list_by_the_call_date);
async fn calls_uploaded_out_of_order_list_by_the_call_date(db: &TestDb) {
    // Six calls uploaded today in this order, held on the dates given (days ago); two carry
    // no date and count from their upload. Two were held on the same day: upload order
    // breaks the tie.
    let held: [(&str, Option<i64>); 6] = [
        ("D-0", Some(1)),
        ("D-1", Some(21)),
        ("D-2", None),
        ("D-3", Some(4)),
        ("D-4", Some(4)),
        ("D-5", Some(30)),
    ];
    let store = db.store();
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let mut ids = std::collections::HashMap::new();
    for (customer, days_ago) in held {
        let mut new = new_conversation(customer, None);
        new.conversation_date = days_ago.map(|d| today - chrono::Duration::days(d));
        let id = store.create_conversation(new).await.unwrap().id;
        ids.insert(id, customer);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let names = |calls: Vec<salesai_core::domain::Conversation>| -> Vec<&str> {
        calls.iter().map(|c| ids[&c.id]).collect()
    };
    let newest_first = ["D-2", "D-0", "D-4", "D-3", "D-1", "D-5"];
    let list = |filter: ConversationFilter| {
        let store = store.clone();
        async move { store.list_conversations(&filter).await.unwrap() }
    };
    assert_eq!(
        names(
            list(ConversationFilter {
                limit: 50,
                ..Default::default()
            })
            .await
        ),
        newest_first,
        "newest call first, not newest upload"
    );
    let mut oldest_first = newest_first;
    oldest_first.reverse();
    assert_eq!(
        names(
            list(ConversationFilter {
                limit: 50,
                sort: salesai_core::store::CallSort::Oldest,
                ..Default::default()
            })
            .await
        ),
        oldest_first
    );
    // The web list (list_calls) agrees, walked one call a page by cursor and by offset.
    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_calls(&ConversationFilter {
                limit: 1,
                after: after.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        let encoded = CallCursor::after(&last.conversation, None).encode();
        after = CallCursor::decode(&encoded);
        walked.push(ids[&last.conversation.id]);
    }
    assert_eq!(walked, newest_first, "keyset pages by the call's date");
    for (offset, want) in newest_first.iter().enumerate() {
        let page = list(ConversationFilter {
            limit: 1,
            offset: offset as u32,
            ..Default::default()
        })
        .await;
        assert_eq!(names(page), [*want], "offset {offset}");
    }
    // A period is the calls held in it.
    let week = list(ConversationFilter {
        limit: 50,
        from: Some(today - chrono::Duration::days(7)),
        ..Default::default()
    })
    .await;
    assert_eq!(names(week), ["D-2", "D-0", "D-4", "D-3"]);
    let before = list(ConversationFilter {
        limit: 50,
        to: Some(today - chrono::Duration::days(4)),
        ..Default::default()
    })
    .await;
    assert_eq!(names(before), ["D-1", "D-5"], "`to` is exclusive");
    // Home's "last 7 days" counts the four held this week, not the six uploaded.
    let stats = store
        .call_stats(&Reach::All, today - chrono::Duration::days(7))
        .await
        .unwrap();
    assert_eq!(stats.total, 4);
    // A backup leaves the computed date out and the restore computes it again.
    let mut out = Vec::new();
    salesai_db::backup::export(&db.database, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.contains("call_at"),
        "the generated column is not exported"
    );
}
