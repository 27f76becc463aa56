//! Fresh databases for tests: a SQLite file in a temporary folder, or a new PostgreSQL
//! database created from `SALESAI_TEST_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres`).
//!
//! Without that variable the PostgreSQL variant of a test is skipped with a note on stderr —
//! unless `CI=true`, where a missing PostgreSQL fails the test, so CI can never pass by
//! silently skipping the backend teams run in production.

use std::sync::Arc;

use salesai_core::store::Store;
use sqlx::Connection;

use crate::{ConnectOptions, Database};

/// The variable naming the PostgreSQL server tests may create databases on.
pub const POSTGRES_ENV: &str = "SALESAI_TEST_POSTGRES_URL";

/// A migrated database that lives as long as the value.
pub struct TestDb {
    /// The connected database.
    pub database: Database,
    /// Its URL, for child processes.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh, migrated SQLite database in a temporary folder.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", dir.path().join("salesai.db").display());
        let database = Database::connect(&url, &ConnectOptions::default())
            .await
            .expect("open SQLite");
        let (database, _) = database.migrate().await.expect("migrate SQLite");
        TestDb {
            database,
            url,
            _dir: Some(dir),
        }
    }

    /// A fresh, migrated PostgreSQL database, or `None` (skip) when none is configured outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let admin = match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => url,
            _ => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!(
                        "{POSTGRES_ENV} is not set but CI=true: PostgreSQL tests must run in CI"
                    );
                }
                eprintln!("note: {POSTGRES_ENV} not set; skipping the PostgreSQL variant");
                return None;
            }
        };
        let name = format!("salesai_t_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_ENV}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).expect("admin URL");
        url.set_path(&name);
        let url = url.to_string();
        let database = Database::connect(&url, &ConnectOptions::default())
            .await
            .expect("connect to test database");
        let (database, _) = database.migrate().await.expect("migrate PostgreSQL");
        Some(TestDb {
            database,
            url,
            _dir: None,
        })
    }

    /// The database at `url` (one a test started itself, e.g. a private PostgreSQL server it
    /// stops and starts), migrated.
    pub async fn at(url: &str) -> TestDb {
        let database = Database::connect(url, &ConnectOptions::default())
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
        let (database, _) = database.migrate().await.expect("migrate");
        TestDb {
            database,
            url: url.to_owned(),
            _dir: None,
        }
    }

    /// The database as a `Store`.
    pub fn store(&self) -> Arc<dyn Store> {
        self.database.store()
    }
}

/// Writes a test `$name` twice: as `$name::sqlite` (always runs) and `$name::postgres` (runs
/// when `SALESAI_TEST_POSTGRES_URL` is set; fails under `CI=true` when it is not). The body is
/// `async fn $name(db: &TestDb)` in the calling module.
#[macro_export]
macro_rules! story {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::testing::TestDb::sqlite().await;
                super::$name(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::testing::TestDb::postgres().await else {
                    return;
                };
                super::$name(&db).await;
            }
        }
    };
}
