//! medgate persistence.
//!
//! [`Store`] is the one interface the server, the gateway's background tasks and the CLI use.
//! [`sqlite::SqliteStore`] is the embedded default: one file in the data directory, WAL mode,
//! embedded migrations, every file `0600`. A second backend implements the same trait and runs
//! the same conformance suite (`conformance.rs`), test for test.
//!
//! Invariants every backend keeps:
//! - `take_challenge` is atomic: two concurrent takes of one challenge cannot both succeed.
//! - A revocation and its entry in the revocation feed are written in one transaction.
//! - `rotate_signing_key` retires the active keys and adds the new one in one transaction.
//! - Audit entries are appended in `seq` order, each hashed over its predecessor
//!   ([`audit::entry_hash`]), by one writer at a time: the head is read and the next entry
//!   written in one transaction that excludes every other appender (SQLite: `BEGIN
//!   IMMEDIATE` on the one connection; a shared database must lock the head the same way, so
//!   that two nodes never fork the chain).
//! - An admin change and its audit entry commit in one transaction; so do a grant's writes
//!   (`record_grant`).
//! - The revocation feed is read by sequence number (`revocations_since`). A backend whose
//!   sequence values can commit out of order (PostgreSQL) must not let a reader skip a row
//!   that commits after a higher one was read: it hands out rows only below the oldest
//!   sequence value still in flight, or takes the feed's lock for each append.

pub mod audit;
pub mod audit_export;
mod columns;
pub mod copy;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod seal;
pub mod sqlite;
mod telemetry;
pub use telemetry::reads_hours;

/// The conformance suite every backend runs (feature `conformance`, for backend crates' tests).
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use async_trait::async_trait;
use medgate_proto::PublicJwk;
use medgate_proto::wire::{Decision, IntegrityLevel, Reason};
use medgate_verify::UnixTime;

pub use medgate_proto::admin::{
    App, Enrolment, Installation, OperatorRole, Pin as PinRecord, Release, TelemetryCount,
    TelemetrySeries,
};
use medgate_verify::keys::KeySet;
use serde::Serialize;

pub use audit::{AuditEntry, ChainBreak, NewAuditEntry};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record already exists (the caller's fault).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The record the operation needs does not exist (the caller's fault).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A stored value does not decode: the database was edited or damaged.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Key material cannot be opened (missing or wrong master key).
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    /// The backend failed (I/O, locking, a bug). Retrying may help.
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// The outcome of one attestation, recorded against the installation.
#[derive(Debug, Clone)]
pub struct AttestationRecord {
    pub installation_id: String,
    pub app_id: String,
    pub platform: String,
    pub app_version: String,
    pub at: UnixTime,
    pub decision: Decision,
    pub reasons: Vec<Reason>,
    pub integrity_level: Option<IntegrityLevel>,
    pub hardware_key: bool,
    pub identity: Option<String>,
}

/// What [`PlatformStore::revoke_enrolment`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentRevocation {
    /// False when the enrolment was revoked already.
    pub newly_revoked: bool,
    /// The installation the code enrolled, now revoked too.
    pub installation_id: Option<String>,
}

/// Everything a granted attestation stores, written in one transaction: all of it or none
/// ([`Store::record_grant`]).
#[derive(Debug, Clone)]
pub struct GrantWrites {
    /// The installation and the decision.
    pub record: AttestationRecord,
    /// A newly attested App Attest key (counter 0), replacing the installation's earlier one.
    pub apple_key: Option<AppleKeyRecord>,
    /// An enrolment code (by hash) claimed for the build identity the platform proved.
    pub enrolment: Option<EnrolmentClaim>,
    /// The installation's public keys from the evidence; `encryption_jwk` `None` keeps the
    /// key-agreement key stored.
    pub keys: Option<InstallationKeys>,
    /// The decision's audit entry: a grant is never stored without it.
    pub audit: NewAuditEntry,
}

