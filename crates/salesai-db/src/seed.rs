//! Synthetic calls in bulk, for `salesai bench web`: people in teams, calls with analyses and
//! transcripts of many lines (and their search grams), generated inside the database (a recursive CTE on SQLite,
//! `generate_series` on PostgreSQL) so a hundred thousand calls and four million lines take
//! minutes, not hours. Every row is marked (case numbers `200001-BW…`, `bw-` ids) and `clear` removes
//! them. Never used by the server.

use salesai_core::store::{StoreError, StoreResult};
use salesai_core::transcript::SearchGrams;

use crate::Database;

/// Lines of sales talk the transcripts are made of, varied per call and line. A few phrases are
/// common (most calls have them), a marker phrase is rare (one call in a thousand).
const PHRASES: &[&str] = &[
    "老闆您好，今天想了解一下店裡點餐和出單的流程",
    "我們現在尖峰時段出單很慢，常常漏單",
    "一個禮拜大概漏單十幾次，每次都要重做",
    "預算大概五萬元以內，要跟合夥人討論",
    "隔壁那家用的是別家的系統，月費比較便宜",
    "我們有在地客服，半夜出問題也有人接",
    "可以先試用兩週，看看出單速度有沒有改善",
    "下週二下午兩點，我帶試算表過來店裡",
    "How do you take orders at the counter today?",
    "We lose a few orders every weekend and it costs us",
    "The budget this quarter is around five thousand dollars",
    "Our owner makes the final decision on new systems",
    "Can you send a proposal with the monthly price?",
    "Let us meet again next Tuesday with your partner",
    "外送平台的訂單要另外手動輸入，很花時間",
    "報表現在都是月底才手工整理，看不到即時營收",
];

/// The derived scores every synthetic analysis carries: the rules engine's, for a call made of
/// [`PHRASES`], as an SQL string literal (a real analysis always has them; the call page and
/// the report read them).
fn sample_derived() -> String {
    use salesai_core::analysis::derive::derive_in;
    use salesai_core::analysis::rules::{RulesInput, analyze};
    use salesai_core::language::Language;
    let segments: Vec<salesai_core::transcript::Segment> = PHRASES
        .iter()
        .enumerate()
        .map(|(i, text)| salesai_core::transcript::Segment {
            speaker: Some(if i % 2 == 0 { "業務" } else { "客戶" }.into()),
            start_ms: i as u64 * 5000,
            end_ms: i as u64 * 5000 + 4800,
            text: (*text).into(),
            ..Default::default()
        })
        .collect();
    let outputs = analyze(&RulesInput {
        segments: &segments,
        competitors: &[],
        metadata: &serde_json::json!({}),
        language: Language::ZhTw,
        lexicon: &Default::default(),
    });
    let derived = derive_in(&outputs, &Default::default(), Language::ZhTw);
    let json = serde_json::to_string(&derived).expect("derived scores serialise");
    format!("'{}'", json.replace('\'', "''"))
}

/// How many synthetic people carry the calls, in four teams.
pub const REPS: u32 = 20;

/// The id of the `i`-th synthetic call (a UUID-shaped string).
pub fn call_id(i: u32) -> String {
    format!("00000000-0000-7000-8000-{i:012}")
}

/// The phrase that marks one call in a thousand (`i % 1000 == 7`, line 3).
pub const RARE_PHRASE: &str = "斑馬線專案 zebra-crossing rollout";

