//! TUF metadata as a repository (or a man in the middle) serves it: the first byte picks the
//! role, the rest is the file. Parsing, canonical encoding and the trusted set's checks must
//! refuse without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_trust::tuf::client::TrustedSet;
use medgate_trust::tuf::metadata::{Envelope, Root, Snapshot, Targets, Timestamp};

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&role, bytes)) = data.split_first() else {
        return;
    };
    match role % 5 {
        0 => {
            if let Ok(mut set) = TrustedSet::new(bytes) {
                let _ = set.update_root(bytes);
                let _ = set.update_timestamp(bytes, 0);
            }
        }
        1 => drop(Envelope::<Root>::parse(bytes, LIMIT)),
        2 => drop(Envelope::<Timestamp>::parse(bytes, LIMIT)),
        3 => drop(Envelope::<Snapshot>::parse(bytes, LIMIT)),
        _ => drop(Envelope::<Targets>::parse(bytes, LIMIT)),
    }
});
