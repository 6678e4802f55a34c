//! The Android KeyDescription extension parser, on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::android::key_description;

fuzz_target!(|data: &[u8]| {
    match key_description::parse(data) {
        Ok(parsed) => {
            // What `medgate inspect` and the policy will do with a decode.
            let _ = serde_json::to_string(&parsed);
            let _ = parsed.root_of_trust();
            let _ = parsed.attestation_application_id();
            let _ = parsed.lookup(|list| list.os_patch_level);
        }
        Err(error) => {
            // Error messages stay short whatever the input.
            assert!(error.to_string().len() < 200);
        }
    }
});
