-- Search over transcripts that stays fast with millions of lines: a trigram index (pg_trgm,
-- a trusted extension: the database owner may create it) on the lower-cased text, which
-- serves `lower(text) LIKE '%term%'` for terms of three or more characters in any language.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX transcript_segments_text_trgm
    ON transcript_segments USING gin (lower(text) gin_trgm_ops);
