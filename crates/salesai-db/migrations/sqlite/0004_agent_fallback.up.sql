-- Why an agent's output came from the rules engine although an LLM is configured (its
-- answers stayed invalid after a repair, or the LLM kept failing for it). NULL when the
-- engine asked answered.
ALTER TABLE agent_outputs ADD COLUMN fallback_reason TEXT;
