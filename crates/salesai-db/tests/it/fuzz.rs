//! Property-based fuzzing of the backup reader: a damaged, truncated or hostile backup file is
//! refused with an error, never a panic, and never leaves a half-restored database (the restore
//! is one transaction). Bounded to 48 cases per run (each opens a fresh SQLite database).

use proptest::prelude::*;
use salesai_db::Database;

/// A plausible backup line: a header, a table section, a row, an end, or noise.
fn line() -> impl Strategy<Value = String> {
    let table = prop::sample::select(vec![
        "users",
        "conversations",
        "jobs",
        "transcript_segments",
        "nosuch",
        "users\"; DROP TABLE jobs; --",
    ]);
    let cell = prop_oneof![
        any::<i64>().prop_map(|i| serde_json::json!(i)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "\\PC{0,20}".prop_map(|s| serde_json::json!(s)),
        Just(serde_json::Value::Null),
        Just(serde_json::json!({"nested": [1, 2]})),
    ];
    prop_oneof![
        (any::<i64>(), "\\PC{0,12}").prop_map(|(v, f)| serde_json::json!({
            "format": if f.is_empty() { "salesai-backup/1".to_owned() } else { f },
            "backend": "sqlite", "schema_version": v % 20, "created_at": "2026-11-29T00:00:00Z"
        })
        .to_string()),
        (table.clone(), prop::collection::vec("[a-z_\"]{1,12}", 0..5))
            .prop_map(|(t, cols)| serde_json::json!({"table": t, "columns": cols}).to_string()),
        prop::collection::vec(cell, 0..6).prop_map(|cells| serde_json::Value::Array(cells).to_string()),
        (table, any::<u64>()).prop_map(|(t, n)| serde_json::json!({"end": true, "tables": [{"table": t, "rows": n, "sha256": "00"}]}).to_string()),
        "\\PC{0,60}",
    ]
}

fn header() -> String {
    serde_json::json!({"format": "salesai-backup/1", "backend": "sqlite", "schema_version": 1,
        "created_at": "2026-11-29T00:00:00Z"})
    .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn damaged_backups_are_refused_whole(lines in prop::collection::vec(line(), 0..12), with_header in any::<bool>()) {
        let mut text = String::new();
        if with_header {
            text.push_str(&header());
            text.push('\n');
        }
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
            let db = Database::connect(&url, &Default::default()).await.unwrap();
            let mut input = std::io::BufReader::new(text.as_bytes());
            let restored = salesai_db::backup::import(&db, &mut input, true).await;
            if restored.is_err() {
                // Nothing half-written: every table the migrations made is still empty.
                if let Database::Sqlite(s) = &db {
                    for (table, _) in salesai_db::backup::TABLES {
                        let n: Result<i64, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                            "SELECT COUNT(*) FROM \"{table}\""
                        )))
                        .fetch_one(s.pool())
                        .await;
                        if let Ok(n) = n {
                            assert_eq!(n, 0, "{table} kept rows from a refused restore");
                        }
                    }
                }
            }
            db.close().await;
        });
    }
}
