//! Attestation policy: from verified facts to a verdict.
//!
//! The facts are gathered by the caller (the challenge it consumed, the app's policy, the
//! registered releases, the installation's state); this module decides. The order of checks
//! is the order of the reason codes a client sees:
//!
//! 1. The challenge is fresh — required as a [`FreshChallenge`], which only
//!    [`FreshChallenge::check`] makes.
//! 2. The app is known (`app_unknown`).
//! 3. The release is registered (`release_unknown`), not revoked (`release_revoked`) and the
//!    measured binary is the registered one (`tamper_detected`); a platform that attests a
//!    version code attests the claimed release's (`version_mismatch`).
//! 4. The installation is not revoked (`installation_revoked`).
//! 5. Every reported signal is mapped through the app's policy: `reject_on` rejects with
//!    `<kind>_detected`, `degrade_on` grants only the limited scopes. A detection pass that
//!    examined too little to be a real one, or none reported where the app requires it
//!    ([`coverage_finding`]), counts as a `hook` signal: the detectors were silenced.
//! 6. The platform outcome (`crate::platform::evaluate`) adds its rejections and degradations,
//!    and sets the integrity level the token carries.
//!
//! Rejections in steps 3–6 are collected so the client learns every reason at once.

use std::collections::BTreeSet;

use medgate_proto::Thumbprint;
use medgate_proto::wire::{Coverage, Decision, IntegrityLevel, Reason, SignalKind};

use crate::UnixTime;
use crate::evidence::{PlatformEvidence, VerifiedEvidence};
use crate::platform::PlatformOutcome;

pub use medgate_proto::policy::{
    AppPolicy, PolicyError, SdkEvidence, default_degrade_on, default_reject_on,
};

/// Why a report's coverage is a signal (step 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoverageFinding {
    /// The app requires coverage and the evidence has none.
    Missing,
    /// Less than any real pass examines: the detectors were replaced or skipped.
    Implausible,
}

impl CoverageFinding {
    pub const fn as_str(self) -> &'static str {
        match self {
            CoverageFinding::Missing => "missing",
            CoverageFinding::Implausible => "implausible",
        }
    }
}

/// The least a real pass examines in any process: a dynamically or statically linked one
/// maps its executable's segments, a stack, the vDSO and its data (at least eight lines), has a
/// thread, and compares at least one module of at least a page of code.
const MIN_MAPS_LINES: u32 = 8;
const MIN_CODE_BYTES: u64 = 4096;

/// Whether the evidence's coverage is a signal under `policy`: present but below what any
/// real pass examines, or absent where the app requires it (App Attest evidence exempt).
pub fn coverage_finding(
    evidence: &VerifiedEvidence,
    policy: &AppPolicy,
) -> Option<CoverageFinding> {
    match evidence.coverage() {
        Some(coverage) if !plausible(coverage) => Some(CoverageFinding::Implausible),
        Some(_) => None,
        None if policy.require_coverage
            && !matches!(
                evidence.platform_evidence(),
                PlatformEvidence::AppleAttestation { .. } | PlatformEvidence::AppleAssertion { .. }
            ) =>
        {
            Some(CoverageFinding::Missing)
        }
        None => None,
    }
}

fn plausible(coverage: &Coverage) -> bool {
    coverage.maps_lines >= MIN_MAPS_LINES
        && coverage.threads >= 1
        && coverage.modules >= 1
        && coverage.code_bytes >= MIN_CODE_BYTES
}

/// A challenge as the store handed it back when the caller consumed it.
#[derive(Debug, Clone, Copy)]
pub struct ConsumedChallenge<'a> {
    pub app_id: &'a str,
    pub expires_at: UnixTime,
}

/// Proof that the evidence answers a challenge that was issued for its app, was unused until
/// now and has not expired.
#[derive(Debug)]
pub struct FreshChallenge(());

impl FreshChallenge {
    /// `consumed` is what the store returned when the caller atomically took the challenge the
    /// evidence names (`None`: unknown or already used).
    pub fn check(
        consumed: Option<ConsumedChallenge<'_>>,
        evidence: &VerifiedEvidence,
        now: UnixTime,
    ) -> Result<FreshChallenge, Reason> {
        match consumed {
            Some(challenge)
                if challenge.app_id == evidence.app_id() && now < challenge.expires_at =>
            {
                Ok(FreshChallenge(()))
            }
            _ => Err(Reason::ChallengeInvalid),
        }
    }
}

