-- medgate schema v4: each installation's key-agreement key (a public P-256 JWK), signed into its
-- evidence by the installation key. The control plane seals secrets to it. Written with the
-- grant that attested it; a later grant that names another key replaces it.
CREATE TABLE encryption_keys (
    installation_id  TEXT PRIMARY KEY REFERENCES installations(id),
    jwk              TEXT NOT NULL,
    updated_at       BIGINT NOT NULL
);
