//! Database internals for `salesai doctor` and the repairs the runbook lists (scenario 3):
//! connections, lock waits, slow statements, unused indexes, tables that need VACUUM, SQLite's
//! integrity and WAL size; terminating idle connections; VACUUM ANALYZE.

use std::time::Duration;

use salesai_core::store::StoreResult;
use serde::Serialize;
use sqlx::Row;

use crate::Database;
use crate::error::map;

/// What the database says about itself.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diagnostics {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// PostgreSQL: connections to this database by state.
    pub connections_by_state: Vec<(String, i64)>,
    /// PostgreSQL: the server's `max_connections`.
    pub max_connections: Option<i64>,
    /// PostgreSQL: sessions waiting on a lock and who holds it.
    pub lock_waits: Vec<LockWait>,
    /// PostgreSQL: `pg_stat_statements` means over 100 ms, slowest first; `None` when the
    /// extension is not installed.
    pub slow_statements: Option<Vec<SlowStatement>>,
    /// PostgreSQL: indexes never scanned (primary keys and unique indexes excluded).
    pub unused_indexes: Vec<String>,
    /// PostgreSQL: tables whose dead rows exceed 20 % of live ones (and 1,000).
    pub needs_vacuum: Vec<(String, i64)>,
    /// SQLite: `PRAGMA integrity_check` (`ok` when healthy).
    pub integrity: Option<String>,
    /// SQLite: size of the database file and of its WAL, bytes.
    pub file_bytes: Option<u64>,
    /// SQLite: size of the WAL, bytes.
    pub wal_bytes: Option<u64>,
}

/// A blocked session.
#[derive(Debug, Clone, Serialize)]
pub struct LockWait {
    /// The waiting backend.
    pub blocked_pid: i32,
    /// What it runs.
    pub blocked_query: String,
    /// The backend holding the lock.
    pub blocking_pid: i32,
    /// What that one runs (or ran last).
    pub blocking_query: String,
}

/// A slow statement.
#[derive(Debug, Clone, Serialize)]
pub struct SlowStatement {
    /// The normalised query.
    pub query: String,
    /// Mean execution time, ms.
    pub mean_ms: f64,
    /// Calls.
    pub calls: i64,
}