/// A registered release of the app at the evidence's version.
#[derive(Debug, Clone, Copy)]
pub struct RegisteredRelease<'a> {
    /// Lowercase hex SHA-256 of the binary, for SDK evidence; `None` for a release registered
    /// for hardware platforms only (they attest the build by signer, not by hash).
    pub binary_sha256: Option<&'a str>,
    /// The build's version code (Android `versionCode`), for platforms that attest it.
    pub version_code: Option<i64>,
    pub revoked: bool,
}

/// How the evidence's version and measurement compare with the registered releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseCheck {
    Unknown,
    Revoked,
    MeasurementMismatch,
    /// The platform attests a version code that no release of the claimed version carries.
    VersionMismatch,
    Matched,
}

impl ReleaseCheck {
    /// `releases` are the app's registered releases with the evidence's version; `platform` is
    /// what the hardware platform proved (the version code it attests, if any).
    ///
    /// SDK evidence must match a registered binary's measurement. A platform that attests a
    /// version code (Android, Play) must attest one the claimed release carries, so a build of
    /// a revoked release cannot pass by claiming another version. App Attest attests no version:
    /// for it the claimed version is the app's word, and revoking a release is advisory.
    pub fn evaluate(
        evidence: &VerifiedEvidence,
        releases: &[RegisteredRelease<'_>],
        platform: &PlatformOutcome,
    ) -> Self {
        if releases.is_empty() {
            return ReleaseCheck::Unknown;
        }
        if releases.iter().all(|release| release.revoked) {
            return ReleaseCheck::Revoked;
        }
        let found = match evidence.platform_evidence() {
            PlatformEvidence::Sdk {
                binary_sha256: measured,
            } => {
                let found = releases
                    .iter()
                    .find(|release| release.binary_sha256 == Some(measured.as_str()));
                if found.is_none() {
                    return ReleaseCheck::MeasurementMismatch;
                }
                found
            }
            _ => match platform.version_code() {
                None => return ReleaseCheck::Matched,
                Some(code) => {
                    let found = releases
                        .iter()
                        .find(|release| release.version_code == Some(code));
                    if found.is_none() {
                        return ReleaseCheck::VersionMismatch;
                    }
                    found
                }
            },
        };
        match found {
            Some(release) if release.revoked => ReleaseCheck::Revoked,
            _ => ReleaseCheck::Matched,
        }
    }
}

/// The installation's standing before this attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallationCheck {
    New,
    Known,
    Revoked,
}

/// What an attestation earns: the only value an access token can be issued from.
#[derive(Debug, Clone)]
pub struct Grant {
    decision: Decision,
    scopes: Vec<String>,
    reasons: Vec<Reason>,
    installation_id: Thumbprint,
    app_id: String,
    app_version: String,
    platform: &'static str,
    integrity_level: IntegrityLevel,
    hardware_key: bool,
}

impl Grant {
    pub fn decision(&self) -> Decision {
        self.decision
    }
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    /// Why the grant is limited (empty for a full grant).
    pub fn reasons(&self) -> &[Reason] {
        &self.reasons
    }
    pub fn installation_id(&self) -> &Thumbprint {
        &self.installation_id
    }
    pub fn app_id(&self) -> &str {
        &self.app_id
    }
    pub fn app_version(&self) -> &str {
        &self.app_version
    }
    pub fn platform(&self) -> &'static str {
        self.platform
    }
    pub fn integrity_level(&self) -> IntegrityLevel {
        self.integrity_level
    }
    pub fn hardware_key(&self) -> bool {
        self.hardware_key
    }
}

/// The decision.
#[derive(Debug, Clone)]
pub enum Verdict {
    Granted(Grant),
    Rejected(Vec<Reason>),
}

