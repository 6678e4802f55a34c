//! The client's trusted metadata and the rules each update must pass (TUF specification 1.0,
//! "Detailed client workflow", 5.3–5.6), with no I/O and no clock: the caller fetches the
//! bytes, keeps what [`TrustedSet`] accepted, and passes `now`.
//!
//! A refresh, in this order:
//! 1. `update_root` with version N+1, N+2, … until the repository has no newer root (5.3.3):
//!    each new root is signed by a threshold of the trusted root's root keys *and* of its own,
//!    and its version is exactly one more (a skipped or repeated version is refused).
//! 2. `check_root_not_expired` (5.3.10, freeze attack): an expired final root stops the
//!    refresh. If the rotation replaced the timestamp or snapshot keys, the trusted timestamp
//!    and snapshot are forgotten (5.3.11, recovery from a fast-forward attack).
//! 3. `update_timestamp` (5.4): signed by the root's timestamp role; a version lower than the
//!    trusted one is a rollback; the same version changes nothing; the snapshot version it
//!    names must not go back either; expired is refused (after it is kept as the rollback
//!    reference, as python-tuf does).
//! 4. `update_snapshot` (5.5): length and hashes as the timestamp says, signed by the snapshot
//!    role, the version the timestamp names, no targets version going back.
//! 5. `update_targets` (5.6): length and hashes as the snapshot says, signed by the targets
//!    role, the version the snapshot names, not expired.
//! 6. `verify_target`: a target's bytes against the length and hashes in targets.
//!
//! Loading metadata kept from an earlier refresh goes through the same methods; an
//! [`TufError::Expired`] there still leaves the (verified) file in place as the reference that
//! later updates may not roll back from.

use super::TufError;
use super::metadata::{
    Envelope, MAX_METADATA_BYTES, MAX_ROOT_BYTES, RoleName, Root, Signed, Snapshot, TargetFile,
    Targets, Timestamp, check_hashes,
};

/// How many new roots one refresh may walk through (a bound on work, not a security limit:
/// a longer chain is walked over several refreshes).
pub const MAX_ROOT_ROTATIONS: usize = 32;

/// What the client trusts now.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    root: Envelope<Root>,
    root_bytes: Vec<u8>,
    timestamp: Option<(Envelope<Timestamp>, Vec<u8>)>,
    snapshot: Option<(Envelope<Snapshot>, Vec<u8>)>,
    targets: Option<(Envelope<Targets>, Vec<u8>)>,
}

fn parse<T: Signed>(bytes: &[u8]) -> Result<Envelope<T>, TufError> {
    let limit = if T::ROLE == RoleName::Root {
        MAX_ROOT_BYTES
    } else {
        MAX_METADATA_BYTES
    };
    Envelope::parse(bytes, limit)
}

impl TrustedSet {
    /// Starts from a root the client already trusts (shipped in the app, or kept from an
    /// earlier refresh): it must be signed by its own root role; its expiry is not checked here.
    pub fn new(root_bytes: &[u8]) -> Result<TrustedSet, TufError> {
        let root: Envelope<Root> = parse(root_bytes)?;
        root.signed.check()?;
        root.verify_by(&root.signed, RoleName::Root)?;
        Ok(TrustedSet {
            root,
            root_bytes: root_bytes.to_vec(),
            timestamp: None,
            snapshot: None,
            targets: None,
        })
    }

    pub fn root(&self) -> &Root {
        &self.root.signed
    }

    /// The trusted root's bytes (what a client keeps).
    pub fn root_bytes(&self) -> &[u8] {
        &self.root_bytes
    }

