//! Every statement salesai sends goes through these three constructors instead of `sqlx`'s, so
//! one switch decides how statements are prepared.
//!
//! By default statements are named and cached per connection (prepared once, reused). Behind
//! PgBouncer in transaction pooling mode (version 1.18, Debian's, does not carry named prepared
//! statements across transactions) they must not be: [`use_unnamed_statements`] makes every
//! statement unnamed, and the PostgreSQL pool then wraps each use of a connection in a
//! transaction, so a statement's parse and its execution reach the same server connection.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::database::HasStatementCache;
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{Database, FromRow, SqlSafeStr};

/// Named (cached) statements; false behind PgBouncer.
static NAMED: AtomicBool = AtomicBool::new(true);

/// From now on, this process prepares every statement unnamed (PgBouncer in transaction mode).
pub fn use_unnamed_statements() {
    NAMED.store(false, Ordering::Relaxed);
}

/// Whether this process talks to PostgreSQL through PgBouncer (unnamed statements).
pub fn behind_pgbouncer() -> bool {
    !NAMED.load(Ordering::Relaxed)
}

/// `sqlx::query`, prepared as this process prepares statements.
pub(crate) fn query<'a, DB: Database + HasStatementCache>(
    sql: impl SqlSafeStr,
) -> Query<'a, DB, <DB as Database>::Arguments> {
    sqlx::query(sql).persistent(NAMED.load(Ordering::Relaxed))
}

/// `crate::statement::query_scalar`, prepared as this process prepares statements.
pub(crate) fn query_scalar<'q, DB, O>(
    sql: impl SqlSafeStr,
) -> QueryScalar<'q, DB, O, <DB as Database>::Arguments>
where
    DB: Database + HasStatementCache,
    (O,): for<'r> FromRow<'r, DB::Row>,
{
    sqlx::query_scalar(sql).persistent(NAMED.load(Ordering::Relaxed))
}

/// `crate::statement::query_as`, prepared as this process prepares statements.
pub(crate) fn query_as<'q, DB, O>(
    sql: impl SqlSafeStr,
) -> QueryAs<'q, DB, O, <DB as Database>::Arguments>
where
    DB: Database + HasStatementCache,
    O: for<'r> FromRow<'r, DB::Row>,
{
    sqlx::query_as(sql).persistent(NAMED.load(Ordering::Relaxed))
}
