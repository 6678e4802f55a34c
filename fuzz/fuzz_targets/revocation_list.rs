//! Android's revocation status list (the JSON Google serves, or a hostile stand-in for it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::android::revocation::RevocationList;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = RevocationList::parse(data) {
        let _ = list.lookup("c8966fcb2fbb0d7a");
    }
});
