//! DPoP proof verification (RFC 9449 §4.3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::UnixTime;
use medgate_verify::dpop::{ProofPolicy, RequestTarget, verify_proof};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let target = RequestTarget { method: "GET", uri: "https://api.example/v1/entries" };
    let _ = verify_proof(text, target, &ProofPolicy::default(), UnixTime::from_secs(1_562_262_618));
});
