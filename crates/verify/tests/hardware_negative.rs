//! One test per rejection branch of the hardware verifiers, with evidence minted by the test
//! CAs in medgate-testkit (never trusted outside tests).

#![allow(clippy::unwrap_used)]

use medgate_proto::PublicJwk;
use medgate_proto::wire::{IntegrityLevel, Reason};
use medgate_testkit::attestation::{
    AppleEnvironment, AppleFaults, KeyDescription, TestAndroidCa, TestAppleCa, TestKey, sha256_of,
};
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{
    self as android, AnchorKind, AndroidError, AndroidRoots,
};
use medgate_verify::android::revocation::RevocationList;
use medgate_verify::apple::{self, AppAttestError, AttestationExpectations, DecodedAttestation};
use medgate_verify::platform::{
    self, AndroidPolicy, ApplePolicy, IdentityStanding, MinSecurityLevel, OnFailure, PlatformFacts,
};
use medgate_verify::x509::{Certificate, TrustAnchor, X509Error};

const APP_ID: &str = "ABCDE12345.org.example.cgm";
// 2027-01-15T08:00:00Z
const NOW: i64 = 1_800_000_000;

fn now() -> UnixTime {
    UnixTime::from_secs(NOW)
}

fn anchor(root_der: &[u8]) -> Vec<TrustAnchor> {
    vec![TrustAnchor::from_certificate(
        "test root",
        &Certificate::from_der(root_der, 0).unwrap(),
    )]
}

fn apple(
    ca: &TestAppleCa,
    object: &[u8],
    key_id: &[u8],
    client_data_hash: &[u8],
    app_id: &str,
) -> Result<apple::VerifiedAttestation, AppAttestError> {
    let decoded = DecodedAttestation::decode(object)?;
    let expect = AttestationExpectations {
        app_id,
        client_data_hash,
        key_id,
    };
    apple::verify_attestation(&decoded, &expect, &anchor(&ca.root_der()), now())
}

#[test]
fn apple_attestation_rejection_branches() {
    let ca = TestAppleCa::new();
    let hash = [3u8; 32];
    let genuine = ca.attest(APP_ID, &hash, AppleEnvironment::Production);
    let verified = apple(
        &ca,
        &genuine.attestation_object,
        &genuine.key_id,
        &hash,
        APP_ID,
    )
    .unwrap();
    assert_eq!(verified.public_key(), genuine.key.point().as_slice());

    // Wrong root: the genuine Apple root does not anchor a test chain.
    let decoded = DecodedAttestation::decode(&genuine.attestation_object).unwrap();
    let expect = AttestationExpectations {
        app_id: APP_ID,
        client_data_hash: &hash,
        key_id: &genuine.key_id,
    };
    assert_eq!(
        apple::verify_attestation(
            &decoded,
            &expect,
            &medgate_verify::roots::apple_app_attest(),
            now()
        )
        .unwrap_err(),
        AppAttestError::Chain(X509Error::UntrustedRoot)
    );
    // Broken link: the same chain under another CA's root.
    let other = TestAppleCa::new();
    assert_eq!(
        apple::verify_attestation(&decoded, &expect, &anchor(&other.root_der()), now())
            .unwrap_err(),
        AppAttestError::Chain(X509Error::UntrustedRoot)
    );
    // Expired leaf.
    let expired = ca.attest_with(
        APP_ID,
        &hash,
        AppleEnvironment::Production,
        AppleFaults {
            leaf_validity: Some((NOW - 100, NOW - 1)),
            ..Default::default()
        },
    );
    assert_eq!(
        apple(
            &ca,
            &expired.attestation_object,
            &expired.key_id,
            &hash,
            APP_ID
        )
        .unwrap_err(),
        AppAttestError::Chain(X509Error::Expired { index: 0 })
    );
    let early = ca.attest_with(
        APP_ID,
        &hash,
        AppleEnvironment::Production,
        AppleFaults {
            leaf_validity: Some((NOW + 1, NOW + 100)),
            ..Default::default()
        },
    );
    assert_eq!(
        apple(&ca, &early.attestation_object, &early.key_id, &hash, APP_ID).unwrap_err(),
        AppAttestError::Chain(X509Error::NotYetValid { index: 0 })
    );
    // Wrong nonce: another clientDataHash, or a nonce the leaf did not certify.
    assert_eq!(
        apple(
            &ca,
            &genuine.attestation_object,
            &genuine.key_id,
            &[4u8; 32],
            APP_ID
        )
        .unwrap_err(),
        AppAttestError::NonceMismatch
    );
    let bad_nonce = ca.attest_with(
        APP_ID,
        &hash,
        AppleEnvironment::Production,
        AppleFaults {
            wrong_nonce: true,
            ..Default::default()
        },
    );
    assert_eq!(
        apple(
            &ca,
            &bad_nonce.attestation_object,
            &bad_nonce.key_id,
            &hash,
            APP_ID
        )
        .unwrap_err(),
        AppAttestError::NonceMismatch
    );
    // Wrong key id, wrong app id, non-zero counter, wrong credential id, unknown aaguid.
    assert_eq!(
        apple(&ca, &genuine.attestation_object, &[0u8; 32], &hash, APP_ID).unwrap_err(),
        AppAttestError::KeyIdMismatch
    );
    assert_eq!(
        apple(
            &ca,
            &genuine.attestation_object,
            &genuine.key_id,
            &hash,
            "ABCDE12345.org.other"
        )
        .unwrap_err(),
        AppAttestError::AppIdMismatch
    );
    let counted = ca.attest_with(
        APP_ID,
        &hash,
        AppleEnvironment::Production,
        AppleFaults {
            counter: 1,
            ..Default::default()
        },
    );
    assert_eq!(
        apple(
            &ca,
            &counted.attestation_object,
            &counted.key_id,
            &hash,
            APP_ID
        )
        .unwrap_err(),
        AppAttestError::CounterNotZero
    );
    let credential = ca.attest_with(
        APP_ID,
        &hash,
        AppleEnvironment::Production,
        AppleFaults {
            wrong_credential_id: true,
            ..Default::default()
        },
    );
    assert_eq!(
        apple(
            &ca,
            &credential.attestation_object,
            &credential.key_id,
            &hash,
            APP_ID
        )
        .unwrap_err(),
        AppAttestError::CredentialIdMismatch
    );
    let aaguid = ca.attest_with(
        APP_ID,
        &hash,
        AppleEnvironment::Production,
        AppleFaults {
            aaguid: Some(*b"somethingelse!!!"),
            ..Default::default()
        },
    );
    assert_eq!(
        apple(
            &ca,
            &aaguid.attestation_object,
            &aaguid.key_id,
            &hash,
            APP_ID
        )
        .unwrap_err(),
        AppAttestError::UnknownAaguid
    );
}

