//! The deployment's TUF repository, served at `/v1/trust/`: over-the-air pin sets that apps
//! verify with TUF's client rules (`medgate_trust::tuf`), so a pushed pin set can be neither
//! forged nor rolled back nor frozen.
//!
//! Keys: the root keys are offline, in a folder the operator keeps apart (`medgate trust init
//! --offline-root DIR`, `medgate trust sign-root`); the timestamp, snapshot and targets keys
//! are online, sealed in the store like signing keys. Files: every root version
//! (`N.root.json`), and the latest `timestamp.json`, `snapshot.json`, `targets.json`,
//! `targets/pins.json` and, when the operator set managed roots, `targets/roots.pem` (its host
//! patterns in the target's `custom`). `publish` signs a new release from the pins and the
//! managed roots in the store; `renew`,
//! which the node runs every 30 s, re-signs the timestamp before it expires and republishes
//! before the snapshot or targets do.

use std::collections::BTreeMap;
use std::path::Path;

use medgate_store::seal::{SealError, Sealer, trust_key_label};
use medgate_store::{
    NewAuditEntry, PinRecord, Store, StoreError, TrustKeyRecord, TrustMetadataRecord,
};
use medgate_trust::roots::{self, ManagedRoots, ROOTS_TARGET};
use medgate_trust::tuf::TufError;
use medgate_trust::tuf::metadata::{Envelope, MAX_ROOT_BYTES, RoleName, Root};
use medgate_trust::tuf::repository::{self as repo, RoleKey, sign};
use medgate_verify::UnixTime;

/// How long each file is valid when signed.
pub const TIMESTAMP_LIFETIME: i64 = 86_400;
pub const RELEASE_LIFETIME: i64 = 30 * 86_400;
pub const ROOT_LIFETIME: i64 = 365 * 86_400;
/// The target apps read.
pub const PINS_TARGET: &str = "pins.json";
/// How `trust_metadata` stores a target's bytes (its version is the targets version).
const PINS_ROLE: &str = "target/pins.json";
const ROOTS_ROLE: &str = "target/roots.pem";
/// How `trust_metadata` keeps the operator's managed roots for the next publication: each
/// change a new version (`{"pem", "hosts"}`, or `{}` once cleared), written with its audit
/// entry.
const ROOTS_SOURCE_ROLE: &str = "source/roots";

/// Why the repository could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("the trust repository is not initialised (medgate trust init)")]
    NotInitialised,
    #[error("{0} has one pin: add a backup pin (a key not yet in use) before publishing")]
    NoBackupPin(String),
    #[error("the offline root folder: {0}")]
    Offline(String),
    #[error("the offline root folder holds none of the current root's keys")]
    NoRootKey,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an online key cannot be opened: {0}")]
    Seal(#[from] SealError),
    #[error(transparent)]
    Tuf(#[from] TufError),
    #[error(transparent)]
    Roots(#[from] roots::RootsError),
}

/// The files `/v1/trust/` serves, as last loaded from the store.
#[derive(Debug, Default, Clone)]
pub struct TrustFiles {
    roots: Vec<Vec<u8>>,
    timestamp: Option<Vec<u8>>,
    snapshot: Option<Vec<u8>>,
    targets: Option<Vec<u8>>,
    pins: Option<Vec<u8>>,
    roots_pem: Option<Vec<u8>>,
}

impl TrustFiles {
    /// The file at `/v1/trust/<name>`.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        match name {
            "root.json" => self.roots.last(),
            "timestamp.json" => self.timestamp.as_ref(),
            "snapshot.json" => self.snapshot.as_ref(),
            "targets.json" => self.targets.as_ref(),
            "targets/pins.json" => self.pins.as_ref(),
            "targets/roots.pem" => self.roots_pem.as_ref(),
            other => {
                let version: usize = other.strip_suffix(".root.json")?.parse().ok()?;
                self.roots.get(version.checked_sub(1)?)
            }
        }
        .map(Vec::as_slice)
    }

    pub async fn load(store: &dyn Store) -> Result<TrustFiles, StoreError> {
        let latest = |role: &'static str| async move {
            store
                .trust_metadata(role, None)
                .await
                .map(|file| file.map(|file| file.body))
        };
        let targets = store.trust_metadata("targets", None).await?;
        let target = |role: &'static str| {
            let version = targets.as_ref().map(|targets| targets.version);
            async move {
                match version {
                    Some(version) => Ok(store
                        .trust_metadata(role, Some(version))
                        .await?
                        .map(|file| file.body)),
                    None => Ok::<_, StoreError>(None),
                }
            }
        };
        let pins = target(PINS_ROLE).await?;
        let roots_pem = target(ROOTS_ROLE).await?;
        Ok(TrustFiles {
            roots: store
                .trust_roots()
                .await?
                .into_iter()
                .map(|root| root.body)
                .collect(),
            timestamp: latest("timestamp").await?,
            snapshot: latest("snapshot").await?,
            targets: targets.map(|file| file.body),
            pins,
            roots_pem,
        })
    }
}

