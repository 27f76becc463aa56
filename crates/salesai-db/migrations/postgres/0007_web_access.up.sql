-- The web app's access: people can be deactivated, managers manage teams, one-time sign-in
-- links and server-side sessions. Times are timestamptz.
ALTER TABLE users ADD COLUMN deactivated_at TIMESTAMPTZ;
CREATE INDEX users_team_idx ON users (team);

CREATE TABLE team_managers (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team    TEXT NOT NULL,
    PRIMARY KEY (user_id, team)
);
CREATE INDEX team_managers_team_idx ON team_managers (team);

-- A link is shown once and stored only as a hash. `user_id` is NULL for the first-run setup
-- link, which creates the first admin.
CREATE TABLE login_links (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('signin', 'setup')),
    return_to  TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ
);

CREATE TABLE web_sessions (
    id_hash      TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    last_seen_at TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    ended_at     TIMESTAMPTZ
);
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);

-- The calls list pages newest first by (created_at, id) with a keyset.
CREATE INDEX conversations_created_idx ON conversations (created_at, id);