/// An installation's public keys (JWKs, JSON): the installation key, and the key-agreement key
/// its evidence named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationKeys {
    pub public_jwk: String,
    pub encryption_jwk: Option<String>,
}

/// An enrolment code to claim with a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolmentClaim {
    pub code_sha256: String,
    pub identity: String,
}

/// What [`Store::record_grant`] did. Anything but `Recorded` wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantOutcome {
    Recorded,
    /// Another installation has this App Attest key id.
    AppleKeyTaken,
    /// The enrolment code is used, expired, revoked, unknown or another app's.
    EnrolmentUnavailable,
}

/// An installation's App Attest key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppleKeyRecord {
    pub installation_id: String,
    pub key_id: Vec<u8>,
    /// `TEAMID.bundle.id` the key was attested for.
    pub app_id: String,
    /// Uncompressed P-256 point.
    pub public_key: Vec<u8>,
    /// `production` or `development`.
    pub environment: String,
    pub counter: u32,
    /// Apple's receipt, kept for fraud-metric requests.
    pub receipt: Vec<u8>,
    pub created_at: UnixTime,
}

/// A single-use attestation challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub value: String,
    pub app_id: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// A token-signing key as stored: the public key in the clear, the private key sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub public_jwk: PublicJwk,
    /// A [`seal`]ed PKCS#8 document.
    pub sealed_private_key: Vec<u8>,
    pub created_at: UnixTime,
    /// When a newer key took over signing. `None` for the active key.
    pub retired_at: Option<UnixTime>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl SigningKeyRecord {
    /// Whether the key must still appear in the JWKS at `now`: it is active, or it was retired
    /// less than `retention_secs` ago (the longest a token it signed can live, plus leeway).
    pub fn is_published(&self, now: UnixTime, retention_secs: i64) -> bool {
        self.retired_at
            .is_none_or(|retired| now < retired.plus(retention_secs))
    }
}

/// The keys a token verifier must accept at `now`: every key still published.
pub fn published_keys(records: &[SigningKeyRecord], now: UnixTime, retention_secs: i64) -> KeySet {
    KeySet::new(
        records
            .iter()
            .filter(|record| record.is_published(now, retention_secs))
            .map(|record| (record.kid.clone(), record.public_jwk.clone())),
    )
}

/// What a revocation applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RevocationTarget {
    Installation {
        app_id: String,
        installation_id: String,
    },
    Release {
        app_id: String,
        version: String,
    },
}

/// An entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Revocation {
    pub seq: i64,
    pub target: RevocationTarget,
    pub at: UnixTime,
}

/// Apps, their policies and releases.
#[async_trait]
pub trait AppStore: Send + Sync {
    async fn create_app(&self, app: &App, audit: &NewAuditEntry) -> Result<(), StoreError>;
    async fn get_app(&self, app_id: &str) -> Result<Option<App>, StoreError>;
    async fn list_apps(&self) -> Result<Vec<App>, StoreError>;
    /// `Conflict` for a version that was revoked: a revoked version stays revoked.
    async fn add_release(&self, release: &Release, audit: &NewAuditEntry)
    -> Result<(), StoreError>;
    /// Every release of `app_id` with this `version`, revoked or not.
    async fn releases(&self, app_id: &str, version: &str) -> Result<Vec<Release>, StoreError>;
    async fn list_releases(&self, app_id: &str) -> Result<Vec<Release>, StoreError>;
    /// Revokes every binary of the version and appends to the revocation feed. Returns how
    /// many releases changed (also the audit detail's `revoked`); `NotFound` when the version
    /// was never registered.
    async fn revoke_release(
        &self,
        app_id: &str,
        version: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<usize, StoreError>;
}

/// Which installations a listing holds: every one, unless a field narrows it (to one app,
/// version, platform, last decision or integrity level).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallationFilter<'a> {
    pub app_id: Option<&'a str>,
    pub version: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub decision: Option<Decision>,
    pub integrity_level: Option<IntegrityLevel>,
}

