//! Play Integrity tokens: Google's documented example verdicts, sealed under fresh test keys and
//! opened again, and one test per refusal. No public token exists together with its keys, so
//! the tokens are minted by `play_integrity::testing`, which uses the same primitives (AES Key
//! Wrap, AES-256-GCM, ES256) as Google's tokens.

use medgate_proto::b64;
use medgate_testkit::{vector_json, vectors_dir};
use medgate_verify::play_integrity::testing::{
    JWE_HEADER, JWS_HEADER, TestPlayKeys, encrypt_compact, encrypt_token, sign_jws,
};
use medgate_verify::play_integrity::{
    AppLicensingVerdict, AppRecognitionVerdict, DeviceActivityLevel, DeviceLabel, Expectations,
    IntegrityVerdict, MAX_TOKEN_LEN, PlayIntegrityError, PlayIntegrityKeys, RequestBinding,
    VerifiedVerdict, check_request, decrypt_and_verify, parse_verdict,
};

/// `timestampMillis` of Google's example verdict: 2023-02-06T03:43:29.345Z.
const DOC_TIMESTAMP: i64 = 1_675_655_009_345;
const MAX_AGE_MS: i64 = 60_000;
const SKEW_MS: i64 = 5_000;

fn doc_expectations() -> Expectations<'static> {
    Expectations {
        package_name: "com.package.name",
        request_binding: RequestBinding::RequestHash("aGVsbG8gd29scmQgdGhlcmU"),
        max_age_ms: MAX_AGE_MS,
        max_future_skew_ms: SKEW_MS,
    }
}

/// Asserts every value PROVENANCE.md lists for Google's example verdict.
fn assert_documented_example(verdict: &IntegrityVerdict) {
    let request = &verdict.request_details;
    assert_eq!(request.request_package_name, "com.package.name");
    assert_eq!(
        request.request_hash.as_deref(),
        Some("aGVsbG8gd29scmQgdGhlcmU")
    );
    assert_eq!(request.nonce, None);
    assert_eq!(request.timestamp_millis, DOC_TIMESTAMP);

    let app = &verdict.app_integrity;
    assert_eq!(
        app.app_recognition_verdict,
        AppRecognitionVerdict::PlayRecognized
    );
    assert_eq!(app.package_name.as_deref(), Some("com.package.name"));
    assert_eq!(app.certificate_sha256_digest, ["amoUdLXLuysapX4Lww"]);
    assert_eq!(app.version_code, Some(42));

    let device = &verdict.device_integrity;
    assert_eq!(
        device.device_recognition_verdict,
        [DeviceLabel::MeetsDeviceIntegrity]
    );
    assert_eq!(device.legacy_device_recognition_verdict, None);
    assert_eq!(
        device
            .recent_device_activity
            .as_ref()
            .map(|activity| &activity.device_activity_level),
        Some(&DeviceActivityLevel::Level2)
    );
    assert_eq!(
        device
            .device_attributes
            .as_ref()
            .and_then(|attributes| attributes.sdk_version),
        Some(33)
    );

    assert_eq!(
        verdict
            .account_details
            .as_ref()
            .map(|account| &account.app_licensing_verdict),
        Some(&AppLicensingVerdict::Licensed)
    );
    let environment = verdict.environment_details.as_ref().expect("environment");
    assert_eq!(
        environment
            .app_access_risk_verdict
            .as_ref()
            .expect("app access risk")
            .apps_detected,
        ["KNOWN_INSTALLED", "UNKNOWN_INSTALLED", "UNKNOWN_CAPTURING"]
    );
    assert_eq!(
        environment.play_protect_verdict.as_deref(),
        Some("NO_ISSUES")
    );
    assert_eq!(verdict.testing_details, None);
}

