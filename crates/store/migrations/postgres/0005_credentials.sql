-- medgate schema v5: credentials for apps that cannot attest (a Nightscout follower's share
-- link, a legacy uploader's token). The secret itself is never stored: `digest` is the hex
-- SHA-256 of the secret, `sha1_digest` the hex SHA-256 of the secret's SHA-1 hex (the form a
-- Nightscout client that hashes what the user typed sends). `scopes` is space-separated.
CREATE TABLE credentials (
    id           TEXT PRIMARY KEY,
    app_id       TEXT NOT NULL REFERENCES apps(id),
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    digest       TEXT NOT NULL UNIQUE,
    sha1_digest  TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
