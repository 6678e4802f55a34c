//! Compact JWS parsing and verification with every known algorithm allowed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_proto::{Alg, PublicJwk};
use medgate_verify::jws;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = jws::parse(text, 64 * 1024, &[Alg::Es256, Alg::EdDsa, Alg::Ed25519]) {
        let _ = parsed.payload();
        if let Some(key) = parsed.header().jwk.clone() {
            let _ = parsed.verify(&key);
        }
        let _ = parsed.verify(&PublicJwk::P256 { x: [1; 32], y: [2; 32] });
        let _ = parsed.verify(&PublicJwk::Ed25519 { x: [3; 32] });
    }
});
