//! Append-only migrations, one folder per backend, embedded in the binary.
//!
//! Architecture invariant: a migration, once released, never changes (its checksum is stored
//! and checked), and every schema change lands in both backends' folders in the same commit.
//! A binary refuses to run against a schema newer than the newest migration it carries, since
//! it cannot know what the newer schema means.

use chrono::{DateTime, Utc};
use salesai_core::store::{StoreError, StoreResult};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row, SqlitePool};

use crate::error::map;

/// One migration step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Its version; versions increase by one.
    pub version: i64,
    /// A short name.
    pub name: &'static str,
    /// SQL that applies it.
    pub up: &'static str,
    /// SQL that undoes it (`salesai migrate down`).
    pub down: &'static str,
}

impl Migration {
    fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.up.as_bytes()))
    }
}

/// The migrations of one dialect, from their files `migrations/{dialect}/{stem}_{name}.*.sql`.
macro_rules! migrations {
    ($dialect:literal) => {
        migrations!($dialect, [
            (1, "0001", "init"),
            (2, "0002", "slack_messages"),
            (3, "0003", "ops_alerts"),
            (4, "0004", "agent_fallback"),
            (5, "0005", "token_owner"),
            (6, "0006", "conversation_media"),
            (7, "0007", "web_access"),
            (8, "0008", "transcript_search"),
            (9, "0009", "meeting_notes"),
            (10, "0010", "job_priority"),
            (11, "0011", "speakers"),
            (12, "0012", "call_score"),
            (13, "0013", "search_grams"),
            (14, "0014", "identities"),
            (15, "0015", "call_date"),
        ])
    };
    ($dialect:literal, [$(($version:literal, $stem:literal, $name:literal)),* $(,)?]) => {
        &[$(Migration {
            version: $version,
            name: $name,
            up: include_str!(concat!("../migrations/", $dialect, "/", $stem, "_", $name, ".up.sql")),
            down: include_str!(concat!("../migrations/", $dialect, "/", $stem, "_", $name, ".down.sql")),
        }),*]
    };
}

/// SQLite's migrations. A schema change lands in both folders, listed once above.
pub const SQLITE_MIGRATIONS: &[Migration] = migrations!("sqlite");

/// PostgreSQL's migrations.
pub const POSTGRES_MIGRATIONS: &[Migration] = migrations!("postgres");

/// A migration's state in one database.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MigrationState {
    /// The version.
    pub version: i64,
    /// The name.
    pub name: String,
    /// When it was applied; `None` when pending.
    pub applied_at: Option<DateTime<Utc>>,
    /// False for a migration the database has but this binary does not know (a newer release
    /// applied it).
    pub known: bool,
}

/// Applies and inspects migrations for one database.
pub enum Migrator {
    /// A SQLite database.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

/// The migration whose table (the search's gram index) a Rust step fills from the existing
/// transcripts and summaries, in the migration's own transaction: the grams are computed by
/// `salesai_core::transcript::SearchGrams`, which SQL cannot express on both backends.
pub const SEARCH_GRAMS: i64 = 13;

/// An arbitrary constant: the advisory lock that serialises migrations across nodes.
const PG_MIGRATION_LOCK: i64 = 0x05a1_e5a1_0001;

impl Migrator {
    /// The migrations this binary carries for this backend.
    pub fn migrations(&self) -> &'static [Migration] {
        match self {
            Migrator::Sqlite(_) => SQLITE_MIGRATIONS,
            Migrator::Postgres(_) => POSTGRES_MIGRATIONS,
        }
    }

    /// The newest version this binary knows.
    pub fn latest_known(&self) -> i64 {
        self.migrations().last().map_or(0, |m| m.version)
    }

