//! From verified platform evidence to a platform outcome, under the app's platform policy.
//!
//! Each hardware platform has a policy per app ([`ApplePolicy`], [`AndroidPolicy`],
//! [`PlayIntegrityPolicy`]). Verification happens in the platform modules; this module turns
//! what they proved into [`PlatformFacts`] and evaluates them:
//!
//! 1. Build identity: the Apple app id, or the Android signing certificate, must be the app's
//!    registered one, or one enrolled with a one-time code (self-built apps), or be enrolling
//!    now with a valid code. Otherwise `app_identity_mismatch` (always rejects).
//! 2. Device and key checks the policy names (security level, boot state, patch age, Play
//!    labels, environment). Each failing check either rejects or degrades the grant to the
//!    limited scopes, as the policy's `on_failure` says.
//! 3. The integrity level reached, and whether the installation key itself is hardware-backed,
//!    go into the token.
//!
//! A [`PlatformOutcome`] is only made here; `policy::decide` requires one.

use medgate_proto::PublicJwk;
use medgate_proto::wire::{IntegrityLevel, Reason};
use serde::{Deserialize, Serialize};

use crate::UnixTime;
use crate::android::attestation::{AnchorKind, VerifiedAndroidAttestation};
use crate::android::key_description::{SecurityLevel, VerifiedBootState};
use crate::apple::{Environment, VerifiedAttestation};
use crate::play_integrity::{
    AppLicensingVerdict, AppRecognitionVerdict, DeviceLabel, RequestChecked, VerifiedVerdict,
};
use crate::x509::PublicKey;

/// What a failing, non-cryptographic platform check does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    Reject,
    /// Grant only the app's limited scopes.
    Degrade,
}

/// Apple App Attest policy for an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplePolicy {
    /// The registered builds, `TEAMID.bundle.id`.
    #[serde(default)]
    pub app_ids: Vec<String>,
    /// Accept keys from Apple's development environment.
    #[serde(default)]
    pub allow_development: bool,
    /// Accept self-built apps enrolled with a one-time code.
    #[serde(default)]
    pub allow_enrolment: bool,
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// A minimum key security level for Android.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MinSecurityLevel {
    Software,
    #[default]
    TrustedEnvironment,
    StrongBox,
}

fn yes() -> bool {
    true
}

/// Android Key Attestation policy for an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AndroidPolicy {
    pub package_name: String,
    /// SHA-256 of the registered signing certificates, lowercase hex.
    #[serde(default)]
    pub signing_cert_digests: Vec<String>,
    #[serde(default)]
    pub min_security_level: MinSecurityLevel,
    #[serde(default = "yes")]
    pub require_locked_bootloader: bool,
    #[serde(default = "yes")]
    pub require_verified_boot: bool,
    /// The oldest acceptable OS security patch, in months before now.
    #[serde(default)]
    pub max_patch_age_months: Option<u32>,
    #[serde(default)]
    pub allow_enrolment: bool,
    #[serde(default)]
    pub on_failure: OnFailure,
}

fn device_integrity() -> Vec<String> {
    vec!["MEETS_DEVICE_INTEGRITY".into()]
}

fn five_minutes() -> u32 {
    300
}

/// Play Integrity policy for an app. Its response keys are stored separately, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayIntegrityPolicy {
    pub package_name: String,
    /// SHA-256 of the registered signing certificates, lowercase hex (Play reports them in
    /// base64url; both are compared as bytes).
    #[serde(default)]
    pub signing_cert_digests: Vec<String>,
    /// Every label listed must be present in `deviceRecognitionVerdict`.
    #[serde(default = "device_integrity")]
    pub required_device_labels: Vec<String>,
    /// `appRecognitionVerdict` must be PLAY_RECOGNIZED (self-built apps are not).
    #[serde(default = "yes")]
    pub require_play_recognized: bool,
    #[serde(default)]
    pub require_licensed: bool,
    /// Treat Play Protect risk and capturing/controlling apps as a failing check.
    #[serde(default)]
    pub check_environment: bool,
    /// How old `timestampMillis` may be.
    #[serde(default = "five_minutes")]
    pub max_age_secs: u32,
    #[serde(default)]
    pub allow_enrolment: bool,
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// A build identity: the string recorded when a self-built app is enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BuildIdentity(String);

impl BuildIdentity {
    /// An Apple app id, `TEAMID.bundle.id`.
    pub fn apple(app_id: &str) -> Self {
        BuildIdentity(format!("apple:{app_id}"))
    }

    /// An Android signing certificate: SHA-256, from hex or raw bytes.
    pub fn signer(digest: &[u8]) -> Self {
        BuildIdentity(format!("signer:{}", medgate_proto::hex::encode(digest)))
    }

