//! A compact JWE as a control plane (or a man in the middle) serves it to the SDK: the
//! parser, the header allow-list, the ephemeral key's curve check and the unwrap must refuse
//! hostile input without panicking, for both key managements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_trust::jwe::{self, EcdhSecret, KeyManagement};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A fixed recipient (a valid scalar), so a seed sealed to it reaches the unwrap.
    let Ok(recipient) = EcdhSecret::from_bytes(&[7u8; 32]) else {
        return;
    };
    let _ = jwe::decrypt(text, KeyManagement::EcdhEsA256Kw(&recipient));
    let _ = jwe::decrypt(text, KeyManagement::A256Kw(&[7u8; 32]));
});
