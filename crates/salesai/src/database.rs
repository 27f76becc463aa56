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

/// The file of a SQLite URL (`sqlite://./data/salesai.db?mode=rwc`), when it names one.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Connects to the database without touching its schema. A SQLite file that does not exist is
/// created only when the command may ([`Config::create_database`]); otherwise the command stops
/// and says where it looked.
pub async fn connect(config: &Config) -> anyhow::Result<Database> {
    let url = config.database_url.expose_secret();
    if !config.create_database
        && let Some(file) = sqlite_file(url)
        && !file.exists()
    {
        let shown = std::path::absolute(&file).unwrap_or(file);
        anyhow::bail!(
            "there is no salesai database at {} (the data folder is relative to where you run salesai). \
             Run this command in the folder where `salesai serve` runs, point it at the database with \
             SALESAI_DATA_DIR or DATABASE_URL (or salesai.toml), or add --init to create a new, empty one here",
            shown.display()
        );
    }
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