/// `pins.json`: every host pattern with its pins, canonical JSON. Each host needs a backup pin.
pub fn pins_document(pins: &[PinRecord]) -> Result<Vec<u8>, TrustError> {
    let mut hosts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for pin in pins {
        hosts.entry(&pin.pattern).or_default().push(&pin.pin);
    }
    if let Some((host, _)) = hosts.iter().find(|(_, pins)| pins.len() < 2) {
        return Err(TrustError::NoBackupPin(host.to_string()));
    }
    let document = serde_json::json!({
        "pins": hosts
            .iter()
            .map(|(host, pins)| serde_json::json!({"host": host, "spki_sha256": pins}))
            .collect::<Vec<_>>(),
    });
    medgate_trust::tuf::canonical::encode(&document)
        .map_err(|_| TrustError::Tuf(TufError::Invalid("pins are not canonical JSON")))
}

fn random_key() -> Result<RoleKey, TrustError> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|_| TrustError::Offline("no randomness".into()))?;
    Ok(RoleKey::from_seed(&seed))
}

fn record(
    role: &str,
    version: u64,
    body: Vec<u8>,
    expires: i64,
    now: UnixTime,
) -> TrustMetadataRecord {
    TrustMetadataRecord {
        role: role.into(),
        version: version as i64,
        body,
        expires_at: UnixTime::from_secs(expires),
        created_at: now,
    }
}

fn sealed_key(
    sealer: &Sealer,
    role: RoleName,
    key: &RoleKey,
    now: UnixTime,
) -> Result<TrustKeyRecord, TrustError> {
    let key_id = key.key_id();
    Ok(TrustKeyRecord {
        sealed: sealer.seal(&trust_key_label(&key_id), key.seed().as_slice())?,
        key_id,
        role: role.as_str().into(),
        created_at: now,
        retired_at: None,
    })
}

/// The online keys, opened.
struct OnlineKeys {
    timestamp: RoleKey,
    snapshot: RoleKey,
    targets: RoleKey,
}

async fn online_keys(store: &dyn Store, sealer: &Sealer) -> Result<OnlineKeys, TrustError> {
    let mut keys = BTreeMap::new();
    for record in store.trust_keys().await? {
        let seed = sealer.open(&trust_key_label(&record.key_id), &record.sealed)?;
        let seed: [u8; 32] = seed
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt("a trust key's seed is not 32 bytes".into()))?;
        keys.insert(record.role, RoleKey::from_seed(&seed));
    }
    let mut take = |role: RoleName| keys.remove(role.as_str()).ok_or(TrustError::NotInitialised);
    Ok(OnlineKeys {
        timestamp: take(RoleName::Timestamp)?,
        snapshot: take(RoleName::Snapshot)?,
        targets: take(RoleName::Targets)?,
    })
}

