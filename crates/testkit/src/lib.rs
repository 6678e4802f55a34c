//! Test support shared by medgate's crates. A dev-dependency only.

// Test support: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

/// The folder of real attestation and standards vectors (`../shared/vectors` beside the
/// checkout, or `$MEDGATE_VECTORS`).
///
/// When `MEDGATE_VECTORS` is set (CI sets it), a missing folder fails the test. When it is not
/// set and the default folder is absent (a newcomer's clone), the test is skipped with one line
/// on stderr and `None` is returned.
pub fn vectors_dir() -> Option<PathBuf> {
    if let Some(configured) = std::env::var_os("MEDGATE_VECTORS") {
        let path = PathBuf::from(configured);
        assert!(
            path.is_dir(),
            "MEDGATE_VECTORS={} is not a folder; the vector tests cannot run",
            path.display()
        );
        return Some(path);
    }
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors");
    if default.is_dir() {
        Some(default)
    } else {
        eprintln!("skipped: no vectors at ../shared/vectors and MEDGATE_VECTORS is unset");
        None
    }
}

/// The path in the environment variable `variable` (a tool a venv or script provides, e.g.
/// `MEDGATE_TUF_PYTHON`). Unset: in CI (`MEDGATE_CI`) the test fails; elsewhere it is skipped
/// with one line on stderr naming `maker`, the command that provides it, and `None` is returned.
pub fn tool(variable: &str, maker: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(variable) {
        return Some(PathBuf::from(path));
    }
    assert!(
        std::env::var_os("MEDGATE_CI").is_none(),
        "{variable} is unset in CI: scripts/test sets it with {maker}"
    );
    eprintln!("skipped: {variable} is unset ({maker} makes one)");
    None
}

/// Reads and parses a JSON file below the vectors folder.
pub fn vector_json(dir: &std::path::Path, relative: &str) -> serde_json::Value {
    let path = dir.join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vector {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("vector {} is not JSON: {e}", path.display()))
}

/// The bytes of an Apple App Attest vector named by a `cases.json` entry's `file`:
/// a `.b64` file, a `.json` fixture (`attestation` or `assertion` field), or a YAML document
/// `file.yaml#<type>(id=<id>)` with an `attestationBase64` / `assertionBase64` line.
pub fn apple_vector_bytes(dir: &std::path::Path, file: &str) -> Vec<u8> {
    use base64::Engine;
    let decode = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()))
            .unwrap_or_else(|e| panic!("{file}: not base64: {e}"))
    };
    let base = dir.join("apple-app-attest");
    if let Some((path, selector)) = file.split_once('#') {
        let kind = selector.split('(').next().unwrap_or_default();
        let id = selector
            .split("id=")
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(')');
        let text =
            std::fs::read_to_string(base.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let document = text
            .split("\n---")
            .find(|doc| doc.lines().any(|line| line.trim() == format!("id: {id}")))
            .unwrap_or_else(|| panic!("{file}: no document with id {id}"));
        let key = format!("{kind}Base64:");
        let line = document
            .lines()
            .find_map(|line| line.trim().strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("{file}: no {key}"));
        return decode(line);
    }
    let path = base.join(file);
    if file.ends_with(".json") {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let field = if file.contains("assertion") {
            "assertion"
        } else {
            "attestation"
        };
        return decode(
            json[field]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: no {field}")),
        );
    }
    decode(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Lowercase hex to bytes (test inputs are trusted).
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .unwrap_or_else(|e| panic!("bad hex {text}: {e}"))
        })
        .collect()
}

/// An RFC 3339 instant (with or without fraction, `Z` or offset) as Unix seconds.
pub fn unix_seconds(rfc3339: &str) -> i64 {
    let parsed =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("bad instant {rfc3339}: {e}"));
    parsed.unix_timestamp()
}
pub mod attestation;
pub mod forgery;
pub mod partner;
pub mod pki;
pub mod postgres;
pub mod redis;
