-- Ops alerts: one row per condition the monitor has seen (open while resolved_at is NULL), so
-- each incident is announced once, its resolution once more, and a flapping condition stays
-- quiet during the cooldown after its last announcement.
CREATE TABLE alert_incidents (
    key         TEXT PRIMARY KEY,
    severity    TEXT NOT NULL,
    title       TEXT NOT NULL,
    detail      TEXT NOT NULL,
    opened_at   INTEGER NOT NULL,
    resolved_at INTEGER,
    notified_at INTEGER
);

-- Per-node event counts by minute (e.g. Slack signature failures), flushed by every process so
-- the one evaluator sees the whole cluster.
CREATE TABLE node_counters (
    node   TEXT NOT NULL,
    name   TEXT NOT NULL,
    minute BIGINT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (node, name, minute)
);
CREATE INDEX node_counters_name_idx ON node_counters (name, minute);