    pub fn from_stored(text: String) -> Self {
        BuildIdentity(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Apple team id, for an Apple identity.
    pub fn apple_team_id(&self) -> Option<&str> {
        self.0.strip_prefix("apple:")?.split('.').next()
    }
}

/// Whether the evidence's build identity is known to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStanding {
    /// One of the policy's registered builds.
    Registered,
    /// A build enrolled earlier with a one-time code.
    Enrolled,
    /// A valid, unused enrolment code came with this evidence.
    Enrolling,
    Unknown,
}

/// What a platform proved about the installation.
#[derive(Debug, Clone)]
pub struct PlatformFacts {
    identities: Vec<BuildIdentity>,
    level: IntegrityLevel,
    hardware_key: bool,
    checks: Vec<Check>,
}

/// A non-cryptographic platform check and whether it passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Check {
    reason: Reason,
    passed: bool,
}

impl PlatformFacts {
    /// The build identities this evidence proves (one for Apple; one per signing certificate
    /// for Android and Play).
    pub fn identities(&self) -> &[BuildIdentity] {
        &self.identities
    }

    pub fn level(&self) -> IntegrityLevel {
        self.level
    }

    /// From a verified App Attest attestation (first contact) for `app_id`.
    pub fn apple_attestation(
        attestation: &VerifiedAttestation,
        app_id: &str,
        policy: &ApplePolicy,
    ) -> Self {
        Self::apple(attestation.environment(), app_id, policy)
    }

    /// From a verified assertion by a key attested earlier in `environment` for `app_id`.
    pub fn apple_assertion(
        _: &crate::apple::VerifiedAssertion,
        environment: Environment,
        app_id: &str,
        policy: &ApplePolicy,
    ) -> Self {
        Self::apple(environment, app_id, policy)
    }

    fn apple(environment: Environment, app_id: &str, policy: &ApplePolicy) -> Self {
        PlatformFacts {
            identities: vec![BuildIdentity::apple(app_id)],
            level: IntegrityLevel::Hardware,
            // App Attest keys never leave the Secure Enclave, but they are not the
            // installation key; the installation key is bound to them by clientDataHash.
            hardware_key: false,
            checks: vec![Check {
                reason: Reason::DevelopmentEnvironment,
                passed: environment == Environment::Production || policy.allow_development,
            }],
        }
    }
}

impl PlatformFacts {
    /// From a verified Android key attestation. `installation_key` is the key that signed the
    /// evidence: when the attested key is that key, the token says the key is hardware-backed.
    pub fn android(
        attestation: &VerifiedAndroidAttestation,
        installation_key: &PublicJwk,
        policy: &AndroidPolicy,
        now: UnixTime,
    ) -> Self {
        let description = attestation.key_description();
        let software = attestation.anchor() == AnchorKind::Software;
        let attested_level = if software {
            SecurityLevel::Software
        } else {
            description.attestation_security_level
        };
        let level = match attested_level {
            SecurityLevel::StrongBox => IntegrityLevel::Strongbox,
            SecurityLevel::TrustedEnvironment => IntegrityLevel::Hardware,
            SecurityLevel::Software => IntegrityLevel::SelfReported,
        };
        let weakest = rank(attested_level).min(rank(description.keymint_security_level));
        let identities = match description.attestation_application_id() {
            Some(app)
                if app
                    .packages
                    .iter()
                    .any(|package| package.name == policy.package_name) =>
            {
                app.signature_digests
                    .iter()
                    .map(|digest| BuildIdentity::signer(digest))
                    .collect()
            }
            _ => Vec::new(),
        };
        let root = description.root_of_trust();
        let mut checks = vec![Check {
            reason: Reason::SecurityLevelInsufficient,
            passed: weakest >= policy.min_security_level,
        }];
        if policy.require_locked_bootloader {
            checks.push(Check {
                reason: Reason::BootloaderUnlocked,
                passed: root.is_some_and(|root| root.device_locked),
            });
        }
        if policy.require_verified_boot {
            checks.push(Check {
                reason: Reason::VerifiedBootFailed,
                passed: root
                    .is_some_and(|root| root.verified_boot_state == VerifiedBootState::Verified),
            });
        }
        if let Some(max_months) = policy.max_patch_age_months {
            let fresh = description
                .os_patch_level()
                .and_then(patch_month_index)
                .is_some_and(|patch| month_index(now) - patch <= i64::from(max_months));
            checks.push(Check {
                reason: Reason::PatchLevelOutdated,
                passed: fresh,
            });
        }
        let installation_point = installation_key.public_key_bytes();
        let hardware_key = !software
            && attested_level != SecurityLevel::Software
            && matches!(attestation.leaf_key(), PublicKey::P256(point) if *point == installation_point);
        PlatformFacts {
            identities,
            level,
            hardware_key,
            checks,
        }
    }

