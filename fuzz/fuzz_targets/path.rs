//! The gateway's path canonicaliser: never panics, and what it accepts is a fixed point that
//! carries none of the characters it refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_gateway::path::canonical_path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(canonical) = canonical_path(text) {
        assert_eq!(canonical_path(&canonical).as_deref(), Ok(canonical.as_str()));
        assert!(canonical.is_ascii());
        assert!(!canonical.contains(';') && !canonical.contains('\\'));
        let lower = canonical.to_ascii_lowercase();
        for encoded in ["%2f", "%5c", "%25", "%3b", "%00", "%2e"] {
            assert!(!lower.contains(encoded), "{canonical}");
        }
        assert!(!canonical.split('/').any(|s| s == "." || s == ".."));
    }
});