#[test]
fn apple_assertion_rejection_branches() {
    let ca = TestAppleCa::new();
    let attested = ca.attest(APP_ID, &[3u8; 32], AppleEnvironment::Production);
    let hash = [5u8; 32];
    let assertion = attested.assert(APP_ID, &hash, 7);
    let point = attested.key.point();
    assert_eq!(
        apple::verify_assertion(&assertion, &point, APP_ID, &hash, 6)
            .unwrap()
            .counter(),
        7
    );
    // Replayed or non-increasing counter.
    assert_eq!(
        apple::verify_assertion(&assertion, &point, APP_ID, &hash, 7).unwrap_err(),
        AppAttestError::CounterNotIncreasing { got: 7, stored: 7 }
    );
    assert_eq!(
        apple::verify_assertion(&assertion, &point, APP_ID, &hash, 9).unwrap_err(),
        AppAttestError::CounterNotIncreasing { got: 7, stored: 9 }
    );
    // Signed by another key, or over another clientDataHash.
    let stranger = TestKey::generate().point();
    assert_eq!(
        apple::verify_assertion(&assertion, &stranger, APP_ID, &hash, 0).unwrap_err(),
        AppAttestError::BadSignature
    );
    assert_eq!(
        apple::verify_assertion(&assertion, &point, APP_ID, &[6u8; 32], 0).unwrap_err(),
        AppAttestError::BadSignature
    );
    // For another app.
    assert_eq!(
        apple::verify_assertion(&assertion, &point, "ABCDE12345.org.other", &hash, 0).unwrap_err(),
        AppAttestError::AppIdMismatch
    );
}

fn android_roots(ca: &TestAndroidCa) -> AndroidRoots {
    AndroidRoots {
        hardware: anchor(&ca.root_der()),
        software: vec![],
    }
}

const PACKAGE: &str = "info.nightscout.androidaps";
const SIGNER: [u8; 32] = [0xab; 32];

fn installation() -> (TestKey, PublicJwk) {
    let key = TestKey::generate();
    let jwk = PublicJwk::from_p256_sec1(&key.point()).unwrap();
    (key, jwk)
}

