//! Backups: round trips on both backends and across (SQLite → PostgreSQL), a corrupted or
//! truncated backup refused, a non-empty target refused without --force.

use salesai_core::domain::{ConversationStatus, Score, SlackThread};
use salesai_core::queue::{CONVERSATIONS, JobFailure, NewJob};
use salesai_core::store::{AgentRun, ChunkTranscript, NewApiToken, Store, StoredAnalysis};
use salesai_core::transcript::Segment;
use salesai_db::backup;
use salesai_db::testing::TestDb;

use salesai_db::story;

use crate::new_conversation;

/// Puts rows in every table.
async fn populate(store: &dyn Store) {
    let rep = store
        .find_or_create_user(Some("rep@example.com"), Some("U0REP"), "Rita 業務")
        .await
        .unwrap();
    for i in 0..3 {
        let mut new = new_conversation(&format!("C-{i}"), Some(format!("key-{i}")));
        new.rep_user_id = Some(rep.clone());
        new.slack = Some(SlackThread {
            channel_id: "C0SALES".into(),
            thread_ts: Some(format!("1700000000.00000{i}")),
        });
        new.metadata =
            serde_json::json!({ "store_type": "cafe", "nested": { "b": [1, 2], "a": "好" } });
        let created = store.create_conversation(new).await.unwrap();
        let id = created.id;
        let segments = vec![Segment {
            speaker: Some("Customer".into()),
            start_ms: 0,
            end_ms: 1500,
            text: "我們每個月漏單損失兩萬 \"quoted\"".into(),
            ..Default::default()
        }];
        store.save_transcript(&id, &segments).await.unwrap();
        store
            .save_chunk_transcript(
                &id,
                &ChunkTranscript {
                    channel: 0,
                    index: 0,
                    start_ms: 0,
                    end_ms: 1500,
                    provider: "groq".into(),
                    model: Some("whisper-large-v3-turbo".into()),
                    segments: segments.clone(),
                    latency_ms: Some(812),
                },
            )
            .await
            .unwrap();
        store
            .save_agent_output(
                &id,
                &AgentRun {
                    agent: "buyer".into(),
                    engine: "rules".into(),
                    model: None,
                    output: serde_json::json!({ "pain": { "score": 70 }, "x": 1.5 }),
                    prompt_tokens: Some(10),
                    completion_tokens: None,
                    latency_ms: Some(3),
                    fallback: Some("the LLM kept failing: HTTP 503".into()),
                },
            )
            .await
            .unwrap();
        if i < 2 {
            store
                .complete_analysis(
                    &id,
                    &StoredAnalysis {
                        engine: "rules".into(),
                        overall_score: Score::new(60 + i).unwrap(),
                        qualification: "medium".into(),
                        pain_score: Score::new(70).unwrap(),
                        decision_score: Score::new(50).unwrap(),
                        champion_score: Score::new(40).unwrap(),
                        metrics_score: Score::new(30).unwrap(),
                        result: serde_json::json!({ "overall": 60 }),
                    },
                )
                .await
                .unwrap();
        } else {
            store
                .set_conversation_status(&id, ConversationStatus::Failed, None)
                .await
                .unwrap();
        }
        store
            .put_slack_message(&id, "status", "C0SALES", "1700000001.000100")
            .await
            .unwrap();
    }
    store
        .create_api_token(NewApiToken {
            name: "crm".into(),
            role: salesai_core::domain::Role::Service,
            token_hash: "ab".repeat(32),
            user_id: None,
        })
        .await
        .unwrap();
    store
        .record_external_event("slack.event", "Ev1")
        .await
        .unwrap();
    // A failed attempt (job_attempts) and a paused queue (queue_settings).
    store
        .enqueue(NewJob::new(CONVERSATIONS, "x.fail", serde_json::json!({})))
        .await
        .unwrap();
    let jobs = store.claim(CONVERSATIONS, "w", 10).await.unwrap();
    for job in &jobs {
        store
            .fail(
                &job.lease().unwrap(),
                &JobFailure {
                    code: "GROQ_API_ERROR".into(),
                    message: "503".into(),
                    retryable: true,
                },
            )
            .await
            .unwrap();
    }
    let mut settings = store.get_queue_settings("maintenance").await.unwrap();
    settings.paused = true;
    store.put_queue_settings(&settings).await.unwrap();
}

