//! The job registry: which handlers a node runs.

use salesai_worker::Registry;

use crate::config::Config;

/// The job kinds every process that works jobs knows: the built-in diagnostics, the pipeline
/// and Slack's.
pub fn registry(slack: Option<salesai_slack::Slack>) -> Registry {
    let mut registry = Registry::new();
    salesai_worker::register_builtin(&mut registry);
    salesai_worker::register_pipeline(&mut registry);
    salesai_slack::register_jobs(&mut registry, slack);
    registry
}

/// A `serve`/`worker` node's registry: [`registry`] plus the maintenance kinds its
/// configuration enables (ops alerts, the job-history purge, retention, backups).
pub fn node_registry(
    config: &Config,
    slack: Option<salesai_slack::Slack>,
    database: salesai_db::Database,
) -> Registry {
    let mut r = registry(slack);
    crate::ops::monitor::register(&mut r, config, database.clone());
    r.add(crate::ops::schedule::PurgeJobsJob {
        keep: chrono::Duration::days(config.jobs_keep_days.max(1) as i64),
    });
    if let Some(prune) = &config.prune {
        r.add(crate::ops::schedule::PruneJob {
            older_than: prune.older_than,
            audio_only: prune.audio_only,
        });
    }
    r.add(crate::ops::schedule::BackupJob {
        database,
        dir: config.backup_dir.clone(),
        keep: config.backup_keep,
    });
    r
}
