//! Mapping sqlx's errors onto the core's `StoreError`.

use salesai_core::store::StoreError;

/// Classifies a sqlx error: connection trouble is `Unavailable` (retryable), constraint
/// violations are `InvalidInput`, the rest is `Other`. The message never holds a password,
/// because sqlx errors carry no connection URL.
pub(crate) fn map(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::RowNotFound => StoreError::NotFound("row".to_owned()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() || db.is_foreign_key_violation() || db.is_check_violation()
            {
                StoreError::InvalidInput(db.message().to_owned())
            } else if matches!(db.code().as_deref(), Some("22021") | Some("22P05")) {
                // PostgreSQL's character_not_in_repertoire / untranslatable_character: text
                // with a NUL, which no text or jsonb column can hold. The input is at fault,
                // and no retry will store it.
                StoreError::InvalidInput(format!(
                    "text with a NUL character (\\0) cannot be stored; remove it and try again ({})",
                    db.message()
                ))
            } else if is_busy(db.as_ref()) {
                StoreError::Unavailable(db.message().to_owned())
            } else {
                StoreError::Other(err.to_string())
            }
        }
        _ => StoreError::Other(err.to_string()),
    }
}

/// Whether a database error is a unique-constraint violation (used to resolve races between
/// two inserts of the same idempotency key).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    // SQLITE_BUSY (5), SQLITE_LOCKED (6); PostgreSQL's lock_not_available and serialization.
    matches!(
        db.code().as_deref(),
        Some("5") | Some("6") | Some("517") | Some("55P03") | Some("40001") | Some("40P01")
    )
}

/// An error inside a store method. sqlx's errors, the store's own and a stored value that does
/// not parse all convert into it with `?`, and it becomes a [`StoreError`] once, at the
/// method's edge ([`run`]).
pub(crate) struct Fail(pub(crate) StoreError);

/// A store method's inner result.
pub(crate) type R<T> = Result<T, Fail>;

impl From<sqlx::Error> for Fail {
    fn from(err: sqlx::Error) -> Self {
        Fail(map(err))
    }
}

impl From<StoreError> for Fail {
    fn from(err: StoreError) -> Self {
        Fail(err)
    }
}

/// A stored value that no longer parses (a status, a role, a case number): corrupt data.
impl From<salesai_core::domain::InvalidInput> for Fail {
    fn from(err: salesai_core::domain::InvalidInput) -> Self {
        Fail(StoreError::Other(format!(
            "a stored value does not parse: {}",
            err.0
        )))
    }
}

impl From<serde_json::Error> for Fail {
    fn from(err: serde_json::Error) -> Self {
        Fail(StoreError::Other(format!(
            "stored JSON does not parse: {err}"
        )))
    }
}

/// Runs a store method's body, mapping its error once.
pub(crate) async fn run<T>(
    body: impl Future<Output = R<T>>,
) -> salesai_core::store::StoreResult<T> {
    body.await.map_err(|f| f.0)
}
