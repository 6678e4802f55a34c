-- medgate schema v2: hardware-backed platforms and self-built apps.

-- App Attest keys, one per installation. `counter` only ever grows (compare-and-set).
CREATE TABLE apple_keys (
    installation_id  TEXT PRIMARY KEY REFERENCES installations(id),
    key_id           BLOB NOT NULL UNIQUE,
    app_id           TEXT NOT NULL,
    public_key       BLOB NOT NULL,
    environment      TEXT NOT NULL,
    counter          INTEGER NOT NULL,
    receipt          BLOB NOT NULL,
    created_at       INTEGER NOT NULL
);

-- One-time enrolment codes for self-built apps; only the code's SHA-256 is stored. Once used,
-- the row records which build identity (Apple app id, Android signer) it enrolled.
CREATE TABLE enrolments (
    code_sha256      TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps(id),
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    used_at          INTEGER,
    installation_id  TEXT,
    identity         TEXT
);
CREATE INDEX enrolments_by_app ON enrolments(app_id);

-- Per-app secrets (Play Integrity response keys), sealed like signing keys.
CREATE TABLE app_secrets (
    app_id      TEXT NOT NULL REFERENCES apps(id),
    name        TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
);

ALTER TABLE installations ADD COLUMN integrity_level TEXT;
ALTER TABLE installations ADD COLUMN hardware_key INTEGER NOT NULL DEFAULT 0;
ALTER TABLE installations ADD COLUMN identity TEXT;