    /// From a decrypted, verified Play Integrity verdict whose request was checked.
    pub fn play_integrity(
        verdict: &VerifiedVerdict,
        _: RequestChecked,
        policy: &PlayIntegrityPolicy,
    ) -> Self {
        let app = &verdict.app_integrity;
        let identities = if app.package_name.as_deref() == Some(policy.package_name.as_str()) {
            app.certificate_sha256_digest
                .iter()
                .filter_map(|digest| {
                    medgate_proto::b64::decode(digest.trim_end_matches('='), 64).ok()
                })
                .map(|digest| BuildIdentity::signer(&digest))
                .collect()
        } else {
            Vec::new()
        };
        let labels = &verdict.device_integrity.device_recognition_verdict;
        let has = |label: DeviceLabel| labels.contains(&label);
        let level = if has(DeviceLabel::MeetsStrongIntegrity) {
            IntegrityLevel::Hardware
        } else if has(DeviceLabel::MeetsDeviceIntegrity) {
            IntegrityLevel::Device
        } else if has(DeviceLabel::MeetsBasicIntegrity) {
            IntegrityLevel::Basic
        } else {
            IntegrityLevel::SelfReported
        };
        let label_names: Vec<String> = labels
            .iter()
            .map(|label| label.as_str().to_string())
            .collect();
        let mut checks = vec![Check {
            reason: Reason::DeviceIntegrityInsufficient,
            passed: policy
                .required_device_labels
                .iter()
                .all(|required| label_names.contains(required)),
        }];
        if policy.require_play_recognized {
            checks.push(Check {
                reason: Reason::AppUnrecognized,
                passed: app.app_recognition_verdict == AppRecognitionVerdict::PlayRecognized,
            });
        }
        if policy.require_licensed {
            let licensed = verdict.account_details.as_ref().is_some_and(|account| {
                account.app_licensing_verdict == AppLicensingVerdict::Licensed
            });
            checks.push(Check {
                reason: Reason::AppUnlicensed,
                passed: licensed,
            });
        }
        if policy.check_environment {
            let environment = verdict.environment_details.as_ref();
            let risky_protect = environment
                .and_then(|details| details.play_protect_verdict.as_deref())
                .is_some_and(|verdict| matches!(verdict, "HIGH_RISK" | "MEDIUM_RISK"));
            let risky_apps = environment
                .and_then(|details| details.app_access_risk_verdict.as_ref())
                .is_some_and(|risk| {
                    risk.apps_detected
                        .iter()
                        .any(|kind| kind.starts_with("UNKNOWN_") && kind != "UNKNOWN_INSTALLED")
                });
            checks.push(Check {
                reason: Reason::EnvironmentRisk,
                passed: !risky_protect && !risky_apps,
            });
        }
        PlatformFacts {
            identities,
            level,
            hardware_key: false,
            checks,
        }
    }
}

fn rank(level: SecurityLevel) -> MinSecurityLevel {
    match level {
        SecurityLevel::Software => MinSecurityLevel::Software,
        SecurityLevel::TrustedEnvironment => MinSecurityLevel::TrustedEnvironment,
        SecurityLevel::StrongBox => MinSecurityLevel::StrongBox,
    }
}

/// Months since year 0 for a `YYYYMM` (or `YYYYMMDD`) patch level.
fn patch_month_index(patch: i64) -> Option<i64> {
    let yyyymm = if patch > 999_999 { patch / 100 } else { patch };
    let (year, month) = (yyyymm / 100, yyyymm % 100);
    ((1..=12).contains(&month) && year > 1970).then_some(year * 12 + month - 1)
}

/// Months since year 0 of a Unix time (UTC, proleptic Gregorian).
fn month_index(now: UnixTime) -> i64 {
    // Civil-from-days (Howard Hinnant's algorithm).
    let days = now.secs().div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year * 12 + month - 1
}

/// The outcome of the platform checks. Only [`evaluate`] and [`PlatformOutcome::sdk`] make one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformOutcome {
    level: IntegrityLevel,
    hardware_key: bool,
    rejections: Vec<Reason>,
    degradations: Vec<Reason>,
}

impl PlatformOutcome {
    /// SDK evidence proves nothing beyond the app's own report.
    pub fn sdk() -> Self {
        PlatformOutcome {
            level: IntegrityLevel::SelfReported,
            hardware_key: false,
            rejections: Vec::new(),
            degradations: Vec::new(),
        }
    }

