-- Who signed in through an OpenID Connect provider is the provider's (issuer, subject), stored
-- at the first sign-in and required afterwards: an e-mail links an invited person once, when
-- the provider vouches for it, and never again decides who someone is. One identity per person
-- per provider. Times are INTEGER milliseconds since the Unix epoch, UTC.
CREATE TABLE identities (
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject),
    UNIQUE (user_id, issuer)
);

-- Facts a running server records for the other commands: the address `serve` answers on
-- (`public_url`), so a sign-in link printed by `salesai users invite` on another shell points
-- where people can open it.
CREATE TABLE server_facts (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
