-- Fair, stage-aware scheduling: queued jobs are claimed by priority (lower first), not by
-- run_at. A conversation's jobs take its upload time in milliseconds minus a step per pipeline
-- stage, so a later stage of an earlier call runs before an earlier stage of a later one; other
-- jobs take their due time (first come, first served). See salesai_core::pipeline::job_priority.
ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET priority = (extract(epoch FROM run_at) * 1000)::bigint;
DROP INDEX jobs_dispatch_idx;
CREATE INDEX jobs_dispatch_idx ON jobs (queue, priority, id) INCLUDE (run_at) WHERE status = 'queued';
