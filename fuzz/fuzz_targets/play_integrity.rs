//! Play Integrity: token decryption and verification under the fixed test keys (first byte
//! even), and the verdict parser (first byte odd); every verdict then goes through the request
//! check at extreme instants.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use medgate_verify::play_integrity::testing::TestPlayKeys;
use medgate_verify::play_integrity::{self, Expectations, PlayIntegrityKeys, RequestBinding};

static KEYS: LazyLock<PlayIntegrityKeys> = LazyLock::new(|| TestPlayKeys::fixed().keys());

fuzz_target!(|data: &[u8]| {
    let Some((selector, rest)) = data.split_first() else { return };
    let verdict = if selector % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else { return };
        play_integrity::decrypt_and_verify(token, &KEYS)
    } else {
        play_integrity::parse_verdict(rest).map(play_integrity::testing::trust_unverified)
    };
    let Ok(verdict) = verdict else { return };
    serde_json::to_vec(&verdict).expect("a parsed verdict serialises");
    let timestamp = verdict.request_details.timestamp_millis;
    for request_binding in [
        RequestBinding::RequestHash("aGVsbG8gd29scmQgdGhlcmU"),
        RequestBinding::Nonce("aW50ZXJvcC1ub25jZS0wMDAx"),
    ] {
        let windows = [(60_000, 5_000), (i64::MAX, i64::MAX), (i64::MIN, -1)];
        for (max_age_ms, max_future_skew_ms) in windows {
            let expect = Expectations {
                package_name: "com.package.name",
                request_binding,
                max_age_ms,
                max_future_skew_ms,
            };
            for now in [i64::MIN, -1, 0, timestamp, timestamp.saturating_add(10_000), i64::MAX] {
                let _ = play_integrity::check_request(&verdict, &expect, now);
            }
        }
    }
});
