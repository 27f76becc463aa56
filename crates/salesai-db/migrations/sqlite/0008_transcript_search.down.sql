DROP TRIGGER transcript_fts_update;
DROP TRIGGER transcript_fts_delete;
DROP TRIGGER transcript_fts_insert;
DROP TABLE transcript_fts;