impl<'a> InstallationFilter<'a> {
    /// One app's installations, or every one.
    pub fn app(app_id: Option<&'a str>) -> Self {
        InstallationFilter {
            app_id,
            ..InstallationFilter::default()
        }
    }
}

/// Installations and the state of attesting: challenges, grants, App Attest keys and
/// counters, and the revocation feed the gateways poll.
#[async_trait]
pub trait InstallationStore: Send + Sync {
    async fn get_installation(&self, id: &str) -> Result<Option<Installation>, StoreError>;
    /// One page of the installations `filter` admits, in id order: at most `limit`, those
    /// whose id sorts after `after`.
    async fn list_installations(
        &self,
        filter: &InstallationFilter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Installation>, StoreError>;
    /// How many of an app's installations are in use on each version: not revoked, and
    /// granted at their last attestation, with that version (what revoking a release cuts
    /// off; an installation refused since, for a revoked release say, is not counted).
    async fn active_installations_by_version(
        &self,
        app_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// How many installations are in use (not revoked, granted at their last attestation)
    /// and were last seen at `since` or later.
    async fn installations_in_use_since(&self, since: UnixTime) -> Result<u64, StoreError>;
    /// Creates or updates the installation with the outcome of an attestation (a refusal;
    /// a grant goes through [`Store::record_grant`]).
    async fn record_attestation(&self, record: &AttestationRecord) -> Result<(), StoreError>;
    /// A grant's writes in one transaction: the installation, a new App Attest key, an
    /// enrolment claim, the installation's keys and the decision's audit entry commit together, or (any outcome but
    /// `Recorded`, or an error) none does.
    async fn record_grant(&self, grant: &GrantWrites) -> Result<GrantOutcome, StoreError>;
    /// Revokes and appends to the revocation feed. Returns false if it was already revoked.
    /// The audit detail gains `newly_revoked`.
    async fn revoke_installation(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<bool, StoreError>;
    async fn insert_challenge(&self, challenge: &Challenge) -> Result<(), StoreError>;
    /// Atomically removes and returns the challenge (expired or not). `None` if unknown or used.
    async fn take_challenge(&self, value: &str) -> Result<Option<Challenge>, StoreError>;
    /// Deletes challenges that expired before `now`; returns how many.
    async fn purge_challenges(&self, now: UnixTime) -> Result<usize, StoreError>;
    async fn apple_key(&self, installation_id: &str) -> Result<Option<AppleKeyRecord>, StoreError>;
    /// Compare-and-set: stores `counter` only if it is greater than the stored one. Returns
    /// whether it did, so two assertions with one counter cannot both pass.
    async fn advance_apple_counter(
        &self,
        installation_id: &str,
        counter: u32,
    ) -> Result<bool, StoreError>;
    async fn revocations_since(&self, after_seq: i64) -> Result<Vec<Revocation>, StoreError>;
    /// The installation's public keys, as its grants stored them.
    async fn installation_keys(
        &self,
        installation_id: &str,
    ) -> Result<Option<InstallationKeys>, StoreError>;
}

/// The token signing keys, and small settings (the admin token's hash).
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Retires every active key at `key.created_at` and adds `key` as the active one.
    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Replaces a key's sealed private key (re-sealing under a new master key).
    async fn reseal_signing_key(
        &self,
        kid: &str,
        sealed_private_key: &[u8],
    ) -> Result<(), StoreError>;
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
}

/// The hash-chained audit log ([`audit`]).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends entries in order, chaining each to the previous one.
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError>;
    /// Up to `limit` entries with `seq > after_seq`, in order.
    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    /// The last entry of the audit log (its head), if any.
    async fn audit_head(&self) -> Result<Option<AuditEntry>, StoreError>;
    /// Deletes the entries before `keep_from`, which must exist (it stays, as the first entry
    /// a signed checkpoint vouches for). Returns how many were deleted.
    async fn prune_audit(&self, keep_from: i64) -> Result<u64, StoreError>;
}

/// Per-app platform policies, enrolment codes for self-built apps, and sealed per-app
/// secrets (Play Integrity keys).
#[async_trait]
pub trait PlatformStore: Send + Sync {
    async fn set_platform_policy(
        &self,
        app_id: &str,
        platform: &str,
        policy: &serde_json::Value,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    async fn platform_policy(
        &self,
        app_id: &str,
        platform: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;
    /// Every platform policy of the app, by platform name.
    async fn platform_policies(
        &self,
        app_id: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError>;
    async fn create_enrolment(
        &self,
        enrolment: &Enrolment,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// A code is claimed with the grant it enrols ([`Store::record_grant`]): only an unused,
    /// unexpired, unrevoked code of the grant's app.
    async fn enrolment(&self, code_sha256: &str) -> Result<Option<Enrolment>, StoreError>;
    async fn list_enrolments(&self, app_id: &str) -> Result<Vec<Enrolment>, StoreError>;
    /// The build identities enrolled for the app, less revoked enrolments.
    async fn enrolled_identities(&self, app_id: &str) -> Result<Vec<String>, StoreError>;
    /// Revokes an enrolment (used or not) and the installation it enrolled (appending that to
    /// the revocation feed); `NotFound` for an unknown code. The audit detail gains
    /// `newly_revoked` and `installation_id`.
    async fn revoke_enrolment(
        &self,
        app_id: &str,
        code_sha256: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<EnrolmentRevocation, StoreError>;
    async fn set_app_secret(
        &self,
        app_id: &str,
        name: &str,
        sealed: &[u8],
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    async fn app_secret(&self, app_id: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// One operator secret: its current version, sealed (`seal::secret_label` is its label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub app_id: String,
    pub name: String,
    /// 1 when set, one more at each rotation.
    pub version: i64,
    pub sealed: Vec<u8>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

/// Operator secrets: credentials of an app's upstream that the gateway injects into forwarded
/// requests, so that no app holds them. Values arrive sealed; the store never sees them.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores version 1 of a new secret; `Conflict("secret")` if the app has one of that
    /// name, `NotFound("app")` for an unknown app.
    async fn create_secret(
        &self,
        secret: &SecretRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Replaces the value of version `from_version` with `sealed` as version
    /// `from_version + 1`: `NotFound("secret")` if there is none, `Conflict("secret version")`
    /// if another rotation came first.
    async fn rotate_secret(
        &self,
        app_id: &str,
        name: &str,
        from_version: i64,
        sealed: &[u8],
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Deletes a secret; `NotFound("secret")` if there is none.
    async fn delete_secret(
        &self,
        app_id: &str,
        name: &str,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// One app's secrets (or every app's, with `None`), by app and name.
    async fn secrets(&self, app_id: Option<&str>) -> Result<Vec<SecretRecord>, StoreError>;
}

/// A credential for an app that cannot attest: a Nightscout follower's share link or a legacy
/// uploader's token. Only digests of the secret are stored (`medgate_verify::credential`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialRecord {
    /// Public identifier (`cred_` and 16 hex), what lists, audit entries and revocation name.
    pub id: String,
    pub app_id: String,
    /// `follower` or `uploader`.
    pub kind: String,
    /// The operator's label ("School nurse").
    pub name: String,
    /// What the credential may do, as route scopes.
    pub scopes: Vec<String>,
    /// Hex SHA-256 of the secret, and of the secret's SHA-1 hex.
    #[serde(skip)]
    pub digest: String,
    #[serde(skip)]
    pub sha1_digest: String,
    pub created_at: UnixTime,
    pub expires_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
}

/// Credentials for apps that cannot attest.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Stores a new credential; `NotFound("app")` for an unknown app, `Conflict("credential")`
    /// if the id is taken.
    async fn create_credential(
        &self,
        credential: &CredentialRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Marks a credential revoked at `at`; `NotFound("credential")` if there is none,
    /// `Conflict("credential revoked")` if it already was.
    async fn revoke_credential(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// One app's credentials (or every app's, with `None`), revoked ones too, by app and id.
    async fn credentials(&self, app_id: Option<&str>) -> Result<Vec<CredentialRecord>, StoreError>;
}

/// Where a partner backend's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartnerKeys {
    /// A JWKS URL the control plane fetches (and caches, bounded).
    Url(String),
    /// A JWKS document the operator registered from a file.
    Jwks(String),
}

/// A partner backend (SMART Backend Services): a server that gets short-lived, scoped tokens
/// with a client assertion signed by a key from its JWKS. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartnerRecord {
    /// Public identifier and OAuth `client_id` (`ptn_` and 16 hex).
    pub id: String,
    /// The operator's label ("St. Elsewhere clinic EHR").
    pub name: String,
    pub keys: PartnerKeys,
    /// SMART scopes it may be granted (`system/Observation.rs`, …).
    pub scopes: Vec<String>,
    /// The `aud` of its tokens, when not the gateway's own.
    pub audience: Option<String>,
    /// Client addresses (CIDR) it may come from; empty: any.
    pub ip_allow: Vec<String>,
    /// Tokens only with a DPoP proof (RFC 9449 §5), bound to its key.
    pub require_dpop: bool,
    pub created_at: UnixTime,
    /// When its keys were last replaced.
    pub rotated_at: Option<UnixTime>,
    pub disabled_at: Option<UnixTime>,
}

/// Partner backends.
#[async_trait]
pub trait PartnerStore: Send + Sync {
    /// Stores a new partner; `Conflict("partner")` if the id is taken.
    async fn create_partner(
        &self,
        partner: &PartnerRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Marks a partner disabled at `at`; `NotFound("partner")` if there is none,
    /// `Conflict("partner disabled")` if it already was.
    async fn disable_partner(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Replaces a partner's key source and sets `rotated_at`; `NotFound("partner")` if there
    /// is none, `Conflict("partner disabled")` if it is disabled.
    async fn rotate_partner_keys(
        &self,
        id: &str,
        keys: &PartnerKeys,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// One partner, disabled or not.
    async fn partner(&self, id: &str) -> Result<Option<PartnerRecord>, StoreError>;
    /// Every partner, disabled ones too, by id.
    async fn partners(&self) -> Result<Vec<PartnerRecord>, StoreError>;
}

/// One signed TUF metadata file the deployment published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustMetadataRecord {
    /// `root`, `timestamp`, `snapshot` or `targets`.
    pub role: String,
    pub version: i64,
    pub body: Vec<u8>,
    pub expires_at: UnixTime,
    pub created_at: UnixTime,
}

/// An online TUF key (timestamp, snapshot or targets), its seed sealed under
/// `seal::trust_key_label(key_id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustKeyRecord {
    pub key_id: String,
    pub role: String,
    pub sealed: Vec<u8>,
    pub created_at: UnixTime,
    pub retired_at: Option<UnixTime>,
}

/// The deployment's TUF repository: published metadata, online keys, and the pins the next
/// publication carries. A (role, version) is written once: two replicas publishing at once
/// get one winner and a `Conflict` for the other.
#[async_trait]
pub trait TrustStore: Send + Sync {
    /// Stores root version 1 and the online keys; `Conflict("trust repository")` if a root
    /// exists.
    async fn init_trust(
        &self,
        root: &TrustMetadataRecord,
        keys: &[TrustKeyRecord],
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Appends a root (the version after the latest, else `Conflict("root version")`) and, in
    /// the same unit, retires the online keys of the roles `keys` replaces and adds them.
    async fn add_root(
        &self,
        root: &TrustMetadataRecord,
        keys: &[TrustKeyRecord],
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// Publishes files (targets, snapshot, timestamp, or a timestamp alone) together;
    /// `Conflict("trust metadata version")` if any (role, version) exists. With `audit`, the
    /// entry commits with them.
    async fn publish_trust(
        &self,
        files: &[TrustMetadataRecord],
        audit: Option<&NewAuditEntry>,
    ) -> Result<(), StoreError>;
    /// The latest file of a role, or the given version.
    async fn trust_metadata(
        &self,
        role: &str,
        version: Option<i64>,
    ) -> Result<Option<TrustMetadataRecord>, StoreError>;
    /// Every root version, oldest first.
    async fn trust_roots(&self) -> Result<Vec<TrustMetadataRecord>, StoreError>;
    /// The online keys not retired.
    async fn trust_keys(&self) -> Result<Vec<TrustKeyRecord>, StoreError>;
    /// Adds a pin to a host pattern; `Conflict("pin")` if it is there.
    async fn add_pin(&self, pin: &PinRecord, audit: &NewAuditEntry) -> Result<(), StoreError>;
    /// Removes one pin of a pattern, or all of them (`pin` `None`); how many went, and
    /// `NotFound("pin")` if none.
    async fn remove_pins(
        &self,
        pattern: &str,
        pin: Option<&str>,
        audit: &NewAuditEntry,
    ) -> Result<usize, StoreError>;
    /// Every pin, by pattern then pin.
    async fn pins(&self) -> Result<Vec<PinRecord>, StoreError>;
}

/// The telemetry series: counts per minute of decisions and gateway outcomes
/// ([`TelemetryCount`], each part from a fixed set). Not audited: the audit log holds the
/// decisions themselves; this is a summary of them for charts, and is pruned.
#[async_trait]
pub trait TelemetryStore: Send + Sync {
    /// Adds each count to its minute's row (`at` is the minute's start), creating it.
    async fn add_telemetry(&self, counts: &[TelemetryCount]) -> Result<(), StoreError>;
    /// The counts of minutes in `[from, to)`, summed per period of `step` seconds counted from
    /// `from` (`at` is the period's start), ordered by period, series, outcome, reason and
    /// platform.
    async fn telemetry(
        &self,
        from: UnixTime,
        to: UnixTime,
        step: i64,
    ) -> Result<Vec<TelemetryCount>, StoreError>;
    /// Removes the minutes before `before`; returns how many rows went.
    async fn prune_telemetry(&self, before: UnixTime) -> Result<u64, StoreError>;
}

/// A console operator: a name, a role and the Argon2id hash of their password (PHC string).
/// No `Debug`: the hash is a secret's stand-in.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    pub name: String,
    pub role: OperatorRole,
    pub password_hash: String,
    pub created_at: UnixTime,
}

/// A console session: the SHA-256 (hex) of the cookie's random value, never the value, so the
/// table cannot be replayed as cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id_sha256: String,
    pub operator: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
}

/// Console operators and their sessions. Adding and removing an operator are admin changes,
/// audited; a session's start is audited with it (the operator's name as actor); a session
/// belongs to its operator, and removing the operator ends every one of its sessions in the
/// same unit.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// `Conflict("operator")` if the name is taken.
    async fn create_operator(
        &self,
        operator: &OperatorRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    async fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError>;
    /// Every operator, by name.
    async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError>;
    /// Removes an operator and ends their sessions; `NotFound("operator")` if there is none.
    async fn remove_operator(&self, name: &str, audit: &NewAuditEntry) -> Result<(), StoreError>;
    /// Starts a session of an existing operator (`NotFound("operator")` otherwise), with the
    /// sign-in's audit entry.
    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError>;
    /// The session and its operator, if the session exists and has not expired at `now`.
    async fn console_session(
        &self,
        id_sha256: &str,
        now: UnixTime,
    ) -> Result<Option<(ConsoleSession, OperatorRecord)>, StoreError>;
    /// Ends a session (signing out); ending one that is gone is not an error.
    async fn end_console_session(&self, id_sha256: &str) -> Result<(), StoreError>;
    /// Removes sessions expired at `now`; how many went.
    async fn purge_console_sessions(&self, now: UnixTime) -> Result<u64, StoreError>;
}

/// Persistence for every part of medgate: one trait per aggregate, so a backend implements
/// (and a reader finds) each part on its own. Callers hold an `Arc<dyn Store>`.
///
/// Every method that makes an admin change takes the change's audit entry and appends it in
/// the change's own transaction: a change is never stored without its entry, nor an entry
/// without its change. A change whose outcome only the store learns adds it to the entry's
/// detail (documented per method).
#[async_trait]
pub trait Store:
    AppStore
    + InstallationStore
    + KeyStore
    + AuditStore
    + PlatformStore
    + SecretStore
    + CredentialStore
    + PartnerStore
    + TrustStore
    + TelemetryStore
    + OperatorStore
    + copy::TableStore
    + 'static
{
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Walks the whole audit log and checks every link. `Ok` carries the number of entries and the
/// head hash (hex), which can be anchored outside the database.
pub async fn verify_audit_chain(
    store: &dyn Store,
) -> Result<Result<(u64, String), ChainBreak>, StoreError> {
    Ok(audit_chain_report(store, None)
        .await?
        .map(|report| (report.entries, report.head)))
}

/// What a walk of the audit chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// The sequence number of the head (the number of entries ever appended).
    pub entries: u64,
    /// The head's hash, hex.
    pub head: String,
    /// The first entry still stored: above 1 when the log was pruned (that entry is vouched for
    /// by the signed checkpoint the pruning used, not by the chain).
    pub first_seq: i64,
    /// Whether an entry with the expected hash is in the chain (true when none was asked for).
    pub contains_expected: bool,
}

/// Every audit entry after seq `after`, in seq order, a page at a time, until `visit` says
/// stop (`false`) or fails.
pub async fn each_audit_entry<E: From<StoreError>>(
    store: &dyn Store,
    mut after: i64,
    mut visit: impl FnMut(AuditEntry) -> Result<bool, E>,
) -> Result<(), E> {
    loop {
        let batch = store.audit_entries(after, 1000).await?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.seq;
        for entry in batch {
            if !visit(entry)? {
                return Ok(());
            }
        }
    }
}

/// As [`verify_audit_chain`], for a log that may have been pruned, and whether an entry with
/// hash `expected` is in the chain: a head kept outside the database that is no longer found
/// means the tail was cut off or the chain rewritten.
pub async fn audit_chain_report(
    store: &dyn Store,
    expected: Option<[u8; 32]>,
) -> Result<Result<ChainReport, ChainBreak>, StoreError> {
    audit_chain_report_visiting(store, expected, |_| {}).await
}

/// As [`audit_chain_report`], handing `visit` each entry once it verified, in one pass (what a
/// caller counts is then exactly what the chain vouches for).
pub async fn audit_chain_report_visiting(
    store: &dyn Store,
    expected: Option<[u8; 32]>,
    mut visit: impl FnMut(&AuditEntry),
) -> Result<Result<ChainReport, ChainBreak>, StoreError> {
    let mut verifier = None;
    let mut first_seq = 1;
    let mut found = expected.is_none();
    let mut broken = None;
    each_audit_entry(store, 0, |entry| {
        let verifier = verifier.get_or_insert_with(|| {
            first_seq = entry.seq;
            if entry.seq == 1 {
                audit::ChainVerifier::new()
            } else {
                audit::ChainVerifier::resuming_at(entry.seq)
            }
        });
        if let Err(chain_break) = verifier.check(&entry) {
            broken = Some(chain_break);
            return Ok::<_, StoreError>(false);
        }
        found |= expected == Some(entry.hash);
        visit(&entry);
        Ok(true)
    })
    .await?;
    if let Some(chain_break) = broken {
        return Ok(Err(chain_break));
    }
    let (entries, head) = verifier.unwrap_or_default().finish();
    Ok(Ok(ChainReport {
        entries,
        head,
        first_seq,
        contains_expected: found,
    }))
}
