//! What a follower's or uploader's request costs the gateway besides forwarding, side by side
//! in one run: finding a presented credential, verifying an exchange token, and reading a
//! socket.io polling body (four packets, one rewritten, two dropped).
//!   cargo bench -p medgate-gateway --bench tunnel_and_credentials

// Bench code: a failed unwrap is a failed bench.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use medgate_gateway::tunnel::{Engine, filter};
use medgate_verify::UnixTime;
use medgate_verify::credential::{Credential, CredentialSet, ExchangeKey, digests, sha1_hex};

const SECRET: &str = "follower-0123456789abcdef0123456789abcdef";

fn set() -> CredentialSet {
    // A site with a thousand credentials.
    CredentialSet::new((0..1000).map(|i| {
        let secret = if i == 0 {
            SECRET.to_string()
        } else {
            format!("follower-{i:032x}")
        };
        let (digest, sha1_digest) = digests(&secret);
        let credential = Credential {
            id: format!("cred_{i:016x}"),
            app_id: "org.example.cgm".into(),
            kind: "follower".into(),
            name: "bench".into(),
            scopes: vec!["nightscout:read".into(), "nightscout:tunnel".into()],
            expires_at: None,
        };
        (credential, digest, sha1_digest)
    }))
}

fn bench(c: &mut Criterion) {
    let set = set();
    let now = UnixTime::from_secs(1_800_000_000);
    let sha1 = sha1_hex(SECRET);
    c.bench_function("credential find (raw)", |b| {
        b.iter(|| set.find(SECRET, now).unwrap())
    });
    c.bench_function("credential find (SHA-1 hex)", |b| {
        b.iter(|| set.find(&sha1, now).unwrap())
    });
    let key = ExchangeKey::new(&[7; 32]);
    let token = key.mint(&set.find(SECRET, now).unwrap(), now, 3600).token;
    c.bench_function("exchange token verify", |b| {
        b.iter(|| key.verify(&token, &set, now).unwrap())
    });
    let body = [
        r#"42["authorize",{"client":"web","secret":"x","history":48}]"#,
        r#"42["dbAdd",{"collection":"entries","data":{"type":"sgv","sgv":99}}]"#,
        r#"42["dbAdd",{"collection":"treatments","data":{"insulin":5}}]"#,
        "2",
    ]
    .join("\x1e");
    let holds = |scope: &str| scope == "nightscout:read" || scope == "nightscout:tunnel";
    c.bench_function("socket.io polling body (4 packets)", |b| {
        b.iter(|| filter(body.as_bytes(), Engine::V4, holds, Some("site-secret")).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
