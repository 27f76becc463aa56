-- salesai core schema (PostgreSQL).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT UNIQUE,
    display_name  TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'service', 'rep')),
    team          TEXT,
    slack_user_id TEXT UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE opportunities (
    id                TEXT PRIMARY KEY,
    customer_number   TEXT NOT NULL UNIQUE,
    company_name      TEXT NOT NULL,
    product_line      TEXT NOT NULL,
    contacts          JSONB NOT NULL DEFAULT '[]',
    owner_user_id     TEXT REFERENCES users (id) ON DELETE SET NULL,
    status            TEXT NOT NULL DEFAULT 'new',
    status_changed_at TIMESTAMPTZ NOT NULL,
    latest_score      INTEGER CHECK (latest_score BETWEEN 0 AND 100),
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX opportunities_owner_idx ON opportunities (owner_user_id);

CREATE TABLE case_sequences (
    period     TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    last_value INTEGER NOT NULL,
    PRIMARY KEY (period, prefix)
);

CREATE TABLE conversations (
    id                TEXT PRIMARY KEY,
    case_number       TEXT NOT NULL UNIQUE,
    opportunity_id    TEXT NOT NULL REFERENCES opportunities (id),
    product_line      TEXT NOT NULL,
    conversation_type TEXT NOT NULL,
    title             TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'preparing', 'transcribing', 'analyzing', 'completed', 'failed')),
    error_stage       TEXT,
    error_code        TEXT,
    error_message     TEXT,
    error_retryable   BOOLEAN,
    blob_key          TEXT,
    duration_ms       BIGINT,
    conversation_date TIMESTAMPTZ,
    rep_user_id       TEXT REFERENCES users (id) ON DELETE SET NULL,
    slack_channel_id  TEXT,
    slack_thread_ts   TEXT,
    metadata          JSONB NOT NULL DEFAULT '{}',
    idempotency_key   TEXT UNIQUE,
    protected         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX conversations_status_idx ON conversations (status, updated_at);
CREATE INDEX conversations_rep_date_idx ON conversations (rep_user_id, conversation_date);
CREATE INDEX conversations_opportunity_idx ON conversations (opportunity_id, created_at);
CREATE INDEX conversations_product_line_idx ON conversations (product_line, created_at);

CREATE TABLE conversation_stage_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    at              TIMESTAMPTZ NOT NULL
);
CREATE INDEX conversation_stage_events_idx ON conversation_stage_events (conversation_id, at);

CREATE TABLE transcript_segments (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    speaker         TEXT,
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER NOT NULL,
    text            TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);

CREATE TABLE transcript_chunks (
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    chunk_index     INTEGER NOT NULL,
    channel         INTEGER NOT NULL DEFAULT 0,
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER NOT NULL,
    provider        TEXT,
    model           TEXT,
    segments        JSONB NOT NULL DEFAULT '[]',
    latency_ms      INTEGER,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, channel, chunk_index)
);

CREATE TABLE agent_outputs (
    conversation_id   TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    agent             TEXT NOT NULL,
    engine            TEXT NOT NULL,
    model             TEXT,
    output            JSONB NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    latency_ms        INTEGER,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, agent)
);

CREATE TABLE analyses (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    engine          TEXT NOT NULL,
    overall_score   INTEGER NOT NULL CHECK (overall_score BETWEEN 0 AND 100),
    qualification   TEXT NOT NULL,
    pain_score      INTEGER CHECK (pain_score BETWEEN 0 AND 100),
    decision_score  INTEGER CHECK (decision_score BETWEEN 0 AND 100),
    champion_score  INTEGER CHECK (champion_score BETWEEN 0 AND 100),
    metrics_score   INTEGER CHECK (metrics_score BETWEEN 0 AND 100),
    result          JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX analyses_score_idx ON analyses (overall_score);

CREATE TABLE api_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'service', 'rep')),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_tokens_live_name_idx ON api_tokens (name) WHERE revoked_at IS NULL;

CREATE TABLE queue_settings (
    name            TEXT PRIMARY KEY,
    paused          BOOLEAN NOT NULL DEFAULT FALSE,
    max_batch       INTEGER NOT NULL,
    max_concurrency INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    backoff_base_ms BIGINT NOT NULL,
    backoff_max_ms  BIGINT NOT NULL,
    lease_secs      BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE jobs (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue              TEXT NOT NULL,
    kind               TEXT NOT NULL,
    payload            JSONB NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'dead')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    max_attempts       INTEGER NOT NULL,
    run_at             TIMESTAMPTZ NOT NULL,
    locked_by          TEXT,
    lease_expires_at   TIMESTAMPTZ,
    last_error_code    TEXT,
    last_error_message TEXT,
    idempotency_key    TEXT,
    conversation_id    TEXT REFERENCES conversations (id) ON DELETE CASCADE,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ
);
CREATE UNIQUE INDEX jobs_idempotency_idx ON jobs (queue, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_dispatch_idx ON jobs (queue, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_finished_idx ON jobs (finished_at, queue) WHERE status = 'completed';
CREATE INDEX jobs_dead_idx ON jobs (queue, updated_at) WHERE status = 'dead';
CREATE INDEX jobs_conversation_idx ON jobs (conversation_id) WHERE conversation_id IS NOT NULL;

CREATE TABLE job_attempts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id        BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    worker_id     TEXT,
    outcome       TEXT NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    finished_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX job_attempts_job_idx ON job_attempts (job_id);
CREATE INDEX job_attempts_finished_idx ON job_attempts (finished_at);

CREATE TABLE external_events (
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX external_events_received_idx ON external_events (received_at);
