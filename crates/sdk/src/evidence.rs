//! The evidence an installation posts to `/v1/attest`: a compact JWS signed by the
//! installation key, with the public key in the header (`typ` `medgate-evidence+jwt`).

use medgate_proto::jws::{HeaderFields, SignError, sign_compact};
use medgate_proto::wire::{self, Evidence, EvidenceClaims, SdkEvidence, Signal};

use crate::key::InstallationKey;

/// What the app says about itself.
#[derive(Debug, Clone)]
pub struct AppIdentity {
    pub app_id: String,
    pub app_version: String,
    /// Lowercase hex SHA-256 of the app binary (see [`crate::measure`]).
    pub binary_sha256: String,
}

/// Signs SDK evidence answering `challenge` at `iat`.
pub fn sdk_evidence(
    key: &InstallationKey,
    app: &AppIdentity,
    challenge: &str,
    signals: Vec<Signal>,
    iat: i64,
) -> Result<String, SignError> {
    let claims = EvidenceClaims {
        challenge: challenge.to_string(),
        app_id: app.app_id.clone(),
        app_version: app.app_version.clone(),
        platform: "sdk".into(),
        iat,
        evidence: Evidence {
            sdk: Some(SdkEvidence {
                binary_sha256: app.binary_sha256.clone(),
            }),
        },
        signals,
    };
    let header = HeaderFields {
        typ: Some(wire::TYP_EVIDENCE),
        kid: None,
        jwk: Some(key.public_jwk()),
    };
    sign_compact(header, &claims, key)
}
