//! python-tuf (PyPI `tuf`, the reference implementation) judges medgate's TUF code: medgate's
//! client accepts a repository python-tuf built with its own keys, python-tuf's ngclient
//! refreshes a repository medgate signed (root rotation included), and both refuse the same
//! forgeries. Needs `$MEDGATE_TUF_PYTHON` (a Python with `interop/tuf/requirements.txt`, which
//! `scripts/venv` makes and `scripts/test` sets); without it the tests skip with one line,
//! except in CI (`MEDGATE_CI`), where they fail.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use medgate_trust::tuf::TufError;
use medgate_trust::tuf::client::TrustedSet;
use medgate_trust::tuf::repository::{self as repo, RoleKey, sign};

fn python() -> Option<PathBuf> {
    medgate_testkit::tool(
        "MEDGATE_TUF_PYTHON",
        "scripts/venv tuf interop/tuf/requirements.txt",
    )
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/tuf/tuf_interop.py")
}

fn run(python: &Path, args: &[&str]) -> String {
    let output = Command::new(python)
        .arg(script())
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tuf_interop.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn canonical_json_is_securesystemslibs() {
    let Some(python) = python() else { return };
    let value =
        serde_json::json!({"b": [1, -2, true, null], "a": "q\"uo\\te\n", "é": {"z": 0, "y": "ü"}});
    let ours = medgate_trust::tuf::canonical::encode(&value).unwrap();
    assert_eq!(run(&python, &["canonical"]).into_bytes(), ours);
}

#[test]
fn medgates_client_accepts_a_repository_python_tuf_built() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let printed = run(&python, &["make-repo", dir.path().to_str().unwrap()]);
    let pins = serde_json::from_str::<serde_json::Value>(&printed).unwrap()["pins"]
        .as_str()
        .unwrap()
        .to_string();
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let now = now();
    let mut set = TrustedSet::new(&read("1.root.json")).unwrap();
    set.update_root(&read("2.root.json")).unwrap();
    set.check_root_not_expired(now).unwrap();
    assert!(set.update_timestamp(&read("timestamp.json"), now).unwrap());
    set.update_snapshot(&read("snapshot.json"), now).unwrap();
    set.update_targets(&read("targets.json"), now).unwrap();
    set.verify_target("pins.json", pins.as_bytes()).unwrap();
    assert_eq!(read("targets/pins.json"), pins.as_bytes());

    // A pin set changed after python-tuf signed its description is refused.
    let mut forged = pins.clone().into_bytes();
    let last = forged.len() - 3;
    forged[last] ^= 1;
    assert!(set.verify_target("pins.json", &forged).is_err());
}

/// A repository medgate signs: root 1 and 2 (every key rotated), and one release under root 2
/// whose timestamp is signed by `timestamp_signer` and expires at `timestamp_expires`.
fn write_repository(dir: &Path, timestamp_signer: &RoleKey, timestamp_expires: i64) -> Vec<u8> {
    let old: Vec<RoleKey> = (1..=4).map(|n| RoleKey::from_seed(&[n; 32])).collect();
    let new: Vec<RoleKey> = (11..=14).map(|n| RoleKey::from_seed(&[n; 32])).collect();
    let later = now() + 365 * 86_400;
    let root_of = |keys: &[RoleKey], version| {
        repo::root(
            version,
            later,
            [
                (&[&keys[0]], 1),
                (&[&keys[1]], 1),
                (&[&keys[2]], 1),
                (&[&keys[3]], 1),
            ],
        )
        .unwrap()
    };
    let root1 = sign(&root_of(&old, 1), &[&old[0]]).unwrap();
    let root2 = sign(&root_of(&new, 2), &[&old[0], &new[0]]).unwrap();
    let pins = br#"{"version":1,"pins":[]}"#;
    let targets = sign(
        &repo::targets(1, later, &[("pins.json", pins)]).unwrap(),
        &[&new[3]],
    )
    .unwrap();
    let snapshot = sign(&repo::snapshot(1, later, 1, &targets).unwrap(), &[&new[2]]).unwrap();
    let timestamp = sign(
        &repo::timestamp(1, timestamp_expires, 1, &snapshot).unwrap(),
        &[timestamp_signer],
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("targets")).unwrap();
    for (name, bytes) in [
        ("1.root.json", &root1[..]),
        ("2.root.json", &root2[..]),
        ("timestamp.json", &timestamp[..]),
        ("snapshot.json", &snapshot[..]),
        ("targets.json", &targets[..]),
        ("targets/pins.json", &pins[..]),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    root1
}

fn python_refresh(python: &Path, dir: &Path) -> serde_json::Value {
    let printed = run(
        python,
        &[
            "refresh",
            dir.to_str().unwrap(),
            dir.join("1.root.json").to_str().unwrap(),
        ],
    );
    serde_json::from_str(&printed).unwrap()
}

fn medgate_refresh(dir: &Path) -> Result<(), TufError> {
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let now = now();
    let mut set = TrustedSet::new(&read("1.root.json"))?;
    set.update_root(&read("2.root.json"))?;
    set.check_root_not_expired(now)?;
    set.update_timestamp(&read("timestamp.json"), now)?;
    set.update_snapshot(&read("snapshot.json"), now)?;
    set.update_targets(&read("targets.json"), now)?;
    set.verify_target("pins.json", &read("targets/pins.json"))
}

#[test]
fn python_tuf_refreshes_what_medgate_publishes_and_refuses_the_same_forgeries() {
    let Some(python) = python() else { return };
    let timestamp_key = RoleKey::from_seed(&[12; 32]);

    let honest = tempfile::tempdir().unwrap();
    write_repository(honest.path(), &timestamp_key, now() + 86_400);
    let result = python_refresh(&python, honest.path());
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["pins"], r#"{"version":1,"pins":[]}"#);
    assert_eq!(result["root_version"], 2, "python-tuf walked the rotation");
    medgate_refresh(honest.path()).unwrap();

    // The timestamp signed by the rotated-out key, and an expired one: refused by both.
    let wrong_key = tempfile::tempdir().unwrap();
    write_repository(
        wrong_key.path(),
        &RoleKey::from_seed(&[2; 32]),
        now() + 86_400,
    );
    let result = python_refresh(&python, wrong_key.path());
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(
        medgate_refresh(wrong_key.path()),
        Err(TufError::Threshold("timestamp"))
    );
    let expired = tempfile::tempdir().unwrap();
    write_repository(expired.path(), &timestamp_key, now() - 60);
    let result = python_refresh(&python, expired.path());
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["error"], "ExpiredMetadataError", "{result}");
    assert_eq!(
        medgate_refresh(expired.path()),
        Err(TufError::Expired("timestamp"))
    );
}
