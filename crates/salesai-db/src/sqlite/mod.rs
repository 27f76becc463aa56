//! The SQLite dialect: the embedded default.
//!
//! SQLite has one writer at a time. Every write transaction therefore starts with
//! `BEGIN IMMEDIATE` (take the write lock first, wait up to the busy timeout), which avoids the
//! "read snapshot cannot be upgraded" failure of deferred transactions; single-statement writes
//! such as the claim are atomic on their own. WAL mode lets readers run beside the writer.
//!
//! Times are integer milliseconds since the epoch. The store's methods are the shared ones
//! (`../shared`), written in PostgreSQL's SQL and translated here once per statement
//! ([`translate`]); this module holds only what SQLite does differently.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use salesai_core::queue::Lease;
use salesai_core::store::{Backend, StoreError, StoreResult};
use salesai_core::transcript::Segment;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::ConnectOptions;

mod writer;
pub use writer::{WritePool, WriteTx};

/// The SQLite implementation of the store's capabilities.
#[derive(Clone)]
pub struct SqliteStore {
    pool: WritePool,
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A stored millisecond timestamp as a `DateTime`.
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating when missing) the database file a `sqlite://` URL names.
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidInput(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.acquire_timeout)
            .foreign_keys(true);
        let path = connect.get_filename().to_path_buf();
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the database folder {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.clamp(2, 8))
            .acquire_timeout(options.acquire_timeout)
            .after_release(|conn, _| Box::pin(crate::still_usable(conn)))
            .connect_with(connect)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot open SQLite database {}: {e}",
                    path.display()
                ))
            })?;
        Ok(SqliteStore {
            pool: WritePool::new(pool, options.acquire_timeout),
        })
    }

    /// The same database on a new pool, this one closed (see [`crate::Database::migrate`]).
    pub(crate) async fn reopen(&self) -> StoreResult<SqliteStore> {
        let inner = self.pool.inner();
        let options = inner.options().clone();
        let wait = options.get_acquire_timeout();
        let connect = (*inner.connect_options()).clone();
        inner.close().await;
        let pool = options.connect_with(connect).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot reopen the SQLite database: {e}"))
        })?;
        Ok(SqliteStore {
            pool: WritePool::new(pool, wait),
        })
    }

    /// The connection pool, for migrations and diagnostics.
    pub fn pool(&self) -> &SqlitePool {
        self.pool.inner()
    }
}

// --- the dialect the shared code is written against ---

type Db = Sqlite;
type DbRow = SqliteRow;
type Conn = SqliteConnection;
type Pool = WritePool;
type StoreImpl = SqliteStore;
/// A job whose lease ran out, as the reaper moved it: id, new status, the message, queue, attempts.
type Expired = (i64, String, String, String, i64);
/// How a time is bound: integer milliseconds.
type Time = i64;

const BACKEND: Backend = Backend::Sqlite;
/// The conversation ids whose transcript matches an indexed search pattern (the trigram FTS5
/// index of migration 0008); the pattern is bound after it.
const TRANSCRIPT_INDEX_SUBQUERY: &str = "SELECT s.conversation_id FROM transcript_fts f \
     JOIN transcript_segments s ON s.rowid = f.rowid WHERE f.text LIKE ";
/// What follows the bound pattern.
const TRANSCRIPT_INDEX_SUFFIX: &str = "";
/// One line `s` of a known call against a lower-cased `LIKE` pattern (bound after it).
const LINE_MATCHES: &str = "lower(s.text) LIKE ";
/// A listed call's CRM stage as the CRM agent gave it (`NULL` before the analysis).
const CRM_STAGE: &str = "(SELECT CASE WHEN json_valid(o.output) THEN json_extract(o.output, '$.stage') END \
     FROM agent_outputs o WHERE o.conversation_id = conversations.id AND o.agent = 'crm') AS stage";
/// The conversation ids whose summary matches an indexed pattern (migration 0009).
const SUMMARY_INDEX_SUBQUERY: &str = "SELECT conversation_id FROM summary_fts WHERE text LIKE ";
/// One call's summary output `o` against a lower-cased `LIKE` pattern.
const SUMMARY_MATCHES: &str = "CASE WHEN json_valid(o.output) \
     THEN lower(json_extract(o.output, '$.meeting_notes_markdown')) END LIKE ";

/// The conversation ids whose transcript or summary has a gram (the FTS5 word index of
/// migration 0013); the FTS5 query [`gram_value`] makes is bound after it.
const GRAMS_INDEX_SUBQUERY: &str = "SELECT g.conversation_id FROM search_grams_fts f \
     JOIN search_grams g ON g.rowid = f.rowid WHERE search_grams_fts MATCH ";
/// What follows the bound gram.
const GRAMS_INDEX_SUFFIX: &str = "";

