//! Reps' voice profiles.

use async_trait::async_trait;

use super::StoreResult;

/// Who said what: the voices the preparation heard, and reps' voice profiles.
#[async_trait]
pub trait Voices: Send + Sync {
    /// Saves (replaces) the voices of a recording.
    async fn save_speaker_turns(
        &self,
        conversation_id: &str,
        diarization: &crate::speakers::Diarization,
    ) -> StoreResult<()>;

    /// The voices of a recording, once the preparation saved them.
    async fn speaker_turns(
        &self,
        conversation_id: &str,
    ) -> StoreResult<Option<crate::speakers::Diarization>>;

    /// A rep's voice profile, when salesai has learned one.
    async fn voice_profile(
        &self,
        user_id: &str,
    ) -> StoreResult<Option<crate::speakers::VoiceProfile>>;

    /// Saves (replaces) a rep's voice profile.
    async fn save_voice_profile(
        &self,
        user_id: &str,
        profile: &crate::speakers::VoiceProfile,
    ) -> StoreResult<()>;
}