/// Seeds calls `from..to` of `total` (each with `lines` transcript lines and, unless pending
/// or failed, an analysis), created a minute apart with the last at `base_ms`. Idempotent per
/// range: rows that exist are skipped.
pub async fn calls(
    db: &Database,
    from: u32,
    to: u32,
    total: u32,
    lines: u32,
    base_ms: i64,
) -> StoreResult<()> {
    let pg = matches!(db, Database::Postgres(_));
    let series = |name: &str, lo: u32, hi: u32| {
        if pg {
            format!("{name}(i) AS (SELECT generate_series({lo}, {hi} - 1))")
        } else {
            format!(
                "{name}(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM {name} WHERE i + 1 < {hi})"
            )
        }
    };
    let id = |col: &str| {
        if pg {
            format!("('00000000-0000-7000-8000-' || lpad({col}::text, 12, '0'))")
        } else {
            format!("printf('00000000-0000-7000-8000-%012d', {col})")
        }
    };
    let time = |ms: String| {
        if pg {
            format!("to_timestamp(({ms}) / 1000.0)")
        } else {
            ms
        }
    };
    let created = time(format!(
        "{base_ms} - (CAST({total} AS BIGINT) - 1 - c.i) * 60000"
    ));
    let recursive = if pg { "WITH" } else { "WITH RECURSIVE" };
    let conflict = "ON CONFLICT DO NOTHING";
    let phrase_case = {
        let mut case = String::from("CASE (c.i * 7 + s.i * 13) % ");
        case.push_str(&PHRASES.len().to_string());
        for (n, p) in PHRASES.iter().enumerate() {
            case.push_str(&format!(" WHEN {n} THEN '{p}'"));
        }
        case.push_str(" END");
        case
    };
    // Each call's transcript grams, computed as the server computes them: a call's phrases
    // depend only on its number modulo the phrase count (and on the rare line).
    let grams_case = {
        let n = PHRASES.len() as u32;
        let case_of = |rare: bool| {
            let mut case = format!("CASE c.i % {n}");
            for k in 0..n {
                let mut grams = SearchGrams::default();
                for line in 0..lines {
                    if rare && line == 3 {
                        grams.add(RARE_PHRASE);
                    } else {
                        grams.add(PHRASES[((k * 7 + line * 13) % n) as usize]);
                    }
                }
                case.push_str(&format!(" WHEN {k} THEN '{}'", grams.to_text()));
            }
            case.push_str(" END");
            case
        };
        format!(
            "CASE WHEN c.i % 1000 = 7 THEN {} ELSE {} END",
            case_of(true),
            case_of(false)
        )
    };
    let now = time(base_ms.to_string());
    let statements = [
        format!(
            "{recursive} {r} INSERT INTO users (id, email, display_name, role, team, created_at, updated_at) \
             SELECT 'bw-rep-' || r.i, 'bw-rep-' || r.i || '@example.com', 'Rep ' || r.i, 'rep', \
             'team-' || (r.i % 4), {now}, {now} FROM r WHERE TRUE {conflict}",
            r = series("r", 0, REPS)
        ),
        format!(
            "{recursive} {c} INSERT INTO opportunities (id, customer_number, company_name, product_line, \
             status_changed_at, created_at, updated_at) \
             SELECT 'bw-opp-' || c.i, 'BW-' || c.i, \
             (CASE c.i % 4 WHEN 0 THEN '好食餐廳 ' WHEN 1 THEN 'Counter Cafe ' WHEN 2 THEN '大安咖啡館 ' ELSE 'Noodle Bar ' END) || c.i, \
             'default', {created}, {created}, {created} FROM c WHERE TRUE {conflict}",
            c = series("c", from, to)
        ),
        format!(
            "{recursive} {c} INSERT INTO conversations (id, case_number, opportunity_id, product_line, \
             conversation_type, title, status, rep_user_id, duration_ms, conversation_date, media_kind, \
             analysis_score, created_at, updated_at) \
             SELECT {cid}, {case}, 'bw-opp-' || c.i, 'default', \
             CASE c.i % 3 WHEN 0 THEN 'discovery_call' WHEN 1 THEN 'demo' ELSE 'follow_up' END, \
             'Call ' || c.i, \
             CASE WHEN c.i % 50 = 7 THEN 'failed' WHEN c.i % 50 = 9 THEN 'analyzing' ELSE 'completed' END, \
             'bw-rep-' || (c.i % {REPS}), {dur}, {created}, 'transcript', \
             CASE WHEN c.i % 50 NOT IN (7, 9) THEN (c.i * 37) % 101 END, {created}, {created} FROM c WHERE TRUE {conflict}",
            c = series("c", from, to),
            cid = id("c.i"),
            case = if pg {
                "'200001-BW' || lpad(c.i::text, 6, '0')"
            } else {
                "printf('200001-BW%06d', c.i)"
            },
            dur = lines as i64 * 5000,
        ),
        format!(
            "{recursive} {c} INSERT INTO analyses (conversation_id, engine, overall_score, qualification, \
             pain_score, decision_score, champion_score, metrics_score, result, created_at) \
             SELECT {cid}, 'rules', (c.i * 37) % 101, \
             CASE WHEN (c.i * 37) % 101 >= 75 THEN 'strong' WHEN (c.i * 37) % 101 >= 50 THEN 'medium' \
                  WHEN (c.i * 37) % 101 >= 25 THEN 'weak' ELSE 'atrisk' END, \
             (c.i * 11) % 101, (c.i * 13) % 101, (c.i * 17) % 101, (c.i * 19) % 101, {derived}, {created} \
             FROM c WHERE c.i % 50 NOT IN (7, 9) {conflict}",
            c = series("c", from, to),
            cid = id("c.i"),
            derived = sample_derived(),
        ),
        format!(
            "{recursive} {c}, {s} INSERT INTO transcript_segments (conversation_id, seq, speaker, start_ms, end_ms, text) \
             SELECT {cid}, s.i, CASE s.i % 2 WHEN 0 THEN '業務' ELSE '客戶' END, s.i * 5000, s.i * 5000 + 4800, \
             CASE WHEN c.i % 1000 = 7 AND s.i = 3 THEN '{RARE_PHRASE}' ELSE ({phrase_case}) || ' ' || (c.i % 997) END \
             FROM c, s WHERE c.i % 50 <> 9 {conflict}",
            c = series("c", from, to),
            s = series("s", 0, lines),
            cid = id("c.i"),
        ),
        format!(
            "{recursive} {c} INSERT INTO search_grams (conversation_id, source, grams) \
             SELECT {cid}, 'transcript', {grams_case} FROM c WHERE c.i % 50 <> 9 AND {lines} > 0 {conflict}",
            c = series("c", from, to),
            cid = id("c.i"),
        ),
    ];
    // The same statements in one transaction on either pool (their types differ).
    macro_rules! in_one_transaction {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.map_err(store_error)?;
            for sql in &statements {
                // Built from this module's constants and numbers only: no outside text.
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(&mut *tx)
                    .await
                    .map_err(store_error)?;
            }
            tx.commit().await.map_err(store_error)?;
        }};
    }
    match db {
        Database::Sqlite(store) => in_one_transaction!(store.pool()),
        Database::Postgres(store) => in_one_transaction!(store.pool()),
    }
    Ok(())
}

/// How many synthetic calls exist.
pub async fn count(db: &Database) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM conversations WHERE case_number LIKE '200001-BW%'";
    match db {
        Database::Sqlite(s) => {
            crate::statement::query_scalar(sql)
                .fetch_one(s.pool())
                .await
        }
        Database::Postgres(s) => {
            crate::statement::query_scalar(sql)
                .fetch_one(s.pool())
                .await
        }
    }
    .map_err(store_error)
}

/// Removes every synthetic call (cascading to transcripts and analyses) and opportunity.
pub async fn clear(db: &Database) -> StoreResult<()> {
    let sql = "DELETE FROM conversations WHERE case_number LIKE '200001-BW%'; \
               DELETE FROM opportunities WHERE id LIKE 'bw-opp-%';";
    match db {
        Database::Sqlite(s) => sqlx::raw_sql(sql).execute(s.pool()).await.map(|_| ()),
        Database::Postgres(s) => sqlx::raw_sql(sql).execute(s.pool()).await.map(|_| ()),
    }
    .map_err(store_error)
}

fn store_error(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("seeding failed: {e}"))
}
