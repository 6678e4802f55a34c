//! Test support shared by medgate's crates. A dev-dependency only.

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

/// Reads and parses a JSON file below the vectors folder.
pub fn vector_json(dir: &std::path::Path, relative: &str) -> serde_json::Value {
    let path = dir.join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vector {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("vector {} is not JSON: {e}", path.display()))
}