#[test]
fn documented_verdicts_round_trip_and_check() {
    let Some(dir) = vectors_dir() else { return };
    let standard = vector_json(
        &dir,
        "play-integrity/standard-request-verdict.google-docs-example.json",
    );
    let decoded = vector_json(
        &dir,
        "play-integrity/decodeIntegrityToken-response.google-docs-example.json",
    );
    let decoded = decoded
        .get("tokenPayloadExternal")
        .expect("decodeIntegrityToken wraps the payload in tokenPayloadExternal");
    assert_eq!(&standard, decoded, "both files carry the same example");

    for payload in [&standard, decoded] {
        let payload = serde_json::to_vec(payload).unwrap();
        let keys = TestPlayKeys::generate();
        let token = encrypt_token(&payload, &keys);
        let verdict = decrypt_and_verify(&token, &keys.keys()).unwrap();
        assert_documented_example(&verdict);
        assert_eq!(parse_verdict(&payload).unwrap(), *verdict);

        // Steps 10–12 at 10 s after the verdict, then once it is older than the window.
        check_request(&verdict, &doc_expectations(), DOC_TIMESTAMP + 10_000).unwrap();
        assert_eq!(
            check_request(
                &verdict,
                &doc_expectations(),
                DOC_TIMESTAMP + MAX_AGE_MS + 1
            ),
            Err(PlayIntegrityError::Stale)
        );

        // Output uses snake_case names and the integers as numbers.
        let output = serde_json::to_value(&verdict).unwrap();
        assert_eq!(output["request_details"]["timestamp_millis"], DOC_TIMESTAMP);
        assert_eq!(
            output["app_integrity"]["app_recognition_verdict"],
            "PLAY_RECOGNIZED"
        );
        assert_eq!(
            output["device_integrity"]["recent_device_activity"]["device_activity_level"],
            "LEVEL_2"
        );
    }
}

// ---- A token made by an independent implementation. ----------------------------------------

/// Minted with pyca/cryptography 48 (OpenSSL), not with `testing`: the verdict below serialised
/// compactly, signed ES256 (`{"alg":"ES256"}`, DER signature converted to r‖s) with the fixed
/// test key (`TestPlayKeys::fixed`), then `aes_key_wrap(fixed decryption key, random CEK)` and
/// `AESGCM(CEK).encrypt(random 12-byte IV, JWS, ASCII(b64url header))` with the header
/// `{"alg":"A256KW","enc":"A256GCM"}`. (The reverse direction, a `testing` token opened by
/// the same library, was checked by hand when this test was written.)
const INTEROP_TOKEN: &str = concat!(
    "eyJhbGciOiJBMjU2S1ciLCJlbmMiOiJBMjU2R0NNIn0.m_XKh4ZFOK1FKpBXy96lXsB1WNfppg1RIqyM4VOCyT_HU5",
    "W7zeD86g.Xck9Vfr_DjEsSqfU.WXxHHFpqzz3kBDUZUHeaAZ0VTjXDXJP6V7OicgDUBhyaxdywyhd2McPmW2GTaZ0f",
    "yeSVwtbFqmRv_-T8sY3sxXz-lU4vkOaDWZyYYXQDlJO4e7bLt9sNiISfg_gin4G35b3MP6N7yDMn2juzMtwDFfpyRk",
    "K3_IwOV4NgnMrLt6WAM1OavpE4jMejT9YjQx6N7jKw6eGtQF-koxqS2PM9uSOPsgTl_j78Jsn-uEMDNWuL--lUsSqD",
    "kQc6_os_PaU5y3b3Ajp63EwqmrBPamUONGZvWLt2sBTNfGY9ImovOievBdHBxbk8_uNR79U59JGqQ_bFkYbJc56PSf",
    "nzCA5OvYp3-z1zXCsxurIJn0qxfR4Z5FyWfg4_kD6-9x7IdyOJm7dfo-NbwYBwLiuUR2AotSgNggNvw9urPu4wIs2G",
    "BmpwKIEwVzPhtRjnU_qw19fo-LSuSYT1pRUps21yZP_nAxFgn5sDyYkA51xgycSIhG5AqWL0cx9KP2MRj7PW_vBXUo",
    "hkEWscDmwAs06ZuuJlaDC3rnEoNxWXWyLSIIw14NpL0JtLkNvN9vBk_mkwetqLE_c-1q6cup9EEGcZGprVVTdskrAJ",
    "-L2Z4AIactesSTaoEW_8A3wFjJOBjslXXvtqjb7SiRpZH-UHMpiNDkf9VTg_Pbfb6ZJvXaQLy0thiO02h7jgW-QYUM",
    "YKCpclhaXnm_vZwEeBdnEnyzZ5xT2usB4rTIgr-kqoR0N8amEvT0essethteRo3cbWyaukEFgxfRLEjVPgrhWFU2WO",
    "2SFnxi1ayf6iopww4Arnzsvvz_Mhg_GJdZR_BloObMJjRsnGC7mJMWOZQwMuyhPhHKe6Kl8RCNa8lNV3OAOnV7JsJ2",
    "AAEk0VnIT4D_hqv40I8ztTVoYu-FHcK0bFgDpEh3rO50sFFnV82QYJM7_0leYg6Qwlro2F4Pe1R-mSTdndZzRs8vlk",
    "PcWAl6qK7aILKD-hgxMBkgGke_RP5O2Hd-lRhdEAne3Bu4u_i8U_tHY9OPt2CDbtzTkBosCj6wtwrwvZm2Owr1qXZ1",
    "NQ9R76BY1KTZTq1kwDy-JA5r7NeknlRPHFZ-V15QGdRtpAWJ37imh1J0hHsYFVMaXOKcPYg2MqflGhwEbWdIE9UHon",
    "XT9naTFkwc9ON1XWamteEZX3RpMIloHAGIIQaZo5bSy7SoWNII_UDiwA.W3Ux4OscpJaB-3b0vOQtFA",
);