fn latest_version(file: &Option<TrustMetadataRecord>) -> u64 {
    file.as_ref().map_or(0, |file| file.version as u64)
}

/// Signs and stores a new release (targets, snapshot, timestamp) of the pins in the store;
/// returns the targets version. With `audit`, the entry commits with it.
pub async fn publish(
    store: &dyn Store,
    sealer: &Sealer,
    now: UnixTime,
    audit: Option<&NewAuditEntry>,
) -> Result<u64, TrustError> {
    if store.trust_metadata("root", None).await?.is_none() {
        return Err(TrustError::NotInitialised);
    }
    let contents = Contents {
        pins: pins_document(&store.pins().await?)?,
        roots: managed_roots(store).await?,
    };
    release(store, sealer, now, contents, audit).await
}

/// What one release carries: `pins.json`, and `roots.pem` with the hosts it covers.
struct Contents {
    pins: Vec<u8>,
    roots: Option<(Vec<u8>, Vec<String>)>,
}

/// The managed roots the operator set for the next publication, if any.
pub async fn managed_roots(
    store: &dyn Store,
) -> Result<Option<(Vec<u8>, Vec<String>)>, TrustError> {
    let Some(source) = store.trust_metadata(ROOTS_SOURCE_ROLE, None).await? else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Source {
        pem: Option<String>,
        #[serde(default)]
        hosts: Vec<String>,
    }
    let source: Source = serde_json::from_slice(&source.body)
        .map_err(|_| StoreError::Corrupt("the managed roots record is not JSON".into()))?;
    Ok(source.pem.map(|pem| (pem.into_bytes(), source.hosts)))
}

/// Sets (or, with `None`, clears) the managed roots the next publication carries, after
/// checking they parse. The audit entry commits with the change.
pub async fn set_managed_roots(
    store: &dyn Store,
    roots: Option<(&str, &[String])>,
    now: UnixTime,
    audit: &NewAuditEntry,
) -> Result<(), TrustError> {
    let body = match roots {
        Some((pem, hosts)) => {
            ManagedRoots::parse(pem.as_bytes(), hosts)?;
            serde_json::json!({"pem": pem, "hosts": hosts})
        }
        None => serde_json::json!({}),
    };
    let version = latest_version(&store.trust_metadata(ROOTS_SOURCE_ROLE, None).await?) + 1;
    let body = serde_json::to_vec(&body)
        .map_err(|_| StoreError::Corrupt("the managed roots do not serialise".into()))?;
    // It never expires: it is what the next release carries, not a release.
    store
        .publish_trust(
            &[record(ROOTS_SOURCE_ROLE, version, body, i64::MAX, now)],
            Some(audit),
        )
        .await?;
    Ok(())
}

/// The contents of the latest release, as published.
async fn published_contents(store: &dyn Store) -> Result<Option<Contents>, TrustError> {
    let Some(targets) = store.trust_metadata("targets", None).await? else {
        return Ok(None);
    };
    let Some(pins) = store
        .trust_metadata(PINS_ROLE, Some(targets.version))
        .await?
        .map(|file| file.body)
    else {
        return Ok(None);
    };
    let roots = match store
        .trust_metadata(ROOTS_ROLE, Some(targets.version))
        .await?
    {
        Some(file) => {
            // The hosts are in the signed targets' `custom` for roots.pem.
            let signed = Envelope::<medgate_trust::tuf::metadata::Targets>::parse(
                &targets.body,
                medgate_trust::tuf::metadata::MAX_METADATA_BYTES,
            )?;
            let hosts = roots::hosts_of(
                signed
                    .signed
                    .targets
                    .get(ROOTS_TARGET)
                    .and_then(|target| target.custom.as_ref()),
            )?;
            Some((file.body, hosts))
        }
        None => None,
    };
    Ok(Some(Contents { pins, roots }))
}

