DROP INDEX jobs_dispatch_idx;
CREATE INDEX jobs_dispatch_idx ON jobs (queue, run_at, id) WHERE status = 'queued';
ALTER TABLE jobs DROP COLUMN priority;
