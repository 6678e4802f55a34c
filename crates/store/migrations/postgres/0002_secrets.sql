-- medgate schema v2: operator secrets (an upstream's credential the gateway injects, so no app
-- ever holds it). One row per secret: its current version, sealed under the master key with
-- `secret/<app_id>/<name>/<version>` as associated data, so a value cannot be moved to another
-- app, name or version.
CREATE TABLE secrets (
    app_id      TEXT NOT NULL REFERENCES apps(id),
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    sealed      BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, name)
);
