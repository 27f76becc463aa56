-- Search over transcripts that stays fast with millions of lines: an FTS5 trigram index
-- (any language; Traditional Chinese without spaces; case-insensitive), over the segments'
-- text as external content keyed by their rowid, kept in step by triggers (foreign-key
-- cascades fire them too). A manual VACUUM may renumber rowids: run
-- INSERT INTO transcript_fts (transcript_fts) VALUES ('rebuild') after one.
CREATE VIRTUAL TABLE transcript_fts USING fts5 (
    text,
    content = 'transcript_segments',
    tokenize = 'trigram'
);

CREATE TRIGGER transcript_fts_insert AFTER INSERT ON transcript_segments BEGIN
    INSERT INTO transcript_fts (rowid, text) VALUES (new.rowid, new.text);
END;

CREATE TRIGGER transcript_fts_delete AFTER DELETE ON transcript_segments BEGIN
    INSERT INTO transcript_fts (transcript_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;

CREATE TRIGGER transcript_fts_update AFTER UPDATE OF text ON transcript_segments BEGIN
    INSERT INTO transcript_fts (transcript_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO transcript_fts (rowid, text) VALUES (new.rowid, new.text);
END;

INSERT INTO transcript_fts (transcript_fts) VALUES ('rebuild');
