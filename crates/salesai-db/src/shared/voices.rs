//! Speaker turns and voice profiles on both backends: JSON documents keyed by their call or
//! rep, read and written whole.

use async_trait::async_trait;
use salesai_core::speakers::{Diarization, VoiceProfile};
use salesai_core::store::{StoreError, StoreResult, Voices};

use super::super::{StoreImpl, db_time};
use crate::error::run;

fn decode<T: serde::de::DeserializeOwned>(raw: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw)
        .map_err(|e| StoreError::Other(format!("stored {what} unreadable: {e}")))
}

#[async_trait]
impl Voices for StoreImpl {
    async fn save_speaker_turns(
        &self,
        conversation_id: &str,
        diarization: &Diarization,
    ) -> StoreResult<()> {
        let json =
            serde_json::to_string(diarization).map_err(|e| StoreError::Other(e.to_string()))?;
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO speaker_turns (conversation_id, diarization, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (conversation_id) DO UPDATE SET diarization = excluded.diarization, \
                 created_at = excluded.created_at"
            ))
            .bind(conversation_id)
            .bind(&json)
            .bind(db_time(chrono::Utc::now()))
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }

    async fn speaker_turns(&self, conversation_id: &str) -> StoreResult<Option<Diarization>> {
        let raw: Option<String> = run(async {
            Ok(crate::statement::query_scalar(sql!(
                "SELECT diarization FROM speaker_turns WHERE conversation_id = $1"
            ))
            .bind(conversation_id)
            .fetch_optional(&self.pool)
            .await?)
        })
        .await?;
        raw.map(|r| decode(&r, "speaker turns")).transpose()
    }

    async fn voice_profile(&self, user_id: &str) -> StoreResult<Option<VoiceProfile>> {
        let raw: Option<String> = run(async {
            Ok(crate::statement::query_scalar(sql!(
                "SELECT print FROM voice_profiles WHERE user_id = $1"
            ))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?)
        })
        .await?;
        raw.map(|r| decode(&r, "voice profile")).transpose()
    }

    async fn save_voice_profile(&self, user_id: &str, profile: &VoiceProfile) -> StoreResult<()> {
        let json = serde_json::to_string(profile).map_err(|e| StoreError::Other(e.to_string()))?;
        run(async {
            crate::statement::query(sql!(
                "INSERT INTO voice_profiles (user_id, print, seconds, calls, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id) DO UPDATE SET \
                 print = excluded.print, seconds = excluded.seconds, calls = excluded.calls, \
                 updated_at = excluded.updated_at"
            ))
            .bind(user_id)
            .bind(&json)
            .bind(profile.seconds.round().min(f64::from(i32::MAX)) as i32)
            .bind(profile.calls.min(i32::MAX as u32) as i32)
            .bind(db_time(chrono::Utc::now()))
            .execute(self.pool.writes())
            .await?;
            Ok(())
        })
        .await
    }
}
