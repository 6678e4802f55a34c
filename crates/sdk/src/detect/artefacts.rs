//! Artefacts attack tools leave, recognised in text the detectors read: Frida's agent in the
//! memory map, its injector among open descriptors, its thread names, its control service's
//! WebSocket handshake. Pure functions over hostile text, fuzzed.

use std::collections::BTreeSet;

use medgate_proto::wire::SignalKind;

use super::procfs::Mapping;
use super::{Confidence, Detection};

/// Frida's agent and gadget in the memory map: a memfd (`/memfd:frida-agent-64.so (deleted)`),
/// a file in Frida's temp directory (`/tmp/frida-…/frida-agent-64.so`, Android's
/// `/data/local/tmp/re.frida.server/…`), or an embedded gadget (`libfrida-gadget.so`).
pub fn frida_in_maps(maps: &[Mapping]) -> Vec<Detection> {
    let mut seen = BTreeSet::new();
    maps.iter()
        .filter(|mapping| is_frida_path(&mapping.path))
        .filter(|mapping| seen.insert(mapping.path.clone()))
        .map(|mapping| {
            Detection::new(
                SignalKind::Hook,
                "frida_maps",
                format!("mapped: {}", mapping.path),
                Confidence::High,
            )
        })
        .collect()
}

pub fn is_frida_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("frida-agent")
        || lower.contains("frida-gadget")
        || lower.contains("re.frida.server")
        || lower.contains("frida-gum")
        || (lower.contains("/frida-") && lower.contains(".so"))
}

/// Frida's injector (`linjector`) pipes and files among open descriptor targets.
pub fn frida_in_fds(targets: &[String]) -> Vec<Detection> {
    targets
        .iter()
        .filter(|target| {
            let lower = target.to_ascii_lowercase();
            lower.contains("linjector") || is_frida_path(&lower) || lower.contains("/frida-")
        })
        .map(|target| {
            Detection::new(
                SignalKind::Hook,
                "frida_fds",
                format!("open descriptor: {target}"),
                Confidence::High,
            )
        })
        .collect()
}

/// Thread names Frida's agent gives its threads (`gum-js-loop`, `gum-dbus`, `pool-frida`, …).
pub fn frida_threads(names: &[String]) -> Vec<Detection> {
    let mut seen = BTreeSet::new();
    names
        .iter()
        .filter(|name| {
            matches!(name.as_str(), "gum-js-loop" | "gum-dbus")
                || name.starts_with("frida")
                || name.starts_with("pool-frida")
        })
        .filter(|name| seen.insert(name.as_str()))
        .map(|name| {
            Detection::new(
                SignalKind::Hook,
                "frida_threads",
                format!("thread named {name}"),
                Confidence::High,
            )
        })
        .collect()
}

const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` a server must answer to `key` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &str) -> String {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let digest = Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(WEBSOCKET_GUID.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Whether `response` is a WebSocket upgrade answering `key`: what Frida's control service
/// (frida-server, a portal) says to `GET /ws`.
pub fn is_websocket_upgrade(response: &str, key: &str) -> bool {
    let mut lines = response.split("\r\n");
    let switching = lines
        .next()
        .is_some_and(|status| status.starts_with("HTTP/1.1 101"));
    let expected = websocket_accept(key);
    switching
        && lines.take_while(|line| !line.is_empty()).any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::procfs;

    #[test]
    fn frida_artefacts_in_recorded_maps_fds_and_threads() {
        let maps = procfs::parse_maps(
            "\
7fdb51b8c000-7fdb51d52000 r--p 00000000 00:01 1193 /memfd:frida-agent-64.so (deleted)
7fdb51d52000-7fdb532d3000 r-xp 001c6000 00:01 1193 /memfd:frida-agent-64.so (deleted)
7a00000000-7a00100000 r-xp 00000000 fd:08 12 /data/local/tmp/re.frida.server/frida-agent-64.so
7b00000000-7b00100000 r-xp 00000000 fd:08 13 /data/app/~~A==/org.example-1/lib/arm64/libfrida-gadget.so
7c00000000-7c00100000 r-xp 00000000 fd:01 14 /usr/lib/x86_64-linux-gnu/libc.so.6
",
        );
        let found = frida_in_maps(&maps);
        assert_eq!(found.len(), 3);
        assert!(found[0].detail.contains("/memfd:frida-agent-64.so"));
        // Frida before 16 injected through named pipes in its temp directory.
        let fds = frida_in_fds(&[
            "/dev/null".into(),
            "socket:[177714]".into(),
            "/tmp/frida-d2bf1a1c9e3d4a8fb2c3/linjector-7".into(),
        ]);
        assert_eq!(fds.len(), 1);
        let threads = frida_threads(&[
            "medgate-victim".into(),
            "gmain".into(),
            "gdbus".into(),
            "gum-js-loop".into(),
            "pool-frida".into(),
            "gum-js-loop".into(),
        ]);
        // GLib's own gmain and gdbus are not Frida's alone.
        assert_eq!(threads.len(), 2);
        assert!(frida_in_maps(&maps[4..]).is_empty());
    }

    #[test]
    fn websocket_handshake_of_a_recorded_frida_portal() {
        // Frida 17's control service answering the RFC 6455 sample key.
        let response = "HTTP/1.1 101 Switching Protocols\r\nDate: Sat, 21 Nov 2026 14:49:01 GMT\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(is_websocket_upgrade(response, "dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_websocket_upgrade(response, "b3RoZXIga2V5IG5vbmNlIQ=="));
        assert!(!is_websocket_upgrade(
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            "dGhlIHNhbXBsZSBub25jZQ=="
        ));
        assert!(!is_websocket_upgrade("", "dGhlIHNhbXBsZSBub25jZQ=="));
    }
}
