//! Signed checkpoints of the audit chain's head.
//!
//! The audit log detects an edited or deleted row by itself, but not a cut-off tail or a chain
//! recomputed by someone who can write the database. A checkpoint is the head (its sequence
//! number and hash) signed with a key used for nothing else, written to a file the operator
//! ships elsewhere and published at `/v1/audit/checkpoint`. A chain that no longer contains a
//! checkpoint's entry was cut or rewritten.
//!
//! A checkpoint is a compact JWS, `typ` `medgate-audit-checkpoint+jwt`, ES256, with the
//! checkpoint key as `jwk` in its header; verification:
//!
//! 1. The JWS parses (ES256 only, at most [`MAX_CHECKPOINT`] bytes) and has the right `typ`.
//! 2. Its signature verifies with the `jwk` it carries, and that key's thumbprint is the pinned
//!    one when the caller pins one (the operator records it when the node first starts).
//! 3. The claims are `seq` (≥ 1), `hash` (64 hex digits) and `at`.

use medgate_proto::jws::{HeaderFields, JwsSigner, SignError, sign_compact};
use medgate_proto::{Alg, Thumbprint};
use serde::{Deserialize, Serialize};

use crate::UnixTime;
use crate::jws::{self, JwsError};

/// The `typ` of a checkpoint.
pub const TYP: &str = "medgate-audit-checkpoint+jwt";
/// The largest checkpoint read.
pub const MAX_CHECKPOINT: usize = 4096;

/// What a checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointClaims {
    /// The sequence number of the head entry.
    pub seq: i64,
    /// Its hash, lowercase hex.
    pub hash: String,
    /// When the checkpoint was made.
    pub at: i64,
}

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint {0}")]
    Jws(#[from] JwsError),
    #[error("checkpoint typ must be {TYP}")]
    WrongType,
    #[error("checkpoint header carries no key")]
    MissingKey,
    #[error("checkpoint is signed by a key other than the pinned one")]
    UnpinnedKey,
    #[error("checkpoint claims are malformed: {0}")]
    Claims(String),
}

/// A checkpoint whose signature verified. Only [`verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    seq: i64,
    hash: [u8; 32],
    at: UnixTime,
    key: Thumbprint,
}

impl VerifiedCheckpoint {
    pub fn seq(&self) -> i64 {
        self.seq
    }
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
    pub fn at(&self) -> UnixTime {
        self.at
    }
    /// The thumbprint of the key that signed it.
    pub fn key(&self) -> &Thumbprint {
        &self.key
    }
}

/// Signs a checkpoint of entry `seq` with hash `hash` at `at`.
pub fn sign<K: JwsSigner>(
    key: &K,
    public: &medgate_proto::PublicJwk,
    seq: i64,
    hash: &[u8; 32],
    at: UnixTime,
) -> Result<String, SignError> {
    let claims = CheckpointClaims {
        seq,
        hash: medgate_proto::hex::encode(hash),
        at: at.secs(),
    };
    sign_compact(
        HeaderFields {
            typ: Some(TYP),
            kid: None,
            jwk: Some(public),
        },
        &claims,
        key,
    )
}

/// Steps 1–3.
pub fn verify(
    compact: &str,
    pinned: Option<&Thumbprint>,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    // Step 1.
    let parsed = jws::parse(compact.trim(), MAX_CHECKPOINT, &[Alg::Es256])?;
    if !jws::typ_is(parsed.header().typ.as_deref(), TYP) {
        return Err(CheckpointError::WrongType);
    }
    // Step 2.
    let key = parsed
        .header()
        .jwk
        .as_ref()
        .ok_or(CheckpointError::MissingKey)?;
    parsed.verify(key)?;
    let thumbprint = key.thumbprint();
    if pinned.is_some_and(|pinned| *pinned != thumbprint) {
        return Err(CheckpointError::UnpinnedKey);
    }
    // Step 3.
    let claims: CheckpointClaims =
        jws::from_json_object(parsed.payload()).map_err(CheckpointError::Claims)?;
    let hash = medgate_proto::hex::decode(&claims.hash)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| CheckpointError::Claims("hash must be 64 hex digits".into()))?;
    if claims.seq < 1 {
        return Err(CheckpointError::Claims("seq must be at least 1".into()));
    }
    Ok(VerifiedCheckpoint {
        seq: claims.seq,
        hash,
        at: UnixTime::from_secs(claims.at),
        key: thumbprint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::TokenSigningKey;

    #[test]
    fn a_checkpoint_verifies_with_its_key_and_only_the_pinned_one() {
        let (key, _) = TokenSigningKey::generate().unwrap();
        let (other, _) = TokenSigningKey::generate().unwrap();
        let hash = [7u8; 32];
        let signed = sign(&key, key.public_jwk(), 42, &hash, UnixTime::from_secs(1000)).unwrap();
        let verified = verify(&signed, None).unwrap();
        assert_eq!((verified.seq(), verified.hash()), (42, hash));
        let pinned = key.public_jwk().thumbprint();
        assert!(verify(&signed, Some(&pinned)).is_ok());
        // A checkpoint made with another key, as someone who rewrote the chain would.
        let forged = sign(
            &other,
            other.public_jwk(),
            42,
            &hash,
            UnixTime::from_secs(1000),
        )
        .unwrap();
        assert_eq!(
            verify(&forged, Some(&pinned)).unwrap_err(),
            CheckpointError::UnpinnedKey
        );
        // Another key's jwk in the header of a signature by this key.
        let swapped = sign(
            &key,
            other.public_jwk(),
            42,
            &hash,
            UnixTime::from_secs(1000),
        )
        .unwrap();
        assert!(matches!(
            verify(&swapped, None).unwrap_err(),
            CheckpointError::Jws(JwsError::BadSignature)
        ));
        assert!(verify("not a jws", None).is_err());
    }
}
