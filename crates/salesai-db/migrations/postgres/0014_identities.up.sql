-- Who signed in through an OpenID Connect provider is the provider's (issuer, subject), stored
-- at the first sign-in and required afterwards: an e-mail links an invited person once, when
-- the provider vouches for it, and never again decides who someone is. One identity per person
-- per provider. Times are timestamptz.
CREATE TABLE identities (
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, subject),
    UNIQUE (user_id, issuer)
);
