-- medgate schema v11: console operators (a role and the Argon2id hash of their password) and
-- their sessions (the SHA-256 of the cookie's value, never the value), which end with their
-- operator.
CREATE TABLE operators (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE console_sessions (
    id_sha256   TEXT PRIMARY KEY,
    operator    TEXT NOT NULL REFERENCES operators(name) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX console_sessions_by_operator ON console_sessions (operator);
