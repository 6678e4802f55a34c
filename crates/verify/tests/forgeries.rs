//! The forgery suite through the verification core: every case of `tests/forgeries/cases.json`
//! is built (`medgate_testkit::forgery`) and must be refused with exactly the code and
//! certificate index the file gives. Cases that start from a real vector skip, with one line,
//! when the vectors are absent (CI sets `MEDGATE_VECTORS`, so there they fail instead).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use medgate_testkit::attestation::{TestAndroidCa, TestKey};
use medgate_testkit::forgery::{self, AndroidClaims, AppleAssertionForgery, Case, Roots};
use medgate_testkit::{apple_vector_bytes, vector_json, vectors_dir};
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{self as android, AndroidRoots};
use medgate_verify::apple::{self, AttestationExpectations, DecodedAttestation};
use medgate_verify::roots;
use medgate_verify::x509::{Certificate, PublicKey, TrustAnchor, pem_blocks};

/// The instant for cases that name none: within the test CA's validity, after every real one.
const DEFAULT_AT: i64 = 1_796_000_000;

fn check(case: &Case, code: &str, index: Option<usize>, message: &str) {
    assert_eq!(
        (code, index),
        (case.expected_code.as_str(), case.expected_index),
        "{}: refused for another reason than the case file gives: {message}",
        case.id
    );
}

fn test_anchor(der: &[u8]) -> TrustAnchor {
    TrustAnchor::from_certificate("test CA", &Certificate::from_der(der, 0).unwrap())
}

#[test]
fn every_android_forgery_is_refused_for_its_reason() {
    let vectors = vectors_dir();
    let test_ca = TestAndroidCa::new();
    let installation = TestKey::generate();
    let challenge = [0x5a; 32];
    let claims = AndroidClaims {
        challenge: &challenge,
        point: &installation.point(),
        package: "org.example.cgm",
        signer: [0xab; 32],
    };
    let cases = forgery::cases("android-key-attestation");
    assert!(cases.len() >= 25, "the Android suite lost cases");
    let mut ran = 0;
    for case in &cases {
        let Some(chain) = forgery::android_chain(case, &claims, &test_ca, vectors.as_deref())
        else {
            continue;
        };
        let mut roots = AndroidRoots::default();
        if case.roots == Roots::TestCa {
            roots.hardware.push(test_anchor(&test_ca.root_der()));
        }
        let at = UnixTime::from_secs(case.at.unwrap_or(DEFAULT_AT));
        match android::verify(&chain, &roots, None, Some(&challenge), at) {
            Ok(_) => panic!("{}: a forgery was accepted", case.id),
            Err(error) => check(case, error.code(), error.index(), &error.to_string()),
        }
        ran += 1;
    }
    if vectors.is_some() {
        assert_eq!(ran, cases.len());
    }
}

/// The inputs a real App Attest vector was made for, from its `cases.json` entry.
fn apple_inputs(vectors: &std::path::Path, file: &str) -> serde_json::Value {
    let cases = vector_json(vectors, "apple-app-attest/cases.json");
    cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["file"] == file)
        .unwrap_or_else(|| panic!("no apple-app-attest case for {file}"))["inputs"]
        .clone()
}

fn hex(text: &serde_json::Value) -> Vec<u8> {
    medgate_proto::hex::decode(text.as_str().unwrap()).unwrap()
}

#[test]
fn every_apple_attestation_forgery_is_refused_for_its_reason() {
    let Some(vectors) = vectors_dir() else { return };
    let cases = forgery::cases("apple-attestation");
    assert!(cases.len() >= 10, "the App Attest suite lost cases");
    for case in &cases {
        let file = case.vector.as_deref().unwrap();
        let inputs = apple_inputs(&vectors, file);
        let object = forgery::apple_attestation(case, &apple_vector_bytes(&vectors, file));
        let key_id = base64::engine::general_purpose::STANDARD
            .decode(inputs["key_id_b64"].as_str().unwrap())
            .unwrap();
        let client_data_hash = hex(&inputs["client_data_hash_hex"]);
        let expect = AttestationExpectations {
            app_id: inputs["app_id"].as_str().unwrap(),
            client_data_hash: &client_data_hash,
            key_id: &key_id,
        };
        let at = UnixTime::from_secs(case.at.unwrap_or(DEFAULT_AT));
        let result = DecodedAttestation::decode(&object).and_then(|decoded| {
            apple::verify_attestation(&decoded, &expect, &roots::apple_app_attest(), at)
        });
        match result {
            Ok(_) => panic!("{}: a forgery was accepted", case.id),
            Err(error) => check(case, error.code(), error.index(), &error.to_string()),
        }
    }
}

