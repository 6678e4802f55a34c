//! The SDK's parsers of what runtime detection reads: `/proc` maps and status, environ,
//! Android property files and `getprop` output, Frida artefacts, the WebSocket handshake, and
//! the patched-code classifier. The first byte picks the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_sdk::detect::patterns::{self, Arch};
use medgate_sdk::detect::{artefacts, procfs, props::Props};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 6 {
        0 => {
            let maps = procfs::parse_maps(&text);
            for mapping in &maps {
                assert!(mapping.start <= mapping.end);
                let _ = (mapping.is_file(), mapping.file_name(), mapping.len());
            }
            let _ = artefacts::frida_in_maps(&maps);
        }
        1 => {
            let _ = procfs::tracer_pid(&text);
        }
        2 => {
            let _ = procfs::environ_sets(rest, "LD_PRELOAD");
        }
        3 => {
            let mut props = Props::default();
            props.add_prop_file(&text);
            props.add_getprop(&text);
            assert!(props.len() <= medgate_sdk::detect::props::MAX_PROPS);
        }
        4 => {
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            let _ = artefacts::frida_in_fds(&lines);
            let _ = artefacts::frida_threads(&lines);
            let _ = artefacts::is_websocket_upgrade(&text, "dGhlIHNhbXBsZSBub25jZQ==");
        }
        _ => {
            let _ = patterns::classify(Arch::X86_64, rest);
            let _ = patterns::classify(Arch::Aarch64, rest);
        }
    }
});
