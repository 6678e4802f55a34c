//! TUF metadata (specification 1.0): the four top-level roles, their envelope and its
//! signatures.
//!
//! Parsing takes hostile bytes: a size limit per role, serde's recursion limit, at most
//! [`MAX_KEYS`] keys and [`MAX_SIGNATURES`] signatures, and an allow-list of one key type and
//! scheme (`ed25519`). A signature counts towards a role's threshold only when its key id is
//! one of the role's, its key is listed under that id, the signature verifies over the
//! canonical `signed` bytes, and no other counted id carried the same key.

use std::collections::{BTreeMap, HashSet};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::TufError;
use super::canonical;

/// The largest root accepted.
pub const MAX_ROOT_BYTES: usize = 512 * 1024;
/// The largest timestamp, snapshot or targets accepted (without a length in the referring
/// metadata).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;
/// Keys a root may list, signatures a file may carry: a bound on verification work.
pub const MAX_KEYS: usize = 64;
pub const MAX_SIGNATURES: usize = 64;
/// The specification major version understood.
pub const SPEC_MAJOR: &str = "1";

/// The four top-level roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleName {
    Root,
    Timestamp,
    Snapshot,
    Targets,
}

impl RoleName {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleName::Root => "root",
            RoleName::Timestamp => "timestamp",
            RoleName::Snapshot => "snapshot",
            RoleName::Targets => "targets",
        }
    }

    /// The metadata file name (`root.json`, …).
    pub fn file(self) -> String {
        format!("{}.json", self.as_str())
    }
}

/// A public key as metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub keytype: String,
    pub scheme: String,
    pub keyval: KeyVal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// Lowercase hex of the 32-byte Ed25519 public key.
    pub public: String,
}

impl Key {
    /// An Ed25519 key, the one type accepted.
    pub fn ed25519(public: &[u8; 32]) -> Key {
        Key {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: KeyVal {
                public: medgate_proto::hex::encode(public),
            },
        }
    }

    /// The key id TUF computes by default: hex SHA-256 of the key's canonical JSON.
    pub fn key_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let value = serde_json::to_value(self).unwrap_or(Value::Null);
        let bytes = canonical::encode(&value).unwrap_or_default();
        medgate_proto::hex::encode(&Sha256::digest(bytes))
    }

    fn verifying_key(&self) -> Option<VerifyingKey> {
        if self.keytype != "ed25519" || self.scheme != "ed25519" {
            return None;
        }
        let bytes: [u8; 32] = medgate_proto::hex::decode(&self.keyval.public)?
            .try_into()
            .ok()?;
        VerifyingKey::from_bytes(&bytes).ok()
    }
}

/// The key ids and threshold of a role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub keyids: Vec<String>,
    pub threshold: u32,
}

/// The fields every role's `signed` object has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Common {
    #[serde(rename = "_type")]
    pub kind: String,
    pub spec_version: String,
    pub version: u64,
    /// RFC 3339, UTC (`2030-01-01T00:00:00Z`).
    pub expires: String,
}

impl Common {
    pub fn expires_at(&self) -> Result<i64, TufError> {
        OffsetDateTime::parse(&self.expires, &Rfc3339)
            .map(|t| t.unix_timestamp())
            .map_err(|_| TufError::Invalid("expires is not an RFC 3339 time"))
    }

    pub fn is_expired(&self, now: i64) -> Result<bool, TufError> {
        Ok(now >= self.expires_at()?)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    #[serde(flatten)]
    pub common: Common,
    #[serde(default)]
    pub consistent_snapshot: bool,
    pub keys: BTreeMap<String, Key>,
    pub roles: BTreeMap<String, Role>,
}

/// A metadata file's description in the timestamp or the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    #[serde(flatten)]
    pub common: Common,
    pub meta: BTreeMap<String, MetaFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(flatten)]
    pub common: Common,
    pub meta: BTreeMap<String, MetaFile>,
}

/// A target file's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    pub length: u64,
    pub hashes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    #[serde(flatten)]
    pub common: Common,
    pub targets: BTreeMap<String, TargetFile>,
    /// Delegations are not followed: only top-level targets are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Value>,
}

/// One signature of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureEntry {
    pub keyid: String,
    /// Lowercase hex.
    pub sig: String,
}

/// A metadata file as read: the `signed` object's canonical bytes, the object parsed as `T`,
/// and the signatures, not yet checked against any role.
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    pub signed: T,
    canonical: Vec<u8>,
    signatures: Vec<SignatureEntry>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    signed: Value,
    signatures: Vec<SignatureEntry>,
}

/// The role-specific `_type` of each parsed type.
pub trait Signed: serde::de::DeserializeOwned {
    const ROLE: RoleName;
    fn common(&self) -> &Common;
}

impl Signed for Root {
    const ROLE: RoleName = RoleName::Root;
    fn common(&self) -> &Common {
        &self.common
    }
}
impl Signed for Timestamp {
    const ROLE: RoleName = RoleName::Timestamp;
    fn common(&self) -> &Common {
        &self.common
    }
}
impl Signed for Snapshot {
    const ROLE: RoleName = RoleName::Snapshot;
    fn common(&self) -> &Common {
        &self.common
    }
}
impl Signed for Targets {
    const ROLE: RoleName = RoleName::Targets;
    fn common(&self) -> &Common {
        &self.common
    }
}

