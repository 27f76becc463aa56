//! The PostgreSQL dialect: the team server, shared by any number of `serve` and `worker` nodes.
//!
//! Claims use `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each other's rows
//! and never take the same job; time comes from the database (`now()`), so the nodes' clocks
//! do not have to agree. The store's methods are the shared ones (`../shared`), whose SQL is
//! PostgreSQL's; this module holds only what PostgreSQL does differently (array binds for
//! bulk writes, one-statement reaping, connection repairs).

use chrono::{DateTime, Utc};
use salesai_core::queue::Lease;
use salesai_core::store::{Backend, StoreError, StoreResult};
use salesai_core::transcript::Segment;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};

use crate::ConnectOptions;

/// The PostgreSQL implementation of the store's capabilities.
#[derive(Clone)]
pub struct PgStore {
    pool: PinnedPool,
}

impl PgStore {
    /// Connects to the database a `postgres://` URL names.
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<Self> {
        let connect: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::InvalidInput(format!("invalid PostgreSQL URL: {e}")))?;
        let connect = connect.application_name("salesai");
        let unavailable = |e: sqlx::Error| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL at {}: {e}",
                crate::redact_url(url)
            ))
        };
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .min_connections(0)
            .idle_timeout(Some(crate::POOL_IDLE))
            .acquire_timeout(options.acquire_timeout)
            // sqlx pings every connection it hands out by default: one more round trip for
            // every statement. A connection back in the pool for less than a second was just
            // working; only one idle longer is checked (and replaced when the server is gone).
            .test_before_acquire(false)
            .after_release(|conn, _| Box::pin(crate::still_usable(conn)))
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < crate::PING_AFTER_IDLE {
                        return Ok(true);
                    }
                    Ok(sqlx::Connection::ping(conn).await.is_ok())
                })
            });
        if options.pgbouncer {
            crate::statement::use_unnamed_statements();
        }
        let inner = pool.connect_with(connect).await.map_err(unavailable)?;
        Ok(PgStore {
            pool: PinnedPool {
                inner,
                pinned: options.pgbouncer,
            },
        })
    }

    /// The connection pool, for migrations, backups and seeding (which need a direct URL
    /// behind PgBouncer).
    pub fn pool(&self) -> &PgPool {
        &self.pool.inner
    }

    /// The store's pool for single statements: behind PgBouncer each runs in a transaction of
    /// its own (see [`PinnedPool`]).
    pub fn statements(&self) -> &PinnedPool {
        &self.pool
    }
}

/// The store's pool. Behind PgBouncer in transaction pooling mode (`pinned`), a statement
/// sent to the pool itself runs in a transaction of its own — BEGIN, the statement, COMMIT
/// before its result is returned — so its parse and its execution (sqlx sends a sync between
/// them) reach the same server connection; a store transaction is pinned already. Otherwise
/// it is the plain pool.
#[derive(Clone, Debug)]
pub struct PinnedPool {
    inner: PgPool,
    pinned: bool,
}

impl PinnedPool {
    /// The pool for one statement that writes outside a transaction: on PostgreSQL the pool
    /// itself (SQLite's twin takes the process's writer lock).
    pub fn writes(&self) -> &PinnedPool {
        self
    }

    /// A transaction on a pooled connection.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.inner.begin().await
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.inner.close().await
    }
}