/// A gram as an FTS5 query: one quoted word (a gram holds only letters, never a quote).
fn gram_value(gram: &str) -> String {
    format!("\"{gram}\"")
}

/// The pattern the trigram index can serve for a search term: three or more characters without
/// LIKE's wildcards (FTS5 takes LIKE without an ESCAPE clause); `None` sends the search down the
/// scan.
fn indexed_pattern(term: &str) -> Option<String> {
    let term = term.trim();
    (term.chars().count() >= 3 && !term.contains(['%', '_', '\\'])).then(|| format!("%{term}%"))
}

/// The SQL for "now", for statements assembled at run time.
const NOW: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
/// The SQL for a second ago (a lease that ended).
const SECOND_AGO: &str = "(CAST(unixepoch('subsec') * 1000 AS INTEGER) - 1000)";
/// Seconds since the oldest due queued job's `run_at`, per queue.
const OLDEST_WAITING_SECS: &str =
    "(CAST(unixepoch('subsec') * 1000 AS INTEGER) - MIN(run_at)) / 1000.0";

fn db_time(t: DateTime<Utc>) -> Time {
    t.timestamp_millis()
}

fn from_db(t: Time) -> DateTime<Utc> {
    from_ms(t)
}

fn time(row: &DbRow, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    Ok(from_ms(row.try_get(column)?))
}

fn opt_time(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(from_ms))
}

async fn write_tx(pool: &Pool) -> Result<WriteTx, sqlx::Error> {
    pool.write_tx().await
}

/// A connection for a few statements outside a store transaction (see the PostgreSQL twin).
async fn hold(pool: &Pool) -> Result<sqlx::pool::PoolConnection<Db>, sqlx::Error> {
    pool.inner().acquire().await
}

/// Gives back what [`hold`] gave.
async fn release(_conn: sqlx::pool::PoolConnection<Db>) -> Result<(), sqlx::Error> {
    Ok(())
}

/// A connection for a few statements that write outside a store transaction: on SQLite a
/// write transaction, holding the process's writer lock (see [`writer`]).
async fn hold_to_write(pool: &Pool) -> Result<WriteTx, sqlx::Error> {
    pool.write_tx().await
}

/// Ends what [`hold_to_write`] gave.
async fn release_written(tx: WriteTx) -> Result<(), sqlx::Error> {
    tx.commit().await
}

/// A statement of the shared code, translated once and kept for the process's life.
macro_rules! sql {
    ($text:expr) => {{
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| crate::sqlite::translate(&$text));
        SQL.as_str()
    }};
}

/// Translates the shared code's PostgreSQL into SQLite: `now()` becomes integer milliseconds,
/// `make_interval(secs => x)` whole milliseconds, `strpos` is `instr`, casts to PostgreSQL
/// types go, and row locks go (SQLite's write transactions are serial already). `$n`
/// placeholders are kept: SQLite (and sqlx) accept them.
pub(crate) fn translate(sql: &str) -> String {
    let mut out = sql.replace("now()", NOW).replace("strpos(", "instr(");
    for cast in ["::bigint", "::float8", "::int", "::text"] {
        out = out.replace(cast, "");
    }
    for lock in [
        " FOR UPDATE OF j SKIP LOCKED",
        " FOR UPDATE SKIP LOCKED",
        " FOR UPDATE OF c",
        " FOR UPDATE",
    ] {
        out = out.replace(lock, "");
    }
    const INTERVAL: &str = "make_interval(secs => ";
    while let Some(at) = out.find(INTERVAL) {
        let inner_start = at + INTERVAL.len();
        let mut depth = 1;
        let mut end = inner_start;
        for (i, c) in out[inner_start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = inner_start + i;
                break;
            }
        }
        let inner = out[inner_start..end].to_owned();
        out.replace_range(at..=end, &format!("CAST(1000 * ({inner}) AS INTEGER)"));
    }
    out
}

/// Marks leased jobs completed, one statement per lease inside one write transaction.
async fn complete_many(pool: &Pool, leases: &[Lease]) -> Result<u64, sqlx::Error> {
    let mut tx = write_tx(pool).await?;
    let mut total = 0;
    for lease in leases {
        total += u64::from(shared::complete_in(&mut tx, lease).await?);
    }
    tx.commit().await?;
    Ok(total)
}

/// Completes a lease and claims the next jobs: two statements in one write transaction
/// (SQLite has no data-modifying CTE; its single writer makes the pair atomic anyway).
async fn complete_and_claim(
    pool: &Pool,
    lease: &Lease,
    queue: &str,
    worker_id: &str,
    max: u32,
) -> Result<(bool, Vec<DbRow>), sqlx::Error> {
    let mut tx = write_tx(pool).await?;
    let done = shared::complete_in(&mut tx, lease).await?;
    let rows = crate::statement::query(sql!(shared::claim_sql()))
        .bind(worker_id)
        .bind(queue)
        .bind(i64::from(max))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((done, rows))
}