#[test]
fn android_chain_rejection_branches() {
    let ca = TestAndroidCa::new();
    let (key, _) = installation();
    let challenge = sha256_of(b"challenge");
    let description = KeyDescription::genuine(&challenge, PACKAGE, SIGNER, 202612);
    let chain = ca.chain(&key.point(), &description);
    let roots = android_roots(&ca);
    let verified = android::verify(&chain, &roots, None, Some(&challenge), now()).unwrap();
    assert_eq!(verified.anchor(), AnchorKind::Hardware);

    // Wrong root.
    assert_eq!(
        android::verify(
            &chain,
            &AndroidRoots::default(),
            None,
            Some(&challenge),
            now()
        )
        .unwrap_err(),
        AndroidError::Chain(X509Error::UntrustedRoot)
    );
    // Broken link signature: this leaf with another CA's intermediate and root.
    let other = TestAndroidCa::new();
    let mut spliced = other.chain(&key.point(), &description);
    spliced[0] = chain[0].clone();
    let error = android::verify(
        &spliced,
        &android_roots(&other),
        None,
        Some(&challenge),
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            AndroidError::Chain(
                X509Error::BadSignature { index: 0 } | X509Error::NameMismatch { index: 0 }
            )
        ),
        "{error}"
    );
    // A flipped bit in the leaf's signature.
    let mut flipped = chain.clone();
    let last = flipped[0].len() - 1;
    flipped[0][last] ^= 1;
    assert!(matches!(
        android::verify(&flipped, &roots, None, Some(&challenge), now()).unwrap_err(),
        AndroidError::Chain(
            X509Error::BadSignature { index: 0 } | X509Error::Malformed { index: 0, .. }
        )
    ));
    // Expired link.
    let expired = ca.chain_with(&key.point(), &description, Some((NOW - 100, NOW - 1)));
    assert_eq!(
        android::verify(&expired, &roots, None, Some(&challenge), now()).unwrap_err(),
        AndroidError::Chain(X509Error::Expired { index: 0 })
    );
    // Wrong challenge.
    assert_eq!(
        android::verify(&chain, &roots, None, Some(&[0u8; 32]), now()).unwrap_err(),
        AndroidError::ChallengeMismatch
    );
    // Revoked serial: the batch intermediate is on the list.
    let list = RevocationList::parse(
        format!(
            r#"{{"entries": {{"{}": {{"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}}}}"#,
            TestAndroidCa::INTERMEDIATE_SERIAL_HEX
        )
        .as_bytes(),
    )
    .unwrap();
    let revoked =
        android::verify(&chain, &roots, Some(&list), Some(&challenge), now()).unwrap_err();
    assert_eq!(
        revoked,
        AndroidError::Revoked {
            index: 1,
            status: "REVOKED".into()
        }
    );
    assert!(revoked.is_revocation());
    let suspended =
        RevocationList::parse(br#"{"entries": {"7E57": {"status": "SUSPENDED"}}}"#).unwrap();
    assert!(
        android::verify(&chain, &roots, Some(&suspended), Some(&challenge), now())
            .unwrap_err()
            .is_revocation()
    );
    // An attested key acting as a CA (key description above the leaf).
    let forged = ca.chain_with_description_in_intermediate(&key.point(), &description);
    assert_eq!(
        android::verify(&forged, &roots, None, Some(&challenge), now()).unwrap_err(),
        AndroidError::KeyDescriptionOutsideLeaf { index: 1 }
    );
}

fn android_outcome(
    description: &KeyDescription,
    policy: &AndroidPolicy,
    attested_key_is_installation_key: bool,
) -> (PlatformFacts, platform::PlatformOutcome) {
    let ca = TestAndroidCa::new();
    let (key, jwk) = installation();
    let point = if attested_key_is_installation_key {
        key.point()
    } else {
        TestKey::generate().point()
    };
    let chain = ca.chain(&point, description);
    let verified = android::verify(
        &chain,
        &android_roots(&ca),
        None,
        Some(&description.challenge),
        now(),
    )
    .unwrap();
    android_facts(&verified, &jwk, policy)
}

fn android_facts(
    verified: &android::VerifiedAndroidAttestation,
    jwk: &PublicJwk,
    policy: &AndroidPolicy,
) -> (PlatformFacts, platform::PlatformOutcome) {
    let facts = PlatformFacts::android(verified, Some(jwk), policy, now());
    let standing = platform::identity_standing(
        facts.identities(),
        &policy.registered_identities(),
        &[],
        policy.allow_enrolment,
        false,
    );
    let outcome = platform::evaluate(&facts, standing, policy.on_failure);
    (facts, outcome)
}

