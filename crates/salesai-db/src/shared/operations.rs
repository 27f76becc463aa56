//! Operations (incidents, pruning, database maintenance), on both backends.

use async_trait::async_trait;
use salesai_core::store::{Backend, Incident, Operations, StoreResult};
use sqlx::Row;

use super::super::{BACKEND, StoreImpl, db_time, opt_time, time};
use crate::error::run;

#[async_trait]
impl Operations for StoreImpl {
    fn backend(&self) -> Backend {
        BACKEND
    }

    async fn ping(&self) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!("SELECT 1"))
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn list_incidents(&self) -> StoreResult<Vec<Incident>> {
        run(async {
            let rows = crate::statement::query(sql!(
                "SELECT key, severity, title, detail, opened_at, resolved_at, notified_at \
                 FROM alert_incidents ORDER BY opened_at, key"
            ))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Incident {
                        key: r.try_get("key")?,
                        severity: r.try_get("severity")?,
                        title: r.try_get("title")?,
                        detail: r.try_get("detail")?,
                        opened_at: time(r, "opened_at")?,
                        resolved_at: opt_time(r, "resolved_at")?,
                        notified_at: opt_time(r, "notified_at")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn save_incident(&self, i: &Incident) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO alert_incidents (key, severity, title, detail, opened_at, resolved_at, notified_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO UPDATE SET severity = excluded.severity, \
                 title = excluded.title, detail = excluded.detail, opened_at = excluded.opened_at, \
                 resolved_at = excluded.resolved_at, notified_at = excluded.notified_at"
            ))
            .bind(&i.key)
            .bind(&i.severity)
            .bind(&i.title)
            .bind(&i.detail)
            .bind(db_time(i.opened_at))
            .bind(i.resolved_at.map(db_time))
            .bind(i.notified_at.map(db_time))
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn add_counter(
        &self,
        node: &str,
        name: &str,
        minute: i64,
        delta: i64,
    ) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO node_counters (node, name, minute, count) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (node, name, minute) DO UPDATE SET count = node_counters.count + excluded.count"
            ))
            .bind(node)
            .bind(name)
            .bind(minute)
            .bind(delta)
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn sum_counter(&self, name: &str, since_minute: i64) -> StoreResult<i64> {
        run(async {
            Ok(crate::statement::query_scalar(sql!(
                "SELECT COALESCE(SUM(count), 0)::bigint FROM node_counters WHERE name = $1 AND minute >= $2"
            ))
            .bind(name)
            .bind(since_minute)
            .fetch_one(&self.pool)
            .await?)
        })
        .await
    }

    async fn set_fact(&self, key: &str, value: &str) -> StoreResult<()> {
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO server_facts (key, value, updated_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
            ))
            .bind(key)
            .bind(value)
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn fact(&self, key: &str) -> StoreResult<Option<String>> {
        run(async {
            Ok(crate::statement::query_scalar(sql!(
                "SELECT value FROM server_facts WHERE key = $1"
            ))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
        })
        .await
    }

    async fn counter_nodes(&self, name: &str, since_minute: i64) -> StoreResult<Vec<String>> {
        run(async {
            Ok(crate::statement::query_scalar(sql!(
                "SELECT DISTINCT node FROM node_counters WHERE name = $1 AND minute >= $2 ORDER BY node"
            ))
            .bind(name)
            .bind(since_minute)
            .fetch_all(&self.pool)
            .await?)
        })
        .await
    }

    async fn prune_counters(&self, before_minute: i64) -> StoreResult<u64> {
        run(async {
            Ok(
                crate::statement::query(sql!("DELETE FROM node_counters WHERE minute < $1"))
                    .bind(before_minute)
                    .execute(self.pool.writes())
                    .await?
                    .rows_affected(),
            )
        })
        .await
    }

    async fn terminate_idle(&self, older_than: std::time::Duration) -> StoreResult<i64> {
        super::super::terminate_idle(&self.pool, older_than).await
    }

    async fn analyze(&self) -> StoreResult<()> {
        run(async { Ok(super::super::analyze(&self.pool).await?) }).await
    }
}
