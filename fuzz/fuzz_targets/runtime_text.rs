//! The SDK's parsers of what runtime detection reads: `/proc` maps and status, environ,
//! Android property files and `getprop` output, Frida artefacts, the WebSocket handshake, and
//! the patched-code classifier, the auxiliary vector and the dynamic linker's link maps (read
//! from an address space made of the input). The first byte picks the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_sdk::detect::patterns::{self, Arch};
use medgate_sdk::detect::{artefacts, linkmap, procfs, props::Props};

/// The input as memory at `BASE`: reads outside it fail, as unmapped memory does.
struct Input<'a>(&'a [u8]);

const BASE: u64 = 0x10000;

impl linkmap::Memory for Input<'_> {
    fn read(&self, address: u64, buffer: &mut [u8]) -> bool {
        let Some(from) = address.checked_sub(BASE).and_then(|a| usize::try_from(a).ok()) else {
            return false;
        };
        match from.checked_add(buffer.len()).and_then(|end| self.0.get(from..end)) {
            Some(bytes) => {
                buffer.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 7 {
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
        5 => {
            let _ = linkmap::program_headers(rest);
            if let Some((&phnum, _)) = rest.split_first()
                && let Ok(found) = linkmap::namespaces(&Input(rest), BASE + 1, u64::from(phnum))
            {
                let _ = linkmap::preloaded(&found[0], &["libc.so.6".to_string()], &|name| {
                    name.ends_with("/ld-linux-x86-64.so.2")
                });
            }
        }
        _ => {
            let _ = patterns::classify(Arch::X86_64, rest);
            let _ = patterns::classify(Arch::Aarch64, rest);
        }
    }
});