fn policy() -> AndroidPolicy {
    AndroidPolicy {
        package_name: PACKAGE.into(),
        signing_cert_digests: vec!["ab".repeat(32)],
        min_security_level: MinSecurityLevel::TrustedEnvironment,
        require_locked_bootloader: true,
        require_verified_boot: true,
        max_patch_age_months: Some(12),
        allow_enrolment: false,
        on_failure: OnFailure::Reject,
    }
}

#[test]
fn android_policy_rejection_branches() {
    let challenge = sha256_of(b"c");
    let genuine = KeyDescription::genuine(&challenge, PACKAGE, SIGNER, 202612);
    let (facts, outcome) = android_outcome(&genuine, &policy(), true);
    assert!(
        outcome.rejections().is_empty(),
        "{:?}",
        outcome.rejections()
    );
    assert_eq!(outcome.level(), IntegrityLevel::Hardware);
    assert!(
        outcome.hardware_key(),
        "the attested key is the installation key"
    );
    assert_eq!(facts.identities().len(), 1);
    let (_, other_key) = android_outcome(&genuine, &policy(), false);
    assert!(!other_key.hardware_key());

    let reasons = |change: &dyn Fn(&mut KeyDescription)| {
        let mut description = genuine.clone();
        change(&mut description);
        android_outcome(&description, &policy(), true)
            .1
            .rejections()
            .to_vec()
    };
    assert_eq!(
        reasons(&|d| d.package = "com.evil.clone".into()),
        [Reason::AppIdentityMismatch]
    );
    assert_eq!(
        reasons(&|d| d.signing_digests = vec![[0xcd; 32]]),
        [Reason::AppIdentityMismatch]
    );
    assert_eq!(
        reasons(&|d| d.security_level = 0),
        [Reason::SecurityLevelInsufficient]
    );
    assert_eq!(
        reasons(&|d| d.device_locked = false),
        [Reason::BootloaderUnlocked]
    );
    assert_eq!(
        reasons(&|d| d.verified_boot_state = 2),
        [Reason::VerifiedBootFailed]
    );
    assert_eq!(
        reasons(&|d| d.os_patch_level = 202501),
        [Reason::PatchLevelOutdated]
    );

    // StrongBox is its own level; a StrongBox minimum refuses TEE.
    let mut strongbox = genuine.clone();
    strongbox.security_level = 2;
    assert_eq!(
        android_outcome(&strongbox, &policy(), true).1.level(),
        IntegrityLevel::Strongbox
    );
    let strict = AndroidPolicy {
        min_security_level: MinSecurityLevel::StrongBox,
        ..policy()
    };
    assert_eq!(
        android_outcome(&genuine, &strict, true).1.rejections(),
        [Reason::SecurityLevelInsufficient]
    );
    // Degrade instead of reject.
    let lenient = AndroidPolicy {
        on_failure: OnFailure::Degrade,
        ..policy()
    };
    let mut unlocked = genuine.clone();
    unlocked.device_locked = false;
    let (_, degraded) = android_outcome(&unlocked, &lenient, true);
    assert!(degraded.rejections().is_empty());
    assert_eq!(degraded.degradations(), [Reason::BootloaderUnlocked]);
}

/// Claims no stronger than the evidence: each of these passed before the fix.
#[test]
fn android_claims_are_no_stronger_than_the_evidence() {
    let challenge = sha256_of(b"c");
    let genuine = KeyDescription::genuine(&challenge, PACKAGE, SIGNER, 202612);
    // Root of trust and patch level in softwareEnforced only: Android's word, not the TEE's.
    let mut android_says = genuine.clone();
    android_says.device_state_in_software_list = true;
    assert_eq!(
        android_outcome(&android_says, &policy(), true)
            .1
            .rejections(),
        [
            Reason::BootloaderUnlocked,
            Reason::VerifiedBootFailed,
            Reason::PatchLevelOutdated
        ]
    );
    // Attestation in StrongBox but the key in a TEE: the weaker level.
    let mut mixed = genuine.clone();
    mixed.security_level = 2;
    mixed.keymint_security_level = Some(1);
    let (_, outcome) = android_outcome(&mixed, &policy(), true);
    assert_eq!(outcome.level(), IntegrityLevel::Hardware);
    let strict = AndroidPolicy {
        min_security_level: MinSecurityLevel::StrongBox,
        ..policy()
    };
    assert_eq!(
        android_outcome(&mixed, &strict, true).1.rejections(),
        [Reason::SecurityLevelInsufficient]
    );
    // A software KeyMint under a TEE attestation: no hardware key, self-reported.
    let mut software_key = genuine.clone();
    software_key.keymint_security_level = Some(0);
    let (_, outcome) = android_outcome(&software_key, &policy(), true);
    assert_eq!(
        (outcome.level(), outcome.hardware_key()),
        (IntegrityLevel::SelfReported, false)
    );
    // An imported key is not hardware-generated.
    let mut imported = genuine.clone();
    imported.origin = 2;
    let (_, outcome) = android_outcome(&imported, &policy(), true);
    assert!(outcome.rejections().is_empty());
    assert!(
        !outcome.hardware_key(),
        "an imported key is not hardware-bound"
    );
    // The attested versionCode is carried to the release check.
    assert_eq!(
        android_outcome(&genuine, &policy(), true).1.version_code(),
        Some(KeyDescription::VERSION_CODE)
    );
}

