DROP INDEX conversations_score_high_idx;
DROP INDEX conversations_score_low_idx;
ALTER TABLE conversations DROP COLUMN analysis_score;
