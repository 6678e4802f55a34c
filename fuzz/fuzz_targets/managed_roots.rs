//! `roots.pem` as a repository (or a man in the middle, before its hash is checked) serves it,
//! with the hosts from the target's `custom`: the first byte splits host text from the PEM.
//! Parsing must refuse without panicking, within its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_trust::roots::{ManagedRoots, hosts_of};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (hosts, pem) = rest.split_at(at);
    let custom = serde_json::from_slice::<serde_json::Value>(hosts).ok();
    let hosts = hosts_of(custom.as_ref()).unwrap_or_else(|_| vec!["api.example.org".into()]);
    if let Ok(managed) = ManagedRoots::parse(pem, &hosts) {
        let _ = managed.covers("api.example.org");
    }
});