#[test]
fn a_token_from_an_independent_implementation_verifies() {
    let verdict = decrypt_and_verify(INTEROP_TOKEN, &TestPlayKeys::fixed().keys()).unwrap();
    let request = &verdict.request_details;
    assert_eq!(request.request_package_name, "org.example.cgm");
    assert_eq!(request.nonce.as_deref(), Some("aW50ZXJvcC1ub25jZS0wMDAx"));
    assert_eq!(request.timestamp_millis, 1_800_000_000_123);
    assert_eq!(
        verdict.app_integrity.app_recognition_verdict,
        AppRecognitionVerdict::UnrecognizedVersion
    );
    assert_eq!(verdict.app_integrity.version_code, Some(1001));
    assert_eq!(
        verdict.device_integrity.device_recognition_verdict,
        [
            DeviceLabel::MeetsBasicIntegrity,
            DeviceLabel::MeetsDeviceIntegrity
        ]
    );
    assert_eq!(
        verdict
            .account_details
            .as_ref()
            .map(|account| &account.app_licensing_verdict),
        Some(&AppLicensingVerdict::Unlicensed)
    );
    assert!(
        !verdict
            .testing_details
            .as_ref()
            .unwrap()
            .is_testing_response
    );
    let expect = Expectations {
        package_name: "org.example.cgm",
        request_binding: RequestBinding::Nonce("aW50ZXJvcC1ub25jZS0wMDAx"),
        max_age_ms: MAX_AGE_MS,
        max_future_skew_ms: SKEW_MS,
    };
    check_request(&verdict, &expect, 1_800_000_010_000).unwrap();
    // Under fresh keys it neither unwraps nor, with only the decryption key right, verifies.
    let fresh = TestPlayKeys::generate();
    assert_eq!(
        decrypt_and_verify(INTEROP_TOKEN, &fresh.keys()),
        Err(PlayIntegrityError::KeyUnwrapFailed)
    );
    let (decryption, _) = TestPlayKeys::fixed().console_strings();
    let (_, verification) = fresh.console_strings();
    let mixed = PlayIntegrityKeys::from_console(&decryption, &verification).unwrap();
    assert_eq!(
        decrypt_and_verify(INTEROP_TOKEN, &mixed),
        Err(PlayIntegrityError::SignatureInvalid)
    );
}

// ---- A verdict of our own, so the refusals run without the vectors folder. ----------------

const NOW: i64 = 1_800_000_000_000;
const HASH: &str = "2d3n9FVYOWgOYR7vHj3cNUHqvDe1RqF4Ch7BmqYMfR0";

fn verdict_json(binding: &str, timestamp: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "requestDetails": {
            "requestPackageName": "org.example.cgm",
            binding: HASH,
            "timestampMillis": timestamp.to_string(),
        },
        "appIntegrity": {"appRecognitionVerdict": "PLAY_RECOGNIZED"},
        "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_STRONG_INTEGRITY"]},
    }))
    .expect("a JSON value serialises")
}