/// Extends leases, one statement per lease inside one write transaction.
async fn extend_leases(pool: &Pool, leases: &[Lease]) -> Result<u64, sqlx::Error> {
    let mut tx = write_tx(pool).await?;
    let mut total = 0;
    for lease in leases {
        total += crate::statement::query(sql!(
            "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => COALESCE( \
               (SELECT lease_secs FROM queue_settings WHERE name = jobs.queue), 60)) \
             WHERE id = $1 AND status = 'running' AND attempts = $2 AND locked_by = $3"
        ))
        .bind(lease.job_id)
        .bind(i64::from(lease.attempt))
        .bind(&lease.worker_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(total)
}

/// Moves jobs whose lease ran out back to the queue or to dead, recording each in the job's
/// history; returns `(id, new status, message)` of each.
async fn reap_expired(conn: &mut Conn) -> Result<Vec<Expired>, sqlx::Error> {
    crate::statement::query(sql!(
        "INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, error_code, error_message, finished_at) \
         SELECT id, attempts, locked_by, 'lease_expired', 'LEASE_EXPIRED', \
                'lease expired while held by ' || COALESCE(locked_by, '?'), now() \
         FROM jobs WHERE status = 'running' AND lease_expires_at < now()"
    ))
    .execute(&mut *conn)
    .await?;
    crate::statement::query_as(sql!(
        "UPDATE jobs SET \
           status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
           finished_at = CASE WHEN attempts >= max_attempts THEN now() ELSE NULL END, \
           run_at = now(), last_error_code = 'LEASE_EXPIRED', \
           last_error_message = 'lease expired while held by ' || COALESCE(locked_by, '?'), \
           locked_by = NULL, lease_expires_at = NULL, updated_at = now() \
         WHERE status = 'running' AND lease_expires_at < now() \
         RETURNING id, status, last_error_message, queue, attempts"
    ))
    .fetch_all(&mut *conn)
    .await
}

/// Inserts a transcript's segments, many rows a statement.
async fn insert_segments(
    conn: &mut Conn,
    id: &str,
    segments: &[Segment],
) -> Result<(), sqlx::Error> {
    // 9 parameters a row, well under SQLite's 32,766.
    for (batch, rows) in segments.chunks(2_000).enumerate() {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO transcript_segments (conversation_id, seq, speaker, start_ms, end_ms, text, role, attribution, confidence) ",
        );
        qb.push_values(rows.iter().enumerate(), |mut b, (i, s)| {
            b.push_bind(id)
                .push_bind((batch * 2_000 + i) as i64)
                .push_bind(&s.speaker)
                .push_bind(s.start_ms as i64)
                .push_bind(s.end_ms as i64)
                .push_bind(&s.text)
                .push_bind(s.role.map(|r| r.as_str()))
                .push_bind(s.attribution.map(|a| a.as_str()))
                .push_bind(s.confidence.map(i32::from));
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// SQLite has no server connections to end.
async fn terminate_idle(_pool: &Pool, _older_than: std::time::Duration) -> StoreResult<i64> {
    Err(StoreError::InvalidInput(
        "terminate-idle is for PostgreSQL; SQLite has no server connections".into(),
    ))
}

/// Refreshes the planner's statistics.
async fn analyze(pool: &Pool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("ANALYZE; PRAGMA optimize;")
        .execute(pool)
        .await?;
    Ok(())
}

/// Fills the search's gram index from every saved transcript and summary inside the caller's
/// transaction: the Rust step of migration 0013, and of restoring a backup made before it.
pub(crate) async fn backfill_search_grams(conn: &mut Conn) -> StoreResult<u64> {
    crate::error::run(shared::grams::backfill_in(conn)).await
}

/// Writes the search grams an older release left out for calls created since `since` (see
/// [`crate::Database::migrate`]).
pub(crate) async fn catch_up_search_grams(
    store: &SqliteStore,
    since: DateTime<Utc>,
) -> StoreResult<u64> {
    crate::error::run(shared::grams::catch_up(&store.pool, db_time(since))).await
}

#[allow(clippy::duplicate_mod)] // compiled once per dialect, on purpose: see its header
#[path = "../shared/mod.rs"]
mod shared;

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn translation_keeps_placeholders_and_rewrites_time() {
        assert_eq!(
            translate(
                "UPDATE jobs SET run_at = now() + make_interval(secs => COALESCE(x, 60)) WHERE id = $1 FOR UPDATE"
            ),
            format!(
                "UPDATE jobs SET run_at = {} + CAST(1000 * (COALESCE(x, 60)) AS INTEGER) WHERE id = $1",
                super::NOW
            )
        );
        assert_eq!(
            translate("SELECT COALESCE(SUM(n), 0)::bigint, strpos(a, b)"),
            "SELECT COALESCE(SUM(n), 0), instr(a, b)"
        );
    }
}