impl<'p> sqlx::Executor<'p> for &'_ PinnedPool {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> futures_util::stream::BoxStream<
        'e,
        Result<sqlx::Either<sqlx::postgres::PgQueryResult, PgRow>, sqlx::Error>,
    >
    where
        E: 'q + sqlx::Execute<'q, Postgres>,
    {
        use futures_util::{StreamExt, TryStreamExt};
        if !self.pinned {
            return (&self.inner).fetch_many(query);
        }
        let pool = self.inner.clone();
        Box::pin(
            futures_util::stream::once(async move {
                let mut tx = pool.begin().await?;
                let items: Vec<_> = (&mut *tx).fetch_many(query).try_collect().await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(futures_util::stream::iter(items.into_iter().map(Ok)))
            })
            .try_flatten()
            .boxed(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> futures_util::future::BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + sqlx::Execute<'q, Postgres>,
    {
        if !self.pinned {
            return (&self.inner).fetch_optional(query);
        }
        let pool = self.inner.clone();
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let row = (&mut *tx).fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [sqlx::postgres::PgTypeInfo],
    ) -> futures_util::future::BoxFuture<'e, Result<sqlx::postgres::PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.inner).prepare_with(sql, parameters)
    }
}

// --- the dialect the shared code is written against ---

type Db = Postgres;
type DbRow = PgRow;
type Conn = PgConnection;
type Pool = PinnedPool;
type StoreImpl = PgStore;
/// A job whose lease ran out, as the reaper moved it: id, new status, the message, queue, attempts.
type Expired = (i64, String, String, String, i64);
/// How a time is bound: `timestamptz`.
type Time = DateTime<Utc>;

const BACKEND: Backend = Backend::Postgres;
/// The conversation ids whose transcript matches an indexed search pattern (the pg_trgm index
/// of migration 0008 on `lower(text)`); the pattern is bound after it.
const TRANSCRIPT_INDEX_SUBQUERY: &str =
    "SELECT conversation_id FROM transcript_segments WHERE lower(text) LIKE ";
/// What follows the bound pattern.
const TRANSCRIPT_INDEX_SUFFIX: &str = " ESCAPE '\\'";
/// One line `s` of a known call against a lower-cased `LIKE` pattern (bound after it). `ILIKE`
/// on the column, not `lower(text) LIKE`: the trigram index (on `lower(text)`) must not serve
/// this, or the planner reads every matching line of every call to check a few calls' lines;
/// the primary key `(conversation_id, seq)` does.
const LINE_MATCHES: &str = "s.text ILIKE ";
/// A listed call's CRM stage as the CRM agent gave it (`NULL` before the analysis).
const CRM_STAGE: &str = "(SELECT o.output ->> 'stage' FROM agent_outputs o \
     WHERE o.conversation_id = conversations.id AND o.agent = 'crm') AS stage";
/// The conversation ids whose summary matches an indexed pattern (migration 0009).
const SUMMARY_INDEX_SUBQUERY: &str = "SELECT conversation_id FROM agent_outputs \
     WHERE agent = 'summary' AND lower(output ->> 'meeting_notes_markdown') LIKE ";
/// One call's summary output `o` against a lower-cased `LIKE` pattern (not the indexed
/// expression, for the same reason as [`LINE_MATCHES`]).
const SUMMARY_MATCHES: &str = "(o.output ->> 'meeting_notes_markdown') ILIKE ";

/// The conversation ids whose transcript or summary has a gram (the GIN index over the words
/// of `search_grams`, migration 0013); the gram is bound after it.
const GRAMS_INDEX_SUBQUERY: &str =
    "SELECT conversation_id FROM search_grams WHERE string_to_array(grams, ' ') @> ARRAY[";
/// What follows the bound gram.
const GRAMS_INDEX_SUFFIX: &str = "::text]";

/// A gram as the array element it is looked up as.
fn gram_value(gram: &str) -> String {
    gram.to_owned()
}

/// The pattern the trigram index can serve for a search term: three or more characters (the
/// lower-cased `LIKE` pattern, wildcards escaped); `None` sends the search down the scan.
fn indexed_pattern(term: &str) -> Option<String> {
    (term.trim().chars().count() >= 3)
        .then(|| shared::like_pattern(term))
        .flatten()
}

/// The SQL for "now", for statements assembled at run time.
const NOW: &str = "now()";
/// The SQL for a second ago (a lease that ended).
const SECOND_AGO: &str = "now() - interval '1 second'";
/// Seconds since the oldest due queued job's `run_at`, per queue.
const OLDEST_WAITING_SECS: &str = "EXTRACT(EPOCH FROM now() - MIN(run_at))::float8";

fn db_time(t: DateTime<Utc>) -> Time {
    t
}

fn from_db(t: Time) -> DateTime<Utc> {
    t
}

fn time(row: &DbRow, column: &str) -> Result<DateTime<Utc>, sqlx::Error> {
    row.try_get(column)
}

fn opt_time(row: &DbRow, column: &str) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    row.try_get(column)
}

async fn write_tx(pool: &Pool) -> Result<Transaction<'static, Db>, sqlx::Error> {
    pool.begin().await
}

/// A connection for a few statements outside a store transaction: a plain pooled connection,
/// or behind PgBouncer a transaction of its own so its statements stay on one server
/// connection (reads that return early roll back on drop; [`release`] commits).
enum Held {
    Conn(sqlx::pool::PoolConnection<Db>),
    Pinned(Transaction<'static, Db>),
}

impl std::ops::Deref for Held {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Held::Conn(c) => c,
            Held::Pinned(t) => t,
        }
    }
}

impl std::ops::DerefMut for Held {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Held::Conn(c) => c,
            Held::Pinned(t) => t,
        }
    }
}

