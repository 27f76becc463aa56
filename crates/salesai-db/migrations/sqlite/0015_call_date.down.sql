DROP INDEX conversations_score_high_idx;
DROP INDEX conversations_score_low_idx;
CREATE INDEX conversations_score_low_idx ON conversations (analysis_score, created_at DESC, id DESC);
CREATE INDEX conversations_score_high_idx ON conversations (analysis_score, created_at, id);
DROP INDEX conversations_call_idx;
ALTER TABLE conversations DROP COLUMN call_at;
