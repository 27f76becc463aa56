-- A call's overall score beside the call, so a list sorted by score walks one index and stops
-- when the page is full (joined from analyses, SQLite sorted every analysed call of a score, or
-- all of them). Kept by complete_analysis and clear_analysis; NULL until the call is analysed.
ALTER TABLE conversations ADD COLUMN analysis_score INTEGER;
UPDATE conversations SET analysis_score =
  (SELECT overall_score FROM analyses a WHERE a.conversation_id = conversations.id);
-- Lowest first (ties newest first), and read backwards: highest first (ties newest first).
CREATE INDEX conversations_score_low_idx ON conversations (analysis_score, created_at DESC, id DESC);
CREATE INDEX conversations_score_high_idx ON conversations (analysis_score, created_at, id);
