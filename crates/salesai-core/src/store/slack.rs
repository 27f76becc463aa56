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

    /// Takes Slack event deliveries in one transaction: each one's jobs enqueued (idempotent by
    /// their keys) and its event id recorded. One answer per delivery, in order. All or none:
    /// a failure takes none of them.
    async fn take_deliveries(
        &self,
        deliveries: &[SlackDelivery],
    ) -> StoreResult<Vec<DeliveryTaken>>;
}

/// One Slack event as it must be in the database before Slack is answered.
#[derive(Debug, Clone)]
pub struct SlackDelivery {
    /// The jobs it asks for (a prompt per shared file).
    pub jobs: Vec<crate::queue::NewJob>,
    /// Slack's event id, when it has one.
    pub event_id: Option<String>,
}

/// What a delivery became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryTaken {
    /// Whether any of its jobs was new (not a repeat of a file already taken).
    pub created: bool,
    /// Whether its event id was seen here for the first time.
    pub first_delivery: bool,
}
