-- Search for terms too short for the trigram index (one or two Chinese, Japanese or Korean
-- characters: `斑馬`, `萬`): per call and source ('transcript' or 'summary'), the characters and
-- adjacent pairs of its unspaced-script runs, space-separated (computed by the server,
-- `salesai_core::transcript::SearchGrams`; the migration's Rust step fills it for existing
-- calls), and an FTS5 index of those words kept in step by triggers (foreign-key cascades fire
-- them too).
CREATE TABLE search_grams (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    source          TEXT NOT NULL,
    grams           TEXT NOT NULL,
    PRIMARY KEY (conversation_id, source)
);

CREATE VIRTUAL TABLE search_grams_fts USING fts5 (
    grams,
    content = 'search_grams',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER search_grams_fts_insert AFTER INSERT ON search_grams BEGIN
    INSERT INTO search_grams_fts (rowid, grams) VALUES (new.rowid, new.grams);
END;

CREATE TRIGGER search_grams_fts_delete AFTER DELETE ON search_grams BEGIN
    INSERT INTO search_grams_fts (search_grams_fts, rowid, grams) VALUES ('delete', old.rowid, old.grams);
END;

CREATE TRIGGER search_grams_fts_update AFTER UPDATE OF grams ON search_grams BEGIN
    INSERT INTO search_grams_fts (search_grams_fts, rowid, grams) VALUES ('delete', old.rowid, old.grams);
    INSERT INTO search_grams_fts (rowid, grams) VALUES (new.rowid, new.grams);
END;
