-- medgate schema v8: partner backends (SMART Backend Services), servers that get short-lived,
-- scoped tokens with a client assertion signed by a key from their JWKS. No secret is stored.
-- Keys come from exactly one of `jwks_url` (fetched by the control plane) and `jwks` (a
-- document the operator registered). `scopes` and `ip_allow` (CIDRs; empty: any address) are
-- space-separated; `require_dpop` is 0 or 1.
CREATE TABLE partners (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    jwks_url      TEXT,
    jwks          TEXT,
    scopes        TEXT NOT NULL,
    audience      TEXT,
    ip_allow      TEXT NOT NULL,
    require_dpop  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    rotated_at    INTEGER,
    disabled_at   INTEGER,
    CHECK ((jwks_url IS NULL) <> (jwks IS NULL))
);