    /// The trusted bytes of a role, if any (what a client keeps to load next time).
    pub fn bytes(&self, role: RoleName) -> Option<&[u8]> {
        match role {
            RoleName::Root => Some(&self.root_bytes),
            RoleName::Timestamp => self.timestamp.as_ref().map(|(_, b)| b.as_slice()),
            RoleName::Snapshot => self.snapshot.as_ref().map(|(_, b)| b.as_slice()),
            RoleName::Targets => self.targets.as_ref().map(|(_, b)| b.as_slice()),
        }
    }

    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref().map(|(e, _)| &e.signed)
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref().map(|(e, _)| &e.signed)
    }

    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref().map(|(e, _)| &e.signed)
    }

    /// Step 1: the next root, version N+1.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<(), TufError> {
        let new: Envelope<Root> = parse(bytes)?;
        new.signed.check()?;
        new.verify_by(&self.root.signed, RoleName::Root)?;
        let next = self
            .root
            .signed
            .common
            .version
            .checked_add(1)
            .ok_or(TufError::Invalid("root version out of range"))?;
        if new.signed.common.version != next {
            return Err(TufError::BadVersion {
                role: "root",
                expected: next,
                got: new.signed.common.version,
            });
        }
        new.verify_by(&new.signed, RoleName::Root)?;
        // 5.3.11: new timestamp or snapshot keys invalidate what the old ones signed.
        let changed = |role: RoleName| {
            self.root.signed.roles.get(role.as_str()) != new.signed.roles.get(role.as_str())
                || self.role_keys(role) != keys_of(&new.signed, role)
        };
        if changed(RoleName::Timestamp) {
            self.timestamp = None;
            self.snapshot = None;
        } else if changed(RoleName::Snapshot) {
            self.snapshot = None;
        }
        self.root = new;
        self.root_bytes = bytes.to_vec();
        Ok(())
    }

    fn role_keys(&self, role: RoleName) -> Vec<String> {
        keys_of(&self.root.signed, role)
    }

    /// Step 2: the final root must not have expired.
    pub fn check_root_not_expired(&self, now: i64) -> Result<(), TufError> {
        if self.root.signed.common.is_expired(now)? {
            return Err(TufError::Expired("root"));
        }
        Ok(())
    }

    /// Step 3. `Ok(false)`: the same version as the trusted one, nothing changed.
    pub fn update_timestamp(&mut self, bytes: &[u8], now: i64) -> Result<bool, TufError> {
        let new: Envelope<Timestamp> = parse(bytes)?;
        new.verify_by(&self.root.signed, RoleName::Timestamp)?;
        let snapshot_version = new
            .signed
            .meta
            .get("snapshot.json")
            .map(|meta| meta.version)
            .ok_or(TufError::Invalid(
                "the timestamp does not describe snapshot.json",
            ))?;
        if let Some((trusted, _)) = &self.timestamp {
            let version = trusted.signed.common.version;
            if new.signed.common.version < version {
                return Err(TufError::Rollback("timestamp"));
            }
            if new.signed.common.version == version {
                // Nothing new; but a frozen repository is still refused (5.4.5).
                if trusted.signed.common.is_expired(now)? {
                    return Err(TufError::Expired("timestamp"));
                }
                return Ok(false);
            }
            let trusted_snapshot = trusted
                .signed
                .meta
                .get("snapshot.json")
                .map_or(0, |meta| meta.version);
            if snapshot_version < trusted_snapshot {
                return Err(TufError::Rollback("snapshot"));
            }
        }
        let expired = new.signed.common.is_expired(now)?;
        self.timestamp = Some((new, bytes.to_vec()));
        if expired {
            return Err(TufError::Expired("timestamp"));
        }
        Ok(true)
    }

    /// Step 4.
    pub fn update_snapshot(&mut self, bytes: &[u8], now: i64) -> Result<(), TufError> {
        let Some((timestamp, _)) = &self.timestamp else {
            return Err(TufError::Order("snapshot before timestamp"));
        };
        if timestamp.signed.common.is_expired(now)? {
            return Err(TufError::Expired("timestamp"));
        }
        let new: Envelope<Snapshot> = self.described_by(&timestamp.signed.meta, bytes)?;
        if let Some((trusted, _)) = &self.snapshot {
            for (name, old) in &trusted.signed.meta {
                match new.signed.meta.get(name) {
                    None => return Err(TufError::Rollback("snapshot drops a role")),
                    Some(meta) if meta.version < old.version => {
                        return Err(TufError::Rollback("targets"));
                    }
                    Some(_) => {}
                }
            }
        }
        let expired = new.signed.common.is_expired(now)?;
        self.snapshot = Some((new, bytes.to_vec()));
        // Targets described by an older snapshot are no longer the trusted ones.
        if self.targets.as_ref().is_some_and(|(targets, _)| {
            self.snapshot
                .as_ref()
                .and_then(|(s, _)| s.signed.meta.get("targets.json"))
                .is_none_or(|meta| meta.version != targets.signed.common.version)
        }) {
            self.targets = None;
        }
        if expired {
            return Err(TufError::Expired("snapshot"));
        }
        Ok(())
    }

    /// Step 5.
    pub fn update_targets(&mut self, bytes: &[u8], now: i64) -> Result<(), TufError> {
        let Some((snapshot, _)) = &self.snapshot else {
            return Err(TufError::Order("targets before snapshot"));
        };
        if snapshot.signed.common.is_expired(now)? {
            return Err(TufError::Expired("snapshot"));
        }
        let new: Envelope<Targets> = self.described_by(&snapshot.signed.meta, bytes)?;
        if new.signed.common.is_expired(now)? {
            return Err(TufError::Expired("targets"));
        }
        self.targets = Some((new, bytes.to_vec()));
        Ok(())
    }

    /// A file of role `T` as the trusted `meta` (of the timestamp or the snapshot) describes it:
    /// its length and hashes, then signed by the role's keys, at exactly the version described.
    fn described_by<T: Signed>(
        &self,
        meta: &std::collections::BTreeMap<String, super::metadata::MetaFile>,
        bytes: &[u8],
    ) -> Result<Envelope<T>, TufError> {
        let role = T::ROLE.as_str();
        let described = meta.get(&T::ROLE.file()).ok_or(TufError::Invalid(
            "the referring metadata does not describe this role",
        ))?;
        check_hashes(bytes, described.length, described.hashes.as_ref(), role)?;
        let new: Envelope<T> = parse(bytes)?;
        new.verify_by(&self.root.signed, T::ROLE)?;
        if new.signed.common().version != described.version {
            return Err(TufError::BadVersion {
                role,
                expected: described.version,
                got: new.signed.common().version,
            });
        }
        Ok(new)
    }

    /// The trusted description of a target file.
    pub fn target(&self, name: &str) -> Option<&TargetFile> {
        self.targets()?.targets.get(name)
    }

    /// Step 6: `bytes` are the target `name` the trusted targets describe.
    pub fn verify_target(&self, name: &str, bytes: &[u8]) -> Result<(), TufError> {
        let target = self.target(name).ok_or(TufError::UnknownTarget)?;
        check_hashes(bytes, Some(target.length), Some(&target.hashes), "target")
    }

    /// Whether every trusted file is still within its expiry at `now` (what a client reports
    /// when it keeps using metadata a refresh could not renew).
    pub fn expired_roles(&self, now: i64) -> Vec<&'static str> {
        let mut expired = Vec::new();
        let mut check = |name: &'static str, common: Option<&super::metadata::Common>| {
            if common.is_some_and(|c| c.is_expired(now).unwrap_or(true)) {
                expired.push(name);
            }
        };
        check("root", Some(&self.root.signed.common));
        check("timestamp", self.timestamp().map(|t| &t.common));
        check("snapshot", self.snapshot().map(|s| &s.common));
        check("targets", self.targets().map(|t| &t.common));
        expired
    }
}

/// A role's keys as the public values they carry (ids can be renamed; keys cannot).
fn keys_of(root: &Root, role: RoleName) -> Vec<String> {
    let mut keys: Vec<String> = root
        .roles
        .get(role.as_str())
        .map(|r| {
            r.keyids
                .iter()
                .filter_map(|id| root.keys.get(id))
                .map(|k| k.keyval.public.to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}