async fn hold(pool: &Pool) -> Result<Held, sqlx::Error> {
    Ok(if pool.pinned {
        Held::Pinned(pool.inner.begin().await?)
    } else {
        Held::Conn(pool.inner.acquire().await?)
    })
}

/// Gives back what [`hold`] gave, committing a pinned transaction.
async fn release(held: Held) -> Result<(), sqlx::Error> {
    match held {
        Held::Conn(_) => Ok(()),
        Held::Pinned(tx) => tx.commit().await,
    }
}

/// A connection for a few statements that write outside a store transaction: on PostgreSQL
/// what [`hold`] gives (its row locks order the writers).
async fn hold_to_write(pool: &Pool) -> Result<Held, sqlx::Error> {
    hold(pool).await
}

/// Ends what [`hold_to_write`] gave.
async fn release_written(held: Held) -> Result<(), sqlx::Error> {
    release(held).await
}

/// A statement of the shared code (already PostgreSQL), kept for the process's life.
macro_rules! sql {
    ($text:expr) => {{
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| String::from($text));
        SQL.as_str()
    }};
}

/// Lease columns as arrays, for one-statement updates of many leases.
fn lease_arrays(leases: &[Lease]) -> (Vec<i64>, Vec<i32>, Vec<String>) {
    (
        leases.iter().map(|l| l.job_id).collect(),
        leases.iter().map(|l| l.attempt as i32).collect(),
        leases.iter().map(|l| l.worker_id.clone()).collect(),
    )
}

/// Marks leased jobs completed in one statement.
async fn complete_many(pool: &Pool, leases: &[Lease]) -> Result<u64, sqlx::Error> {
    let (ids, attempts, workers) = lease_arrays(leases);
    Ok(crate::statement::query(
        "UPDATE jobs SET status = 'completed', finished_at = now(), updated_at = now(), \
         locked_by = NULL, lease_expires_at = NULL \
         FROM unnest($1::bigint[], $2::int[], $3::text[]) AS l(id, attempt, worker) \
         WHERE jobs.id = l.id AND jobs.status = 'running' AND jobs.attempts = l.attempt \
         AND jobs.locked_by = l.worker",
    )
    .bind(ids)
    .bind(attempts)
    .bind(workers)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Completes a lease and claims the next jobs in one statement: one round trip where a
/// `complete` and a `claim` take two. The claim runs on the statement's snapshot, in which the
/// completed job is still running (so a kind that runs one at a time per conversation waits
/// for the next poll, as it would).
///
/// Neither half waits for a lock: a statement that waited to complete while holding the rows
/// it had just claimed could deadlock with another doing the same (a concurrent claim may
/// briefly hold the lock of a row it saw queued in an older snapshot). So the completion skips
/// a locked row, and when it did, the lease is completed afterwards on its own.
async fn complete_and_claim(
    pool: &Pool,
    lease: &Lease,
    queue: &str,
    worker_id: &str,
    max: u32,
) -> Result<(bool, Vec<DbRow>), sqlx::Error> {
    let rows = crate::statement::query(sql!(format!(
        "WITH done AS ( \
             UPDATE jobs SET status = 'completed', finished_at = now(), updated_at = now(), \
             locked_by = NULL, lease_expires_at = NULL \
             WHERE id = (SELECT id FROM jobs WHERE id = $4 AND status = 'running' AND attempts = $5 \
                         AND locked_by = $6 FOR UPDATE SKIP LOCKED) RETURNING id), \
         claimed AS ({claim}) \
         SELECT (SELECT COUNT(*) FROM done) AS done_count, claimed.* \
         FROM (SELECT 1) AS one LEFT JOIN claimed ON TRUE",
        claim = shared::claim_sql()
    )))
    .bind(worker_id)
    .bind(queue)
    .bind(i64::from(max))
    .bind(lease.job_id)
    .bind(lease.attempt as i32)
    .bind(&lease.worker_id)
    .fetch_all(pool)
    .await?;
    let mut done = match rows.first() {
        Some(row) => row.try_get::<i64, _>("done_count")? == 1,
        None => false,
    };
    if !done {
        // Skipped (locked for a moment) or lost: the plain completion tells which.
        let mut tx = pool.begin().await?;
        done = shared::complete_in(&mut tx, lease).await?;
        tx.commit().await?;
    }
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        if row.try_get::<Option<i64>, _>("id")?.is_some() {
            claimed.push(row);
        }
    }
    Ok((done, claimed))
}

/// Extends leases in one statement.
async fn extend_leases(pool: &Pool, leases: &[Lease]) -> Result<u64, sqlx::Error> {
    let (ids, attempts, workers) = lease_arrays(leases);
    Ok(crate::statement::query(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => COALESCE( \
             (SELECT lease_secs FROM queue_settings WHERE name = jobs.queue), 60)) \
         FROM unnest($1::bigint[], $2::int[], $3::text[]) AS l(id, attempt, worker) \
         WHERE jobs.id = l.id AND jobs.status = 'running' AND jobs.attempts = l.attempt \
         AND jobs.locked_by = l.worker",
    )
    .bind(ids)
    .bind(attempts)
    .bind(workers)
    .execute(pool)
    .await?
    .rows_affected())
}

