//! HTTP Message Signatures: the RFC 9421 Appendix B examples (read from $MEDGATE_VECTORS) verify
//! in the core, and every forgery of a genuine medgate request signature is refused for its
//! own reason.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medgate_proto::PublicJwk;
use medgate_proto::httpsig::{
    self, BodyDigest, DigestAlg, Message, RequestMessage, SignatureParams, content_digest,
    parse_content_digest,
};
use medgate_testkit::{vector_json, vectors_dir};
use medgate_verify::UnixTime;
use medgate_verify::httpsig::{
    ALG_ECDSA_P256, ALG_HMAC_SHA256, SignatureError, SignaturePolicy, SigningKey, verify,
};
use medgate_verify::time::IatWindow;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// A message parsed from the RFC's HTTP/1.1 text: the start line and the header fields.
struct Parsed {
    start: String,
    fields: Vec<(String, String)>,
}

fn parse_message(text: &str) -> Parsed {
    let head = text.split("\n\n").next().unwrap();
    let mut lines = head.lines();
    let start = lines.next().unwrap().to_string();
    let fields = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    Parsed { start, fields }
}

/// A response: `@status` from the start line.
struct Response(Parsed);

impl Message for Response {
    fn derived(&self, component: &str) -> Option<String> {
        (component == "@status").then(|| self.0.start.split(' ').nth(1).unwrap().to_string())
    }
    fn field_values(&self, name: &str) -> Vec<String> {
        self.0
            .fields
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.clone())
            .collect()
    }
}

/// The uncompressed point at the end of a P-256 SubjectPublicKeyInfo in PEM.
fn p256_from_pem(pem: &str) -> PublicJwk {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).unwrap();
    PublicJwk::from_p256_sec1(&der[der.len() - 65..]).unwrap()
}

fn vector_policy(label: &str) -> SignaturePolicy {
    SignaturePolicy {
        label: label.into(),
        required: vec![],
        window: IatWindow {
            max_age_secs: 60,
            max_skew_secs: 5,
        },
        require_nonce: false,
    }
}

