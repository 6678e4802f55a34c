//! Audit exports (JSON Lines and CEF, read line by line): never panics, and an export that
//! verifies says a range its header named, ending at its head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_store::audit_export;

fuzz_target!(|data: &[u8]| {
    if let Ok(verified) = audit_export::verify(&mut &data[..], None) {
        assert!(verified.first_seq <= verified.last_seq);
        assert_eq!(verified.head_hash.len(), 64);
    }
});
