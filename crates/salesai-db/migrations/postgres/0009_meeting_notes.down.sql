DROP INDEX agent_outputs_summary_trgm;
DROP TABLE meeting_notes;
