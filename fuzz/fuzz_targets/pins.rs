//! Pin sets as an operator or an over-the-air update writes them: a host pattern and a pin
//! (`sha256/base64` or base64), then a host to match. Input lines: pattern, pin, host.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_trust::pins::{HostPattern, Pin, PinRule, PinSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let (pattern, pin, host) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    let Ok(pattern) = HostPattern::parse(pattern) else {
        return;
    };
    // A parsed pattern prints back as itself.
    assert_eq!(HostPattern::parse(&pattern.to_string()), Ok(pattern.clone()));
    if let Ok(pin) = Pin::parse(pin) {
        assert_eq!(Pin::parse(&pin.to_string()), Ok(pin));
        if let Ok(set) = PinSet::new(vec![PinRule {
            pattern,
            pins: vec![pin],
        }]) {
            let _ = set.pins_for(host);
        }
    }
});