/// Signs and stores a release of `contents` (targets, snapshot, timestamp, the next versions).
async fn release(
    store: &dyn Store,
    sealer: &Sealer,
    now: UnixTime,
    contents: Contents,
    audit: Option<&NewAuditEntry>,
) -> Result<u64, TrustError> {
    let keys = online_keys(store, sealer).await?;
    let versions = (
        latest_version(&store.trust_metadata("targets", None).await?) + 1,
        latest_version(&store.trust_metadata("snapshot", None).await?) + 1,
        latest_version(&store.trust_metadata("timestamp", None).await?) + 1,
    );
    let (release_expires, timestamp_expires) = (
        now.secs() + RELEASE_LIFETIME,
        now.secs() + TIMESTAMP_LIFETIME,
    );
    let mut files: Vec<(&str, &[u8])> = vec![(PINS_TARGET, &contents.pins)];
    if let Some((pem, _)) = &contents.roots {
        files.push((ROOTS_TARGET, pem));
    }
    let mut described = repo::targets(versions.0, release_expires, &files)?;
    if let Some((_, hosts)) = &contents.roots
        && let Some(target) = described.targets.get_mut(ROOTS_TARGET)
    {
        target.custom = Some(roots::target_custom(hosts));
    }
    let targets = sign(&described, &[&keys.targets])?;
    let snapshot = sign(
        &repo::snapshot(versions.1, release_expires, versions.0, &targets)?,
        &[&keys.snapshot],
    )?;
    let timestamp = sign(
        &repo::timestamp(versions.2, timestamp_expires, versions.1, &snapshot)?,
        &[&keys.timestamp],
    )?;
    let mut records = vec![record(
        PINS_ROLE,
        versions.0,
        contents.pins,
        release_expires,
        now,
    )];
    if let Some((pem, _)) = contents.roots {
        records.push(record(ROOTS_ROLE, versions.0, pem, release_expires, now));
    }
    records.extend([
        record("targets", versions.0, targets, release_expires, now),
        record("snapshot", versions.1, snapshot, release_expires, now),
        record("timestamp", versions.2, timestamp, timestamp_expires, now),
    ]);
    store.publish_trust(&records, audit).await?;
    Ok(versions.0)
}

/// Keeps a published repository fresh: a new timestamp when half of its lifetime is gone, a
/// new release when a third of the snapshot's or the targets' is left. Another replica doing
/// the same at once wins (`Conflict`), which is fine. `Ok(true)`: something was signed.
pub async fn renew(store: &dyn Store, sealer: &Sealer, now: UnixTime) -> Result<bool, TrustError> {
    let (Some(timestamp), Some(snapshot), Some(targets)) = (
        store.trust_metadata("timestamp", None).await?,
        store.trust_metadata("snapshot", None).await?,
        store.trust_metadata("targets", None).await?,
    ) else {
        return Ok(false);
    };
    let now_secs = now.secs();
    let release_left = snapshot.expires_at.secs().min(targets.expires_at.secs()) - now_secs;
    // The release again, with the pins and roots it published (not changes made since and
    // not yet published). Should that fail, the timestamp is still renewed below.
    if release_left < RELEASE_LIFETIME / 3
        && let Some(contents) = published_contents(store).await?
    {
        match release(store, sealer, now, contents, None).await {
            Ok(_) => return Ok(true),
            Err(TrustError::Store(StoreError::Conflict(_))) => return Ok(false),
            Err(error) => {
                tracing::error!(%error, "TUF release renewal failed; renewing the timestamp alone");
            }
        }
    }
    let result = if timestamp.expires_at.secs() - now_secs < TIMESTAMP_LIFETIME / 2 {
        let keys = online_keys(store, sealer).await?;
        let expires = now_secs + TIMESTAMP_LIFETIME;
        let version = timestamp.version as u64 + 1;
        let body = sign(
            &repo::timestamp(version, expires, snapshot.version as u64, &snapshot.body)?,
            &[&keys.timestamp],
        )?;
        store
            .publish_trust(&[record("timestamp", version, body, expires, now)], None)
            .await
            .map(|()| true)
            .map_err(TrustError::from)
    } else {
        Ok(false)
    };
    match result {
        Err(TrustError::Store(StoreError::Conflict(_))) => Ok(false),
        other => other,
    }
}

