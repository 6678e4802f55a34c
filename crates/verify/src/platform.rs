//! From verified platform evidence to a platform outcome, under the app's platform policy.
//!
//! Each hardware platform has a policy per app ([`ApplePolicy`], [`AndroidPolicy`],
//! [`PlayIntegrityPolicy`]). Verification happens in the platform modules; this module turns
//! what they proved into [`PlatformFacts`] and evaluates them:
//!
//! 1. Build identity: the Apple app id, or the Android package and signing certificate, must be
//!    the app's registered one, or one enrolled through the same platform with a one-time code
//!    (self-built apps, only while the platform policy allows enrolment), or be enrolling now
//!    with a valid code. Otherwise `app_identity_mismatch` (always rejects). A chain anchored at
//!    the AOSP software roots, whose keys anyone can use, proves no identity at all.
//! 2. Device and key checks the policy names (security level, boot state, patch age, Play
//!    labels, environment). Each failing check either rejects or degrades the grant to the
//!    limited scopes, as the policy's `on_failure` says.
//! 3. The integrity level reached, and whether the installation key itself is hardware-backed,
//!    go into the token, with the version code the platform attests (Android, Play), which the
//!    release check compares with the claimed release.
//!
//! Claims are never stronger than the evidence: Android's root of trust and patch level are
//! read from the hardware-enforced list only; the level is the weaker of the attestation and
//! KeyMint levels; a key is hardware-backed only when both are TEE or StrongBox and it was
//! generated inside; a Play test response is refused unless policy admits it, and then it
//! only ever degrades, at `self_reported`.
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
    /// Admit `testingDetails.isTestingResponse` verdicts (license testers), degraded and at
    /// `self_reported`. Off: they are refused.
    #[serde(default)]
    pub allow_test_responses: bool,
    #[serde(default)]
    pub on_failure: OnFailure,
}

impl ApplePolicy {
    /// The identities of the registered builds.
    pub fn registered_identities(&self) -> Vec<BuildIdentity> {
        self.app_ids
            .iter()
            .map(|id| BuildIdentity::apple(id))
            .collect()
    }
}

impl AndroidPolicy {
    /// The identities of the registered builds: the package with each registered signer.
    pub fn registered_identities(&self) -> Vec<BuildIdentity> {
        signer_identities(
            medgate_proto::wire::platform::ANDROID_KEY_ATTESTATION,
            &self.package_name,
            &self.signing_cert_digests,
        )
    }
}

impl PlayIntegrityPolicy {
    /// The identities of the registered builds: the package with each registered signer.
    pub fn registered_identities(&self) -> Vec<BuildIdentity> {
        signer_identities(
            medgate_proto::wire::platform::PLAY_INTEGRITY,
            &self.package_name,
            &self.signing_cert_digests,
        )
    }
}

fn signer_identities(platform: &str, package: &str, hex_digests: &[String]) -> Vec<BuildIdentity> {
    hex_digests
        .iter()
        .map(|hex| BuildIdentity(format!("{platform}:{package}:{}", hex.to_ascii_lowercase())))
        .collect()
}

/// A build identity: the string recorded when a self-built app is enrolled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BuildIdentity(String);

impl BuildIdentity {
    /// An Apple app id, `TEAMID.bundle.id`, attested by App Attest.
    pub fn apple(app_id: &str) -> Self {
        BuildIdentity(format!(
            "{}:{app_id}",
            medgate_proto::wire::platform::APPLE_APP_ATTEST
        ))
    }

    /// An Android package and the SHA-256 of a signing certificate, attested by Android Key
    /// Attestation.
    pub fn android(package: &str, digest: &[u8]) -> Self {
        BuildIdentity(format!(
            "{}:{package}:{}",
            medgate_proto::wire::platform::ANDROID_KEY_ATTESTATION,
            medgate_proto::hex::encode(digest)
        ))
    }

    /// The same, as Play Integrity reports it. A different identity: what one platform
    /// enrolled, another does not admit.
    pub fn play(package: &str, digest: &[u8]) -> Self {
        BuildIdentity(format!(
            "{}:{package}:{}",
            medgate_proto::wire::platform::PLAY_INTEGRITY,
            medgate_proto::hex::encode(digest)
        ))
    }

