//! Edited meeting notes on both backends.

use async_trait::async_trait;
use salesai_core::store::{EditedNotes, MeetingNotes, StoreError, StoreResult};
use sqlx::Row;

use super::super::{StoreImpl, db_time, time};
use crate::error::run;

/// The longest notes accepted, in characters.
const MAX_CHARS: usize = 20_000;

#[async_trait]
impl MeetingNotes for StoreImpl {
    async fn meeting_notes(&self, conversation_id: &str) -> StoreResult<Option<EditedNotes>> {
        run(async {
            let row = crate::statement::query(sql!(
                "SELECT n.markdown, n.edited_by, n.edited_at, u.display_name FROM meeting_notes n \
                 LEFT JOIN users u ON u.id = n.edited_by WHERE n.conversation_id = $1"
            ))
            .bind(conversation_id)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(EditedNotes {
                markdown: row.try_get("markdown")?,
                edited_by: row.try_get("edited_by")?,
                edited_by_name: row.try_get("display_name")?,
                edited_at: time(&row, "edited_at")?,
            }))
        })
        .await
    }

    async fn save_meeting_notes(
        &self,
        conversation_id: &str,
        markdown: &str,
        edited_by: &str,
    ) -> StoreResult<()> {
        if markdown.chars().count() > MAX_CHARS {
            return Err(StoreError::InvalidInput(format!(
                "meeting notes are at most {MAX_CHARS} characters; shorten them"
            )));
        }
        // A NUL (pasted from somewhere) cannot be stored by PostgreSQL; it shows as nothing.
        let markdown = markdown.replace('\0', "");
        let markdown = markdown.as_str();
        run(async {
            let exists: Option<String> =
                crate::statement::query_scalar(sql!("SELECT id FROM conversations WHERE id = $1"))
                    .bind(conversation_id)
                    .fetch_optional(&self.pool)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("no call {conversation_id}")).into());
            }
            crate::statement::query(sql!(
                "INSERT INTO meeting_notes (conversation_id, markdown, edited_by, edited_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (conversation_id) DO UPDATE SET \
                 markdown = excluded.markdown, edited_by = excluded.edited_by, \
                 edited_at = excluded.edited_at"
            ))
            .bind(conversation_id)
            .bind(markdown)
            .bind(edited_by)
            .bind(db_time(chrono::Utc::now()))
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn clear_meeting_notes(&self, conversation_id: &str) -> StoreResult<bool> {
        run(async {
            let done = crate::statement::query(sql!(
                "DELETE FROM meeting_notes WHERE conversation_id = $1"
            ))
            .bind(conversation_id)
            .execute(self.pool.writes())
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }
}