/// The offline root keys: one file per key in a folder (`0700`, files `0600`), named by the
/// key id, holding the hex seed.
pub struct OfflineRoot<'a> {
    dir: &'a Path,
}

impl<'a> OfflineRoot<'a> {
    pub fn new(dir: &'a Path) -> Self {
        OfflineRoot { dir }
    }

    fn write(&self, key: &RoleKey) -> Result<(), TrustError> {
        medgate_store::sqlite::create_private_dir(self.dir)
            .map_err(|e| TrustError::Offline(e.to_string()))?;
        let path = self.dir.join(format!("root-{}.key", key.key_id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        use std::io::Write;
        let seed = zeroize::Zeroizing::new(medgate_proto::hex::encode(key.seed().as_slice()));
        options
            .open(&path)
            .and_then(|mut file| {
                file.write_all(seed.as_bytes())
                    .and_then(|()| file.sync_all())
            })
            .map_err(|e| TrustError::Offline(format!("{}: {e}", path.display())))
    }

    /// Every key in the folder.
    fn keys(&self) -> Result<Vec<RoleKey>, TrustError> {
        let entries = std::fs::read_dir(self.dir)
            .map_err(|e| TrustError::Offline(format!("{}: {e}", self.dir.display())))?;
        let mut keys = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("root-") && name.ends_with(".key")) {
                continue;
            }
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(entry.path())
                    .map_err(|e| TrustError::Offline(format!("{name}: {e}")))?,
            );
            let seed: [u8; 32] = medgate_proto::hex::decode(text.trim())
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| TrustError::Offline(format!("{name} is not a root key")))?;
            keys.push(RoleKey::from_seed(&seed));
        }
        Ok(keys)
    }
}

/// What `sign_root` changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RootChange {
    /// A new root key replaces the current ones (it signs, and so do they, one last time).
    pub new_root_key: bool,
    /// New online keys for these roles (the old ones are retired).
    pub rotate_timestamp: bool,
    pub rotate_snapshot: bool,
    pub rotate_targets: bool,
}

/// Creates the repository: a root key written to `offline`, online keys sealed in the store,
/// and root version 1. Publish afterwards.
pub async fn init(
    store: &dyn Store,
    sealer: &Sealer,
    offline: &OfflineRoot<'_>,
    now: UnixTime,
    audit: &NewAuditEntry,
) -> Result<u64, TrustError> {
    if store.trust_metadata("root", None).await?.is_some() {
        return Err(TrustError::Store(StoreError::Conflict("trust repository")));
    }
    let root_key = random_key()?;
    let online = OnlineKeys {
        timestamp: random_key()?,
        snapshot: random_key()?,
        targets: random_key()?,
    };
    let expires = now.secs() + ROOT_LIFETIME;
    let root = repo::root(
        1,
        expires,
        [
            (&[&root_key], 1),
            (&[&online.timestamp], 1),
            (&[&online.snapshot], 1),
            (&[&online.targets], 1),
        ],
    )?;
    let body = sign(&root, &[&root_key])?;
    let keys = [
        sealed_key(sealer, RoleName::Timestamp, &online.timestamp, now)?,
        sealed_key(sealer, RoleName::Snapshot, &online.snapshot, now)?,
        sealed_key(sealer, RoleName::Targets, &online.targets, now)?,
    ];
    offline.write(&root_key)?;
    store
        .init_trust(&record("root", 1, body, expires, now), &keys, audit)
        .await?;
    Ok(1)
}

