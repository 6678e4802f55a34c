-- medgate schema v3: the deployment's TUF repository (over-the-air pin sets).
-- Every signed metadata file medgate published, by role and version: clients walk root
-- versions one by one, and a (role, version) is published once, by one replica.
CREATE TABLE trust_metadata (
    role        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    body        BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (role, version)
);

-- The online keys (timestamp, snapshot, targets), sealed under the master key with
-- `trust-key:<key_id>`; root keys stay offline.
CREATE TABLE trust_keys (
    key_id      TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    sealed      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

-- The SPKI pins per host pattern that the next publication puts in pins.json.
CREATE TABLE pins (
    pattern     TEXT NOT NULL,
    pin         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (pattern, pin)
);