#[test]
fn every_apple_assertion_forgery_is_refused_for_its_reason() {
    let Some(vectors) = vectors_dir() else { return };
    let cases = forgery::cases("apple-assertion");
    assert!(cases.len() >= 5, "the assertion suite lost cases");
    for case in &cases {
        let file = case.vector.as_deref().unwrap();
        let inputs = apple_inputs(&vectors, file);
        let spki = pem_blocks(
            inputs["public_key_spki_pem"].as_str().unwrap(),
            "PUBLIC KEY",
        )
        .unwrap()
        .remove(0);
        let Ok(PublicKey::P256(public_key)) = PublicKey::from_spki_der(&spki) else {
            panic!("{file}: not a P-256 key")
        };
        let genuine = AppleAssertionForgery {
            assertion: apple_vector_bytes(&vectors, file),
            client_data_hash: hex(&inputs["client_data_hash_hex"]),
            app_id: inputs["app_id"].as_str().unwrap().to_string(),
            public_key,
            previous_counter: inputs["previous_counter"].as_u64().unwrap() as u32,
        };
        let check_it = |f: &AppleAssertionForgery| {
            apple::verify_assertion(
                &f.assertion,
                &f.public_key,
                &f.app_id,
                &f.client_data_hash,
                f.previous_counter,
            )
        };
        assert!(
            check_it(&genuine).is_ok(),
            "{}: the genuine assertion must verify before it is forged",
            case.id
        );
        match check_it(&forgery::apple_assertion(case, genuine)) {
            Ok(_) => panic!("{}: a forgery was accepted", case.id),
            Err(error) => check(case, error.code(), error.index(), &error.to_string()),
        }
    }
}

/// Every case id is unique and every case names a verifier this suite runs.
#[test]
fn the_case_file_is_well_formed() {
    let verifiers = [
        "android-key-attestation",
        "apple-attestation",
        "apple-assertion",
        "access-token",
        "dpop-proof",
        "sdk-evidence",
        "play-integrity",
    ];
    let all: Vec<Case> = verifiers.iter().flat_map(|v| forgery::cases(v)).collect();
    let file: serde_json::Value = serde_json::from_str(forgery::CASES_JSON).unwrap();
    assert_eq!(
        all.len(),
        file["cases"].as_array().unwrap().len(),
        "a case names a verifier no suite runs"
    );
    let mut ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "case ids are unique");
}