/// Signs root version N+1 with the root keys in `offline` (and a new root key, if asked),
/// rotating the online keys asked for; returns the new version.
pub async fn sign_root(
    store: &dyn Store,
    sealer: &Sealer,
    offline: &OfflineRoot<'_>,
    change: RootChange,
    now: UnixTime,
    audit: &NewAuditEntry,
) -> Result<u64, TrustError> {
    let current = store
        .trust_metadata("root", None)
        .await?
        .ok_or(TrustError::NotInitialised)?;
    let current: Root = Envelope::<Root>::parse(&current.body, MAX_ROOT_BYTES)?.signed;
    let held: Vec<RoleKey> = offline
        .keys()?
        .into_iter()
        .filter(|key| {
            current
                .roles
                .get("root")
                .is_some_and(|role| role.keyids.contains(&key.key_id()))
        })
        .collect();
    if held.is_empty() {
        return Err(TrustError::NoRootKey);
    }
    let online = online_keys(store, sealer).await?;
    let replace = |rotate: bool, key: RoleKey| -> Result<(RoleKey, bool), TrustError> {
        if rotate {
            Ok((random_key()?, true))
        } else {
            Ok((key, false))
        }
    };
    let (timestamp, new_timestamp) = replace(change.rotate_timestamp, online.timestamp)?;
    let (snapshot, new_snapshot) = replace(change.rotate_snapshot, online.snapshot)?;
    let (targets, new_targets) = replace(change.rotate_targets, online.targets)?;
    let new_root_key = if change.new_root_key {
        Some(random_key()?)
    } else {
        None
    };
    let root_keys: Vec<&RoleKey> = match &new_root_key {
        Some(key) => vec![key],
        None => held.iter().collect(),
    };
    let version = current
        .common
        .version
        .checked_add(1)
        .ok_or(TrustError::Tuf(TufError::Invalid(
            "root version out of range",
        )))?;
    let expires = now.secs() + ROOT_LIFETIME;
    let root = repo::root(
        version,
        expires,
        [
            (root_keys.as_slice(), 1),
            (&[&timestamp], 1),
            (&[&snapshot], 1),
            (&[&targets], 1),
        ],
    )?;
    let mut signers: Vec<&RoleKey> = held.iter().collect();
    if let Some(key) = &new_root_key {
        signers.push(key);
    }
    let body = sign(&root, &signers)?;
    let mut keys = Vec::new();
    for (rotated, role, key) in [
        (new_timestamp, RoleName::Timestamp, &timestamp),
        (new_snapshot, RoleName::Snapshot, &snapshot),
        (new_targets, RoleName::Targets, &targets),
    ] {
        if rotated {
            keys.push(sealed_key(sealer, role, key, now)?);
        }
    }
    if let Some(key) = &new_root_key {
        offline.write(key)?;
    }
    let rotated_online = !keys.is_empty();
    store
        .add_root(&record("root", version, body, expires, now), &keys, audit)
        .await?;
    // What the old online keys signed no longer verifies under the new root: the same pins
    // and roots are signed again with the new keys.
    if rotated_online && let Some(contents) = published_contents(store).await? {
        release(store, sealer, now, contents, None).await?;
    }
    Ok(version)
}

/// `GET /v1/trust/<file>`: a published metadata file or target, from memory.
pub(crate) async fn serve_file(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::ServerState>>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
    let files = std::sync::Arc::clone(&state.trust.read());
    let Some(bytes) = files.file(&file) else {
        return crate::http_util::not_found().await.into_response();
    };
    let mut response = axum::response::Response::new(axum::body::Body::from(bytes.to_vec()));
    let headers = response.headers_mut();
    let media = if file.ends_with(".pem") {
        "application/x-pem-file"
    } else {
        "application/json"
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(media));
    // Clients must see a new timestamp as soon as it is published.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
