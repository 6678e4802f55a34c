//! Signed audit checkpoints (compact JWS): never panics, and a checkpoint pinned to a key other
//! than the one it carries never verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_proto::Thumbprint;
use medgate_verify::checkpoint;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(verified) = checkpoint::verify(text, None) {
        let other = Thumbprint::from_wire("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into());
        if *verified.key() != other {
            assert!(checkpoint::verify(text, Some(&other)).is_err());
        }
    }
});