impl<T: Signed> Envelope<T> {
    /// Parses a metadata file of role `T` (at most `limit` bytes).
    pub fn parse(bytes: &[u8], limit: usize) -> Result<Envelope<T>, TufError> {
        let role = T::ROLE.as_str();
        if bytes.len() > limit {
            return Err(TufError::TooLarge(role));
        }
        let raw: RawEnvelope = serde_json::from_slice(bytes)
            .map_err(|_| TufError::Invalid("not TUF metadata JSON"))?;
        if raw.signatures.len() > MAX_SIGNATURES {
            return Err(TufError::Invalid("too many signatures"));
        }
        let canonical = canonical::encode(&raw.signed)
            .map_err(|_| TufError::Invalid("signed holds a non-integer number"))?;
        let signed: T = serde_json::from_value(raw.signed)
            .map_err(|_| TufError::Invalid("signed does not have this role's fields"))?;
        let common = signed.common();
        if common.kind != role {
            return Err(TufError::WrongType(role));
        }
        if common.spec_version.split('.').next() != Some(SPEC_MAJOR) {
            return Err(TufError::Invalid("unsupported spec_version"));
        }
        common.expires_at()?;
        Ok(Envelope {
            signed,
            canonical,
            signatures: raw.signatures,
        })
    }

    /// Checks that `role` of `root` signed this file: at least `threshold` distinct keys of the
    /// role with good signatures.
    pub fn verify_by(&self, root: &Root, role: RoleName) -> Result<(), TufError> {
        let name = role.as_str();
        let Some(role_keys) = root.roles.get(name) else {
            return Err(TufError::Invalid("the root has no such role"));
        };
        if role_keys.threshold == 0 {
            return Err(TufError::Invalid("a role's threshold is at least 1"));
        }
        let mut counted_ids: HashSet<&str> = HashSet::new();
        let mut counted_keys: HashSet<String> = HashSet::new();
        for entry in &self.signatures {
            if !role_keys.keyids.contains(&entry.keyid)
                || counted_ids.contains(entry.keyid.as_str())
            {
                continue;
            }
            let Some(key) = root.keys.get(&entry.keyid) else {
                continue;
            };
            let Some(verifying) = key.verifying_key() else {
                continue;
            };
            let Some(signature) = medgate_proto::hex::decode(&entry.sig)
                .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok())
                .map(|bytes| Signature::from_bytes(&bytes))
            else {
                continue;
            };
            if verifying.verify_strict(&self.canonical, &signature).is_ok()
                && counted_keys.insert(key.keyval.public.to_ascii_lowercase())
            {
                counted_ids.insert(&entry.keyid);
            }
        }
        if (counted_keys.len() as u64) < u64::from(role_keys.threshold) {
            return Err(TufError::Threshold(name));
        }
        Ok(())
    }
}

impl Root {
    /// A root's own consistency: every role present, keys of the allowed type within bounds,
    /// every role key id listed.
    pub fn check(&self) -> Result<(), TufError> {
        if self.keys.len() > MAX_KEYS {
            return Err(TufError::Invalid("too many keys"));
        }
        for role in [
            RoleName::Root,
            RoleName::Timestamp,
            RoleName::Snapshot,
            RoleName::Targets,
        ] {
            let Some(keys) = self.roles.get(role.as_str()) else {
                return Err(TufError::Invalid("the root lacks a top-level role"));
            };
            if keys.threshold == 0
                || keys.keyids.len() > MAX_KEYS
                || keys.threshold as usize > keys.keyids.len()
            {
                return Err(TufError::Invalid(
                    "a role's threshold or key list is out of bounds",
                ));
            }
            if keys.keyids.iter().any(|id| !self.keys.contains_key(id)) {
                return Err(TufError::Invalid(
                    "a role names a key the root does not list",
                ));
            }
        }
        Ok(())
    }
}

/// Checks `bytes` against a description's length and hashes (`sha256`, `sha512`; every listed
/// one that is known must match, and at least one must be known when any is listed).
pub fn check_hashes(
    bytes: &[u8],
    length: Option<u64>,
    hashes: Option<&BTreeMap<String, String>>,
    what: &'static str,
) -> Result<(), TufError> {
    use sha2::{Digest, Sha256, Sha512};
    if length.is_some_and(|length| length != bytes.len() as u64) {
        return Err(TufError::LengthMismatch(what));
    }
    let Some(hashes) = hashes else {
        return Ok(());
    };
    let mut known = 0;
    for (algorithm, expected) in hashes {
        let actual = match algorithm.as_str() {
            "sha256" => medgate_proto::hex::encode(&Sha256::digest(bytes)),
            "sha512" => medgate_proto::hex::encode(&Sha512::digest(bytes)),
            _ => continue,
        };
        known += 1;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(TufError::HashMismatch(what));
        }
    }
    if known == 0 {
        return Err(TufError::HashMismatch(what));
    }
    Ok(())
}