    async fn ensure_table(&self) -> StoreResult<()> {
        match self {
            Migrator::Sqlite(pool) => sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS salesai_migrations (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL,
                    checksum TEXT NOT NULL, applied_at INTEGER NOT NULL)",
            )
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(map),
            Migrator::Postgres(pool) => sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS salesai_migrations (
                    version BIGINT PRIMARY KEY, name TEXT NOT NULL,
                    checksum TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
            )
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(map),
        }
    }

    async fn applied(&self) -> StoreResult<Vec<(i64, String, String, DateTime<Utc>)>> {
        self.ensure_table().await?;
        let sql =
            "SELECT version, name, checksum, applied_at FROM salesai_migrations ORDER BY version";
        match self {
            Migrator::Sqlite(pool) => {
                let rows = crate::statement::query(sql)
                    .fetch_all(pool)
                    .await
                    .map_err(map)?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get("version").map_err(map)?,
                            r.try_get("name").map_err(map)?,
                            r.try_get("checksum").map_err(map)?,
                            crate::sqlite::from_ms(r.try_get("applied_at").map_err(map)?),
                        ))
                    })
                    .collect()
            }
            Migrator::Postgres(pool) => {
                let rows = crate::statement::query(sql)
                    .fetch_all(pool)
                    .await
                    .map_err(map)?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get("version").map_err(map)?,
                            r.try_get("name").map_err(map)?,
                            r.try_get("checksum").map_err(map)?,
                            r.try_get("applied_at").map_err(map)?,
                        ))
                    })
                    .collect()
            }
        }
    }

    /// Every migration, known or applied, with its state.
    pub async fn status(&self) -> StoreResult<Vec<MigrationState>> {
        let applied = self.applied().await?;
        let mut states: Vec<MigrationState> = self
            .migrations()
            .iter()
            .map(|m| MigrationState {
                version: m.version,
                name: m.name.to_owned(),
                applied_at: applied.iter().find(|a| a.0 == m.version).map(|a| a.3),
                known: true,
            })
            .collect();
        for (version, name, _, at) in applied {
            if !states.iter().any(|s| s.version == version) {
                states.push(MigrationState {
                    version,
                    name,
                    applied_at: Some(at),
                    known: false,
                });
            }
        }
        states.sort_by_key(|s| s.version);
        Ok(states)
    }

    /// The newest applied version (0 for an empty database).
    pub async fn current_version(&self) -> StoreResult<i64> {
        Ok(self.applied().await?.iter().map(|a| a.0).max().unwrap_or(0))
    }

    /// Fails with `SchemaTooNew` when the database is ahead of this binary, and when an applied
    /// migration's text differs from this binary's copy.
    pub async fn check(&self) -> StoreResult<()> {
        let applied = self.applied().await?;
        let latest = self.latest_known();
        if let Some(newest) = applied.iter().map(|a| a.0).max()
            && newest > latest
        {
            return Err(StoreError::SchemaTooNew {
                database: newest,
                binary: latest,
            });
        }
        for (version, _, checksum, _) in &applied {
            if let Some(m) = self.migrations().iter().find(|m| m.version == *version)
                && m.checksum() != *checksum
            {
                return Err(StoreError::Other(format!(
                    "migration {version} ({}) differs from the one applied to this database; \
                     migrations are append-only, so add a new migration instead of editing an old one",
                    m.name
                )));
            }
        }
        Ok(())
    }

    /// Applies pending migrations, each in its own transaction; returns the versions applied.
    /// Safe to run from several nodes at once.
    pub async fn up(&self) -> StoreResult<Vec<i64>> {
        self.check().await?;
        // Through PgBouncer the migration lock (a session lock) and the one-transaction-per-
        // migration steps could land on different server connections.
        if matches!(self, Migrator::Postgres(_)) && crate::statement::behind_pgbouncer() {
            let (current, latest) = (self.current_version().await?, self.latest_known());
            if current < latest {
                return Err(StoreError::InvalidInput(format!(
                    "the schema is at version {current} and this binary needs {latest}; migrations cannot run through PgBouncer: run `salesai migrate up` once with DATABASE_URL pointing at PostgreSQL itself (and SALESAI_DB_PGBOUNCER unset), then start the nodes"
                )));
            }
            return Ok(Vec::new());
        }
        let mut done = Vec::new();
        match self {
            Migrator::Sqlite(pool) => {
                for m in self.migrations() {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map)?;
                    let exists: Option<i64> = crate::statement::query_scalar(
                        "SELECT version FROM salesai_migrations WHERE version = ?",
                    )
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map)?;
                    if exists.is_some() {
                        continue;
                    }
                    sqlx::raw_sql(m.up).execute(&mut *tx).await.map_err(|e| {
                        StoreError::Other(format!(
                            "migration {} ({}) failed: {e}",
                            m.version, m.name
                        ))
                    })?;
                    if m.version == SEARCH_GRAMS {
                        crate::sqlite::backfill_search_grams(&mut tx).await?;
                    }
                    crate::statement::query(
                        "INSERT INTO salesai_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                    )
                    .bind(m.version)
                    .bind(m.name)
                    .bind(m.checksum())
                    .bind(crate::sqlite::now_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?;
                    tx.commit().await.map_err(map)?;
                    done.push(m.version);
                }
            }
            Migrator::Postgres(pool) => {
                let mut conn = pool.acquire().await.map_err(map)?;
                crate::statement::query("SELECT pg_advisory_lock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await
                    .map_err(map)?;
                let result = async {
                    for m in self.migrations() {
                        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(map)?;
                        let exists: Option<i64> = crate::statement::query_scalar(
                            "SELECT version FROM salesai_migrations WHERE version = $1",
                        )
                        .bind(m.version)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map)?;
                        if exists.is_some() {
                            continue;
                        }
                        sqlx::raw_sql(m.up).execute(&mut *tx).await.map_err(|e| {
                            StoreError::Other(format!(
                                "migration {} ({}) failed: {e}",
                                m.version, m.name
                            ))
                        })?;
                        if m.version == SEARCH_GRAMS {
                            crate::postgres::backfill_search_grams(&mut tx).await?;
                        }
                        crate::statement::query(
                            "INSERT INTO salesai_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, now())",
                        )
                        .bind(m.version)
                        .bind(m.name)
                        .bind(m.checksum())
                        .execute(&mut *tx)
                        .await
                        .map_err(map)?;
                        tx.commit().await.map_err(map)?;
                        done.push(m.version);
                    }
                    Ok::<_, StoreError>(())
                }
                .await;
                let _ = crate::statement::query("SELECT pg_advisory_unlock($1)")
                    .bind(PG_MIGRATION_LOCK)
                    .execute(&mut *conn)
                    .await;
                result?;
            }
        }
        Ok(done)
    }

    /// Undoes applied migrations newer than `target`, newest first; returns the versions undone.
    pub async fn down_to(&self, target: i64) -> StoreResult<Vec<i64>> {
        let applied = self.applied().await?;
        let mut undone = Vec::new();
        for (version, name, _, _) in applied.iter().rev() {
            if *version <= target {
                break;
            }
            let m = self
                .migrations()
                .iter()
                .find(|m| m.version == *version)
                .ok_or_else(|| {
                    StoreError::InvalidInput(format!(
                        "migration {version} ({name}) was applied by a newer salesai; roll it back with that release"
                    ))
                })?;
            match self {
                Migrator::Sqlite(pool) => {
                    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(map)?;
                    sqlx::raw_sql(m.down).execute(&mut *tx).await.map_err(map)?;
                    crate::statement::query("DELETE FROM salesai_migrations WHERE version = ?")
                        .bind(m.version)
                        .execute(&mut *tx)
                        .await
                        .map_err(map)?;
                    tx.commit().await.map_err(map)?;
                }
                Migrator::Postgres(pool) => {
                    let mut tx = pool.begin().await.map_err(map)?;
                    crate::statement::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(PG_MIGRATION_LOCK)
                        .execute(&mut *tx)
                        .await
                        .map_err(map)?;
                    sqlx::raw_sql(m.down).execute(&mut *tx).await.map_err(map)?;
                    crate::statement::query("DELETE FROM salesai_migrations WHERE version = $1")
                        .bind(m.version)
                        .execute(&mut *tx)
                        .await
                        .map_err(map)?;
                    tx.commit().await.map_err(map)?;
                }
            }
            undone.push(m.version);
        }
        Ok(undone)
    }

    /// A JSON summary for `migrate status --json`.
    pub async fn status_json(&self) -> StoreResult<serde_json::Value> {
        let states = self.status().await?;
        Ok(json!({
            "latest_known": self.latest_known(),
            "current": states.iter().filter(|s| s.applied_at.is_some()).map(|s| s.version).max().unwrap_or(0),
            "migrations": states,
        }))
    }
}