async fn round_trip(source: &TestDb, target: &TestDb) {
    populate(source.store().as_ref()).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = backup::create(&source.database, dir.path(), 7)
        .await
        .unwrap();
    assert!(manifest.name.starts_with("backup_"));
    let rows = |t: &str| manifest.tables.iter().find(|d| d.table == t).unwrap().rows;
    assert_eq!(rows("conversations"), 3);
    assert_eq!(rows("analyses"), 2);
    assert!(rows("job_attempts") >= 1 && rows("slack_messages") == 3 && rows("users") == 1);
    // The test restore into a scratch SQLite matches the manifest table for table.
    let scratch = TestDb::sqlite().await;
    let data = dir.path().join(&manifest.data_file);
    let verified = backup::verify(&data, &scratch.database).await.unwrap();
    assert_eq!(verified, manifest);
    // The real restore.
    backup::restore(&data, &target.database, false)
        .await
        .unwrap();
    let restored = backup::digests(&target.database).await.unwrap();
    assert_eq!(
        restored, manifest.tables,
        "every table has the same rows after the restore"
    );
    // The restored database works: new rows get fresh ids and case numbers.
    let store = target.store();
    let c = store
        .create_conversation(new_conversation("C-NEW", None))
        .await
        .unwrap();
    assert!(
        c.case_number.as_str().ends_with("0004"),
        "{}",
        c.case_number.as_str()
    );
    let all = store
        .list_conversations(&salesai_core::store::ConversationFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let one = all
        .iter()
        .find(|x| x.metadata["nested"]["a"] == "好")
        .unwrap();
    assert_eq!(one.slack.as_ref().unwrap().channel_id, "C0SALES");
    assert!(
        store
            .get_queue_settings("maintenance")
            .await
            .unwrap()
            .paused
    );
    store
        .enqueue(NewJob::new(CONVERSATIONS, "x.after", serde_json::json!({})))
        .await
        .unwrap();
    // A second restore into the now non-empty database is refused without --force.
    let err = backup::restore(&data, &target.database, false)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not empty") && err.to_string().contains("--force"),
        "{err}"
    );
    backup::restore(&data, &target.database, true)
        .await
        .unwrap();
    assert_eq!(
        backup::digests(&target.database).await.unwrap(),
        manifest.tables
    );
}

