//! The `Store` trait's two implementations — SQLite for the embedded default, PostgreSQL for
//! teams — with their migrations and the queue's SQL.
//!
//! Both backends implement the same contract and are tested by the same story tests; each
//! keeps its own SQL because the two differ where it matters (SQLite has one writer and stores
//! times as integer milliseconds; PostgreSQL has `FOR UPDATE SKIP LOCKED` and `timestamptz`).

pub mod backup;
pub mod diagnostics;
mod error;
pub mod migrate;
mod postgres;
pub mod seed;
mod sqlite;
pub mod statement;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use salesai_core::store::{Backend, Store, StoreError, StoreResult};

pub use migrate::{MigrationState, Migrator};
pub use postgres::{PgStore, PinnedPool};
pub use sqlite::SqliteStore;

/// Job kinds that run one at a time per conversation: a conversation's notifications update
/// one status message in place, and two running at once would each find no message saved yet
/// and post a new one (seen against a Slack answering in 1.5 s).
pub const SERIAL_PER_CONVERSATION: &[&str] = &[salesai_core::pipeline::NOTIFY];

/// The claim's guard for [`SERIAL_PER_CONVERSATION`] kinds, in SQL both dialects accept (the
/// claimed table aliased `j`): such a job is claimable only when it is its conversation's
/// oldest queued one of its kind and none of its kind is running for that conversation.
pub(crate) fn serial_guard() -> String {
    let kinds = SERIAL_PER_CONVERSATION
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "AND (j.kind NOT IN ({kinds}) OR j.conversation_id IS NULL OR NOT EXISTS ( \
           SELECT 1 FROM jobs other WHERE other.conversation_id = j.conversation_id \
           AND other.kind = j.kind AND (other.status = 'running' OR (other.status = 'queued' AND other.id < j.id))))"
    )
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Most connections in the pool (PostgreSQL; SQLite uses a small fixed pool). Connections
    /// are opened on demand and closed after [`POOL_IDLE`] unused, so a node holds what its
    /// work needs, up to this.
    pub max_connections: u32,
    /// How long to wait for a connection or a lock before giving up.
    pub acquire_timeout: Duration,
    /// The PostgreSQL URL is PgBouncer's in transaction pooling mode: statements are unnamed
    /// and each use of a pooled connection is one transaction (see [`statement`]).
    pub pgbouncer: bool,
}

/// A node's pool at most, unless configured: its claim loops and jobs hold a connection only
/// for a statement or a short transaction, so a few serve a node (a burst of 60 calls on 20
/// nodes ran without waiting on the pool), and twenty nodes (80) stay within PostgreSQL's
/// default 100 connections. At 6, twenty nodes under a burst were refused connections.
pub const DEFAULT_POOL_MAX: u32 = 4;

/// How long a pooled PostgreSQL connection may sit unused before it is closed.
pub const POOL_IDLE: Duration = Duration::from_secs(30);

/// A PostgreSQL connection idle in the pool at least this long is pinged before use; one back
/// sooner is handed out as it is (sqlx would ping every one: a round trip per statement).
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Whether a connection given back to the pool may serve again: not when it is still inside a
/// transaction. A transaction dropped after a failed statement is rolled back on the way back
/// (SQLite's worker does it after this check, so it is flushed with a ping first); when that
/// rollback fails too — a full disk makes SQLite end the transaction itself, and the `ROLLBACK`
/// then finds none — the connection would refuse every later `BEGIN` ("begin_with at non-zero
/// transaction depth") until the process restarts. Such a connection is closed instead and the
/// pool opens a fresh one.
pub(crate) async fn still_usable<C: sqlx::Connection>(conn: &mut C) -> Result<bool, sqlx::Error> {
    if conn.is_in_transaction() {
        conn.ping().await?;
    }
    let usable = !conn.is_in_transaction();
    if !usable {
        tracing::warn!(
            event = "db.connection_discarded",
            "a pooled connection was left inside a transaction its rollback could not end; it is closed and replaced"
        );
    }
    Ok(usable)
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: DEFAULT_POOL_MAX,
            acquire_timeout: Duration::from_secs(10),
            pgbouncer: false,
        }
    }
}

