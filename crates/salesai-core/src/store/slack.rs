//! What the Slack adapter remembers: posted messages, users' languages, events seen.

use async_trait::async_trait;

use super::StoreResult;

/// What salesai remembers of Slack and other senders: the messages it posted per
/// conversation, and the events it has handled already.
#[async_trait]
pub trait SlackState: Send + Sync {
    /// The Slack messages salesai posted for a conversation, by kind (`status`, `completed`,
    /// `failed:N`): `(kind, channel, ts)`.
    async fn slack_messages(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Vec<(String, String, String)>>;

    /// Records a posted Slack message of `kind`; false when one of that kind was already
    /// recorded (the caller then updates the recorded one instead of posting again).
    ///
    /// An empty `ts` records the *intent* to post (before the post, so a crash between Slack's
    /// answer and this record is recognisable); a later call with the real `ts` settles it.
    /// A settled record is never changed.
    async fn put_slack_message(
        &self,
        conversation_id: &str,
        kind: &str,
        channel_id: &str,
        ts: &str,
    ) -> StoreResult<bool>;

    /// Records that an external event (a Slack event id, a file id) was handled; false when it
    /// already was, on any node.
    async fn record_external_event(&self, source: &str, event_id: &str) -> StoreResult<bool>;
}
