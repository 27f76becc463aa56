//! Meeting notes a person edited.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// Everything salesai stores: every capability, on one backend.
///
/// Architecture invariant: multi-step writes happen inside one method, in one transaction
/// (a conversation and its first job, a case number and its conversation), so no caller can
/// leave half-written state behind. A new feature adds its own capability trait (and one
/// implementation in `salesai-db`'s shared code, see ARCHITECTURE.md) and lists it here.
/// Meeting notes a person edited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditedNotes {
    /// The notes, markdown.
    pub markdown: String,
    /// Who edited them last (`None` once that person is gone).
    pub edited_by: Option<String>,
    /// Their name, when known.
    pub edited_by_name: Option<String>,
    /// When.
    pub edited_at: DateTime<Utc>,
}

/// The customer-facing meeting notes people edit (the summary agent writes the first version).
#[async_trait]
pub trait MeetingNotes: Send + Sync {
    /// The edited notes of a call, when someone edited them.
    async fn meeting_notes(&self, conversation_id: &str) -> StoreResult<Option<EditedNotes>>;

    /// Saves edited notes (replacing earlier edits); `NotFound` when there is no such call.
    async fn save_meeting_notes(
        &self,
        conversation_id: &str,
        markdown: &str,
        edited_by: &str,
    ) -> StoreResult<()>;

    /// Drops the edits: the generated notes show again. False when there were none.
    async fn clear_meeting_notes(&self, conversation_id: &str) -> StoreResult<bool>;
}
