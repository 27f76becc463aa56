DROP TABLE voice_profiles;
DROP TABLE speaker_turns;
ALTER TABLE transcript_segments DROP COLUMN confidence;
ALTER TABLE transcript_segments DROP COLUMN attribution;
ALTER TABLE transcript_segments DROP COLUMN role;
