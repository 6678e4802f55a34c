-- medgate schema v1 (PostgreSQL): the tables of SQLite schema v3. Times are Unix seconds.

CREATE TABLE apps (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- One policy per app and platform; '*' is the app's own policy.
CREATE TABLE policies (
    app_id      TEXT NOT NULL REFERENCES apps(id),
    platform    TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, platform)
);

CREATE TABLE releases (
    app_id         TEXT NOT NULL REFERENCES apps(id),
    version        TEXT NOT NULL,
    binary_sha256  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    version_code   BIGINT,
    PRIMARY KEY (app_id, version, binary_sha256)
);

CREATE TABLE installations (
    id               TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps(id),
    platform         TEXT NOT NULL,
    app_version      TEXT NOT NULL,
    first_seen       BIGINT NOT NULL,
    last_seen        BIGINT NOT NULL,
    last_decision    TEXT NOT NULL,
    last_reasons     TEXT NOT NULL,
    revoked_at       BIGINT,
    integrity_level  TEXT,
    hardware_key     BOOLEAN NOT NULL DEFAULT FALSE,
    identity         TEXT
);
CREATE INDEX installations_by_app ON installations(app_id, id);

CREATE TABLE challenges (
    value       TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX challenges_by_expiry ON challenges(expires_at);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    public_jwk   TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT
);

-- The feed the gateways poll. Appends hold the feed's advisory lock until they commit, so
-- sequence values commit in order and a reader never skips a row (see the store's contract).
CREATE TABLE revocations (
    seq      BIGSERIAL PRIMARY KEY,
    kind     TEXT NOT NULL,
    app_id   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    at       BIGINT NOT NULL
);

-- Hash-chained; appended under the chain's advisory lock, so two nodes never fork it.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE apple_keys (
    installation_id  TEXT PRIMARY KEY REFERENCES installations(id),
    key_id           BYTEA NOT NULL UNIQUE,
    app_id           TEXT NOT NULL,
    public_key       BYTEA NOT NULL,
    environment      TEXT NOT NULL,
    counter          BIGINT NOT NULL,
    receipt          BYTEA NOT NULL,
    created_at       BIGINT NOT NULL
);

CREATE TABLE enrolments (
    code_sha256      TEXT PRIMARY KEY,
    app_id           TEXT NOT NULL REFERENCES apps(id),
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT,
    installation_id  TEXT,
    identity         TEXT,
    revoked_at       BIGINT
);
CREATE INDEX enrolments_by_app ON enrolments(app_id);

CREATE TABLE app_secrets (
    app_id      TEXT NOT NULL REFERENCES apps(id),
    name        TEXT NOT NULL,
    sealed      BYTEA NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);
