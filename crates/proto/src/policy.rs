//! An app's attestation policy, as the admin API takes it and the store keeps it: which
//! scopes it grants, which signals reject or degrade, how far SDK evidence is trusted.
//! `medgate_verify::policy` decides with it; it lives here so the admin API's types can carry it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::wire::{SignalKind, names};

/// How far an app trusts SDK evidence, which is the app's own word about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SdkEvidence {
    /// The app's scopes, as for a hardware platform.
    Allow,
    /// Only the app's limited scopes (`sdk_evidence_limited`): the default, since a modified
    /// app can say anything.
    #[default]
    Limited,
    /// Refused (`platform_not_allowed`): only hardware platforms attest.
    Deny,
}

impl SdkEvidence {
    pub fn as_str(self) -> &'static str {
        match self {
            SdkEvidence::Allow => "allow",
            SdkEvidence::Limited => "limited",
            SdkEvidence::Deny => "deny",
        }
    }
}

/// An app's attestation policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, from = "StoredAppPolicy")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppPolicy {
    /// Scopes granted to a clean installation.
    pub scopes: Vec<String>,
    /// Scopes granted when a `degrade_on` signal is present (a subset of `scopes`).
    #[serde(default)]
    pub limited_scopes: Vec<String>,
    /// Signals that reject the attestation.
    #[serde(default = "default_reject_on")]
    pub reject_on: BTreeSet<SignalKind>,
    /// Signals that reduce the grant to `limited_scopes`.
    #[serde(default = "default_degrade_on")]
    pub degrade_on: BTreeSet<SignalKind>,
    /// How far SDK evidence is trusted.
    pub sdk_evidence: SdkEvidence,
    /// Evidence must carry the coverage of its detection pass (SDKs on Linux and Android
    /// report it; App Attest evidence is exempt, the iOS SDK has no code checks to cover).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_coverage: bool,
}

/// The stored form, also as written before `sdk_evidence` existed (`allow_sdk_evidence`: true
/// kept its full trust, false meant hardware only).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredAppPolicy {
    scopes: Vec<String>,
    #[serde(default)]
    limited_scopes: Vec<String>,
    #[serde(default = "default_reject_on")]
    reject_on: BTreeSet<SignalKind>,
    #[serde(default = "default_degrade_on")]
    degrade_on: BTreeSet<SignalKind>,
    #[serde(default)]
    sdk_evidence: Option<SdkEvidence>,
    #[serde(default)]
    allow_sdk_evidence: Option<bool>,
    #[serde(default)]
    require_coverage: bool,
}

impl From<StoredAppPolicy> for AppPolicy {
    fn from(stored: StoredAppPolicy) -> Self {
        let legacy = stored.allow_sdk_evidence.map(|allowed| {
            if allowed {
                SdkEvidence::Allow
            } else {
                SdkEvidence::Deny
            }
        });
        AppPolicy {
            scopes: stored.scopes,
            limited_scopes: stored.limited_scopes,
            reject_on: stored.reject_on,
            degrade_on: stored.degrade_on,
            sdk_evidence: stored.sdk_evidence.or(legacy).unwrap_or_default(),
            require_coverage: stored.require_coverage,
        }
    }
}

/// By default anything that means the app's code is not its own rejects.
pub fn default_reject_on() -> BTreeSet<SignalKind> {
    [
        SignalKind::Debugger,
        SignalKind::Hook,
        SignalKind::InjectedLibrary,
        SignalKind::Tamper,
    ]
    .into()
}

/// By default a rooted or emulated device still reads, with limited scopes.
pub fn default_degrade_on() -> BTreeSet<SignalKind> {
    [SignalKind::Root, SignalKind::Emulator, SignalKind::Mitm].into()
}

/// Why a policy was refused by [`AppPolicy::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("scope {0:?} is not a valid scope token")]
    BadScope(String),
    #[error("limited scope {0:?} is not one of the app's scopes")]
    LimitedNotSubset(String),
    #[error("signal {0} cannot both reject and degrade")]
    Overlap(&'static str),
}

impl AppPolicy {
    pub fn validate(&self) -> Result<(), PolicyError> {
        for scope in self.scopes.iter().chain(&self.limited_scopes) {
            if !names::is_scope(scope) {
                return Err(PolicyError::BadScope(scope.clone()));
            }
        }
        if let Some(extra) = self
            .limited_scopes
            .iter()
            .find(|s| !self.scopes.contains(s))
        {
            return Err(PolicyError::LimitedNotSubset(extra.clone()));
        }
        if let Some(kind) = self.reject_on.intersection(&self.degrade_on).next() {
            return Err(PolicyError::Overlap(kind.as_str()));
        }
        Ok(())
    }
}