/// A chain anchored at an AOSP software root (whose private keys are public) proves no
/// identity, no device state and no hardware, whatever it claims.
#[test]
fn a_software_rooted_chain_proves_nothing() {
    let ca = TestAndroidCa::new();
    let (key, jwk) = installation();
    let challenge = sha256_of(b"c");
    let mut description = KeyDescription::genuine(&challenge, PACKAGE, SIGNER, 202612);
    description.security_level = 2;
    let chain = ca.chain(&key.point(), &description);
    let roots = AndroidRoots {
        hardware: vec![],
        software: anchor(&ca.root_der()),
    };
    let verified = android::verify(&chain, &roots, None, Some(&challenge), now()).unwrap();
    assert_eq!(verified.anchor(), AnchorKind::Software);
    let lenient = AndroidPolicy {
        min_security_level: MinSecurityLevel::Software,
        require_locked_bootloader: false,
        require_verified_boot: false,
        max_patch_age_months: None,
        ..policy()
    };
    let (facts, outcome) = android_facts(&verified, &jwk, &lenient);
    assert!(facts.identities().is_empty());
    assert_eq!(facts.version_code(), None);
    assert_eq!(
        (outcome.level(), outcome.hardware_key()),
        (IntegrityLevel::SelfReported, false)
    );
    assert_eq!(
        outcome.rejections(),
        [
            Reason::AppIdentityMismatch,
            Reason::SecurityLevelInsufficient
        ]
    );
}

#[test]
fn enrolled_identities_count_only_where_enrolment_is_allowed() {
    let android = platform::BuildIdentity::android(PACKAGE, &[0x5e; 32]);
    let play = platform::BuildIdentity::play(PACKAGE, &[0x5e; 32]);
    let enrolled = [android.clone()];
    let standing = |proven: &platform::BuildIdentity, allow: bool| {
        platform::identity_standing(std::slice::from_ref(proven), &[], &enrolled, allow, false)
    };
    assert_eq!(standing(&android, true), IdentityStanding::Enrolled);
    assert_eq!(standing(&android, false), IdentityStanding::Unknown);
    assert_eq!(
        standing(&play, true),
        IdentityStanding::Unknown,
        "enrolled through another platform"
    );
    assert_eq!(
        platform::identity_standing(std::slice::from_ref(&play), &[], &[], false, true),
        IdentityStanding::Unknown,
        "no enrolling where the policy does not allow it"
    );
}

#[test]
fn apple_policy_identity_and_environment() {
    let ca = TestAppleCa::new();
    let hash = [1u8; 32];
    let development = ca.attest(APP_ID, &hash, AppleEnvironment::Development);
    let verified = apple(
        &ca,
        &development.attestation_object,
        &development.key_id,
        &hash,
        APP_ID,
    )
    .unwrap();
    let policy = ApplePolicy {
        app_ids: vec![APP_ID.into()],
        allow_development: false,
        allow_enrolment: false,
        on_failure: OnFailure::Reject,
    };
    let facts = PlatformFacts::apple_attestation(&verified, APP_ID, &policy);
    assert_eq!(
        facts.identities()[0].as_str(),
        format!("apple-app-attest:{APP_ID}")
    );
    assert_eq!(
        platform::evaluate(&facts, IdentityStanding::Registered, OnFailure::Reject).rejections(),
        [Reason::DevelopmentEnvironment]
    );
    let allowed = ApplePolicy {
        allow_development: true,
        ..policy
    };
    let facts = PlatformFacts::apple_attestation(&verified, APP_ID, &allowed);
    assert!(
        platform::evaluate(&facts, IdentityStanding::Registered, OnFailure::Reject)
            .rejections()
            .is_empty()
    );
}
