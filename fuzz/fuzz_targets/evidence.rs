//! Evidence JWS verification.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::UnixTime;
use medgate_verify::evidence::{EvidenceLimits, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = verify(text, &EvidenceLimits::default(), UnixTime::from_secs(1_800_000_000));
});
