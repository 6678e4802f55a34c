//! socket.io long-polling bodies (Engine.IO 3 and 4): never panic, stay within their bounds;
//! what is kept for a subject with no scope reads again as the same packets, none of them an
//! event that needs a scope or one no client sends, none unreadable, no connect payload, and
//! no in-band credential at all (the site's own goes only to a subject that may read).
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_gateway::tunnel::{Engine, Packet, Requirement, filter, packets, read, requirement};

const SITE: &str = "site-secret-sha1";

fuzz_target!(|data: &[u8]| {
    let Some((&first, payload)) = data.split_first() else { return };
    let engine = if first % 2 == 0 { Engine::V3 } else { Engine::V4 };
    let Ok(kept) = filter(payload, engine, |_| false, Some(SITE)) else { return };
    let again = filter(kept.body.as_bytes(), engine, |_| false, Some(SITE))
        .expect("kept packets read again");
    assert_eq!((again.body.as_str(), again.dropped), (kept.body.as_str(), 0));
    for packet in packets(&kept.body, engine).expect("kept packets split again") {
        match read(packet) {
            Packet::Other => {}
            Packet::Connect { head } => assert_eq!(head, packet, "a connect payload was kept"),
            Packet::Event { name, arguments, .. } => {
                assert_eq!(requirement(&name, &arguments), Requirement::None, "{name} kept");
                if let Some(fields) = arguments.first().and_then(|a| a.as_object()) {
                    if ["authorize", "subscribe", "resubscribe"].contains(&name.as_str()) {
                        for credential in ["token", "accessToken", "jwtToken"] {
                            assert!(!fields.contains_key(credential), "{credential} kept");
                        }
                        assert!(!fields.contains_key("secret"), "a secret went to a non-reader");
                    }
                }
            }
            Packet::Unreadable => panic!("an unreadable packet was kept"),
        }
    }
});