fn expectations(binding: RequestBinding<'static>) -> Expectations<'static> {
    Expectations {
        package_name: "org.example.cgm",
        request_binding: binding,
        max_age_ms: MAX_AGE_MS,
        max_future_skew_ms: SKEW_MS,
    }
}

struct Fixture {
    keys: TestPlayKeys,
    token: String,
}

fn fixture() -> Fixture {
    let keys = TestPlayKeys::generate();
    let token = encrypt_token(&verdict_json("requestHash", NOW), &keys);
    Fixture { keys, token }
}

impl Fixture {
    fn open(&self, token: &str) -> Result<VerifiedVerdict, PlayIntegrityError> {
        decrypt_and_verify(token, &self.keys.keys())
    }

    /// The token with one bit flipped in the decoded bytes of part `index`.
    fn flip_bit(&self, index: usize) -> String {
        let mut parts: Vec<String> = self.token.split('.').map(str::to_string).collect();
        let mut bytes =
            b64::decode(&parts[index], MAX_TOKEN_LEN).expect("token parts are base64url");
        bytes[0] ^= 0x01;
        parts[index] = b64::encode(bytes);
        parts.join(".")
    }

    fn with_header(&self, header_json: &str) -> String {
        let jws = sign_jws(JWS_HEADER, &verdict_json("requestHash", NOW), &self.keys);
        encrypt_compact(header_json, jws.as_bytes(), &self.keys)
    }

    fn with_inner(&self, plaintext: &str) -> String {
        encrypt_compact(JWE_HEADER, plaintext.as_bytes(), &self.keys)
    }
}

#[test]
fn the_untampered_fixture_verifies_and_checks() {
    let f = fixture();
    let verdict = f.open(&f.token).unwrap();
    let expect = expectations(RequestBinding::RequestHash(HASH));
    check_request(&verdict, &expect, NOW).unwrap();
    // The window is inclusive at both ends.
    check_request(&verdict, &expect, NOW + MAX_AGE_MS).unwrap();
    check_request(&verdict, &expect, NOW - SKEW_MS).unwrap();
}

// Step 1.
#[test]
fn oversize_tokens_are_refused_before_any_work() {
    let f = fixture();
    let long = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        f.open(&long),
        Err(PlayIntegrityError::TooLarge { max: MAX_TOKEN_LEN })
    );
    // A genuine token whose payload pushes it over the limit.
    let mut big: serde_json::Value =
        serde_json::from_slice(&verdict_json("requestHash", NOW)).unwrap();
    big["padding"] = "x".repeat(MAX_TOKEN_LEN).into();
    let token = encrypt_token(&serde_json::to_vec(&big).unwrap(), &f.keys);
    let error = f.open(&token).unwrap_err();
    assert_eq!(error, PlayIntegrityError::TooLarge { max: MAX_TOKEN_LEN });
    assert!(error.is_malformed());
}

// Step 2.
#[test]
fn four_parts_are_refused() {
    let f = fixture();
    let four = f.token.rsplit_once('.').unwrap().0;
    assert_eq!(
        f.open(four),
        Err(PlayIntegrityError::Malformed(
            "a compact JWE has exactly five parts"
        ))
    );
}

#[test]
fn six_parts_are_refused() {
    let f = fixture();
    let six = format!("{}.AAAA", f.token);
    let error = f.open(&six).unwrap_err();
    assert_eq!(
        error,
        PlayIntegrityError::Malformed("a compact JWE has exactly five parts")
    );
    assert!(error.is_malformed());
}

#[test]
fn a_bare_jws_is_not_a_token() {
    let f = fixture();
    let jws = sign_jws(JWS_HEADER, &verdict_json("requestHash", NOW), &f.keys);
    assert!(matches!(
        f.open(&jws),
        Err(PlayIntegrityError::Malformed(_))
    ));
}

// Step 3.
fn assert_header_refused(header: &str) {
    let f = fixture();
    let error = f
        .open(&f.with_header(header))
        .expect_err("the header is refused");
    assert!(
        matches!(error, PlayIntegrityError::HeaderNotAllowed(_)),
        "{header}: {error}"
    );
    assert!(!error.is_malformed());
}

