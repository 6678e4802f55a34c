-- medgate schema v4: each installation's public keys, as its last grant stored them: the
-- installation key (a public P-256 JWK, whose RFC 7638 thumbprint is the installation id), for
-- checking the signatures an upstream kept with its records (provenance), and the key-agreement
-- key the evidence named, signed by the installation key, which the control plane seals secrets
-- to. Written with the grant; a grant that names no key-agreement key keeps the one stored.
CREATE TABLE installation_keys (
    installation_id  TEXT PRIMARY KEY REFERENCES installations(id),
    public_jwk       TEXT NOT NULL,
    encryption_jwk   TEXT,
    updated_at       BIGINT NOT NULL
);
