-- Meeting notes a person edited: they replace the summary agent's on the call page and outlive
-- a re-analysis; deleting them brings the generated notes back.
CREATE TABLE meeting_notes (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    markdown        TEXT NOT NULL,
    edited_by       TEXT REFERENCES users (id) ON DELETE SET NULL,
    edited_at       TIMESTAMPTZ NOT NULL
);

-- The summary agent's meeting notes are searchable like transcripts: a trigram index of their
-- lower-cased text.
CREATE INDEX agent_outputs_summary_trgm ON agent_outputs
    USING gin (lower(output ->> 'meeting_notes_markdown') gin_trgm_ops)
    WHERE agent = 'summary';