#[test]
fn header_alg_dir_is_refused() {
    assert_header_refused(r#"{"alg":"dir","enc":"A256GCM"}"#);
}

#[test]
fn header_alg_rsa_oaep_is_refused() {
    assert_header_refused(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#);
}

#[test]
fn header_alg_none_and_other_spellings_are_refused() {
    assert_header_refused(r#"{"alg":"none","enc":"A256GCM"}"#);
    assert_header_refused(r#"{"alg":"a256kw","enc":"A256GCM"}"#);
    assert_header_refused(r#"{"alg":"A128KW","enc":"A256GCM"}"#);
}

#[test]
fn header_enc_a128gcm_is_refused() {
    assert_header_refused(r#"{"alg":"A256KW","enc":"A128GCM"}"#);
    assert_header_refused(r#"{"alg":"A256KW","enc":"A256CBC-HS512"}"#);
}

#[test]
fn header_zip_is_refused() {
    assert_header_refused(r#"{"alg":"A256KW","enc":"A256GCM","zip":"DEF"}"#);
    assert_header_refused(r#"{"alg":"A256KW","enc":"A256GCM","zip":null}"#);
}

#[test]
fn header_crit_is_refused() {
    assert_header_refused(r#"{"alg":"A256KW","enc":"A256GCM","crit":["exp"],"exp":1}"#);
    assert_header_refused(r#"{"alg":"A256KW","enc":"A256GCM","crit":null}"#);
}

#[test]
fn malformed_headers_are_malformed() {
    let f = fixture();
    for header in [
        r#"{"enc":"A256GCM"}"#,
        r#"{"alg":"A256KW"}"#,
        r#"{"alg":"A256KW","alg":"A256KW","enc":"A256GCM"}"#,
        r#"{"alg":1,"enc":"A256GCM"}"#,
        r#"["A256KW","A256GCM"]"#,
        "not json",
    ] {
        assert!(
            matches!(
                f.open(&f.with_header(header)),
                Err(PlayIntegrityError::Malformed(_))
            ),
            "{header}"
        );
    }
}

// Step 4.
#[test]
fn parts_of_the_wrong_length_or_alphabet_are_malformed() {
    let f = fixture();
    let parts: Vec<&str> = f.token.split('.').collect();
    for (index, replacement) in [(1, "AAAA"), (2, "AAAA"), (4, "AAAA"), (3, "!!"), (2, "")] {
        let mut changed = parts.clone();
        changed[index] = replacement;
        let error = f.open(&changed.join(".")).unwrap_err();
        assert!(
            matches!(error, PlayIntegrityError::Malformed(_)),
            "part {index}: {error}"
        );
    }
}

// Step 5.
#[test]
fn a_tampered_wrapped_key_fails_to_unwrap() {
    let f = fixture();
    assert_eq!(
        f.open(&f.flip_bit(1)),
        Err(PlayIntegrityError::KeyUnwrapFailed)
    );
}

#[test]
fn a_wrong_decryption_key_fails_to_unwrap() {
    let f = fixture();
    let other = TestPlayKeys::generate();
    let (_, verification) = f.keys.console_strings();
    let (decryption, _) = other.console_strings();
    let keys = PlayIntegrityKeys::from_console(&decryption, &verification).unwrap();
    assert_eq!(
        decrypt_and_verify(&f.token, &keys),
        Err(PlayIntegrityError::KeyUnwrapFailed)
    );
}

// Step 6.
#[test]
fn a_tampered_ciphertext_fails_to_decrypt() {
    let f = fixture();
    assert_eq!(
        f.open(&f.flip_bit(3)),
        Err(PlayIntegrityError::DecryptionFailed)
    );
}

#[test]
fn a_tampered_tag_fails_to_decrypt() {
    let f = fixture();
    assert_eq!(
        f.open(&f.flip_bit(4)),
        Err(PlayIntegrityError::DecryptionFailed)
    );
}

#[test]
fn a_tampered_iv_fails_to_decrypt() {
    let f = fixture();
    assert_eq!(
        f.open(&f.flip_bit(2)),
        Err(PlayIntegrityError::DecryptionFailed)
    );
}

#[test]
fn a_tampered_protected_header_fails_to_decrypt() {
    // Still an allowed header, but not the bytes the tag authenticates.
    let f = fixture();
    let (_, rest) = f.token.split_once('.').unwrap();
    for header in [
        r#"{"enc":"A256GCM","alg":"A256KW"}"#,
        r#"{"alg":"A256KW","enc":"A256GCM","kid":"x"}"#,
    ] {
        let swapped = format!("{}.{rest}", b64::encode(header));
        assert_eq!(
            f.open(&swapped),
            Err(PlayIntegrityError::DecryptionFailed),
            "{header}"
        );
    }
}

// Step 7.
#[test]
fn an_inner_hs256_jws_is_refused() {
    let f = fixture();
    let input = format!(
        "{}.{}",
        b64::encode(r#"{"alg":"HS256"}"#),
        b64::encode(verdict_json("requestHash", NOW))
    );
    // Keyed with the (public) verification key, the classic confusion attack.
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &f.keys.spki_der());
    let jws = format!(
        "{input}.{}",
        b64::encode(ring::hmac::sign(&hmac, input.as_bytes()))
    );
    assert_eq!(
        f.open(&f.with_inner(&jws)),
        Err(PlayIntegrityError::InnerAlgorithmNotAllowed)
    );
}

#[test]
fn an_inner_unsigned_jws_is_refused() {
    let f = fixture();
    let jws = format!(
        "{}.{}.",
        b64::encode(r#"{"alg":"none"}"#),
        b64::encode(verdict_json("requestHash", NOW))
    );
    assert_eq!(
        f.open(&f.with_inner(&jws)),
        Err(PlayIntegrityError::InnerAlgorithmNotAllowed)
    );
}

#[test]
fn an_inner_plaintext_that_is_not_a_jws_is_malformed() {
    let f = fixture();
    for plaintext in ["", "{}", "a.b", "\u{fffd}"] {
        assert!(
            matches!(
                f.open(&f.with_inner(plaintext)),
                Err(PlayIntegrityError::InnerMalformed(_))
            ),
            "{plaintext:?}"
        );
    }
    let not_utf8 = encrypt_compact(JWE_HEADER, &[0xff, 0xfe], &f.keys);
    assert_eq!(
        f.open(&not_utf8),
        Err(PlayIntegrityError::InnerMalformed("plaintext is not UTF-8"))
    );
}

// Step 8.
#[test]
fn a_wrong_verification_key_fails_the_signature() {
    let f = fixture();
    let other = TestPlayKeys::generate();
    let (decryption, _) = f.keys.console_strings();
    let (_, verification) = other.console_strings();
    let keys = PlayIntegrityKeys::from_console(&decryption, &verification).unwrap();
    assert_eq!(
        decrypt_and_verify(&f.token, &keys),
        Err(PlayIntegrityError::SignatureInvalid)
    );
}

#[test]
fn a_tampered_inner_jws_fails_the_signature() {
    let f = fixture();
    let jws = sign_jws(JWS_HEADER, &verdict_json("requestHash", NOW), &f.keys);
    let (input, signature) = jws.rsplit_once('.').unwrap();
    let mut signature = b64::decode(signature, 1024).unwrap();
    signature[5] ^= 0x80;
    let tampered = format!("{input}.{}", b64::encode(signature));
    assert_eq!(
        f.open(&f.with_inner(&tampered)),
        Err(PlayIntegrityError::SignatureInvalid)
    );
    // Same signature, another payload.
    let (_, rest) = jws.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let swapped = format!(
        "{}.{}.{signature}",
        b64::encode(JWS_HEADER),
        b64::encode(verdict_json("nonce", NOW))
    );
    assert_eq!(
        f.open(&f.with_inner(&swapped)),
        Err(PlayIntegrityError::SignatureInvalid)
    );
}

// Step 9.
#[test]
fn a_payload_that_is_not_json_is_malformed() {
    let f = fixture();
    let token = encrypt_token(b"requestDetails", &f.keys);
    assert!(matches!(
        f.open(&token),
        Err(PlayIntegrityError::PayloadMalformed(_))
    ));
    let token = encrypt_token(b"{\"requestDetails\":", &f.keys);
    assert!(matches!(
        f.open(&token),
        Err(PlayIntegrityError::PayloadMalformed(_))
    ));
}

#[test]
fn a_payload_without_request_details_is_malformed() {
    let f = fixture();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&verdict_json("requestHash", NOW)).unwrap();
    payload.as_object_mut().unwrap().remove("requestDetails");
    let token = encrypt_token(&serde_json::to_vec(&payload).unwrap(), &f.keys);
    let error = f.open(&token).unwrap_err();
    assert!(
        matches!(&error, PlayIntegrityError::PayloadMalformed(m) if m.contains("requestDetails")),
        "{error}"
    );
}

#[test]
fn a_payload_with_fields_of_the_wrong_type_is_malformed() {
    let cases = [
        ("/requestDetails/timestampMillis", serde_json::json!("12a")),
        ("/requestDetails/timestampMillis", serde_json::json!(-1)),
        ("/requestDetails/requestPackageName", serde_json::json!(1)),
        (
            "/appIntegrity/appRecognitionVerdict",
            serde_json::json!(null),
        ),
        (
            "/deviceIntegrity/deviceRecognitionVerdict",
            serde_json::json!("MEETS_DEVICE_INTEGRITY"),
        ),
    ];
    for (pointer, value) in cases {
        let mut payload: serde_json::Value =
            serde_json::from_slice(&verdict_json("requestHash", NOW)).unwrap();
        *payload.pointer_mut(pointer).unwrap() = value.clone();
        let error = parse_verdict(&serde_json::to_vec(&payload).unwrap()).unwrap_err();
        assert!(
            matches!(error, PlayIntegrityError::PayloadMalformed(_)),
            "{pointer} = {value}: {error}"
        );
        assert!(!error.to_string().contains("MEETS_DEVICE"), "{error}");
    }
}

// Step 10.
#[test]
fn another_package_is_refused() {
    let f = fixture();
    let verdict = f.open(&f.token).unwrap();
    let mut expect = expectations(RequestBinding::RequestHash(HASH));
    expect.package_name = "org.example.other";
    assert_eq!(
        check_request(&verdict, &expect, NOW),
        Err(PlayIntegrityError::PackageMismatch)
    );
}

// Step 11.
#[test]
fn another_request_hash_is_refused() {
    let f = fixture();
    let verdict = f.open(&f.token).unwrap();
    for other in [
        "",
        "2d3n9FVYOWgOYR7vHj3cNUHqvDe1RqF4Ch7BmqYMfR1",
        &HASH[1..],
    ] {
        assert_eq!(
            check_request(
                &verdict,
                &expectations(RequestBinding::RequestHash(other)),
                NOW
            ),
            Err(PlayIntegrityError::BindingMismatch)
        );
    }
    // A standard verdict carries no nonce.
    assert_eq!(
        check_request(&verdict, &expectations(RequestBinding::Nonce(HASH)), NOW),
        Err(PlayIntegrityError::BindingMismatch)
    );
}

#[test]
fn another_nonce_is_refused() {
    let f = fixture();
    let token = encrypt_token(&verdict_json("nonce", NOW), &f.keys);
    let verdict = f.open(&token).unwrap();
    check_request(&verdict, &expectations(RequestBinding::Nonce(HASH)), NOW).unwrap();
    assert_eq!(
        check_request(
            &verdict,
            &expectations(RequestBinding::Nonce("bm9uY2Ugb3RoZXI")),
            NOW
        ),
        Err(PlayIntegrityError::BindingMismatch)
    );
    // A classic verdict carries no requestHash.
    assert_eq!(
        check_request(
            &verdict,
            &expectations(RequestBinding::RequestHash(HASH)),
            NOW
        ),
        Err(PlayIntegrityError::BindingMismatch)
    );
}

// Step 12.
#[test]
fn a_stale_timestamp_is_refused() {
    let f = fixture();
    let verdict = f.open(&f.token).unwrap();
    let expect = expectations(RequestBinding::RequestHash(HASH));
    assert_eq!(
        check_request(&verdict, &expect, NOW + MAX_AGE_MS + 1),
        Err(PlayIntegrityError::Stale)
    );
    assert_eq!(
        check_request(&verdict, &expect, i64::MAX),
        Err(PlayIntegrityError::Stale)
    );
}

#[test]
fn a_future_timestamp_is_refused() {
    let f = fixture();
    let verdict = f.open(&f.token).unwrap();
    let expect = expectations(RequestBinding::RequestHash(HASH));
    assert_eq!(
        check_request(&verdict, &expect, NOW - SKEW_MS - 1),
        Err(PlayIntegrityError::FromTheFuture)
    );
    assert_eq!(
        check_request(&verdict, &expect, i64::MIN),
        Err(PlayIntegrityError::FromTheFuture)
    );
}

// Console strings.

/// DER SubjectPublicKeyInfo of a P-384 key (`openssl genpkey … P-384 | openssl pkey -pubout`).
const P384_SPKI: &str = "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEdK9tWkQM+IB72TepzglylYCqToQVZ+3Ob1Klp1CfRyFGoRoi1fO08PKciZcSuy782D2Mzl2vvlmcU80d7xxDVT3fHGuHWhM+bKHfky5hQvxqTs9VfCq5/s/eNcvyleFx";
/// An Ed25519 SubjectPublicKeyInfo.
const ED25519_SPKI: &str = "MCowBQYDK2VwAyEAuTGjTGyIpqbpD79DRTdRzL/MuUr7wH8LyK1gLZBLKoI=";
/// A P-256 SubjectPublicKeyInfo with a compressed point.
const P256_COMPRESSED_SPKI: &str =
    "MDkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDIgADsEpGgQso1pVgYpIMIJXQMWhXE/F5Qj8rxn+vPba2VrY=";

#[test]
fn console_strings_are_accepted_with_or_without_padding_and_around_whitespace() {
    let keys = TestPlayKeys::generate();
    let (decryption, verification) = keys.console_strings();
    assert!(decryption.ends_with('='), "32 bytes encode with padding");
    let unpadded = decryption.trim_end_matches('=');
    let loaded =
        PlayIntegrityKeys::from_console(&format!(" {unpadded}\n"), &format!("{verification}\n"))
            .unwrap();
    let token = encrypt_token(&verdict_json("requestHash", NOW), &keys);
    assert!(decrypt_and_verify(&token, &loaded).is_ok());
}

#[test]
fn console_strings_that_are_not_base64_are_refused() {
    let (decryption, verification) = TestPlayKeys::generate().console_strings();
    assert_eq!(
        PlayIntegrityKeys::from_console("not base64!", &verification).unwrap_err(),
        PlayIntegrityError::BadDecryptionKey("not base64")
    );
    // Play Console shows the standard alphabet: 32 bytes of 0xfb are "+/v7…+/s=", and their
    // base64url spelling is refused.
    let standard = format!("{}+/s=", "+/v7".repeat(10));
    assert!(PlayIntegrityKeys::from_console(&standard, &verification).is_ok());
    let urlsafe = standard.replace('+', "-").replace('/', "_");
    assert_eq!(
        PlayIntegrityKeys::from_console(&urlsafe, &verification).unwrap_err(),
        PlayIntegrityError::BadDecryptionKey("not base64")
    );
    assert_eq!(
        PlayIntegrityKeys::from_console(&decryption, " \n").unwrap_err(),
        PlayIntegrityError::BadVerificationKey("empty")
    );
    assert_eq!(
        PlayIntegrityKeys::from_console(&decryption, "MFkw EwYH").unwrap_err(),
        PlayIntegrityError::BadVerificationKey("not base64")
    );
}

#[test]
fn a_decryption_key_of_the_wrong_length_is_refused() {
    let (_, verification) = TestPlayKeys::generate().console_strings();
    for key in [
        "AAECAwQFBgcICQoLDA0ODw==",
        &"A".repeat(44),
        &"A".repeat(64),
        &"A".repeat(65),
    ] {
        assert_eq!(
            PlayIntegrityKeys::from_console(key, &verification).unwrap_err(),
            PlayIntegrityError::BadDecryptionKey("must be 32 bytes (AES-256)"),
            "{key}"
        );
    }
}

#[test]
fn a_verification_key_that_is_not_p256_is_refused() {
    let (decryption, verification) = TestPlayKeys::generate().console_strings();
    let refuse = |spki: &str| PlayIntegrityKeys::from_console(&decryption, spki).unwrap_err();
    assert_eq!(
        refuse(P384_SPKI),
        PlayIntegrityError::BadVerificationKey("not a P-256 key")
    );
    assert_eq!(
        refuse(ED25519_SPKI),
        PlayIntegrityError::BadVerificationKey("not an elliptic-curve public key")
    );
    assert_eq!(
        refuse(P256_COMPRESSED_SPKI),
        PlayIntegrityError::BadVerificationKey("P-256 point must be uncompressed")
    );
    // The decryption key where the verification key belongs, and trailing bytes after the DER.
    assert_eq!(
        refuse(&decryption),
        PlayIntegrityError::BadVerificationKey("not a DER SubjectPublicKeyInfo")
    );
    let mut der = base64_decode(&verification);
    der.push(0);
    assert_eq!(
        refuse(&base64_encode(&der)),
        PlayIntegrityError::BadVerificationKey("not a DER SubjectPublicKeyInfo")
    );
}

#[test]
fn errors_and_debug_output_carry_no_secrets() {
    let f = fixture();
    let (decryption, _) = f.keys.console_strings();
    let keys = f.keys.keys();
    assert!(!format!("{keys:?}").contains(&decryption));
    let errors = [
        f.open(&f.flip_bit(1)).unwrap_err(),
        f.open(&f.flip_bit(3)).unwrap_err(),
        f.open(&f.with_header(r#"{"alg":"dir","enc":"A256GCM"}"#))
            .unwrap_err(),
    ];
    let header_b64 = f.token.split('.').next().unwrap();
    for error in errors {
        let message = error.to_string();
        assert!(!message.contains(header_b64) && !message.contains(&decryption));
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("standard base64")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
