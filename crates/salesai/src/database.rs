//! Opening the database from the settings: the one place the commands, the doctor and the
//! server's wiring (`runtime`) connect from, so neither has to import the other.

use std::time::Duration;

use anyhow::Context;
use salesai_db::{ConnectOptions, Database};
use secrecy::ExposeSecret;

use crate::config::Config;

/// How long a request waits for a database connection before it is refused: on PostgreSQL 2.5 s,
/// so during an outage requests answer 503 with `Retry-After` within ~3 s instead of hanging
/// (workers retry on their own); on SQLite it is also the lock wait, kept at 10 s because a
/// writer may hold the lock that long (a backup, a large transcript).
pub fn acquire_timeout(url: &str) -> Duration {
    if url.starts_with("sqlite:") {
        Duration::from_secs(10)
    } else {
        Duration::from_millis(2_500)
    }
}

/// Connects to the database without touching its schema.
pub async fn connect(config: &Config) -> anyhow::Result<Database> {
    let url = config.database_url.expose_secret();
    Database::connect(
        url,
        &ConnectOptions {
            max_connections: config.db_max_connections,
            acquire_timeout: acquire_timeout(url),
            pgbouncer: config.db_pgbouncer,
        },
    )
    .await
    .with_context(|| {
        format!(
            "failed to open the database {}",
            salesai_db::redact_url(url)
        )
    })
}
