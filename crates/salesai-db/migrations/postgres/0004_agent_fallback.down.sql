ALTER TABLE agent_outputs DROP COLUMN fallback_reason;
