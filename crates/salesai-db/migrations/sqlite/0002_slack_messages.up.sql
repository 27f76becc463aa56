-- The Slack messages salesai posted for each conversation: the status message it updates in
-- place, the one completion card, one notice per failure. Keyed by kind so a retried
-- notification job updates the recorded message instead of posting another.
CREATE TABLE slack_messages (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    channel_id      TEXT NOT NULL,
    ts              TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, kind)
);
