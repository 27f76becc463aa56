-- Who said what: every transcript segment says which side its speaker is on (rep or customer),
-- whether that is known (a stereo channel, a label in the file, a person's correction) or
-- inferred (speaker turns found in mono audio), and how sure salesai is (percent).
ALTER TABLE transcript_segments ADD COLUMN role TEXT;
ALTER TABLE transcript_segments ADD COLUMN attribution TEXT;
ALTER TABLE transcript_segments ADD COLUMN confidence INTEGER;

-- The voices of a recording as the preparation heard them: speaker turns of mono audio (JSON),
-- and one voice print per speaker (JSON), which the merge attaches to the transcript and which
-- teaches the rep's voice profile. Never sent anywhere.
CREATE TABLE speaker_turns (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    diarization     TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

-- A rep's voice, learned from calls where their side is known (stereo channels, labelled
-- transcripts, corrected roles): the mean voice print over those calls, weighted by seconds.
CREATE TABLE voice_profiles (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    print      TEXT NOT NULL,
    seconds    INTEGER NOT NULL,
    calls      INTEGER NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
