//! Partner backends' inputs: a JWKS, a client assertion, a scope request. The first byte
//! picks one. Never panic; an assertion never verifies under keys the fuzzer cannot sign with;
//! a grant never holds more than the one scope registered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::UnixTime;
use medgate_verify::partner::{ClientAssertion, PartnerJwks};
use medgate_verify::smart_scope::{self, SmartScope};

/// The public key of RFC 7515 Appendix A.3, as a partner's JWKS.
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
const REGISTERED: &str = "system/Observation.rs";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 3 {
        0 => {
            if let Ok(keys) = PartnerJwks::parse(rest) {
                assert!(keys.kids().count() >= 1);
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let Ok(assertion) = ClientAssertion::parse(text) else { return };
            let keys = PartnerJwks::parse(JWKS.as_bytes()).expect("the fixed JWKS parses");
            let client = assertion.claimed_client().to_string();
            let now = UnixTime::from_secs(1_800_000_000);
            let endpoint = "https://attest.example/v1/oauth/token";
            // The fixed key's private half is RFC 7515's; a JWS signed with it over claims
            // that also pass every other check is the only way through.
            if let Ok(verified) = assertion.verify(&client, &keys, &[endpoint], 5, now) {
                assert_eq!(verified.client_id(), client);
                assert!(verified.expires_at() > now);
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let registered = SmartScope::parse(REGISTERED).expect("a SMART scope");
            if let Some(granted) = smart_scope::intersect(text, &[REGISTERED.to_string()]) {
                for scope in granted {
                    let parsed = SmartScope::parse(&scope).expect("grants are SMART scopes");
                    assert!(registered.covers(&parsed), "{scope}");
                }
            }
        }
    }
});