    pub fn from_stored(text: String) -> Self {
        BuildIdentity(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
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

/// Step 1: how the identities the evidence proves stand with the app. Enrolled identities
/// count only while the platform policy allows enrolment.
pub fn identity_standing(
    proven: &[BuildIdentity],
    registered: &[BuildIdentity],
    enrolled: &[BuildIdentity],
    allow_enrolment: bool,
    enrolling: bool,
) -> IdentityStanding {
    if proven.iter().any(|identity| registered.contains(identity)) {
        IdentityStanding::Registered
    } else if allow_enrolment && proven.iter().any(|identity| enrolled.contains(identity)) {
        IdentityStanding::Enrolled
    } else if allow_enrolment && enrolling && !proven.is_empty() {
        IdentityStanding::Enrolling
    } else {
        IdentityStanding::Unknown
    }
}

/// What a platform proved about the installation.
#[derive(Debug, Clone)]
pub struct PlatformFacts {
    identities: Vec<BuildIdentity>,
    level: IntegrityLevel,
    hardware_key: bool,
    version_code: Option<i64>,
    checks: Vec<Check>,
}

/// A non-cryptographic platform check and whether it passed. `fixed` overrides the policy's
/// `on_failure` for checks whose outcome policy does not choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Check {
    reason: Reason,
    passed: bool,
    fixed: Option<OnFailure>,
}

impl Check {
    fn new(reason: Reason, passed: bool) -> Self {
        Check {
            reason,
            passed,
            fixed: None,
        }
    }
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

    /// The app version code the platform attests (Android, Play); App Attest attests none.
    pub fn version_code(&self) -> Option<i64> {
        self.version_code
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
            version_code: None,
            checks: vec![Check::new(
                Reason::DevelopmentEnvironment,
                environment == Environment::Production || policy.allow_development,
            )],
        }
    }
}

impl PlatformFacts {
    /// From a verified Android key attestation. `installation_key` is the key that signed the
    /// evidence: when the attested key is that key, and it was generated inside a TEE or
    /// StrongBox, the token says the key is hardware-backed. Offline inspection, which has no
    /// installation key, passes `None` and learns whether the attested key is.
    pub fn android(
        attestation: &VerifiedAndroidAttestation,
        installation_key: Option<&PublicJwk>,
        policy: &AndroidPolicy,
        now: UnixTime,
    ) -> Self {
        let description = attestation.key_description();
        // A software root's private key is public: such a chain proves nothing.
        let software = attestation.anchor() == AnchorKind::Software;
        let weakest = if software {
            MinSecurityLevel::Software
        } else {
            rank(description.attestation_security_level)
                .min(rank(description.keymint_security_level))
        };
        let level = match weakest {
            MinSecurityLevel::StrongBox => IntegrityLevel::Strongbox,
            MinSecurityLevel::TrustedEnvironment => IntegrityLevel::Hardware,
            MinSecurityLevel::Software => IntegrityLevel::SelfReported,
        };
        let attested_app = description
            .attestation_application_id()
            .filter(|_| !software)
            .and_then(|app| {
                app.packages
                    .iter()
                    .find(|package| package.name == policy.package_name)
                    .map(|package| (app, package.version))
            });
        let identities = attested_app.map_or_else(Vec::new, |(app, _)| {
            app.signature_digests
                .iter()
                .map(|digest| BuildIdentity::android(&policy.package_name, digest))
                .collect()
        });
        let root = description.hardware_root_of_trust().filter(|_| !software);
        let mut checks = vec![Check::new(
            Reason::SecurityLevelInsufficient,
            !software && weakest >= policy.min_security_level,
        )];
        if policy.require_locked_bootloader {
            checks.push(Check::new(
                Reason::BootloaderUnlocked,
                root.is_some_and(|root| root.device_locked),
            ));
        }
        if policy.require_verified_boot {
            checks.push(Check::new(
                Reason::VerifiedBootFailed,
                root.is_some_and(|root| root.verified_boot_state == VerifiedBootState::Verified),
            ));
        }
        if let Some(max_months) = policy.max_patch_age_months {
            let fresh = description
                .hardware_os_patch_level()
                .filter(|_| !software)
                .and_then(patch_month_index)
                .is_some_and(|patch| month_index(now) - patch <= i64::from(max_months));
            checks.push(Check::new(Reason::PatchLevelOutdated, fresh));
        }
        let is_installation_key = match (attestation.leaf_key(), installation_key) {
            (PublicKey::P256(point), Some(key)) => *point == key.public_key_bytes(),
            (_, Some(_)) => false,
            (_, None) => true,
        };
        let hardware_key = weakest >= MinSecurityLevel::TrustedEnvironment
            && description.hardware_origin() == Some(KEY_ORIGIN_GENERATED)
            && is_installation_key;
        PlatformFacts {
            identities,
            level,
            hardware_key,
            version_code: attested_app.map(|(_, version)| version),
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
        let ours = app.package_name.as_deref() == Some(policy.package_name.as_str());
        let identities = if ours {
            app.certificate_sha256_digest
                .iter()
                .filter_map(|digest| {
                    medgate_proto::b64::decode(digest.trim_end_matches('='), 64).ok()
                })
                .map(|digest| BuildIdentity::play(&policy.package_name, &digest))
                .collect()
        } else {
            Vec::new()
        };
        let testing = verdict
            .testing_details
            .as_ref()
            .is_some_and(|details| details.is_testing_response);
        let labels = &verdict.device_integrity.device_recognition_verdict;
        let has = |label: DeviceLabel| labels.contains(&label);
        let level = if testing {
            IntegrityLevel::SelfReported
        } else if has(DeviceLabel::MeetsStrongIntegrity) {
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
        let mut checks = vec![Check::new(
            Reason::DeviceIntegrityInsufficient,
            policy
                .required_device_labels
                .iter()
                .all(|required| label_names.contains(required)),
        )];
        if testing {
            checks.push(Check {
                reason: Reason::TestResponse,
                passed: false,
                fixed: Some(if policy.allow_test_responses {
                    OnFailure::Degrade
                } else {
                    OnFailure::Reject
                }),
            });
        }
        if policy.require_play_recognized {
            checks.push(Check::new(
                Reason::AppUnrecognized,
                app.app_recognition_verdict == AppRecognitionVerdict::PlayRecognized,
            ));
        }
        if policy.require_licensed {
            let licensed = verdict.account_details.as_ref().is_some_and(|account| {
                account.app_licensing_verdict == AppLicensingVerdict::Licensed
            });
            checks.push(Check::new(Reason::AppUnlicensed, licensed));
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
            checks.push(Check::new(
                Reason::EnvironmentRisk,
                !risky_protect && !risky_apps,
            ));
        }
        PlatformFacts {
            identities,
            level,
            hardware_key: false,
            version_code: app.version_code.filter(|_| ours),
            checks,
        }
    }
}

/// KeyMint `origin` GENERATED: the key was made inside the secure environment.
const KEY_ORIGIN_GENERATED: i64 = 0;

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
    version_code: Option<i64>,
    rejections: Vec<Reason>,
    degradations: Vec<Reason>,
}

impl PlatformOutcome {
    /// SDK evidence proves nothing beyond the app's own report.
    pub fn sdk() -> Self {
        PlatformOutcome {
            level: IntegrityLevel::SelfReported,
            hardware_key: false,
            version_code: None,
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
    /// The version code the platform attests, for the release check.
    pub fn version_code(&self) -> Option<i64> {
        self.version_code
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
        match check.fixed.unwrap_or(on_failure) {
            OnFailure::Reject => rejections.push(check.reason),
            OnFailure::Degrade => degradations.push(check.reason),
        }
    }
    // Step 3.
    PlatformOutcome {
        level: facts.level,
        hardware_key: facts.hardware_key,
        version_code: facts.version_code,
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
            "apple-app-attest:ABCDE12345.org.loopkit.Loop"
        );
        assert_eq!(
            BuildIdentity::android("info.nightscout.androidaps", &[0xab, 0x01]).as_str(),
            "android-key-attestation:info.nightscout.androidaps:ab01"
        );
        assert_eq!(
            BuildIdentity::play("info.nightscout.androidaps", &[0xab, 0x01]).as_str(),
            "play-integrity:info.nightscout.androidaps:ab01"
        );
        let policy: AndroidPolicy = serde_json::from_str(
            r#"{"package_name": "info.nightscout.androidaps", "signing_cert_digests": ["AB01"]}"#,
        )
        .unwrap();
        assert_eq!(
            policy.registered_identities(),
            [BuildIdentity::android(
                "info.nightscout.androidaps",
                &[0xab, 0x01]
            )]
        );
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