/// Steps 2–6 (step 1 is the [`FreshChallenge`] argument).
pub fn decide(
    evidence: &VerifiedEvidence,
    _fresh: &FreshChallenge,
    policy: Option<&AppPolicy>,
    release: ReleaseCheck,
    installation: InstallationCheck,
    platform: &PlatformOutcome,
) -> Verdict {
    // Step 2.
    let Some(policy) = policy else {
        return Verdict::Rejected(vec![Reason::AppUnknown]);
    };
    let sdk = matches!(evidence.platform_evidence(), PlatformEvidence::Sdk { .. });
    if sdk && policy.sdk_evidence == SdkEvidence::Deny {
        return Verdict::Rejected(vec![Reason::PlatformNotAllowed]);
    }
    let mut rejections = Vec::new();
    // Step 3.
    match release {
        ReleaseCheck::Unknown => rejections.push(Reason::ReleaseUnknown),
        ReleaseCheck::Revoked => rejections.push(Reason::ReleaseRevoked),
        ReleaseCheck::MeasurementMismatch => rejections.push(Reason::TamperDetected),
        ReleaseCheck::VersionMismatch => rejections.push(Reason::VersionMismatch),
        ReleaseCheck::Matched => {}
    }
    // Step 4.
    if installation == InstallationCheck::Revoked {
        rejections.push(Reason::InstallationRevoked);
    }
    // Step 5. Signal kinds this server does not know are recorded by the caller, not acted on.
    let mut reported: BTreeSet<SignalKind> = evidence
        .signals()
        .iter()
        .filter_map(|signal| SignalKind::from_name(&signal.kind))
        .collect();
    if coverage_finding(evidence, policy).is_some() {
        reported.insert(SignalKind::Hook);
    }
    let mut degradations = Vec::new();
    for kind in reported {
        if policy.reject_on.contains(&kind) {
            rejections.push(kind.reason());
        } else if policy.degrade_on.contains(&kind) {
            degradations.push(kind.reason());
        }
    }
    // Step 6. An app that accepts only hardware-backed evidence never grants on a platform
    // statement that proves no more than the app's own word (a software-rooted Android chain,
    // a Play test response).
    rejections.extend_from_slice(platform.rejections());
    if policy.sdk_evidence == SdkEvidence::Deny && platform.level() == IntegrityLevel::SelfReported
    {
        rejections.push(Reason::SecurityLevelInsufficient);
    }
    degradations.extend_from_slice(platform.degradations());
    if sdk && policy.sdk_evidence == SdkEvidence::Limited {
        degradations.push(Reason::SdkEvidenceLimited);
    }
    if !rejections.is_empty() {
        let mut seen = BTreeSet::new();
        rejections.retain(|reason| seen.insert(*reason));
        return Verdict::Rejected(rejections);
    }
    let (decision, scopes) = if degradations.is_empty() {
        (Decision::Allow, policy.scopes.clone())
    } else {
        (Decision::AllowLimited, policy.limited_scopes.clone())
    };
    Verdict::Granted(Grant {
        decision,
        scopes,
        reasons: degradations,
        installation_id: evidence.installation_id().clone(),
        app_id: evidence.app_id().to_string(),
        app_version: evidence.app_version().to_string(),
        platform: evidence.platform().as_str(),
        integrity_level: platform.level(),
        hardware_key: platform.hardware_key(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::evidence::{self, EvidenceLimits};
    use crate::testkey::TestKey;

    const NOW: i64 = 1_800_000_000;

    pub(crate) fn evidence_with(signals: &[&str]) -> VerifiedEvidence {
        let mut claims = evidence::tests::claims(NOW);
        claims["signals"] = signals
            .iter()
            .map(|kind| serde_json::json!({"kind": kind, "detail": "seen"}))
            .collect();
        evidence::verify(
            &TestKey::new(7).evidence(&claims),
            &EvidenceLimits::default(),
            UnixTime::from_secs(NOW),
        )
        .unwrap()
    }

    fn evidence_covered(platform: &str, coverage: Option<serde_json::Value>) -> VerifiedEvidence {
        let mut claims = evidence::tests::claims(NOW);
        claims["signals"] = serde_json::json!([]);
        if platform == "apple-app-attest" {
            claims["platform"] = platform.into();
            claims["evidence"] =
                serde_json::json!({"apple_app_attest": {"key_id": "AAAA", "assertion": "AAAA"}});
        }
        if let Some(coverage) = coverage {
            claims["coverage"] = coverage;
        }
        evidence::verify(
            &TestKey::new(7).evidence(&claims),
            &EvidenceLimits::default(),
            UnixTime::from_secs(NOW),
        )
        .unwrap()
    }

    pub(crate) fn fresh(evidence: &VerifiedEvidence) -> FreshChallenge {
        let consumed = ConsumedChallenge {
            app_id: evidence.app_id(),
            expires_at: UnixTime::from_secs(NOW + 60),
        };
        FreshChallenge::check(Some(consumed), evidence, UnixTime::from_secs(NOW)).unwrap()
    }

    pub(crate) fn policy() -> AppPolicy {
        AppPolicy {
            scopes: vec!["entries:read".into(), "entries:write".into()],
            limited_scopes: vec!["entries:read".into()],
            reject_on: default_reject_on(),
            degrade_on: default_degrade_on(),
            sdk_evidence: SdkEvidence::Allow,
            require_coverage: false,
        }
    }

    fn reasons(verdict: Verdict) -> Vec<Reason> {
        match verdict {
            Verdict::Rejected(reasons) => reasons,
            Verdict::Granted(grant) => panic!("expected a rejection, got {grant:?}"),
        }
    }

    #[test]
    fn a_clean_installation_gets_every_scope() {
        let evidence = evidence_with(&[]);
        let Verdict::Granted(grant) = decide(
            &evidence,
            &fresh(&evidence),
            Some(&policy()),
            ReleaseCheck::Matched,
            InstallationCheck::New,
            &PlatformOutcome::sdk(),
        ) else {
            panic!("expected a grant");
        };
        assert_eq!(grant.decision(), Decision::Allow);
        assert_eq!(grant.scopes(), ["entries:read", "entries:write"]);
        assert!(grant.reasons().is_empty());
        assert_eq!(grant.installation_id(), evidence.installation_id());
    }

    #[test]
    fn degrade_signals_limit_the_scopes_and_say_why() {
        let evidence = evidence_with(&["root", "emulator", "something-new"]);
        let Verdict::Granted(grant) = decide(
            &evidence,
            &fresh(&evidence),
            Some(&policy()),
            ReleaseCheck::Matched,
            InstallationCheck::Known,
            &PlatformOutcome::sdk(),
        ) else {
            panic!("expected a grant");
        };
        assert_eq!(grant.decision(), Decision::AllowLimited);
        assert_eq!(grant.scopes(), ["entries:read"]);
        assert_eq!(
            grant.reasons(),
            [Reason::RootDetected, Reason::EmulatorDetected]
        );
    }

    #[test]
    fn every_rejection_reason() {
        let clean = evidence_with(&[]);
        let decide_with =
            |evidence: &VerifiedEvidence, policy: Option<&AppPolicy>, release, installation| {
                reasons(decide(
                    evidence,
                    &fresh(evidence),
                    policy,
                    release,
                    installation,
                    &PlatformOutcome::sdk(),
                ))
            };
        assert_eq!(
            decide_with(&clean, None, ReleaseCheck::Matched, InstallationCheck::New),
            [Reason::AppUnknown]
        );
        // SDK evidence under an app that denies it is refused here, in the core.
        let hardware_only = AppPolicy {
            sdk_evidence: SdkEvidence::Deny,
            ..policy()
        };
        assert_eq!(
            decide_with(
                &clean,
                Some(&hardware_only),
                ReleaseCheck::Matched,
                InstallationCheck::New
            ),
            [Reason::PlatformNotAllowed]
        );
        let p = policy();
        assert_eq!(
            decide_with(
                &clean,
                Some(&p),
                ReleaseCheck::Unknown,
                InstallationCheck::New
            ),
            [Reason::ReleaseUnknown]
        );
        assert_eq!(
            decide_with(
                &clean,
                Some(&p),
                ReleaseCheck::Revoked,
                InstallationCheck::New
            ),
            [Reason::ReleaseRevoked]
        );
        assert_eq!(
            decide_with(
                &clean,
                Some(&p),
                ReleaseCheck::MeasurementMismatch,
                InstallationCheck::New
            ),
            [Reason::TamperDetected]
        );
        assert_eq!(
            decide_with(
                &clean,
                Some(&p),
                ReleaseCheck::Matched,
                InstallationCheck::Revoked
            ),
            [Reason::InstallationRevoked]
        );
        let hostile = evidence_with(&[
            "hook",
            "debugger",
            "injected_library",
            "tamper",
            "root",
            "hook",
        ]);
        assert_eq!(
            decide_with(
                &hostile,
                Some(&p),
                ReleaseCheck::MeasurementMismatch,
                InstallationCheck::Revoked
            ),
            [
                Reason::TamperDetected,
                Reason::InstallationRevoked,
                Reason::DebuggerDetected,
                Reason::HookDetected,
                Reason::InjectedLibraryDetected,
            ]
        );
        let mut strict = policy();
        strict.degrade_on.clear();
        strict
            .reject_on
            .extend([SignalKind::Root, SignalKind::Emulator]);
        let rooted = evidence_with(&["root"]);
        assert_eq!(
            decide_with(
                &rooted,
                Some(&strict),
                ReleaseCheck::Matched,
                InstallationCheck::New
            ),
            [Reason::RootDetected]
        );
        let emulated = evidence_with(&["emulator"]);
        assert_eq!(
            decide_with(
                &emulated,
                Some(&strict),
                ReleaseCheck::Matched,
                InstallationCheck::New
            ),
            [Reason::EmulatorDetected]
        );
    }

    #[test]
    fn a_challenge_must_exist_be_unexpired_and_belong_to_the_app() {
        let evidence = evidence_with(&[]);
        let now = UnixTime::from_secs(NOW);
        let at = |app_id, expires_at| {
            Some(ConsumedChallenge {
                app_id,
                expires_at: UnixTime::from_secs(expires_at),
            })
        };
        assert!(FreshChallenge::check(at("org.example.cgm", NOW + 1), &evidence, now).is_ok());
        assert_eq!(
            FreshChallenge::check(None, &evidence, now).unwrap_err(),
            Reason::ChallengeInvalid
        );
        assert_eq!(
            FreshChallenge::check(at("org.example.cgm", NOW), &evidence, now).unwrap_err(),
            Reason::ChallengeInvalid
        );
        assert_eq!(
            FreshChallenge::check(at("org.other", NOW + 1), &evidence, now).unwrap_err(),
            Reason::ChallengeInvalid
        );
    }

    #[test]
    fn sdk_evidence_is_limited_unless_the_app_says_otherwise() {
        let evidence = evidence_with(&[]);
        let limited: AppPolicy =
            serde_json::from_str(r#"{"scopes":["a","b"],"limited_scopes":["a"]}"#).unwrap();
        assert_eq!(limited.sdk_evidence, SdkEvidence::Limited);
        let verdict = decide(
            &evidence,
            &fresh(&evidence),
            Some(&limited),
            ReleaseCheck::Matched,
            InstallationCheck::New,
            &PlatformOutcome::sdk(),
        );
        let Verdict::Granted(grant) = verdict else {
            panic!("a clean app under the limited default is granted, limited")
        };
        assert_eq!(grant.decision(), Decision::AllowLimited);
        assert_eq!(grant.scopes(), ["a"]);
        assert_eq!(grant.reasons(), [Reason::SdkEvidenceLimited]);
        // Policies stored before `sdk_evidence` existed keep their meaning.
        let legacy: AppPolicy =
            serde_json::from_str(r#"{"scopes":["a"],"allow_sdk_evidence":true}"#).unwrap();
        assert_eq!(legacy.sdk_evidence, SdkEvidence::Allow);
        let hardware: AppPolicy =
            serde_json::from_str(r#"{"scopes":["a"],"allow_sdk_evidence":false}"#).unwrap();
        assert_eq!(hardware.sdk_evidence, SdkEvidence::Deny);
        let written = serde_json::to_string(&legacy).unwrap();
        assert!(written.contains(r#""sdk_evidence":"allow""#), "{written}");
        assert!(!written.contains("allow_sdk_evidence"), "{written}");
    }

    #[test]
    fn releases_are_matched_by_measurement() {
        let evidence = evidence_with(&[]);
        let measured = "ab".repeat(32);
        let other = "cd".repeat(32);
        let release = |hash, revoked| RegisteredRelease {
            binary_sha256: Some(hash),
            version_code: None,
            revoked,
        };
        let sdk = PlatformOutcome::sdk();
        assert_eq!(
            ReleaseCheck::evaluate(&evidence, &[], &sdk),
            ReleaseCheck::Unknown
        );
        assert_eq!(
            ReleaseCheck::evaluate(
                &evidence,
                &[release(&other, false), release(&measured, false)],
                &sdk
            ),
            ReleaseCheck::Matched
        );
        assert_eq!(
            ReleaseCheck::evaluate(&evidence, &[release(&other, false)], &sdk),
            ReleaseCheck::MeasurementMismatch
        );
        assert_eq!(
            ReleaseCheck::evaluate(&evidence, &[release(&measured, true)], &sdk),
            ReleaseCheck::Revoked
        );
        assert_eq!(
            ReleaseCheck::evaluate(&evidence, &[release(&other, true)], &sdk),
            ReleaseCheck::Revoked
        );
    }

    #[test]
    fn policies_are_validated() {
        assert_eq!(policy().validate(), Ok(()));
        let mut bad = policy();
        bad.limited_scopes.push("admin".into());
        assert_eq!(
            bad.validate(),
            Err(PolicyError::LimitedNotSubset("admin".into()))
        );
        let mut bad = policy();
        bad.scopes.push("two words".into());
        assert_eq!(
            bad.validate(),
            Err(PolicyError::BadScope("two words".into()))
        );
        let mut bad = policy();
        bad.degrade_on.insert(SignalKind::Hook);
        assert_eq!(bad.validate(), Err(PolicyError::Overlap("hook")));
        let parsed: AppPolicy = serde_json::from_str(r#"{"scopes":["a"]}"#).unwrap();
        assert_eq!(parsed.reject_on, default_reject_on());
        assert!(
            serde_json::from_str::<AppPolicy>(r#"{"scopes":[],"reject_on":["teleport"]}"#).is_err()
        );
    }

    /// A pass that examined nothing (its detectors replaced) or no pass at all where the app
    /// requires one is a hook; a real pass's coverage, or none where not required, is not.
    #[test]
    fn silenced_or_missing_coverage_is_a_hook() {
        let real = serde_json::json!({"maps_lines": 412, "threads": 5, "modules": 11,
            "code_bytes": 9_500_000, "got_slots": 240, "code_sha256": "0f".repeat(32)});
        let silenced = |member: &str, value: u64| {
            let mut coverage = real.clone();
            coverage[member] = value.into();
            Some(coverage)
        };
        let requiring = AppPolicy {
            require_coverage: true,
            ..policy()
        };
        let lenient = AppPolicy {
            degrade_on: [SignalKind::Hook].into(),
            reject_on: [SignalKind::Debugger].into(),
            ..policy()
        };
        let verdict = |evidence: &VerifiedEvidence, policy: &AppPolicy| {
            decide(
                evidence,
                &fresh(evidence),
                Some(policy),
                ReleaseCheck::Matched,
                InstallationCheck::Known,
                &PlatformOutcome::sdk(),
            )
        };
        // Granted: a real pass's coverage, or none where not required, or none from App Attest.
        for (evidence, policy) in [
            (evidence_covered("sdk", Some(real.clone())), &requiring),
            (evidence_covered("sdk", None), &policy()),
            (evidence_covered("apple-app-attest", None), &requiring),
        ] {
            assert_eq!(coverage_finding(&evidence, policy), None);
            assert!(matches!(verdict(&evidence, policy), Verdict::Granted(_)));
        }
        // A hook, whatever the app requires: too little examined.
        for coverage in [
            silenced("maps_lines", 7),
            silenced("threads", 0),
            silenced("modules", 0),
            silenced("code_bytes", 4095),
        ] {
            let evidence = evidence_covered("sdk", coverage);
            assert_eq!(
                coverage_finding(&evidence, &policy()),
                Some(CoverageFinding::Implausible)
            );
            assert_eq!(
                reasons(verdict(&evidence, &policy())),
                [Reason::HookDetected]
            );
        }
        // Missing where required; the app's policy says what a hook costs.
        let evidence = evidence_covered("sdk", None);
        assert_eq!(
            coverage_finding(&evidence, &requiring),
            Some(CoverageFinding::Missing)
        );
        assert_eq!(
            reasons(verdict(&evidence, &requiring)),
            [Reason::HookDetected]
        );
        let evidence = evidence_covered("sdk", silenced("modules", 0));
        let Verdict::Granted(grant) = verdict(&evidence, &lenient) else {
            panic!("a policy that degrades on hooks degrades");
        };
        assert_eq!(grant.reasons(), [Reason::HookDetected]);
        // Stored policies without the member read as not requiring; true round-trips.
        let stored: AppPolicy = serde_json::from_str(r#"{"scopes":[]}"#).unwrap();
        assert!(!stored.require_coverage);
        assert!(!serde_json::to_string(&stored).unwrap().contains("coverage"));
        let json = serde_json::to_string(&requiring).unwrap();
        assert!(
            serde_json::from_str::<AppPolicy>(&json)
                .unwrap()
                .require_coverage
        );
    }
}