#[test]
fn rfc9421_appendix_b_ecdsa_and_hmac_examples_verify() {
    let Some(dir) = vectors_dir() else { return };
    let root = dir.join("standards/rfc9421-http-message-signatures");
    let vectors = vector_json(
        &dir,
        "standards/rfc9421-http-message-signatures/vectors.json",
    );
    let case = |label: &str| {
        vectors["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|case| case["label"] == label)
            .unwrap()
            .clone()
    };
    let field = |case: &serde_json::Value, name: &str| {
        case[name]
            .as_str()
            .unwrap()
            .split_once(": ")
            .map_or(case[name].as_str().unwrap().to_string(), |(_, v)| {
                v.to_string()
            })
    };
    let created = 1_618_884_473;
    let now = UnixTime::from_secs(created);

    // B.2.4: a response signed with test-key-ecc-p256. The response's printed Content-Digest
    // is wrong (the vectors' known_issue); the signature base has the right one.
    let b24 = case("sig-b24");
    let mut response = parse_message(vectors["test_response"].as_str().unwrap());
    let body = br#"{"message": "good dog"}"#;
    for (name, value) in &mut response.fields {
        if name == "content-digest" {
            *value = content_digest(DigestAlg::Sha512, body);
        }
    }
    let response = Response(response);
    let key = p256_from_pem(
        &std::fs::read_to_string(root.join("keys/test-key-ecc-p256-public.pem")).unwrap(),
    );
    let input = field(&b24, "signature_input_header");
    let signature = field(&b24, "signature_header");
    let (params, _) = httpsig::parse(&input, &signature, "sig-b24").unwrap();
    assert_eq!(
        httpsig::signature_base(&params, &response).unwrap(),
        b24["signature_base"].as_str().unwrap()
    );
    assert_eq!(b24["alg"], ALG_ECDSA_P256);
    let verified = verify(
        &input,
        &signature,
        &response,
        SigningKey::Installation(&key),
        "test-key-ecc-p256",
        &vector_policy("sig-b24"),
        now,
    )
    .unwrap();
    assert_eq!(verified.created(), created);
    // A moment later than its window, and under another key id: refused.
    let later = UnixTime::from_secs(created + 61);
    let check = |keyid: &str, at: UnixTime| {
        verify(
            &input,
            &signature,
            &response,
            SigningKey::Installation(&key),
            keyid,
            &vector_policy("sig-b24"),
            at,
        )
    };
    assert_eq!(
        check("test-key-ecc-p256", later).unwrap_err(),
        SignatureError::Stale
    );
    assert_eq!(
        check("another-key", now).unwrap_err(),
        SignatureError::KeyId
    );

    // B.2.5: HMAC-SHA256 with test-shared-secret, deterministic.
    let b25 = case("sig-b25");
    let secret = STANDARD
        .decode(
            std::fs::read_to_string(root.join("keys/test-shared-secret"))
                .unwrap()
                .trim(),
        )
        .unwrap();
    let request = parse_message(vectors["test_request"].as_str().unwrap());
    let message = RequestMessage {
        method: "POST",
        target_uri: "https://example.com/foo?param=Value&Pet=dog",
        fields: request.fields.clone(),
    };
    let input = field(&b25, "signature_input_header");
    let signature = field(&b25, "signature_header");
    let (params, _) = httpsig::parse(&input, &signature, "sig-b25").unwrap();
    assert_eq!(
        httpsig::signature_base(&params, &message).unwrap(),
        b25["signature_base"].as_str().unwrap()
    );
    verify(
        &input,
        &signature,
        &message,
        SigningKey::Session(&secret),
        "test-shared-secret",
        &vector_policy("sig-b25"),
        now,
    )
    .unwrap();
    assert_eq!(
        verify(
            &input,
            &signature,
            &message,
            SigningKey::Session(b"another secret"),
            "test-shared-secret",
            &vector_policy("sig-b25"),
            now,
        )
        .unwrap_err(),
        SignatureError::Invalid
    );

    // B.2.3 (RSA-PSS) and B.2.6 (Ed25519) build the same bases here, and medgate refuses
    // their algorithms.
    for label in ["sig-b23", "sig-b26"] {
        let case = case(label);
        let input = field(&case, "signature_input_header");
        let signature = field(&case, "signature_header");
        let (params, _) = httpsig::parse(&input, &signature, label).unwrap();
        assert_eq!(
            httpsig::signature_base(&params, &message).unwrap(),
            case["signature_base"].as_str().unwrap(),
            "{label}"
        );
        let refused = verify(
            &input.replace(
                ";keyid=",
                &format!(";alg=\"{}\";keyid=", case["alg"].as_str().unwrap()),
            ),
            &signature,
            &message,
            SigningKey::Session(&secret),
            case["keyid"].as_str().unwrap(),
            &vector_policy(label),
            now,
        )
        .unwrap_err();
        assert_eq!(refused.code(), "signature_alg", "{label}");
    }

    // The test request's Content-Digest (RFC 9530 form) is its body's SHA-512.
    let claimed = parse_content_digest(
        &request
            .fields
            .iter()
            .find(|(name, _)| name == "content-digest")
            .unwrap()
            .1,
    )
    .unwrap();
    let mut digest = BodyDigest::new([DigestAlg::Sha512]);
    digest.update(br#"{"hello": "world"}"#);
    assert!(digest.matches(&claimed));
}

/// A medgate installation's signed write, and what the gateway would verify it against.
struct Signed {
    jwk: PublicJwk,
    keyid: String,
    body: Vec<u8>,
    input: String,
    signature: String,
    fields: Vec<(String, String)>,
}

const URI: &str = "https://gw.example.org/api/v1/treatments";
const NOW: i64 = 1_800_000_000;

fn window() -> IatWindow {
    IatWindow {
        max_age_secs: 60,
        max_skew_secs: 5,
    }
}

fn keypair() -> (EcdsaKeyPair, PublicJwk) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let jwk = PublicJwk::from_p256_sec1(key.public_key().as_ref()).unwrap();
    (key, jwk)
}

impl Signed {
    fn new(body: &[u8], components: &[&str], created: i64, nonce: &str) -> Signed {
        let (key, jwk) = keypair();
        let keyid = jwk.thumbprint().as_str().to_string();
        let fields = vec![
            ("authorization".to_string(), "DPoP token".to_string()),
            (
                "content-digest".to_string(),
                content_digest(DigestAlg::Sha256, body),
            ),
        ];
        let params =
            SignatureParams::new(components, created, None, nonce, &keyid, ALG_ECDSA_P256).unwrap();
        let message = RequestMessage {
            method: "POST",
            target_uri: URI,
            fields: fields.clone(),
        };
        let base = httpsig::signature_base(&params, &message).unwrap();
        let signature = key.sign(&SystemRandom::new(), base.as_bytes()).unwrap();
        Signed {
            jwk,
            keyid,
            body: body.to_vec(),
            input: params.header_value("medgate"),
            signature: httpsig::signature_header("medgate", signature.as_ref()),
            fields,
        }
    }

    fn message(&self) -> RequestMessage<'static> {
        RequestMessage {
            method: "POST",
            target_uri: URI,
            fields: self.fields.clone(),
        }
    }

    fn check(&self, message: &RequestMessage<'_>) -> Result<(), SignatureError> {
        verify(
            &self.input,
            &self.signature,
            message,
            SigningKey::Installation(&self.jwk),
            &self.keyid,
            &SignaturePolicy::for_requests(window()),
            UnixTime::from_secs(NOW),
        )
        .map(|_| ())
    }
}