/// A property over a valid chain: flipping any one bit of any certificate (the leaf's
/// KeyDescription, a name, a date, a key, a signature, the root's self-signature) never yields
/// an accepted chain, and never a panic. Exhaustive over every byte, two bits each.
#[test]
fn no_single_bit_flip_of_a_valid_chain_is_accepted() {
    let test_ca = TestAndroidCa::new();
    let installation = TestKey::generate();
    let challenge = [0x5a; 32];
    let description = medgate_testkit::attestation::KeyDescription::genuine(
        &challenge,
        "org.example.cgm",
        [0xab; 32],
        202501,
    );
    let chain = test_ca.chain(&installation.point(), &description);
    let mut roots = AndroidRoots::default();
    roots.hardware.push(test_anchor(&test_ca.root_der()));
    let at = UnixTime::from_secs(DEFAULT_AT);
    assert!(
        android::verify(&chain, &roots, None, Some(&challenge), at).is_ok(),
        "the unmutated chain verifies"
    );
    let mut tried = 0;
    for (index, cert) in chain.iter().enumerate() {
        for position in 0..cert.len() {
            for bit in [0x01u8, 0x80] {
                let mut mutated = chain.clone();
                mutated[index][position] ^= bit;
                let result = android::verify(&mutated, &roots, None, Some(&challenge), at);
                assert!(
                    result.is_err(),
                    "flipping bit {bit:#04x} of byte {position} of certificate {index} was accepted"
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 2000, "{tried} mutations");
}

// ---------------------------------------------------------------------------------------------
// JOSE: access tokens, DPoP proofs, SDK evidence, Play Integrity tokens.

mod jose {
    use medgate_proto::{PublicJwk, b64};
    use medgate_testkit::forgery::jose::{EsKey, Jws, forge, merge_patch};
    use medgate_testkit::forgery::{self, Case};
    use medgate_verify::UnixTime;
    use medgate_verify::dpop::{self, ProofPolicy, RequestTarget};
    use medgate_verify::evidence::{self, EvidenceLimits};
    use medgate_verify::keys::KeySet;
    use medgate_verify::play_integrity::testing::{
        JWE_HEADER, JWS_HEADER, TestPlayKeys, encrypt_compact, encrypt_token, sign_jws,
    };
    use medgate_verify::play_integrity::{self, Expectations, RequestBinding};
    use medgate_verify::token::{self, TokenExpectations};

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://medgate.example";
    const GATEWAY: &str = "https://gw.example";
    const URI: &str = "https://gw.example/api/v1/entries";

    fn now() -> UnixTime {
        UnixTime::from_secs(NOW)
    }

    fn public(key: &EsKey) -> PublicJwk {
        PublicJwk::from_p256_sec1(&key.point()).unwrap()
    }

    fn expect_refusal(case: &Case, code: Option<&str>) {
        match code {
            None => panic!("{}: a forgery was accepted", case.id),
            Some(code) => assert_eq!(
                code, case.expected_code,
                "{}: refused for another reason than the case file gives",
                case.id
            ),
        }
    }

    struct Fixture {
        issuer: EsKey,
        installation: EsKey,
        attacker: EsKey,
        keys: KeySet,
        token: Jws,
    }

    impl Fixture {
        fn new() -> Fixture {
            let (issuer, installation, attacker) =
                (EsKey::generate(), EsKey::generate(), EsKey::generate());
            let jkt = public(&installation).thumbprint();
            let token = Jws {
                header: serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": "medgate-1"}),
                claims: serde_json::json!({
                    "iss": ISSUER, "sub": jkt.as_str(), "aud": GATEWAY, "iat": NOW,
                    "exp": NOW + 300, "jti": "t-1", "client_id": "org.example.cgm",
                    "scope": "entries:read", "cnf": {"jkt": jkt.as_str()},
                    "app_version": "1.2.3", "platform": "sdk", "decision": "allow",
                }),
            };
            let keys = KeySet::new([("medgate-1".to_string(), public(&issuer))]);
            Fixture {
                issuer,
                installation,
                attacker,
                keys,
                token,
            }
        }

        fn verify_token(&self, compact: &str) -> Result<token::VerifiedToken, token::TokenError> {
            let expect = TokenExpectations {
                issuer: ISSUER,
                audience: GATEWAY,
                leeway_secs: 5,
            };
            token::verify(compact, &self.keys, &expect, now())
        }
    }

    #[test]
    fn every_access_token_forgery_is_refused_for_its_reason() {
        let fixture = Fixture::new();
        let genuine = fixture.token.signed_by(&fixture.issuer);
        assert!(fixture.verify_token(&genuine).is_ok(), "the genuine token");
        let cases = forgery::cases("access-token");
        assert!(cases.len() >= 15);
        for case in &cases {
            let forged = forge(case, &fixture.token, &fixture.issuer, &fixture.attacker);
            expect_refusal(case, fixture.verify_token(&forged).err().map(|e| e.code()));
        }
    }

    #[test]
    fn every_dpop_proof_forgery_is_refused_for_its_reason() {
        let fixture = Fixture::new();
        let token = fixture.token.signed_by(&fixture.issuer);
        let verified = fixture.verify_token(&token).unwrap();
        let proof = Jws {
            header: serde_json::json!({"alg": "ES256", "typ": "dpop+jwt",
                "jwk": fixture.installation.jwk()}),
            claims: serde_json::json!({"jti": "p-1", "htm": "GET", "htu": URI, "iat": NOW,
                "ath": token::access_token_hash(&token)}),
        };
        let check = |compact: &str| {
            let target = RequestTarget {
                method: "GET",
                uri: URI,
            };
            dpop::verify_bound(compact, &verified, target, &ProofPolicy::default(), now())
                .map(|_| ())
        };
        assert!(check(&proof.signed_by(&fixture.installation)).is_ok());
        let cases = forgery::cases("dpop-proof");
        assert!(cases.len() >= 15);
        for case in &cases {
            let forged = forge(case, &proof, &fixture.installation, &fixture.attacker);
            expect_refusal(case, check(&forged).err().map(|e| e.code()));
        }
    }

    #[test]
    fn every_sdk_evidence_forgery_is_refused_for_its_reason() {
        let fixture = Fixture::new();
        let genuine = Jws {
            header: serde_json::json!({"alg": "ES256", "typ": "medgate-evidence+jwt",
                "jwk": fixture.installation.jwk()}),
            claims: serde_json::json!({
                "challenge": "Y2hhbGxlbmdl", "app_id": "org.example.cgm", "app_version": "1.2.3",
                "platform": "sdk", "iat": NOW,
                "evidence": {"sdk": {"binary_sha256": "ab".repeat(32)}},
                "signals": [{"kind": "hook", "detail": "frida-agent mapped"}],
            }),
        };
        let check = |compact: &str| {
            evidence::verify(compact, &EvidenceLimits::default(), now()).map(|_| ())
        };
        assert!(check(&genuine.signed_by(&fixture.installation)).is_ok());
        let cases = forgery::cases("sdk-evidence");
        assert!(cases.len() >= 10);
        for case in &cases {
            let forged = forge(case, &genuine, &fixture.installation, &fixture.attacker);
            expect_refusal(case, check(&forged).err().map(|e| e.code()));
        }
    }

    /// Builds a Play Integrity case: everything a forger can do without the app's keys.
    fn play_token(case: &Case, verdict: &serde_json::Value, app: &TestPlayKeys) -> String {
        let other = TestPlayKeys::generate();
        let payload = serde_json::to_vec(verdict).unwrap();
        let unsigned = |header: &str, signature: &[u8]| {
            format!(
                "{}.{}.{}",
                b64::encode(header),
                b64::encode(&payload),
                b64::encode(signature)
            )
        };
        match case.forge.as_str() {
            "play_genuine" => {
                let mut patched = verdict.clone();
                merge_patch(&mut patched, case.claims_patch.as_ref().unwrap());
                encrypt_token(&serde_json::to_vec(&patched).unwrap(), app)
            }
            "play_other_decryption_key" => encrypt_token(&payload, &other),
            "play_other_signing_key" => encrypt_compact(
                JWE_HEADER,
                sign_jws(JWS_HEADER, &payload, &other).as_bytes(),
                app,
            ),
            "play_inner_alg_none" => encrypt_compact(
                JWE_HEADER,
                unsigned(r#"{"alg":"none"}"#, &[]).as_bytes(),
                app,
            ),
            "play_inner_hs256" => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &app.spki_der());
                let input = format!(
                    "{}.{}",
                    b64::encode(r#"{"alg":"HS256"}"#),
                    b64::encode(&payload)
                );
                let tag = ring::hmac::sign(&key, input.as_bytes());
                let inner = format!("{input}.{}", b64::encode(tag.as_ref()));
                encrypt_compact(JWE_HEADER, inner.as_bytes(), app)
            }
            "play_payload_swapped" => {
                let signed = sign_jws(JWS_HEADER, &payload, app);
                let mut raised = verdict.clone();
                raised["deviceIntegrity"]["deviceRecognitionVerdict"] =
                    serde_json::json!(["MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"]);
                let parts: Vec<&str> = signed.split('.').collect();
                let swapped = format!(
                    "{}.{}.{}",
                    parts[0],
                    b64::encode(serde_json::to_vec(&raised).unwrap()),
                    parts[2]
                );
                encrypt_compact(JWE_HEADER, swapped.as_bytes(), app)
            }
            "play_jwe_alg_dir" => encrypt_compact(
                r#"{"alg":"dir","enc":"A256GCM"}"#,
                sign_jws(JWS_HEADER, &payload, app).as_bytes(),
                app,
            ),
            "play_ciphertext_flipped" => {
                let token = encrypt_token(&payload, app);
                let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
                let mut ciphertext = b64::decode(&parts[3], 1 << 20).unwrap();
                ciphertext[0] ^= 1;
                parts[3] = b64::encode(ciphertext);
                parts.join(".")
            }
            other => panic!("{}: no Play recipe {other:?}", case.id),
        }
    }

    #[test]
    fn every_play_integrity_forgery_is_refused_for_its_reason() {
        let app = TestPlayKeys::generate();
        let binding = b64::encode([7u8; 32]);
        let verdict = serde_json::json!({
            "requestDetails": {"requestPackageName": "org.example.cgm", "requestHash": binding,
                "timestampMillis": (NOW * 1000).to_string()},
            "appIntegrity": {"appRecognitionVerdict": "PLAY_RECOGNIZED",
                "packageName": "org.example.cgm", "certificateSha256Digest": [b64::encode([0xab; 32])],
                "versionCode": "42"},
            "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_BASIC_INTEGRITY"]},
        });
        let check = |token: &str| {
            let verified = play_integrity::decrypt_and_verify(token, &app.keys())?;
            let expect = Expectations {
                package_name: "org.example.cgm",
                request_binding: RequestBinding::RequestHash(&binding),
                max_age_ms: 300_000,
                max_future_skew_ms: 60_000,
            };
            play_integrity::check_request(&verified, &expect, NOW * 1000).map(|_| ())
        };
        let genuine = encrypt_token(&serde_json::to_vec(&verdict).unwrap(), &app);
        assert!(check(&genuine).is_ok(), "the genuine token");
        let cases = forgery::cases("play-integrity");
        assert!(cases.len() >= 10);
        for case in &cases {
            let token = play_token(case, &verdict, &app);
            expect_refusal(case, check(&token).err().map(|e| e.code()));
        }
    }
}
