//! Over-the-air pins: the deployment's TUF repository (`/v1/trust/`) verified with TUF's client
//! rules from the root the app ships, kept between runs, and turned into the pin set the
//! client's TLS enforces (or that an app hands to its platform's HTTP stack), and, when the
//! release has a `roots.pem` target, the managed roots that replace the device's for the hosts
//! its `custom` metadata names.
//!
//! The never-brick rules:
//! 1. A host with no pins is checked by WebPKI alone.
//! 2. A refresh that fails (network, a forged, rolled-back or frozen file) changes nothing: the
//!    last good pins stay in force, and `status()` says what failed.
//! 3. Expired metadata keeps its pins in force too, and `status()` reports it; only a newer
//!    verified release replaces them.
//! 4. Only a real mismatch fails a connection, during the handshake, before any request byte.

use std::path::{Path, PathBuf};

use medgate_trust::pins::{HostPattern, Pin, PinRule, PinSet};
use medgate_trust::roots::{self, ManagedRoots, ROOTS_TARGET};
use medgate_trust::tuf::TufError;
use medgate_trust::tuf::client::TrustedSet;
use medgate_trust::tuf::metadata::RoleName;
use serde::Deserialize;

/// The largest `pins.json` read; its length is also fixed by the signed targets.
pub const MAX_PINS_BYTES: usize = 256 * 1024;
/// The most host rules a pin set may hold.
pub const MAX_RULES: usize = 1024;
/// The target holding the pins.
pub const PINS_TARGET: &str = "pins.json";
const PINS_FILE: &str = "pins.json";
const ROOTS_FILE: &str = "roots.pem";
/// The most kept root versions walked at start.
const MAX_KEPT_ROOTS: usize = 1024;

