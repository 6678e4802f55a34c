-- medgate schema v1 (SQLite). Times are Unix seconds.

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- One policy per app and platform; '*' applies to every platform.
CREATE TABLE policies (
    app_id      TEXT NOT NULL REFERENCES apps(id),
    platform    TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, platform)
);

-- A release is a version of an app and the measurement of one of its binaries.
CREATE TABLE releases (
    app_id         TEXT NOT NULL REFERENCES apps(id),
    version        TEXT NOT NULL,
    binary_sha256  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    PRIMARY KEY (app_id, version, binary_sha256)
);

-- An installation is identified by the RFC 7638 thumbprint of its key.
CREATE TABLE installations (
    id             TEXT PRIMARY KEY,
    app_id         TEXT NOT NULL REFERENCES apps(id),
    platform       TEXT NOT NULL,
    app_version    TEXT NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    last_decision  TEXT NOT NULL,
    last_reasons   TEXT NOT NULL,
    revoked_at     INTEGER
);
CREATE INDEX installations_by_app ON installations(app_id);

CREATE TABLE challenges (
    value       TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX challenges_by_expiry ON challenges(expires_at);

-- private_key holds a sealed PKCS#8 document (see seal.rs), never plain text when a master key
-- is configured.
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    public_jwk   TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER
);

-- An append-only feed the gateway polls to learn of revocations.
CREATE TABLE revocations (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    app_id   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    at       INTEGER NOT NULL
);

-- Hash-chained: hash = SHA-256(domain, seq, at, kind, actor, subject, detail, prev_hash).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
