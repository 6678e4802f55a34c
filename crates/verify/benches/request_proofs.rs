//! What each route's proof costs the gateway's core, side by side in one run (compare ratios;
//! the machine is shared): a DPoP proof, an RFC 9421 signature by the installation key over a
//! write (with the `Content-Digest` of a 2 KiB body), and a session-key HMAC.
//!
//! Run: `cargo bench -p medgate-verify --bench request_proofs`

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use medgate_proto::httpsig::{self, BodyDigest, DigestAlg, RequestMessage, parse_content_digest};
use medgate_sdk::key::InstallationKey;
use medgate_sdk::proof::{Session, dpop_proof, session_signature, signature_headers};
use medgate_verify::UnixTime;
use medgate_verify::dpop::{ProofPolicy, RequestTarget, target_uri, verify_proof};
use medgate_verify::httpsig::{SessionSecret, SignaturePolicy, SigningKey, session_policy, verify};
use medgate_verify::time::IatWindow;

const NOW: i64 = 1_800_000_000;
const URL: &str = "https://gw.example.org/api/v1/treatments";

fn request_proofs(c: &mut Criterion) {
    let now = UnixTime::from_secs(NOW);
    let window = IatWindow {
        max_age_secs: 60,
        max_skew_secs: 5,
    };
    let key = InstallationKey::generate().unwrap();
    let jwk = key.public_jwk().clone();
    let keyid = key.thumbprint().as_str().to_string();
    let authorization = "DPoP eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    let body = vec![b'7'; 2048];

    let mut group = c.benchmark_group("request_proof");
    group.throughput(Throughput::Elements(1));

    // DPoP: what every `dpop` route verifies per request.
    let proof = dpop_proof(&key, "POST", URL, Some(&authorization[5..]), NOW).unwrap();
    let uri = target_uri(URL, "").unwrap();
    let target = RequestTarget {
        method: "POST",
        uri: &uri,
    };
    group.bench_function("dpop_proof", |b| {
        b.iter(|| verify_proof(&proof, target, &ProofPolicy::default(), now).unwrap())
    });

    // RFC 9421 by the installation key, plus the body's digest: what `dpop+signature` adds.
    let signed = signature_headers(&key, "POST", URL, authorization, &body, NOW).unwrap();
    let message = RequestMessage {
        method: "POST",
        target_uri: URL,
        fields: vec![
            ("authorization".into(), authorization.into()),
            ("content-digest".into(), signed.content_digest.clone()),
        ],
    };
    let policy = SignaturePolicy::for_requests(window);
    group.bench_function("signature_and_digest_2k", |b| {
        b.iter(|| {
            let claimed = parse_content_digest(&signed.content_digest).unwrap();
            let mut digest = BodyDigest::new([DigestAlg::Sha256]);
            digest.update(&body);
            assert!(digest.matches(&claimed));
            verify(
                &signed.signature_input,
                &signed.signature,
                &message,
                SigningKey::Installation(&jwk),
                &keyid,
                &policy,
                now,
            )
            .unwrap()
        })
    });

    // The session key's HMAC: what `session-mac` verifies instead of a proof (the key derived
    // again each time, as the gateway does).
    let secret = SessionSecret::new([9; 32]);
    let session = Session {
        id: "jti-1".into(),
        key: secret.session_key("jti-1").unwrap(),
    };
    let mac = session_signature(&session, "GET", URL, authorization, NOW).unwrap();
    let read = RequestMessage {
        method: "GET",
        target_uri: URL,
        fields: vec![("authorization".into(), authorization.into())],
    };
    let session_policy = session_policy(window);
    group.bench_function("session_mac", |b| {
        b.iter(|| {
            let key = secret.session_key("jti-1").unwrap();
            verify(
                &mac.signature_input,
                &mac.signature,
                &read,
                SigningKey::Session(key.as_slice()),
                "jti-1",
                &session_policy,
                now,
            )
            .unwrap()
        })
    });
    group.finish();
    // Keep the parser honest in the bench build too.
    assert!(httpsig::parse(&signed.signature_input, &signed.signature, "medgate").is_ok());
}

criterion_group!(benches, request_proofs);
criterion_main!(benches);