/// Why a pin set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtaError {
    #[error(transparent)]
    Tuf(#[from] TufError),
    #[error("pins.json: {0}")]
    Pins(&'static str),
    #[error(transparent)]
    Roots(#[from] roots::RootsError),
    #[error("fetching {file}: {reason}")]
    Fetch { file: String, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinsDocument {
    pins: Vec<HostPins>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostPins {
    host: String,
    spki_sha256: Vec<String>,
}

/// Reads `pins.json` (after its bytes were verified against the signed targets).
pub fn parse_pins(bytes: &[u8]) -> Result<PinSet, OtaError> {
    if bytes.len() > MAX_PINS_BYTES {
        return Err(OtaError::Pins("larger than allowed"));
    }
    let document: PinsDocument =
        serde_json::from_slice(bytes).map_err(|_| OtaError::Pins("not a pin set"))?;
    if document.pins.len() > MAX_RULES {
        return Err(OtaError::Pins("too many hosts"));
    }
    let rules = document
        .pins
        .iter()
        .map(|host| {
            Ok(PinRule {
                pattern: HostPattern::parse(&host.host)
                    .map_err(|_| OtaError::Pins("a host pattern is malformed"))?,
                pins: host
                    .spki_sha256
                    .iter()
                    .map(|pin| Pin::parse(pin).map_err(|_| OtaError::Pins("a pin is malformed")))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect::<Result<Vec<_>, OtaError>>()?;
    PinSet::new(rules).map_err(|_| OtaError::Pins("a host has no pin"))
}

/// What the app can show or report about its pins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PinsStatus {
    /// The trusted root's version.
    pub root_version: u64,
    /// The targets version the pins come from; `None` before the first good refresh.
    pub targets_version: Option<u64>,
    /// Hosts pinned.
    pub hosts: usize,
    /// Host patterns whose roots are the managed ones (`roots.pem`).
    pub managed_root_hosts: usize,
    /// Roles whose trusted metadata has expired (the pins stay in force).
    pub expired: Vec<&'static str>,
    /// Why the last refresh failed, if it did.
    pub last_error: Option<String>,
}

struct State {
    set: TrustedSet,
    pins: PinSet,
    pins_bytes: Option<Vec<u8>>,
    managed: Option<ManagedRoots>,
    last_error: Option<String>,
}

/// What one release carries: the pins, and the managed roots if it has any.
struct Release {
    pins: PinSet,
    pins_bytes: Vec<u8>,
    managed: Option<(ManagedRoots, Vec<u8>)>,
}

/// The managed roots a verified targets file describes, from `bytes` (already checked
/// against it); `None` when the release has no `roots.pem`.
fn managed_roots(set: &TrustedSet, bytes: Option<&[u8]>) -> Result<Option<ManagedRoots>, OtaError> {
    let Some(target) = set
        .targets()
        .and_then(|targets| targets.targets.get(ROOTS_TARGET))
    else {
        return Ok(None);
    };
    let bytes = bytes.ok_or_else(|| OtaError::Fetch {
        file: format!("targets/{ROOTS_TARGET}"),
        reason: "not published".into(),
    })?;
    set.verify_target(ROOTS_TARGET, bytes)?;
    let hosts = roots::hosts_of(target.custom.as_ref())?;
    Ok(Some(ManagedRoots::parse(bytes, &hosts)?))
}

/// The verified pin set and the trusted metadata behind it.
pub struct OtaPins {
    state: std::sync::Mutex<State>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for OtaPins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtaPins").field("dir", &self.dir).finish()
    }
}

fn lock(mutex: &std::sync::Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Writes `bytes` to `dir/name` through a temporary file (`0600`) and a rename.
fn keep(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = dir.join(format!(".{name}.new"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(temporary, dir.join(name))
}

/// Reads a kept file, bounded; `None` if absent or unreadable.
fn kept(dir: &Path, name: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(dir.join(name))
        .ok()?
        .take((MAX_PINS_BYTES.max(1024 * 1024) + 1) as u64)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

impl OtaPins {
    /// Starts from `embedded_root` (the deployment's `1.root.json`, or a later root, shipped in
    /// the app) and what `dir` kept from earlier refreshes. Kept files go through the same
    /// checks; one that does not verify is ignored (expired ones are kept, as references).
    pub fn new(embedded_root: &[u8], dir: Option<PathBuf>) -> Result<OtaPins, OtaError> {
        let mut set = TrustedSet::new(embedded_root)?;
        let mut pins = PinSet::default();
        let mut pins_bytes = None;
        let mut managed = None;
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|e| OtaError::Fetch {
                file: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            // Kept roots are walked from the shipped one, version by version, as a refresh
            // walks them: a root planted in the folder without that chain is never trusted.
            for _ in 0..MAX_KEPT_ROOTS {
                let next = set.root().common.version.saturating_add(1);
                match kept(dir, &format!("{next}.root.json")) {
                    Some(bytes) if set.update_root(&bytes).is_ok() => {}
                    _ => break,
                }
            }
            // `i64::MIN`: loading ignores expiry; an expired file is still the rollback
            // reference (TUF 5.4.4, 5.5.6).
            let load = |set: &mut TrustedSet, role: RoleName| -> bool {
                let Some(bytes) = kept(dir, &role.file()) else {
                    return false;
                };
                let result = match role {
                    RoleName::Timestamp => set.update_timestamp(&bytes, i64::MIN).map(|_| ()),
                    RoleName::Snapshot => set.update_snapshot(&bytes, i64::MIN),
                    RoleName::Targets => set.update_targets(&bytes, i64::MIN),
                    RoleName::Root => Ok(()),
                };
                result.is_ok()
            };
            if load(&mut set, RoleName::Timestamp)
                && load(&mut set, RoleName::Snapshot)
                && load(&mut set, RoleName::Targets)
                && let Some(bytes) = kept(dir, PINS_FILE)
                && set.verify_target(PINS_TARGET, &bytes).is_ok()
                && let Ok(parsed) = parse_pins(&bytes)
            {
                pins = parsed;
                match managed_roots(&set, kept(dir, ROOTS_FILE).as_deref()) {
                    Ok(kept_roots) => {
                        managed = kept_roots;
                        pins_bytes = Some(bytes);
                    }
                    // The roots of this release did not keep (a crash between two writes):
                    // its pins stay in force, and the next refresh fetches the whole release.
                    Err(_) => pins_bytes = None,
                }
            }
        }
        Ok(OtaPins {
            state: std::sync::Mutex::new(State {
                set,
                pins,
                pins_bytes,
                managed,
                last_error: None,
            }),
            dir,
        })
    }

    /// The pins in force.
    pub fn pins(&self) -> PinSet {
        lock(&self.state).pins.clone()
    }

    /// The managed roots in force, if the release in force has them.
    pub fn managed_roots(&self) -> Option<ManagedRoots> {
        lock(&self.state).managed.clone()
    }

    /// The pins in force for one host (what an app gives its platform's HTTP stack).
    pub fn pins_for(&self, host: &str) -> Vec<Pin> {
        lock(&self.state).pins.pins_for(host)
    }

    pub fn status(&self, now: i64) -> PinsStatus {
        let state = lock(&self.state);
        PinsStatus {
            root_version: state.set.root().common.version,
            targets_version: state
                .pins_bytes
                .as_ref()
                .and(state.set.targets())
                .map(|targets| targets.common.version),
            hosts: state.pins.rules().len(),
            managed_root_hosts: state.managed.as_ref().map_or(0, |m| m.hosts().len()),
            expired: state.set.expired_roles(now),
            last_error: state.last_error.clone(),
        }
    }

    /// One refresh from `fetch` (a file name under `/v1/trust/` → its bytes, or `None` when
    /// the repository has no such file). On success the new pins are in force and kept; on
    /// failure nothing changes but the reported error.
    pub async fn refresh<F, Fut>(&self, now: i64, fetch: F) -> Result<(), OtaError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Vec<u8>>, OtaError>>,
    {
        let (mut set, have_release) = {
            let state = lock(&self.state);
            (state.set.clone(), state.pins_bytes.is_some())
        };
        let mut roots = Vec::new();
        let result = Self::walk(&mut set, now, &fetch, &mut roots, have_release).await;
        let mut state = lock(&self.state);
        // Another refresh may have committed meanwhile: never go back from what it installed.
        let version = |set: &TrustedSet| {
            (
                set.root().common.version,
                set.timestamp().map_or(0, |t| t.common.version),
            )
        };
        if result.is_ok() && version(&set) < version(&state.set) {
            let error = OtaError::Tuf(TufError::Rollback("timestamp"));
            state.last_error = Some(error.to_string());
            return Err(error);
        }
        if let Some(dir) = &self.dir
            && result.is_ok()
        {
            // Kept for the next run; a failure to keep is not a failure to pin.
            for (version, bytes) in &roots {
                let _ = keep(dir, &format!("{version}.root.json"), bytes);
            }
        }
        match result {
            Ok(None) => {
                state.set = set;
                state.last_error = None;
                Ok(())
            }
            Ok(Some(release)) => {
                if let Some(dir) = &self.dir {
                    // The release's files first, then the metadata that names them: a crash
                    // in between leaves metadata that still describes what is kept.
                    let _ = keep(dir, PINS_FILE, &release.pins_bytes);
                    match &release.managed {
                        Some((_, bytes)) => drop(keep(dir, ROOTS_FILE, bytes)),
                        None => drop(std::fs::remove_file(dir.join(ROOTS_FILE))),
                    }
                    for role in [RoleName::Timestamp, RoleName::Snapshot, RoleName::Targets] {
                        if let Some(file) = set.bytes(role) {
                            let _ = keep(dir, &role.file(), file);
                        }
                    }
                }
                state.set = set;
                state.pins = release.pins;
                state.pins_bytes = Some(release.pins_bytes);
                state.managed = release.managed.map(|(managed, _)| managed);
                state.last_error = None;
                Ok(())
            }
            Err(error) => {
                state.last_error = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// The client workflow: new roots, then timestamp, snapshot, targets, the pins and the
    /// managed roots. `Ok(None)`: the timestamp is unchanged and the release's files are held
    /// (`have_release`; kept metadata whose files did not load is fetched again).
    async fn walk<F, Fut>(
        set: &mut TrustedSet,
        now: i64,
        fetch: &F,
        roots: &mut Vec<(u64, Vec<u8>)>,
        have_release: bool,
    ) -> Result<Option<Release>, OtaError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Vec<u8>>, OtaError>>,
    {
        for _ in 0..medgate_trust::tuf::client::MAX_ROOT_ROTATIONS {
            let next = set.root().common.version.saturating_add(1);
            match fetch(format!("{next}.root.json")).await? {
                Some(bytes) => {
                    set.update_root(&bytes)?;
                    roots.push((next, bytes));
                }
                None => break,
            }
        }
        set.check_root_not_expired(now)?;
        let required = |file: &str, bytes: Option<Vec<u8>>| {
            bytes.ok_or_else(|| OtaError::Fetch {
                file: file.to_string(),
                reason: "not published".into(),
            })
        };
        let timestamp = required("timestamp.json", fetch("timestamp.json".into()).await?)?;
        if !set.update_timestamp(&timestamp, now)? && set.targets().is_some() && have_release {
            return Ok(None);
        }
        let snapshot = required("snapshot.json", fetch("snapshot.json".into()).await?)?;
        set.update_snapshot(&snapshot, now)?;
        let targets = required("targets.json", fetch("targets.json".into()).await?)?;
        set.update_targets(&targets, now)?;
        let pins = required(
            "targets/pins.json",
            fetch(format!("targets/{PINS_TARGET}")).await?,
        )?;
        set.verify_target(PINS_TARGET, &pins)?;
        let parsed = parse_pins(&pins)?;
        let managed = match set
            .targets()
            .is_some_and(|targets| targets.targets.contains_key(ROOTS_TARGET))
        {
            true => {
                let bytes = required(
                    "targets/roots.pem",
                    fetch(format!("targets/{ROOTS_TARGET}")).await?,
                )?;
                managed_roots(set, Some(&bytes))?.map(|managed| (managed, bytes))
            }
            false => None,
        };
        Ok(Some(Release {
            pins: parsed,
            pins_bytes: pins,
            managed,
        }))
    }
}

#[cfg(test)]
mod tests;
