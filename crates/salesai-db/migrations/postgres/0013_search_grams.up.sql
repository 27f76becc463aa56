-- Search for terms too short for the trigram index (one or two Chinese, Japanese or Korean
-- characters: `斑馬`, `萬`): per call and source ('transcript' or 'summary'), the characters and
-- adjacent pairs of its unspaced-script runs, space-separated (computed by the server,
-- `salesai_core::transcript::SearchGrams`; the migration's Rust step fills it for existing
-- calls), with a GIN index over them as an array: `@> ARRAY[gram]` is an exact word lookup
-- that does not depend on the database's locale.
CREATE TABLE search_grams (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    source          TEXT NOT NULL,
    grams           TEXT NOT NULL,
    PRIMARY KEY (conversation_id, source)
);

CREATE INDEX search_grams_words ON search_grams USING gin (string_to_array(grams, ' '));