    pub fn level(&self) -> IntegrityLevel {
        self.level
    }
    pub fn hardware_key(&self) -> bool {
        self.hardware_key
    }
    pub fn rejections(&self) -> &[Reason] {
        &self.rejections
    }
    pub fn degradations(&self) -> &[Reason] {
        &self.degradations
    }
}

/// Steps 1–3.
pub fn evaluate(
    facts: &PlatformFacts,
    identity: IdentityStanding,
    on_failure: OnFailure,
) -> PlatformOutcome {
    let mut rejections = Vec::new();
    let mut degradations = Vec::new();
    // Step 1.
    if identity == IdentityStanding::Unknown {
        rejections.push(Reason::AppIdentityMismatch);
    }
    // Step 2.
    for check in facts.checks.iter().filter(|check| !check.passed) {
        match on_failure {
            OnFailure::Reject => rejections.push(check.reason),
            OnFailure::Degrade => degradations.push(check.reason),
        }
    }
    // Step 3.
    PlatformOutcome {
        level: facts.level,
        hardware_key: facts.hardware_key,
        rejections,
        degradations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apple_facts(environment: Environment, allow_development: bool) -> PlatformFacts {
        let policy = ApplePolicy {
            app_ids: vec![],
            allow_development,
            allow_enrolment: false,
            on_failure: OnFailure::Reject,
        };
        PlatformFacts::apple(environment, "TEAM.org.example", &policy)
    }

    #[test]
    fn identity_standing_decides_first() {
        let facts = apple_facts(Environment::Production, false);
        for standing in [
            IdentityStanding::Registered,
            IdentityStanding::Enrolled,
            IdentityStanding::Enrolling,
        ] {
            let outcome = evaluate(&facts, standing, OnFailure::Reject);
            assert!(outcome.rejections().is_empty(), "{standing:?}");
            assert_eq!(outcome.level(), IntegrityLevel::Hardware);
        }
        let unknown = evaluate(&facts, IdentityStanding::Unknown, OnFailure::Degrade);
        assert_eq!(
            unknown.rejections(),
            [Reason::AppIdentityMismatch],
            "an unknown build is never degraded"
        );
    }

    #[test]
    fn failing_checks_reject_or_degrade_as_policy_says() {
        let development = apple_facts(Environment::Development, false);
        assert_eq!(
            evaluate(
                &development,
                IdentityStanding::Registered,
                OnFailure::Reject
            )
            .rejections(),
            [Reason::DevelopmentEnvironment]
        );
        let degraded = evaluate(
            &development,
            IdentityStanding::Registered,
            OnFailure::Degrade,
        );
        assert!(degraded.rejections().is_empty());
        assert_eq!(degraded.degradations(), [Reason::DevelopmentEnvironment]);
        let allowed = apple_facts(Environment::Development, true);
        assert!(
            evaluate(&allowed, IdentityStanding::Registered, OnFailure::Reject)
                .rejections()
                .is_empty()
        );
    }

    #[test]
    fn months_are_counted_in_utc() {
        assert_eq!(month_index(UnixTime::from_secs(0)), 1970 * 12);
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(
            month_index(UnixTime::from_secs(1_709_251_199)),
            2024 * 12 + 1
        );
        assert_eq!(
            month_index(UnixTime::from_secs(1_709_251_200)),
            2024 * 12 + 2
        );
        assert_eq!(patch_month_index(202408), Some(2024 * 12 + 7));
        assert_eq!(patch_month_index(20240805), Some(2024 * 12 + 7));
        assert_eq!(patch_month_index(202413), None);
        assert_eq!(patch_month_index(0), None);
    }

    #[test]
    fn identities_have_stable_text() {
        assert_eq!(
            BuildIdentity::apple("ABCDE12345.org.loopkit.Loop").as_str(),
            "apple:ABCDE12345.org.loopkit.Loop"
        );
        assert_eq!(
            BuildIdentity::apple("ABCDE12345.org.loopkit.Loop").apple_team_id(),
            Some("ABCDE12345")
        );
        assert_eq!(BuildIdentity::signer(&[0xab, 0x01]).as_str(), "signer:ab01");
        assert_eq!(BuildIdentity::signer(&[1]).apple_team_id(), None);
        let policy: AndroidPolicy =
            serde_json::from_str(r#"{"package_name": "info.nightscout.androidaps"}"#).unwrap();
        assert!(policy.require_locked_bootloader && policy.require_verified_boot);
        assert_eq!(
            policy.min_security_level,
            MinSecurityLevel::TrustedEnvironment
        );
        let play: PlayIntegrityPolicy = serde_json::from_str(r#"{"package_name": "p"}"#).unwrap();
        assert_eq!(play.required_device_labels, ["MEETS_DEVICE_INTEGRITY"]);
        assert_eq!(play.max_age_secs, 300);
    }
}
