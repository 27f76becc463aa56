-- API tokens belong to people: a rep's token reaches only that rep's conversations. Tokens
-- from before stay NULL and keep working as service tokens (doctor lists them).
ALTER TABLE api_tokens ADD COLUMN user_id TEXT REFERENCES users (id) ON DELETE SET NULL;
