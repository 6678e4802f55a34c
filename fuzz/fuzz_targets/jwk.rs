//! Public JWK parsing and thumbprints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_proto::PublicJwk;

fuzz_target!(|data: &[u8]| {
    if let Ok(jwk) = serde_json::from_slice::<PublicJwk>(data) {
        let _ = jwk.thumbprint();
        let round = serde_json::to_vec(&jwk).expect("a parsed JWK serialises");
        assert_eq!(serde_json::from_slice::<PublicJwk>(&round).ok(), Some(jwk));
    }
});
