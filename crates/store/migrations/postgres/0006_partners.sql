-- medgate schema v6: partner backends (SMART Backend Services), servers that get short-lived,
-- scoped tokens with a client assertion signed by a key from their JWKS. No secret is stored.
-- Keys come from exactly one of `jwks_url` (fetched by the control plane) and `jwks` (a
-- document the operator registered). `scopes` and `ip_allow` (CIDRs; empty: any address) are
-- space-separated.
CREATE TABLE partners (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    jwks_url      TEXT,
    jwks          TEXT,
    scopes        TEXT NOT NULL,
    audience      TEXT,
    ip_allow      TEXT NOT NULL,
    require_dpop  BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    rotated_at    BIGINT,
    disabled_at   BIGINT,
    CHECK ((jwks_url IS NULL) <> (jwks IS NULL))
);
