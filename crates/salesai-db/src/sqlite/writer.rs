//! One writer at a time, in the process, without sleeping.
//!
//! SQLite lets one connection write at a time; a connection that finds the write lock taken
//! waits in SQLite's busy handler, which *sleeps* — 1 ms, 2, 5, 10, 15, 20, 25 ms… — and tries
//! again. Under a steady stream of short writes (Slack events at 500 a second beside the
//! workers' claims and completions) a writer can lose that race several times and wait tens of
//! milliseconds for a lock that was free for most of them. Here every write of this process
//! first takes an async FIFO lock: a waiting writer is woken the moment the previous one
//! finishes, and SQLite's busy handler is left for other processes (the CLI beside a server).
//!
//! A write transaction ([`WritePool::write_tx`]) holds the lock until it commits or rolls back; a
//! single statement that writes outside a transaction runs on [`WritePool::writes`], which holds
//! it while the statement runs (the shared code writes every such statement that way; reads
//! take no lock). The lock is waited for at most the pool's acquire timeout; past that the
//! statement goes ahead and SQLite's own busy handling decides, so a caller that writes on the
//! pool while holding its own transaction gets SQLite's "database is locked" as before, never a
//! hang.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::sqlite::{SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTypeInfo};
use sqlx::{Either, Executor, Sqlite, SqliteConnection, SqlitePool, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The SQLite pool and the process's writer lock for its database.
#[derive(Clone, Debug)]
pub struct WritePool {
    inner: SqlitePool,
    writer: Arc<Mutex<()>>,
    wait: Duration,
}

impl WritePool {
    /// The pool, with a writer lock of its own.
    pub fn new(inner: SqlitePool, wait: Duration) -> WritePool {
        WritePool {
            inner,
            writer: Arc::default(),
            wait,
        }
    }

    /// The plain pool (migrations, backups, diagnostics: they take SQLite's own locking).
    pub fn inner(&self) -> &SqlitePool {
        &self.inner
    }

    /// The writer lock, or `None` when it was not free within the wait (see the module).
    async fn lock(&self) -> Option<OwnedMutexGuard<()>> {
        tokio::time::timeout(self.wait, self.writer.clone().lock_owned())
            .await
            .ok()
    }

    /// A write transaction (`BEGIN IMMEDIATE`) holding the writer lock until it ends.
    pub async fn write_tx(&self) -> Result<WriteTx, sqlx::Error> {
        let guard = self.lock().await;
        let tx = self.inner.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTx { tx, _guard: guard })
    }
}

/// A write transaction and the writer lock it holds.
pub struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits, then lets the next writer in.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back, then lets the next writer in.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl<'p> Executor<'p> for &'_ WritePool {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        E: 'q + sqlx::Execute<'q, Sqlite>,
    {
        (&self.inner).fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        E: 'q + sqlx::Execute<'q, Sqlite>,
    {
        (&self.inner).fetch_optional(query)
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.inner).prepare_with(sql, parameters)
    }
}

impl WritePool {
    /// The pool for one statement that writes outside a transaction: it runs holding the
    /// writer lock.
    pub fn writes(&self) -> Writes<'_> {
        Writes(self)
    }
}

/// See [`WritePool::writes`].
#[derive(Clone, Copy, Debug)]
pub struct Writes<'a>(&'a WritePool);

impl<'p> Executor<'p> for Writes<'_> {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        E: 'q + sqlx::Execute<'q, Sqlite>,
    {
        use futures_util::{StreamExt, TryStreamExt};
        let pool = self.0.clone();
        Box::pin(
            futures_util::stream::once(async move {
                let _guard = pool.lock().await;
                let items: Vec<_> = (&pool.inner).fetch_many(query).try_collect().await?;
                Ok::<_, sqlx::Error>(futures_util::stream::iter(items.into_iter().map(Ok)))
            })
            .try_flatten()
            .boxed(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        E: 'q + sqlx::Execute<'q, Sqlite>,
    {
        let pool = self.0.clone();
        Box::pin(async move {
            let _guard = pool.lock().await;
            (&pool.inner).fetch_optional(query).await
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let inner = self.0.inner.clone();
        Box::pin(async move { (&inner).prepare_with(sql, parameters).await })
    }
}
