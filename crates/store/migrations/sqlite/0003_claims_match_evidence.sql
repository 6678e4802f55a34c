-- medgate schema v3: claims no stronger than the evidence.

-- The version code of a build (Android versionCode), compared with what Android Key
-- Attestation and Play Integrity attest.
ALTER TABLE releases ADD COLUMN version_code INTEGER;

-- An operator can revoke an enrolment: its identity is no longer admitted and an unused code
-- can no longer be claimed.
ALTER TABLE enrolments ADD COLUMN revoked_at INTEGER;
