//! Presented credentials and exchange tokens: never panic; an exchange token only verifies
//! under the key that minted it, and a presented value finds a credential only if it is the
//! secret, `token=` and the secret, or the secret's SHA-1 hex.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::UnixTime;
use medgate_verify::credential::{Credential, CredentialSet, ExchangeKey, digests, sha1_hex};

const SECRET: &str = "follower-0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (digest, sha1_digest) = digests(SECRET);
    let set = CredentialSet::new([(
        Credential {
            id: "cred_0011223344556677".into(),
            app_id: "org.example.cgm".into(),
            kind: "follower".into(),
            name: "School nurse".into(),
            scopes: vec!["nightscout:read".into()],
            expires_at: None,
        },
        digest,
        sha1_digest,
    )]);
    let now = UnixTime::from_secs(1_800_000_000);
    if set.find(text, now).is_ok() {
        let value = text.strip_prefix("token=").unwrap_or(text);
        assert!(value == SECRET || value == sha1_hex(SECRET));
    }
    // Only the key's holder can mint: no input verifies under a key the fuzzer cannot know.
    assert!(ExchangeKey::new(&[9; 32]).verify(text, &set, now).is_err());
});
