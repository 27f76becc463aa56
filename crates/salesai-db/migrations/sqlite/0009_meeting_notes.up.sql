-- Meeting notes a person edited: they replace the summary agent's on the call page and outlive
-- a re-analysis; deleting them brings the generated notes back.
CREATE TABLE meeting_notes (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    markdown        TEXT NOT NULL,
    edited_by       TEXT REFERENCES users (id) ON DELETE SET NULL,
    edited_at       INTEGER NOT NULL
);

-- The summary agent's meeting notes are searchable like transcripts: a trigram index of their
-- text, kept in step with agent_outputs by triggers (a row that is not valid JSON indexes as
-- empty rather than failing the write).
CREATE VIRTUAL TABLE summary_fts USING fts5 (
    text,
    conversation_id UNINDEXED,
    tokenize = 'trigram'
);

CREATE TRIGGER summary_fts_insert AFTER INSERT ON agent_outputs WHEN new.agent = 'summary' BEGIN
    INSERT INTO summary_fts (text, conversation_id) VALUES (
        CASE WHEN json_valid(new.output)
            THEN coalesce(json_extract(new.output, '$.meeting_notes_markdown'), '') ELSE '' END,
        new.conversation_id);
END;

CREATE TRIGGER summary_fts_delete AFTER DELETE ON agent_outputs WHEN old.agent = 'summary' BEGIN
    DELETE FROM summary_fts WHERE conversation_id = old.conversation_id;
END;

CREATE TRIGGER summary_fts_update AFTER UPDATE ON agent_outputs WHEN new.agent = 'summary' BEGIN
    DELETE FROM summary_fts WHERE conversation_id = old.conversation_id;
    INSERT INTO summary_fts (text, conversation_id) VALUES (
        CASE WHEN json_valid(new.output)
            THEN coalesce(json_extract(new.output, '$.meeting_notes_markdown'), '') ELSE '' END,
        new.conversation_id);
END;

INSERT INTO summary_fts (text, conversation_id)
    SELECT CASE WHEN json_valid(output)
               THEN coalesce(json_extract(output, '$.meeting_notes_markdown'), '') ELSE '' END,
           conversation_id
    FROM agent_outputs WHERE agent = 'summary';