/// Moves jobs whose lease ran out back to the queue or to dead, recording each in the job's
/// history, in one statement: SKIP LOCKED lets several nodes reap at once without waiting on
/// each other. Returns `(id, new status, message)` of each.
async fn reap_expired(conn: &mut Conn) -> Result<Vec<Expired>, sqlx::Error> {
    crate::statement::query_as(
        "WITH expired AS ( \
             SELECT id, attempts, max_attempts, locked_by FROM jobs \
             WHERE status = 'running' AND lease_expires_at < now() FOR UPDATE SKIP LOCKED), \
         history AS ( \
             INSERT INTO job_attempts (job_id, attempt, worker_id, outcome, error_code, error_message, finished_at) \
             SELECT id, attempts, locked_by, 'lease_expired', 'LEASE_EXPIRED', \
                    'lease expired while held by ' || COALESCE(locked_by, '?'), now() FROM expired), \
         moved AS ( \
             UPDATE jobs SET \
               status = CASE WHEN expired.attempts >= expired.max_attempts THEN 'dead' ELSE 'queued' END, \
               finished_at = CASE WHEN expired.attempts >= expired.max_attempts THEN now() ELSE NULL END, \
               run_at = now(), last_error_code = 'LEASE_EXPIRED', \
               last_error_message = 'lease expired while held by ' || COALESCE(expired.locked_by, '?'), \
               locked_by = NULL, lease_expires_at = NULL, updated_at = now() \
             FROM expired WHERE jobs.id = expired.id \
             RETURNING jobs.id, jobs.status, jobs.last_error_message, jobs.queue, jobs.attempts) \
         SELECT id, status, last_error_message, queue, attempts::bigint FROM moved",
    )
    .fetch_all(&mut *conn)
    .await
}

/// Inserts a transcript's segments in one statement (arrays, whatever their number).
async fn insert_segments(
    conn: &mut Conn,
    id: &str,
    segments: &[Segment],
) -> Result<(), sqlx::Error> {
    let clamp = |ms: u64| ms.min(i32::MAX as u64) as i32;
    crate::statement::query(
        "INSERT INTO transcript_segments (conversation_id, seq, speaker, start_ms, end_ms, text, role, attribution, confidence) \
         SELECT $1, * FROM unnest($2::int[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::text[], $9::int[])",
    )
    .bind(id)
    .bind((0..segments.len() as i32).collect::<Vec<_>>())
    .bind(
        segments
            .iter()
            .map(|s| s.speaker.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        segments
            .iter()
            .map(|s| clamp(s.start_ms))
            .collect::<Vec<_>>(),
    )
    .bind(segments.iter().map(|s| clamp(s.end_ms)).collect::<Vec<_>>())
    .bind(segments.iter().map(|s| s.text.clone()).collect::<Vec<_>>())
    .bind(
        segments
            .iter()
            .map(|s| s.role.map(|r| r.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        segments
            .iter()
            .map(|s| s.attribution.map(|a| a.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        segments
            .iter()
            .map(|s| s.confidence.map(i32::from))
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Terminates this database's connections idle for longer than `older_than`.
async fn terminate_idle(pool: &Pool, older_than: std::time::Duration) -> StoreResult<i64> {
    crate::statement::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND state = 'idle' AND pid <> pg_backend_pid() \
         AND state_change < now() - make_interval(secs => $1)",
    )
    .bind(older_than.as_secs_f64())
    .fetch_one(pool)
    .await
    .map_err(crate::error::map)
}

/// Refreshes the planner's statistics and reclaims space.
async fn analyze(pool: &Pool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("VACUUM ANALYZE").execute(pool).await?;
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
    store: &PgStore,
    since: DateTime<Utc>,
) -> StoreResult<u64> {
    crate::error::run(shared::grams::catch_up(&store.pool, db_time(since))).await
}

#[allow(clippy::duplicate_mod)] // compiled once per dialect, on purpose: see its header
#[path = "../shared/mod.rs"]
mod shared;
