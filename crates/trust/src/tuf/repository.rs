//! Writing TUF metadata: Ed25519 keys and the signed files of a repository.
//!
//! The server publishes through this, and the tests build honest and forged repositories with
//! it. Signing is pure: the caller says when a file expires and which version it is.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer as _, SigningKey};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::TufError;
use super::canonical;
use super::metadata::{
    Common, Key, MetaFile, Role, RoleName, Root, SignatureEntry, Snapshot, TargetFile, Targets,
    Timestamp,
};

/// The spec version medgate writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// An Ed25519 signing key of a role.
pub struct RoleKey {
    key: SigningKey,
}

impl std::fmt::Debug for RoleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RoleKey({})", self.key_id())
    }
}

impl RoleKey {
    /// From the 32-byte seed (kept sealed, or in the offline root folder).
    pub fn from_seed(seed: &[u8; 32]) -> RoleKey {
        RoleKey {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The seed, to store.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    pub fn public(&self) -> Key {
        Key::ed25519(self.key.verifying_key().as_bytes())
    }

    pub fn key_id(&self) -> String {
        self.public().key_id()
    }

    fn sign(&self, message: &[u8]) -> SignatureEntry {
        SignatureEntry {
            keyid: self.key_id(),
            sig: medgate_proto::hex::encode(&self.key.sign(message).to_bytes()),
        }
    }
}

/// RFC 3339 at second precision, UTC, as TUF writes `expires`.
pub fn expiry(unix: i64) -> Result<String, TufError> {
    let time = OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| TufError::Invalid("expiry out of range"))?;
    time.format(&Rfc3339)
        .map_err(|_| TufError::Invalid("expiry out of range"))
}

pub fn common(role: RoleName, version: u64, expires: i64) -> Result<Common, TufError> {
    Ok(Common {
        kind: role.as_str().into(),
        spec_version: SPEC_VERSION.into(),
        version,
        expires: expiry(expires)?,
    })
}

/// A root listing `keys` per role with `threshold`s (root, timestamp, snapshot, targets).
pub fn root(version: u64, expires: i64, roles: [(&[&RoleKey], u32); 4]) -> Result<Root, TufError> {
    let names = [
        RoleName::Root,
        RoleName::Timestamp,
        RoleName::Snapshot,
        RoleName::Targets,
    ];
    let mut keys = BTreeMap::new();
    let mut role_map = BTreeMap::new();
    for (name, (role_keys, threshold)) in names.into_iter().zip(roles) {
        for key in role_keys {
            keys.insert(key.key_id(), key.public());
        }
        role_map.insert(
            name.as_str().to_string(),
            Role {
                keyids: role_keys.iter().map(|k| k.key_id()).collect(),
                threshold,
            },
        );
    }
    Ok(Root {
        common: common(RoleName::Root, version, expires)?,
        consistent_snapshot: false,
        keys,
        roles: role_map,
    })
}

/// A targets role listing `files` (name → bytes) with their length and SHA-256.
pub fn targets(version: u64, expires: i64, files: &[(&str, &[u8])]) -> Result<Targets, TufError> {
    Ok(Targets {
        common: common(RoleName::Targets, version, expires)?,
        targets: files
            .iter()
            .map(|(name, bytes)| (name.to_string(), describe_target(bytes)))
            .collect(),
        delegations: None,
    })
}

pub fn describe_target(bytes: &[u8]) -> TargetFile {
    use sha2::{Digest, Sha256};
    TargetFile {
        length: bytes.len() as u64,
        hashes: BTreeMap::from([(
            "sha256".to_string(),
            medgate_proto::hex::encode(&Sha256::digest(bytes)),
        )]),
        custom: None,
    }
}

/// The snapshot describing `targets_bytes` (version, length, SHA-256).
pub fn snapshot(
    version: u64,
    expires: i64,
    targets_version: u64,
    targets_bytes: &[u8],
) -> Result<Snapshot, TufError> {
    Ok(Snapshot {
        common: common(RoleName::Snapshot, version, expires)?,
        meta: BTreeMap::from([(
            "targets.json".to_string(),
            describe_meta(targets_version, targets_bytes),
        )]),
    })
}

/// The timestamp describing `snapshot_bytes`.
pub fn timestamp(
    version: u64,
    expires: i64,
    snapshot_version: u64,
    snapshot_bytes: &[u8],
) -> Result<Timestamp, TufError> {
    Ok(Timestamp {
        common: common(RoleName::Timestamp, version, expires)?,
        meta: BTreeMap::from([(
            "snapshot.json".to_string(),
            describe_meta(snapshot_version, snapshot_bytes),
        )]),
    })
}

fn describe_meta(version: u64, bytes: &[u8]) -> MetaFile {
    let target = describe_target(bytes);
    MetaFile {
        version,
        length: Some(target.length),
        hashes: Some(target.hashes),
    }
}

/// The file: `{"signatures": [...], "signed": ...}`, signed over the canonical `signed` by each
/// of `keys`, written canonically (python-tuf writes it indented; both verify).
pub fn sign<T: Serialize>(signed: &T, keys: &[&RoleKey]) -> Result<Vec<u8>, TufError> {
    let value = serde_json::to_value(signed).map_err(|_| TufError::Invalid("unserialisable"))?;
    let bytes = canonical::encode(&value).map_err(|_| TufError::Invalid("not canonical"))?;
    let signatures: Vec<SignatureEntry> = keys.iter().map(|key| key.sign(&bytes)).collect();
    let envelope = serde_json::json!({"signatures": signatures, "signed": value});
    canonical::encode(&envelope).map_err(|_| TufError::Invalid("not canonical"))
}
