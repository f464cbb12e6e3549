-- Operator console (mrv_engine.console): people, their API tokens and login sessions.
-- Secrets are never stored: passwords as argon2id hashes, tokens and session ids as the SHA-256 of
-- the random value handed out once (a lookup by hash needs no slow hash: the values are 256-bit random).

CREATE TABLE console_users (
    name          text COLLATE "C" PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'verifier')),
    password_hash text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2%'),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE console_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    user_name   text COLLATE "C" NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    label       text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    last_used_at timestamptz
);
CREATE INDEX console_tokens_user_idx ON console_tokens (user_name);

CREATE TABLE console_sessions (
    id_hash     bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_name   text COLLATE "C" NOT NULL REFERENCES console_users (name) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry_idx ON console_sessions (expires_at);