/// A connected database of either backend.
#[derive(Clone)]
pub enum Database {
    /// `sqlite://…`
    Sqlite(SqliteStore),
    /// `postgres://…` or `postgresql://…`
    Postgres(PgStore),
}

impl Database {
    /// Connects to the database a URL names. SQLite files (and their folders) are created when
    /// missing, so the embedded default needs nothing set up.
    pub async fn connect(url: &str, options: &ConnectOptions) -> StoreResult<Database> {
        if url.starts_with("sqlite:") {
            Ok(Database::Sqlite(SqliteStore::connect(url, options).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Database::Postgres(PgStore::connect(url, options).await?))
        } else {
            Err(StoreError::InvalidInput(format!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got {:?})",
                url.split(':').next().unwrap_or_default()
            )))
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Database::Sqlite(_) => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }

    /// The migrator for this database.
    pub fn migrator(&self) -> Migrator {
        match self {
            Database::Sqlite(store) => Migrator::Sqlite(store.pool().clone()),
            Database::Postgres(store) => Migrator::Postgres(store.pool().clone()),
        }
    }

    /// Applies the pending migrations and gives back the database to use from then on, with
    /// the versions applied. On SQLite, when any was applied, that is a fresh pool: a pooled
    /// connection that lived through the schema change can go on reading from before it
    /// (seen as an intermittent "no such table" right after a first start), so none is kept.
    ///
    /// Then, for a week after migration 0013 (the search's gram index), it writes the grams of
    /// calls created since a day before it that have none: an older release still running on
    /// other nodes during a rolling upgrade saves transcripts without them. This is logged and
    /// never stops the start.
    pub async fn migrate(self) -> StoreResult<(Database, Vec<i64>)> {
        let applied = self.migrator().up().await?;
        let db = match self {
            Database::Sqlite(store) if !applied.is_empty() => {
                Database::Sqlite(store.reopen().await?)
            }
            other => other,
        };
        db.catch_up_search_grams().await;
        Ok((db, applied))
    }

    /// See [`Database::migrate`].
    async fn catch_up_search_grams(&self) {
        let states = match self.migrator().status().await {
            Ok(states) => states,
            Err(_) => return,
        };
        let Some(at) = states
            .iter()
            .find(|s| s.version == migrate::SEARCH_GRAMS)
            .and_then(|s| s.applied_at)
        else {
            return;
        };
        if chrono::Utc::now() - at > chrono::Duration::days(7) {
            return;
        }
        let since = at - chrono::Duration::days(1);
        let result = match self {
            Database::Sqlite(store) => sqlite::catch_up_search_grams(store, since).await,
            Database::Postgres(store) => postgres::catch_up_search_grams(store, since).await,
        };
        match result {
            Ok(0) => {}
            Ok(calls) => tracing::info!(
                event = "search.grams_caught_up",
                calls,
                "wrote the search grams of calls an older release saved without them"
            ),
            Err(e) => tracing::warn!(
                event = "search.grams_catch_up_failed",
                error = %e,
                "could not check for calls without search grams; short Chinese searches may miss calls saved by an older release until their transcript is saved again"
            ),
        }
    }

    /// The database as the core's `Store`.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Database::Sqlite(store) => Arc::new(store.clone()),
            Database::Postgres(store) => Arc::new(store.clone()),
        }
    }

    /// Closes the pool, waiting for connections to return.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(store) => store.pool().close().await,
            Database::Postgres(store) => store.pool().close().await,
        }
    }
}

/// Redacts the password in a database URL, for logs and error messages.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => raw.split('@').next_back().unwrap_or_default().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:secret@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(
            super::redact_url("sqlite://./data/salesai.db"),
            "sqlite://./data/salesai.db"
        );
    }
}
