//! A platform signer's answers: the public key it reports (SEC1 point or SubjectPublicKeyInfo)
//! and the signature it returns (r‖s or DER). The first byte splits the input between them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_sdk::signer::{PlatformKey, PlatformSign, Signer};

struct Returns(Vec<u8>);

impl PlatformSign for Returns {
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, String> {
        Ok(self.0.clone())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (public_key, signature) = rest.split_at(usize::from(split).min(rest.len()));
    if let Ok(key) = PlatformKey::new(public_key, Box::new(Returns(signature.to_vec()))) {
        let _ = key.thumbprint();
        let _ = key.sign(b"fuzz");
    }
});
