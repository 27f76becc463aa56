//! The rule that an instance always keeps an active admin, for every change of a person's role
//! or state (the People page, the CLI, the store's own callers).

use salesai_core::store::StoreError;

use super::super::Conn;
use crate::error::R;

/// Locks the rows of the active admins (PostgreSQL; SQLite's one writer serialises anyway) and
/// counts them, so two changes at once cannot each demote one of the last two admins.
pub(super) async fn lock_admins(conn: &mut Conn) -> R<usize> {
    Ok(crate::statement::query_scalar::<_, String>(sql!(
        "SELECT id FROM users WHERE role = 'admin' AND deactivated_at IS NULL ORDER BY id FOR UPDATE"
    ))
    .fetch_all(&mut *conn)
    .await?
    .len())
}

/// Fails with `Conflict` when a change inside this transaction left no active admin where
/// there was one (`before`, from [`lock_admins`]): an instance always keeps someone who can
/// invite people and run it.
pub(super) async fn keep_an_admin(conn: &mut Conn, before: usize) -> R<()> {
    if before == 0 {
        return Ok(());
    }
    let after: i64 = crate::statement::query_scalar(sql!(
        "SELECT COUNT(*) FROM users WHERE role = 'admin' AND deactivated_at IS NULL"
    ))
    .fetch_one(&mut *conn)
    .await?;
    if after == 0 {
        return Err(StoreError::Conflict(
            "this is the only active admin; make someone else an admin first \
             (salesai users role EMAIL admin, or the People page)"
                .into(),
        )
        .into());
    }
    Ok(())
}
