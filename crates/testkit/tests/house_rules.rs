//! The house rules of ARCHITECTURE.md as checks over the source tree, so a change that breaks
//! one fails here instead of waiting for a reviewer:
//!
//! - `verify` and `proto` read no clock, touch no file system, network or environment, and
//!   use no async runtime: `now` is always an argument.
//! - The gateway's request path writes nothing to the store: the gateway crate calls only the
//!   store's read methods (and the audit sink, whose writer runs in the background).
//! - `unsafe` appears only in `medgate_sdk::detect::sys`.
//! - Scripts end only processes they started (no `pkill`/`killall` by name) and remove only
//!   directories they made (no `rm -rf` of shared temp paths).
//! - No `__pycache__` is tracked, and `.ci/run` names no machine-specific path.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file below `dir` whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if !["target", "node_modules", ".git", "corpus", "artifacts"]
                    .contains(&name.as_str())
                {
                    pending.push(path);
                }
            } else if name.ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The code of a Rust file without comments and without its `#[cfg(test)]` module (tests may
/// use what the code may not).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(start) => &text[..start],
        None => &text[..],
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(comment) => &line[..comment],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn offenders(paths: &[PathBuf], patterns: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for path in paths {
        let code = code(path);
        for pattern in patterns {
            if code.contains(pattern) {
                found.push(format!("{}: {pattern}", path.display()));
            }
        }
    }
    found
}

#[test]
fn the_verification_core_reads_no_clock_and_does_no_io() {
    let mut sources = files(&repo().join("crates/verify/src"), ".rs");
    sources.extend(files(&repo().join("crates/proto/src"), ".rs"));
    assert!(sources.len() > 10);
    let forbidden = [
        "SystemTime",
        "Instant::now",
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "tokio",
        "File::open",
    ];
    let found = offenders(&sources, &forbidden);
    assert!(found.is_empty(), "the core must stay pure: {found:#?}");
}

#[test]
fn the_gateway_writes_nothing_to_the_store() {
    let sources = files(&repo().join("crates/gateway/src"), ".rs");
    let writes = [
        "store.insert",
        "store.record",
        "store.append",
        "store.revoke",
        "store.add",
        "store.create",
        "store.claim",
        "store.advance",
        "store.set",
        "store.take_challenge",
        "store.rotate",
        "store.put",
        "store.delete",
        "store.prune",
        "store.disable",
    ];
    let found = offenders(&sources, &writes);
    assert!(found.is_empty(), "the gateway must not write: {found:#?}");
}

#[test]
fn unsafe_lives_in_one_module() {
    let allowed = repo().join("crates/sdk/src/detect/sys.rs");
    let mut found = Vec::new();
    for path in files(&repo().join("crates"), ".rs") {
        if path.ends_with("crates/sdk/src/detect/sys.rs") || path == allowed {
            continue;
        }
        let code = code(&path);
        // Spelled in two parts so this file does not match itself.
        for rest in [" {", " fn", " impl", " extern"] {
            let pattern = format!("{}{rest}", "unsafe");
            if code.contains(&pattern) {
                found.push(format!("{}: {pattern}", path.display()));
            }
        }
    }
    assert!(found.is_empty(), "unsafe outside detect::sys: {found:#?}");
    assert!(
        code(&allowed).contains(&format!("{}{}", "unsafe", " {")),
        "the module that needs it has it"
    );
}

#[test]
fn scripts_end_only_what_they_started() {
    let mut scripts = files(&repo().join("scripts"), "");
    scripts.push(repo().join(".ci/run"));
    scripts.extend(files(&repo().join("tests"), ".py"));
    scripts.extend(files(&repo().join("tests"), ".sh"));
    let mut found = Vec::new();
    for path in &scripts {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with('#') {
                continue;
            }
            let by_name = line.contains("pkill") || line.contains("killall");
            let shared_rm = line.contains("rm -rf /tmp") || line.contains("rm -rf \"/tmp");
            if by_name || shared_rm {
                found.push(format!("{}:{}: {line}", path.display(), number + 1));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    for machine_path in ["/work/", "/root/", "/home/"] {
        assert!(!ci.contains(machine_path), ".ci/run names {machine_path}");
    }
}

#[test]
fn no_python_bytecode_is_tracked() {
    let Ok(output) = std::process::Command::new("git")
        .args(["ls-files"])
        .current_dir(repo())
        .output()
    else {
        eprintln!("skipped: git is not available");
        return;
    };
    if !output.status.success() {
        eprintln!("skipped: not a git checkout");
        return;
    }
    let tracked = String::from_utf8_lossy(&output.stdout);
    let bytecode: Vec<&str> = tracked
        .lines()
        .filter(|path| path.contains("__pycache__") || path.ends_with(".pyc"))
        .collect();
    assert!(bytecode.is_empty(), "{bytecode:?}");
}