impl Database {
    /// Reads the diagnostics.
    pub async fn diagnostics(&self) -> StoreResult<Diagnostics> {
        match self {
            Database::Sqlite(store) => {
                let pool = store.pool();
                let integrity: String = crate::statement::query_scalar("PRAGMA integrity_check")
                    .fetch_one(pool)
                    .await
                    .map_err(map)?;
                let path: Option<String> = crate::statement::query("PRAGMA database_list")
                    .fetch_all(pool)
                    .await
                    .map_err(map)?
                    .iter()
                    .find(|r| r.try_get::<String, _>("name").is_ok_and(|n| n == "main"))
                    .and_then(|r| r.try_get::<String, _>("file").ok());
                let size = |p: &str| std::fs::metadata(p).ok().map(|m| m.len());
                Ok(Diagnostics {
                    backend: "sqlite".into(),
                    integrity: Some(integrity),
                    file_bytes: path.as_deref().and_then(size),
                    wal_bytes: path.as_deref().and_then(|p| size(&format!("{p}-wal"))),
                    ..Default::default()
                })
            }
            Database::Postgres(store) => {
                let pool = store.statements();
                let connections_by_state = crate::statement::query(
                    "SELECT COALESCE(state, 'unknown') AS state, COUNT(*) AS n FROM pg_stat_activity \
                     WHERE datname = current_database() GROUP BY 1 ORDER BY 2 DESC",
                )
                .fetch_all(pool)
                .await
                .map_err(map)?
                .iter()
                .map(|r| Ok((r.try_get("state").map_err(map)?, r.try_get("n").map_err(map)?)))
                .collect::<StoreResult<Vec<_>>>()?;
                let max_connections: String =
                    crate::statement::query_scalar("SHOW max_connections")
                        .fetch_one(pool)
                        .await
                        .map_err(map)?;
                let lock_waits = crate::statement::query(
                    "SELECT blocked.pid AS blocked_pid, blocked.query AS blocked_query, \
                            blocking.pid AS blocking_pid, blocking.query AS blocking_query \
                     FROM pg_stat_activity blocked \
                     JOIN LATERAL unnest(pg_blocking_pids(blocked.pid)) AS b(pid) ON TRUE \
                     JOIN pg_stat_activity blocking ON blocking.pid = b.pid \
                     WHERE blocked.datname = current_database()",
                )
                .fetch_all(pool)
                .await
                .map_err(map)?
                .iter()
                .map(|r| {
                    Ok(LockWait {
                        blocked_pid: r.try_get("blocked_pid").map_err(map)?,
                        blocked_query: r
                            .try_get::<Option<String>, _>("blocked_query")
                            .map_err(map)?
                            .unwrap_or_default(),
                        blocking_pid: r.try_get("blocking_pid").map_err(map)?,
                        blocking_query: r
                            .try_get::<Option<String>, _>("blocking_query")
                            .map_err(map)?
                            .unwrap_or_default(),
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
                let has_statements: bool =
                    crate::statement::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")
                        .fetch_one(pool)
                        .await
                        .map_err(map)?;
                let slow_statements = if has_statements {
                    let rows = crate::statement::query(
                        "SELECT query, mean_exec_time::float8 AS mean_ms, calls FROM pg_stat_statements \
                         WHERE mean_exec_time > 100 ORDER BY mean_exec_time DESC LIMIT 10",
                    )
                    .fetch_all(pool)
                    .await;
                    match rows {
                        Ok(rows) => Some(
                            rows.iter()
                                .map(|r| SlowStatement {
                                    query: r.try_get::<String, _>("query").unwrap_or_default(),
                                    mean_ms: r.try_get("mean_ms").unwrap_or_default(),
                                    calls: r.try_get("calls").unwrap_or_default(),
                                })
                                .collect(),
                        ),
                        // Installed in the database but not preloaded by the server.
                        Err(_) => None,
                    }
                } else {
                    None
                };
                let unused_indexes = crate::statement::query_scalar(
                    "SELECT s.relname || '.' || s.indexrelname FROM pg_stat_user_indexes s \
                     JOIN pg_index i ON i.indexrelid = s.indexrelid \
                     WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary ORDER BY 1",
                )
                .fetch_all(pool)
                .await
                .map_err(map)?;
                let needs_vacuum = crate::statement::query(
                    "SELECT relname, n_dead_tup FROM pg_stat_user_tables \
                     WHERE n_dead_tup > 1000 AND n_dead_tup > 0.2 * GREATEST(n_live_tup, 1) ORDER BY n_dead_tup DESC",
                )
                .fetch_all(pool)
                .await
                .map_err(map)?
                .iter()
                .map(|r| Ok((r.try_get("relname").map_err(map)?, r.try_get("n_dead_tup").map_err(map)?)))
                .collect::<StoreResult<Vec<_>>>()?;
                Ok(Diagnostics {
                    backend: "postgres".into(),
                    connections_by_state,
                    max_connections: max_connections.parse().ok(),
                    lock_waits,
                    slow_statements,
                    unused_indexes,
                    needs_vacuum,
                    ..Default::default()
                })
            }
        }
    }

    /// PostgreSQL: terminates this database's connections idle for longer than `older_than`
    /// (never this one); returns how many. SQLite has no server connections: an error says so.
    pub async fn terminate_idle(&self, older_than: Duration) -> StoreResult<i64> {
        self.store().terminate_idle(older_than).await
    }

    /// Refreshes planner statistics and reclaims space: `VACUUM ANALYZE` on PostgreSQL,
    /// `ANALYZE` and `PRAGMA optimize` on SQLite.
    pub async fn analyze(&self) -> StoreResult<()> {
        self.store().analyze().await
    }
}
