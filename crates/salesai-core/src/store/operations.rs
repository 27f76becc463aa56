//! Operations: incidents the alerts post once, pruning, database maintenance.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Backend, StoreResult};

/// An ops-alert incident: a condition the monitor found, open until it clears.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The condition (stable across evaluations).
    pub key: String,
    /// `P0`…`P3`.
    pub severity: String,
    /// What is wrong, for people.
    pub title: String,
    /// Evidence and action.
    pub detail: String,
    /// When it (last) opened.
    pub opened_at: DateTime<Utc>,
    /// When it cleared; `None` while open.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was last announced.
    pub notified_at: Option<DateTime<Utc>>,
}

/// Operational state: health, ops-alert incidents, per-node counters, repairs.
#[async_trait]
pub trait Operations: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// A cheap round trip, for `/ready`.
    async fn ping(&self) -> StoreResult<()>;

    /// Every incident, open and resolved.
    async fn list_incidents(&self) -> StoreResult<Vec<Incident>>;

    /// Creates or replaces an incident (by key).
    async fn save_incident(&self, incident: &Incident) -> StoreResult<()>;

    /// Adds `delta` to this node's counter `name` for the minute (Unix minutes).
    async fn add_counter(&self, node: &str, name: &str, minute: i64, delta: i64)
    -> StoreResult<()>;

    /// The counter `name` summed over all nodes from `since_minute` on.
    async fn sum_counter(&self, name: &str, since_minute: i64) -> StoreResult<i64>;

    /// Records a fact a running server tells the other commands (`public_url`: where `serve`
    /// answers), replacing the last value.
    async fn set_fact(&self, key: &str, value: &str) -> StoreResult<()>;

    /// A recorded fact.
    async fn fact(&self, key: &str) -> StoreResult<Option<String>>;

    /// The nodes that counted `name` from `since_minute` on.
    async fn counter_nodes(&self, name: &str, since_minute: i64) -> StoreResult<Vec<String>>;

    /// Deletes counts older than `before_minute`; returns how many rows went.
    async fn prune_counters(&self, before_minute: i64) -> StoreResult<u64>;

    /// PostgreSQL: terminates this database's connections idle for longer than `older_than`
    /// (never this one); returns how many. SQLite: `InvalidInput` (no server connections).
    async fn terminate_idle(&self, older_than: std::time::Duration) -> StoreResult<i64>;

    /// Refreshes planner statistics and reclaims space (`VACUUM ANALYZE`; SQLite `ANALYZE` and
    /// `PRAGMA optimize`).
    async fn analyze(&self) -> StoreResult<()>;
}
