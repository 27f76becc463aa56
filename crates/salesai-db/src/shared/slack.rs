//! What the Slack adapter remembers (posted messages, users' languages, events seen), on both
//! backends.

use async_trait::async_trait;
use salesai_core::store::{DeliveryTaken, SlackDelivery, SlackState, StoreResult};

use super::super::{StoreImpl, write_tx};
use super::enqueue_in;
use crate::error::run;

#[async_trait]
impl SlackState for StoreImpl {
    async fn slack_messages(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Vec<(String, String, String)>> {
        run(async {
            Ok(crate::statement::query_as(sql!(
                "SELECT kind, channel_id, ts FROM slack_messages WHERE conversation_id = $1 ORDER BY created_at, kind"
            ))
            .bind(conversation_id)
            .fetch_all(&self.pool)
            .await?)
        })
        .await
    }

    async fn put_slack_message(
        &self,
        conversation_id: &str,
        kind: &str,
        channel_id: &str,
        ts: &str,
    ) -> StoreResult<bool> {
        run(async {
            let changed = crate::statement::query(sql!(
                "INSERT INTO slack_messages (conversation_id, kind, channel_id, ts, created_at) \
                 VALUES ($1, $2, $3, $4, now()) ON CONFLICT (conversation_id, kind) DO UPDATE \
                 SET channel_id = excluded.channel_id, ts = excluded.ts \
                 WHERE slack_messages.ts = '' AND excluded.ts <> ''"
            ))
            .bind(conversation_id)
            .bind(kind)
            .bind(channel_id)
            .bind(ts)
            .execute(self.pool.writes())
            .await?
            .rows_affected();
            Ok(changed == 1)
        })
        .await
    }

    async fn take_deliveries(
        &self,
        deliveries: &[SlackDelivery],
    ) -> StoreResult<Vec<DeliveryTaken>> {
        run(async {
            let mut tx = write_tx(&self.pool).await?;
            let mut taken = Vec::with_capacity(deliveries.len());
            for delivery in deliveries {
                let mut created = false;
                for job in &delivery.jobs {
                    created |= enqueue_in(&mut tx, job).await?.created;
                }
                let first_delivery = match &delivery.event_id {
                    Some(id) => {
                        crate::statement::query(sql!(
                            "INSERT INTO external_events (source, event_id, received_at) \
                             VALUES ('slack.event', $1, now()) ON CONFLICT (source, event_id) DO NOTHING"
                        ))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1
                    }
                    None => true,
                };
                taken.push(DeliveryTaken {
                    created,
                    first_delivery,
                });
            }
            tx.commit().await?;
            Ok(taken)
        })
        .await
    }

    async fn record_external_event(&self, source: &str, event_id: &str) -> StoreResult<bool> {
        run(async {
            let changed = crate::statement::query(sql!(
                "INSERT INTO external_events (source, event_id, received_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (source, event_id) DO NOTHING"
            ))
            .bind(source)
            .bind(event_id)
            .execute(self.pool.writes())
            .await?
            .rows_affected();
            Ok(changed == 1)
        })
        .await
    }
}