const ALL: [&str; 4] = ["@method", "@target-uri", "content-digest", "authorization"];

#[test]
fn a_genuine_signed_write_verifies_and_names_its_nonce() {
    let signed = Signed::new(br#"{"insulin": 1.5}"#, &ALL, NOW, "n-1");
    let verified = verify(
        &signed.input,
        &signed.signature,
        &signed.message(),
        SigningKey::Installation(&signed.jwk),
        &signed.keyid,
        &SignaturePolicy::for_requests(window()),
        UnixTime::from_secs(NOW),
    )
    .unwrap();
    assert_eq!(verified.nonce(), Some("n-1"));
    assert_eq!(verified.created(), NOW);
    // The digest it signed is the body's.
    let claimed = parse_content_digest(&signed.fields[1].1).unwrap();
    let mut digest = BodyDigest::new([DigestAlg::Sha256]);
    digest.update(&signed.body);
    assert!(digest.matches(&claimed));
}

#[test]
fn forgeries_are_refused_each_for_its_reason() {
    let body = br#"{"insulin": 1.5}"#;
    let signed = Signed::new(body, &ALL, NOW, "n-1");
    let with_field = |name: &str, value: &str| {
        let mut message = signed.message();
        for (field, existing) in &mut message.fields {
            if field == name {
                *existing = value.to_string();
            }
        }
        message
    };
    // The body changed after signing: the digest the signature covers no longer matches it
    // (the gateway's check), and a digest rewritten to match breaks the signature.
    let claimed = parse_content_digest(&signed.fields[1].1).unwrap();
    let mut changed = BodyDigest::new([DigestAlg::Sha256]);
    changed.update(br#"{"insulin": 15}"#);
    assert!(!changed.matches(&claimed));
    let rewritten = with_field(
        "content-digest",
        &content_digest(DigestAlg::Sha256, br#"{"insulin": 15}"#),
    );
    assert_eq!(
        signed.check(&rewritten).unwrap_err(),
        SignatureError::Invalid
    );
    // Another token, another method, another URI.
    assert_eq!(
        signed
            .check(&with_field("authorization", "DPoP other"))
            .unwrap_err(),
        SignatureError::Invalid
    );
    let mut get = signed.message();
    get.method = "PUT";
    assert_eq!(signed.check(&get).unwrap_err(), SignatureError::Invalid);
    let mut elsewhere = signed.message();
    elsewhere.target_uri = "https://gw.example.org/api/v1/treatments?dose=9";
    assert_eq!(
        signed.check(&elsewhere).unwrap_err(),
        SignatureError::Invalid
    );
    // A covered field the request lacks.
    let mut no_digest = signed.message();
    no_digest
        .fields
        .retain(|(name, _)| name != "content-digest");
    assert_eq!(
        signed.check(&no_digest).unwrap_err().code(),
        "signature_component_absent"
    );
    // A signature that leaves out a required component.
    let partial = Signed::new(body, &["@method", "@target-uri", "authorization"], NOW, "n");
    assert_eq!(
        partial.check(&partial.message()).unwrap_err(),
        SignatureError::NotCovered
    );
    // Too old, from the future, without a nonce.
    for created in [NOW - 61, NOW + 6] {
        let stale = Signed::new(body, &ALL, created, "n");
        assert_eq!(
            stale.check(&stale.message()).unwrap_err(),
            SignatureError::Stale,
            "{created}"
        );
    }
    let no_nonce = Signed::new(body, &ALL, NOW, "");
    assert_eq!(
        no_nonce.check(&no_nonce.message()).unwrap_err(),
        SignatureError::NoNonce
    );
    // Signed by another key: under the bound key's keyid, and under its own.
    let (other, other_jwk) = keypair();
    let message = signed.message();
    let (params, _) = httpsig::parse(&signed.input, &signed.signature, "medgate").unwrap();
    let base = httpsig::signature_base(&params, &message).unwrap();
    let foreign = httpsig::signature_header(
        "medgate",
        other
            .sign(&SystemRandom::new(), base.as_bytes())
            .unwrap()
            .as_ref(),
    );
    let refused = verify(
        &signed.input,
        &foreign,
        &message,
        SigningKey::Installation(&signed.jwk),
        &signed.keyid,
        &SignaturePolicy::for_requests(window()),
        UnixTime::from_secs(NOW),
    )
    .unwrap_err();
    assert_eq!(refused, SignatureError::Invalid);
    let refused = verify(
        &signed.input,
        &signed.signature,
        &message,
        SigningKey::Installation(&other_jwk),
        other_jwk.thumbprint().as_str(),
        &SignaturePolicy::for_requests(window()),
        UnixTime::from_secs(NOW),
    )
    .unwrap_err();
    assert_eq!(refused, SignatureError::KeyId);
    // An HMAC presented where the installation key must sign, and the reverse.
    let refused = verify(
        &signed.input,
        &signed.signature,
        &message,
        SigningKey::Session(b"a session key"),
        &signed.keyid,
        &SignaturePolicy::for_requests(window()),
        UnixTime::from_secs(NOW),
    )
    .unwrap_err();
    assert_eq!(
        refused,
        SignatureError::Alg {
            expected: ALG_HMAC_SHA256
        }
    );
    // Another label only: no signature.
    let relabelled = signed.input.replacen("medgate=", "other=", 1);
    let refused = verify(
        &relabelled,
        &signed.signature,
        &message,
        SigningKey::Installation(&signed.jwk),
        &signed.keyid,
        &SignaturePolicy::for_requests(window()),
        UnixTime::from_secs(NOW),
    )
    .unwrap_err();
    assert_eq!(refused.code(), "signature_missing");
    // A flipped bit of the signature.
    let mut bytes = httpsig::parse(&signed.input, &signed.signature, "medgate")
        .unwrap()
        .1;
    bytes[10] ^= 1;
    let refused = verify(
        &signed.input,
        &httpsig::signature_header("medgate", &bytes),
        &message,
        SigningKey::Installation(&signed.jwk),
        &signed.keyid,
        &SignaturePolicy::for_requests(window()),
        UnixTime::from_secs(NOW),
    )
    .unwrap_err();
    assert_eq!(refused, SignatureError::Invalid);
    // The genuine one still verifies.
    signed.check(&signed.message()).unwrap();
}

#[test]
fn an_hmac_signature_by_the_session_key_verifies_and_no_other() {
    let secret = [7u8; 32];
    let fields = vec![("authorization".to_string(), "DPoP token".to_string())];
    let message = RequestMessage {
        method: "GET",
        target_uri: "https://gw.example.org/api/v1/entries.json?count=10",
        fields,
    };
    let params = SignatureParams::new(
        &["@method", "@target-uri", "authorization"],
        NOW,
        Some(NOW + 30),
        "n-2",
        "session-1",
        ALG_HMAC_SHA256,
    )
    .unwrap();
    let base = httpsig::signature_base(&params, &message).unwrap();
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
        base.as_bytes(),
    );
    let input = params.header_value("medgate");
    let signature = httpsig::signature_header("medgate", tag.as_ref());
    let policy = SignaturePolicy {
        required: vec![
            "@method".into(),
            "@target-uri".into(),
            "authorization".into(),
        ],
        ..SignaturePolicy::for_requests(window())
    };
    let at = |now: i64, secret: &[u8]| {
        verify(
            &input,
            &signature,
            &message,
            SigningKey::Session(secret),
            "session-1",
            &policy,
            UnixTime::from_secs(now),
        )
    };
    at(NOW, &secret).unwrap();
    assert_eq!(at(NOW, &[8u8; 32]).unwrap_err(), SignatureError::Invalid);
    assert_eq!(at(NOW + 31, &secret).unwrap_err(), SignatureError::Expired);
}

#[test]
fn session_keys_are_per_token_and_per_secret() {
    use medgate_verify::httpsig::SessionSecret;
    let secret = SessionSecret::new([1; 32]);
    let a = secret.session_key("jti-a").unwrap();
    assert_eq!(*a, *secret.session_key("jti-a").unwrap());
    assert_ne!(*a, *secret.session_key("jti-b").unwrap());
    assert_ne!(
        *a,
        *SessionSecret::new([2; 32]).session_key("jti-a").unwrap()
    );
    assert_eq!(format!("{secret:?}"), "SessionSecret(…)");
}
