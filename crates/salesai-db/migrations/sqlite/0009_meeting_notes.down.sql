DROP TRIGGER summary_fts_update;
DROP TRIGGER summary_fts_delete;
DROP TRIGGER summary_fts_insert;
DROP TABLE summary_fts;
DROP TABLE meeting_notes;
