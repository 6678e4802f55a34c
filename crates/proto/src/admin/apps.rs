//! Apps, their releases, platform policies and enrolment codes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::policy::{AppPolicy, SdkEvidence, default_degrade_on, default_reject_on};
use crate::time::UnixTime;
use crate::wire::SignalKind;

/// `POST /apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateApp {
    /// 1-128 characters of `A-Z a-z 0-9 . _ -`.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::app_id))]
    pub app_id: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::scopes))]
    pub scopes: Vec<String>,
    /// A subset of `scopes`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::scopes))]
    pub limited_scopes: Vec<String>,
    /// Signals that reject; the defaults, less any `degrade_on` claims, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_on: Option<BTreeSet<SignalKind>>,
    /// Signals that degrade; the defaults, less any `reject_on` claims, when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degrade_on: Option<BTreeSet<SignalKind>>,
    /// How far SDK evidence is trusted; `limited` unless said.
    #[serde(default)]
    pub sdk_evidence: SdkEvidence,
    /// Evidence must carry its detection pass's coverage.
    #[serde(default)]
    pub require_coverage: bool,
}

impl CreateApp {
    /// The policy asked for. Where only one of the two signal lists is given, the other keeps
    /// its defaults minus whatever the given list claims.
    pub fn policy(self) -> AppPolicy {
        let (reject_on, degrade_on) = match (self.reject_on, self.degrade_on) {
            (Some(reject), Some(degrade)) => (reject, degrade),
            (Some(reject), None) => {
                let degrade = default_degrade_on().difference(&reject).copied().collect();
                (reject, degrade)
            }
            (None, Some(degrade)) => {
                let reject = default_reject_on().difference(&degrade).copied().collect();
                (reject, degrade)
            }
            (None, None) => (default_reject_on(), default_degrade_on()),
        };
        AppPolicy {
            scopes: self.scopes,
            limited_scopes: self.limited_scopes,
            reject_on,
            degrade_on,
            sdk_evidence: self.sdk_evidence,
            require_coverage: self.require_coverage,
        }
    }
}

/// A registered app and its policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct App {
    pub id: String,
    pub policy: AppPolicy,
    pub created_at: UnixTime,
}

/// `POST /apps/{app_id}/releases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddRelease {
    /// 1-64 characters of `A-Z a-z 0-9 . _ + -`.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::version))]
    pub version: String,
    /// Required for SDK evidence; hardware platforms attest the build by its signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::optional_sha256_hex))]
    pub sdk_binary_sha256: Option<String>,
    /// The build's version code (Android `versionCode`): required for Android Key Attestation
    /// and Play Integrity, which attest it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2147483647))]
    pub version_code: Option<i64>,
}

/// A registered build of an app: a version and, for SDK evidence, the SHA-256 of one of its
/// binaries (hardware platforms attest the build by its signer instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Release {
    pub app_id: String,
    pub version: String,
    pub binary_sha256: Option<String>,
    /// The build's version code (Android `versionCode`), for platforms that attest it.
    pub version_code: Option<i64>,
    pub created_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
}

/// Releases grouped by version (a version may have several builds), in version order.
pub fn releases_by_version(releases: &[Release]) -> BTreeMap<&str, Vec<&Release>> {
    let mut versions: BTreeMap<&str, Vec<&Release>> = BTreeMap::new();
    for release in releases {
        versions.entry(&release.version).or_default().push(release);
    }
    versions
}

/// When a version was revoked: the last of its builds' revocations, once every build is.
pub fn version_revoked_at(builds: &[&Release]) -> Option<UnixTime> {
    if builds.iter().all(|build| build.revoked_at.is_some()) {
        builds.iter().filter_map(|build| build.revoked_at).max()
    } else {
        None
    }
}

/// `POST /apps/{app_id}/releases/{version}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseRevoked {
    pub app_id: String,
    pub version: String,
    /// How many builds were newly revoked.
    pub revoked: u64,
}

/// `PUT` and `GET /apps/{app_id}/platforms/{platform}`. The policy's fields depend on the
/// platform (`apple-app-attest`, `android-key-attestation`, `play-integrity`); the server
/// answers with it normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlatformPolicy {
    pub app_id: String,
    pub platform: String,
    pub policy: serde_json::Value,
}

/// `GET /apps/{app_id}/platforms`: everything an app accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Platforms {
    pub app_id: String,
    pub sdk: SdkSettings,
    /// Policy by platform name.
    pub platforms: BTreeMap<String, serde_json::Value>,
    pub play_integrity_keys_configured: bool,
}

/// How an app takes SDK evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SdkSettings {
    pub evidence: SdkEvidence,
    pub require_coverage: bool,
}

/// `PUT /apps/{app_id}/play-integrity-keys`: the two strings the Play Console shows. Stored
/// sealed, never shown again.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlayIntegrityKeys {
    pub decryption_key: String,
    pub verification_key: String,
}

/// The answer to [`PlayIntegrityKeys`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlayIntegrityKeysSet {
    pub app_id: String,
    pub play_integrity_keys_configured: bool,
}

/// `POST /apps/{app_id}/enrolments` (the body may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateEnrolment {
    /// How long the code may be used, in seconds: 60 to 90 days, 7 days unless said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 7776000))]
    pub ttl_secs: Option<i64>,
}

/// A new enrolment code: shown once, the server keeps only its SHA-256. No `Debug`: the code
/// admits a build.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentCreated {
    pub app_id: String,
    pub code: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// A one-time enrolment code (by hash) and what it enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enrolment {
    pub code_sha256: String,
    pub app_id: String,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    pub used_at: Option<UnixTime>,
    pub installation_id: Option<String>,
    pub identity: Option<String>,
    /// When an operator revoked it: its identity is no longer admitted.
    pub revoked_at: Option<UnixTime>,
}

/// `POST /apps/{app_id}/enrolments/{code_sha256}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentRevoked {
    pub app_id: String,
    pub code_sha256: String,
    pub revoked: bool,
    pub newly_revoked: bool,
    /// The installation it enrolled, revoked with it.
    pub installation_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_signal_list_given_keeps_the_other_default_without_overlap() {
        let request = CreateApp {
            app_id: "a".into(),
            scopes: vec!["s".into()],
            limited_scopes: vec![],
            reject_on: Some([SignalKind::Root, SignalKind::Hook].into()),
            degrade_on: None,
            sdk_evidence: SdkEvidence::Allow,
            require_coverage: false,
        };
        let policy = request.policy();
        assert_eq!(
            policy.degrade_on,
            [SignalKind::Emulator, SignalKind::Mitm].into()
        );
        assert!(policy.validate().is_ok());
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let refused =
            serde_json::from_str::<CreateApp>(r#"{"app_id":"a","scopes":[],"admin":true}"#);
        assert!(refused.is_err());
        let refused = serde_json::from_str::<AddRelease>(r#"{"version":"1","sha":"x"}"#);
        assert!(refused.is_err());
    }
}