story!(backups_round_trip);
async fn backups_round_trip(db: &TestDb) {
    let target = match db.database.backend() {
        salesai_core::store::Backend::Sqlite => TestDb::sqlite().await,
        salesai_core::store::Backend::Postgres => TestDb::postgres().await.unwrap(),
    };
    round_trip(db, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_restores_into_postgres() {
    let Some(target) = TestDb::postgres().await else {
        return;
    };
    let source = TestDb::sqlite().await;
    round_trip(&source, &target).await;
}

/// SQLite stores a NUL character that PostgreSQL refuses: a SQLite backup holding one (taken
/// before uploads refused control characters) still restores into PostgreSQL, each NUL as U+FFFD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_backup_with_nul_characters_restores_into_postgres() {
    let Some(target) = TestDb::postgres().await else {
        return;
    };
    let source = TestDb::sqlite().await;
    let mut new = new_conversation("C-NUL", None);
    new.title = "call\u{0}one".into();
    new.metadata = serde_json::json!({ "note": "a\u{0}b", "k\u{0}": ["x\u{0}"] });
    let created = source.store().create_conversation(new).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifest = backup::create(&source.database, dir.path(), 7)
        .await
        .unwrap();
    backup::restore(
        &dir.path().join(&manifest.data_file),
        &target.database,
        false,
    )
    .await
    .unwrap();
    let restored = target
        .store()
        .get_conversation(&created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(restored.title, "call\u{FFFD}one");
    assert_eq!(restored.metadata["note"], "a\u{FFFD}b");
    assert_eq!(restored.metadata["k\u{FFFD}"][0], "x\u{FFFD}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_backup_restores_into_sqlite() {
    let Some(source) = TestDb::postgres().await else {
        return;
    };
    let target = TestDb::sqlite().await;
    round_trip(&source, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_backups_fail_verify_with_a_clear_message() {
    let source = TestDb::sqlite().await;
    populate(source.store().as_ref()).await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = backup::create(&source.database, dir.path(), 7)
        .await
        .unwrap();
    let data = dir.path().join(&manifest.data_file);
    let original = std::fs::read(&data).unwrap();

    // One flipped byte: the checksum catches it.
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&data, &bad).unwrap();
    let scratch = TestDb::sqlite().await;
    let err = backup::verify(&data, &scratch.database).await.unwrap_err();
    assert!(err.to_string().starts_with("checksum mismatch"), "{err}");
    assert!(err.to_string().contains("use another backup"));

    // A truncated file whose manifest was (wrongly) updated to match: the restore catches it.
    let mut gz = flate2::read::GzDecoder::new(&original[..]);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut gz, &mut text).unwrap();
    let cut: String = text
        .lines()
        .take(text.lines().count() - 3)
        .map(|l| format!("{l}\n"))
        .collect();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, cut.as_bytes()).unwrap();
    let truncated = enc.finish().unwrap();
    std::fs::write(&data, &truncated).unwrap();
    let mut m = manifest.clone();
    use sha2::Digest;
    m.data_sha256 = hex::encode(sha2::Sha256::digest(&truncated));
    std::fs::write(
        backup::manifest_path(&data),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    let scratch = TestDb::sqlite().await;
    let err = backup::verify(&data, &scratch.database).await.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");

    // A missing manifest says what a backup is.
    std::fs::remove_file(backup::manifest_path(&data)).unwrap();
    let err = backup::verify(&data, &scratch.database).await.unwrap_err();
    assert!(
        err.to_string().contains(".manifest.json side by side"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_backups_are_rotated() {
    let source = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(
            backup::create(&source.database, dir.path(), 2)
                .await
                .unwrap()
                .name,
        );
    }
    let kept: Vec<String> = backup::list(dir.path())
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(kept.len(), 2);
    assert!(
        kept.contains(&names[3]) && kept.contains(&names[2]),
        "{kept:?} of {names:?}"
    );
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(
        files, 4,
        "two data files and two manifests, no partial files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_column_list_matches_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let salesai_db::Database::Postgres(pg) = &db.database else {
        unreachable!()
    };
    let mut found: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND data_type = 'jsonb' ORDER BY 1, 2",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    found.sort();
    let mut listed: Vec<(String, String)> = backup::JSON_COLUMNS
        .iter()
        .map(|(t, c)| ((*t).into(), (*c).into()))
        .collect();
    listed.sort();
    assert_eq!(found, listed);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
         AND table_name <> 'salesai_migrations' ORDER BY 1",
    )
    .fetch_all(pg.pool())
    .await
    .unwrap();
    let mut ours: Vec<String> = backup::TABLES
        .iter()
        .map(|(t, _)| (*t).to_owned())
        .collect();
    ours.sort();
    assert_eq!(tables, ours, "every table is backed up");
}

story!(a_backup_from_before_the_gram_index_gets_one_on_restore);
async fn a_backup_from_before_the_gram_index_gets_one_on_restore(db: &TestDb) {
    // A backup made at schema 12 has no `search_grams`: the restore builds them from the
    // restored transcripts and summaries, so short Chinese searches find the restored calls.
    let source = TestDb::sqlite().await;
    populate(source.store().as_ref()).await;
    let mut out = Vec::new();
    backup::export(&source.database, &mut out).await.unwrap();
    let mut old = Vec::new();
    let mut skipping = false;
    for line in String::from_utf8(out).unwrap().lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v.get("schema_version").is_some() {
            v["schema_version"] = 12.into();
        } else if let Some(table) = v.get("table").and_then(|t| t.as_str()) {
            skipping = table == "search_grams";
        } else if v.get("end").is_some() {
            v["rows"].as_object_mut().unwrap().remove("search_grams");
        }
        if !skipping {
            old.push(v.to_string());
        }
    }
    assert!(old.len() > 10 && !old.iter().any(|l| l.contains("search_grams")));
    let mut input = std::io::Cursor::new(old.join("\n").into_bytes());
    backup::import(&db.database, &mut input, false)
        .await
        .unwrap();
    let found = db
        .store()
        .list_calls(&salesai_core::store::ConversationFilter {
            limit: 50,
            search: Some("漏單".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        3,
        "every restored call is found by its two-character word"
    );
    assert_eq!(
        backup::digests(&db.database).await.unwrap(),
        backup::digests(&source.database).await.unwrap(),
        "the rebuilt index has the rows the source had"
    );
}
