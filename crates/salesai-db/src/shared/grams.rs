//! The gram index for searches too short for the trigram index (migration 0013): per call and
//! source, the unspaced-script characters and pairs of its transcript and of its summary's
//! meeting notes ([`SearchGrams`]), replaced in the same transaction as the text they come from.

use salesai_core::transcript::SearchGrams;
use serde_json::Value;
use sqlx::{QueryBuilder, Row};

use super::super::{Conn, Db};
use crate::error::R;

/// The source of a call's transcript grams.
pub(crate) const TRANSCRIPT: &str = "transcript";
/// The source of a call's summary grams (the summary agent's meeting notes).
pub(crate) const SUMMARY: &str = "summary";

/// Lines read a round while filling the index.
const BACKFILL_PAGE: i64 = 20_000;

/// The meeting notes of a summary agent's output, the text the summary search covers.
pub(crate) fn summary_text(output: &Value) -> &str {
    output
        .get("meeting_notes_markdown")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Replaces one source's grams of a call inside the caller's transaction; with none, the row goes.
pub(crate) async fn put_in(conn: &mut Conn, id: &str, source: &str, grams: &SearchGrams) -> R<()> {
    if grams.is_empty() {
        crate::statement::query(sql!(
            "DELETE FROM search_grams WHERE conversation_id = $1 AND source = $2"
        ))
        .bind(id)
        .bind(source)
        .execute(&mut *conn)
        .await?;
    } else {
        crate::statement::query(sql!(
            "INSERT INTO search_grams (conversation_id, source, grams) VALUES ($1, $2, $3) \
             ON CONFLICT (conversation_id, source) DO UPDATE SET grams = excluded.grams"
        ))
        .bind(id)
        .bind(source)
        .bind(grams.to_text())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Writes many calls' grams of one source, a few hundred rows a statement (the backfill's
/// writes; a call without grams gets no row). Returns the rows written.
async fn insert_many(conn: &mut Conn, source: &str, calls: Vec<(String, SearchGrams)>) -> R<u64> {
    let rows: Vec<(String, String)> = calls
        .into_iter()
        .filter(|(_, grams)| !grams.is_empty())
        .map(|(id, grams)| (id, grams.to_text()))
        .collect();
    for batch in rows.chunks(500) {
        let mut qb =
            QueryBuilder::<Db>::new("INSERT INTO search_grams (conversation_id, source, grams) ");
        qb.push_values(batch, |mut b, (id, grams)| {
            b.push_bind(id.clone())
                .push_bind(source.to_owned())
                .push_bind(grams.clone());
        });
        qb.push(" ON CONFLICT (conversation_id, source) DO UPDATE SET grams = excluded.grams");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(rows.len() as u64)
}

/// Fills the index from every saved transcript and summary, inside the caller's transaction:
/// the Rust step of migration 0013 (and of a restore from a backup made before it). Reads the
/// lines in pages by key, so memory stays at one page whatever the database's size. Returns
/// the rows written.
pub(crate) async fn backfill_in(conn: &mut Conn) -> R<u64> {
    let mut written = 0;
    // Transcripts: one call's lines are consecutive in key order; a call cut by the page's end
    // carries over to the next page.
    let mut after: Option<(String, i32)> = None;
    let mut current: Option<(String, SearchGrams)> = None;
    loop {
        let rows = match &after {
            None => crate::statement::query(sql!(
                "SELECT conversation_id, seq, text FROM transcript_segments \
                 ORDER BY conversation_id, seq LIMIT $1"
            ))
            .bind(BACKFILL_PAGE),
            Some((id, seq)) => crate::statement::query(sql!(
                "SELECT conversation_id, seq, text FROM transcript_segments \
                 WHERE (conversation_id, seq) > ($1, $2) ORDER BY conversation_id, seq LIMIT $3"
            ))
            .bind(id.clone())
            .bind(*seq)
            .bind(BACKFILL_PAGE),
        }
        .fetch_all(&mut *conn)
        .await?;
        let full = rows.len() as i64 == BACKFILL_PAGE;
        let mut finished = Vec::new();
        for row in &rows {
            let id: String = row.try_get("conversation_id")?;
            let text: String = row.try_get("text")?;
            if current.as_ref().is_some_and(|(c, _)| *c != id)
                && let Some(done) = current.take()
            {
                finished.push(done);
            }
            current
                .get_or_insert_with(|| (id, SearchGrams::default()))
                .1
                .add(&text);
        }
        written += insert_many(conn, TRANSCRIPT, finished).await?;
        if let Some(last) = rows.last() {
            after = Some((last.try_get("conversation_id")?, last.try_get("seq")?));
        }
        if !full {
            break;
        }
    }
    written += insert_many(conn, TRANSCRIPT, current.into_iter().collect()).await?;
    // Summaries: one row a call.
    let mut after = String::new();
    loop {
        let rows = crate::statement::query(sql!(
            "SELECT conversation_id, output FROM agent_outputs \
             WHERE agent = 'summary' AND conversation_id > $1 ORDER BY conversation_id LIMIT $2"
        ))
        .bind(after.clone())
        .bind(BACKFILL_PAGE / 20)
        .fetch_all(&mut *conn)
        .await?;
        let mut finished = Vec::new();
        for row in &rows {
            let id: String = row.try_get("conversation_id")?;
            // Text that is not valid JSON indexes as empty, as the trigram index does.
            let output: Value = row.try_get("output").unwrap_or(Value::Null);
            let mut grams = SearchGrams::default();
            grams.add(summary_text(&output));
            after.clone_from(&id);
            finished.push((id, grams));
        }
        written += insert_many(conn, SUMMARY, finished).await?;
        if (rows.len() as i64) < BACKFILL_PAGE / 20 {
            break;
        }
    }
    Ok(written)
}

/// Writes one call's grams of one source unless a row is there: a save by this release that
/// came between reading the text and this write wins, whatever the order. Returns the rows
/// written (0 or 1).
async fn insert_absent(
    pool: &super::super::Pool,
    id: &str,
    source: &str,
    grams: &SearchGrams,
) -> R<u64> {
    if grams.is_empty() {
        return Ok(0);
    }
    Ok(crate::statement::query(sql!(
        "INSERT INTO search_grams (conversation_id, source, grams) SELECT $1, $2, $3 \
         WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $1) \
         ON CONFLICT (conversation_id, source) DO NOTHING"
    ))
    .bind(id)
    .bind(source)
    .bind(grams.to_text())
    .execute(pool)
    .await?
    .rows_affected())
}

/// Writes the grams of calls created since `since` that have a transcript or a summary but no
/// grams for it: calls an older release (which knows nothing of the index) saved while this
/// one's migration had already run — the nodes of a rolling upgrade. Returns the calls fixed.
pub(crate) async fn catch_up(pool: &super::super::Pool, since: super::super::Time) -> R<u64> {
    let mut fixed = 0;
    let missing: Vec<String> = crate::statement::query_scalar(sql!(
        "SELECT c.id FROM conversations c WHERE c.created_at >= $1 \
         AND EXISTS (SELECT 1 FROM transcript_segments s WHERE s.conversation_id = c.id) \
         AND NOT EXISTS (SELECT 1 FROM search_grams g WHERE g.conversation_id = c.id \
                         AND g.source = 'transcript')"
    ))
    .bind(since)
    .fetch_all(pool)
    .await?;
    for id in missing {
        let texts: Vec<String> = crate::statement::query_scalar(sql!(
            "SELECT text FROM transcript_segments WHERE conversation_id = $1"
        ))
        .bind(&id)
        .fetch_all(pool)
        .await?;
        let mut grams = SearchGrams::default();
        for text in &texts {
            grams.add(text);
        }
        fixed += insert_absent(pool, &id, TRANSCRIPT, &grams).await?;
    }
    let summaries = crate::statement::query(sql!(
        "SELECT o.conversation_id, o.output FROM agent_outputs o \
         JOIN conversations c ON c.id = o.conversation_id \
         WHERE o.agent = 'summary' AND c.created_at >= $1 \
         AND NOT EXISTS (SELECT 1 FROM search_grams g WHERE g.conversation_id = o.conversation_id \
                         AND g.source = 'summary')"
    ))
    .bind(since)
    .fetch_all(pool)
    .await?;
    for row in &summaries {
        let id: String = row.try_get("conversation_id")?;
        let output: Value = row.try_get("output").unwrap_or(Value::Null);
        let mut grams = SearchGrams::default();
        grams.add(summary_text(&output));
        fixed += insert_absent(pool, &id, SUMMARY, &grams).await?;
    }
    Ok(fixed)
}
