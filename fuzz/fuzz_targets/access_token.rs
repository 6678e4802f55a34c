//! Access token verification against a fixed key set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_proto::PublicJwk;
use medgate_verify::UnixTime;
use medgate_verify::keys::KeySet;
use medgate_verify::token::{self, TokenExpectations};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let keys = KeySet::new([("k".to_string(), PublicJwk::P256 { x: [1; 32], y: [2; 32] })]);
    let expect = TokenExpectations { issuer: "https://i", audience: "https://a", leeway_secs: 5 };
    let _ = token::verify(text, &keys, &expect, UnixTime::from_secs(1_800_000_000));
});
