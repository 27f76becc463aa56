-- When a call happened, as every list, filter and figure reads it: the date the rep gave, or
-- the upload time when none was given. Computed by the database (a virtual column: nothing to
-- keep in step, backups leave it out) and indexed, so lists ordered and paged by the call's
-- date walk one index as they did by upload time. Ties (calls on the same day) break on the
-- id, a UUIDv7: upload order.
ALTER TABLE conversations ADD COLUMN call_at INTEGER
  GENERATED ALWAYS AS (COALESCE(conversation_date, created_at)) VIRTUAL;
CREATE INDEX conversations_call_idx ON conversations (call_at, id);
DROP INDEX conversations_score_high_idx;
DROP INDEX conversations_score_low_idx;
-- Lowest first (ties newest first), and read backwards: highest first (ties newest first).
CREATE INDEX conversations_score_low_idx ON conversations (analysis_score, call_at DESC, id DESC);
CREATE INDEX conversations_score_high_idx ON conversations (analysis_score, call_at, id);
