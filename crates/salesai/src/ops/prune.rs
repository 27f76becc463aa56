//! Retention, shared by `salesai prune` and the scheduled `maintenance.prune`.

use chrono::Utc;
use salesai_core::blob::BlobKey;

/// Retention: completed, unprotected conversations created more than `older_than` ago lose
/// their audio (`audio_only`) or everything, in batches; with `dry_run`, only listed. Returns
/// their case numbers. Shared by `salesai prune` and the scheduled `maintenance.prune`.
pub async fn prune(
    app: &salesai_core::App,
    older_than: chrono::Duration,
    audio_only: bool,
    dry_run: bool,
    batch: u32,
) -> anyhow::Result<Vec<String>> {
    let before = Utc::now() - older_than;
    let mut cases = Vec::new();
    loop {
        // A dry run reads everything at once (nothing changes between batches).
        let limit = if dry_run {
            u32::MAX / 2
        } else {
            batch.clamp(1, 10_000)
        };
        let batch = app
            .store
            .prune_candidates(before, audio_only, limit)
            .await?;
        if batch.is_empty() {
            break;
        }
        for candidate in &batch {
            cases.push(candidate.case_number.clone());
            if dry_run {
                continue;
            }
            let mut keys: Vec<String> = candidate.blob_key.iter().cloned().collect();
            keys.extend(candidate.chunks.iter().map(|(channel, index)| {
                format!("chunks/{}/{channel}-{index:04}.flac", candidate.id)
            }));
            for key in keys {
                if let Ok(key) = BlobKey::parse(&key) {
                    app.blobs.delete(&key).await?;
                }
            }
            if audio_only {
                app.store.forget_audio(&candidate.id).await?;
            } else {
                app.store.delete_conversation(&candidate.id).await?;
            }
        }
        if dry_run {
            break;
        }
    }
    Ok(cases)
}
