//! Every attack TUF's client workflow exists to stop, each against the rule that stops it,
//! on repositories signed here with real Ed25519 keys.
#![allow(clippy::unwrap_used)]

use super::TufError;
use super::client::TrustedSet;
use super::metadata::{Key, RoleName};
use super::repository::{self as repo, RoleKey, sign};

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
const PINS: &[u8] = br#"{"pins":[]}"#;

fn key(n: u8) -> RoleKey {
    RoleKey::from_seed(&[n; 32])
}

/// The keys of a repository: root, timestamp, snapshot, targets.
struct Keys {
    root: RoleKey,
    timestamp: RoleKey,
    snapshot: RoleKey,
    targets: RoleKey,
}

impl Keys {
    fn new(base: u8) -> Keys {
        Keys {
            root: key(base),
            timestamp: key(base + 1),
            snapshot: key(base + 2),
            targets: key(base + 3),
        }
    }

    fn root(&self, version: u64, expires: i64) -> Vec<u8> {
        let root = repo::root(
            version,
            expires,
            [
                (&[&self.root], 1),
                (&[&self.timestamp], 1),
                (&[&self.snapshot], 1),
                (&[&self.targets], 1),
            ],
        )
        .unwrap();
        sign(&root, &[&self.root]).unwrap()
    }
}

/// One published state of the top-level roles below root.
struct Release {
    timestamp: Vec<u8>,
    snapshot: Vec<u8>,
    targets: Vec<u8>,
}

fn release(keys: &Keys, version: u64, expires: i64, pins: &[u8]) -> Release {
    let targets = targets_file(version, expires, pins, &[&keys.targets]);
    release_of(keys, version, version, expires, targets)
}

/// A targets file listing `pins.json`, signed by `signers`.
fn targets_file(version: u64, expires: i64, pins: &[u8], signers: &[&RoleKey]) -> Vec<u8> {
    sign(
        &repo::targets(version, expires, &[("pins.json", pins)]).unwrap(),
        signers,
    )
    .unwrap()
}

/// `targets` (version `targets_version`) under a snapshot and a timestamp of `version`,
/// signed by their keys.
fn release_of(
    keys: &Keys,
    version: u64,
    targets_version: u64,
    expires: i64,
    targets: Vec<u8>,
) -> Release {
    let snapshot = sign(
        &repo::snapshot(version, expires, targets_version, &targets).unwrap(),
        &[&keys.snapshot],
    )
    .unwrap();
    let timestamp = sign(
        &repo::timestamp(version, expires, version, &snapshot).unwrap(),
        &[&keys.timestamp],
    )
    .unwrap();
    Release {
        timestamp,
        snapshot,
        targets,
    }
}

fn refresh(set: &mut TrustedSet, release: &Release, now: i64) -> Result<(), TufError> {
    set.check_root_not_expired(now)?;
    if set.update_timestamp(&release.timestamp, now)? {
        set.update_snapshot(&release.snapshot, now)?;
        set.update_targets(&release.targets, now)?;
    }
    Ok(())
}

fn trusted(keys: &Keys) -> TrustedSet {
    TrustedSet::new(&keys.root(1, NOW + 365 * DAY)).unwrap()
}

#[test]
fn an_honest_repository_refreshes_and_its_target_verifies() {
    let keys = Keys::new(1);
    let mut set = trusted(&keys);
    refresh(&mut set, &release(&keys, 1, NOW + DAY, PINS), NOW).unwrap();
    set.verify_target("pins.json", PINS).unwrap();
    // Tampered target bytes, or another target's name, are refused.
    assert_eq!(
        set.verify_target("pins.json", br#"{"pins":[1]}"#),
        Err(TufError::LengthMismatch("target"))
    );
    assert_eq!(
        set.verify_target("pins.json", br#"{"pins":[9]}"#),
        Err(TufError::LengthMismatch("target"))
    );
    assert_eq!(
        set.verify_target("pins.json", br#"{"PINS":[]}"#),
        Err(TufError::HashMismatch("target"))
    );
    assert_eq!(
        set.verify_target("roots.pem", PINS),
        Err(TufError::UnknownTarget)
    );
    // A newer release replaces it.
    refresh(&mut set, &release(&keys, 2, NOW + DAY, b"v2"), NOW).unwrap();
    set.verify_target("pins.json", b"v2").unwrap();
}

#[test]
fn rollback_to_an_older_timestamp_or_targets_is_refused_and_the_last_good_stays() {
    let keys = Keys::new(1);
    let mut set = trusted(&keys);
    let old = release(&keys, 1, NOW + DAY, b"old pins");
    refresh(&mut set, &release(&keys, 2, NOW + DAY, b"new pins"), NOW).unwrap();
    assert_eq!(
        refresh(&mut set, &old, NOW),
        Err(TufError::Rollback("timestamp"))
    );
    set.verify_target("pins.json", b"new pins").unwrap();

    // A fresh timestamp over a snapshot that takes targets back (version 3 naming targets 1).
    let targets = targets_file(1, NOW + DAY, b"old pins", &[&keys.targets]);
    let back_targets = release_of(&keys, 3, 1, NOW + DAY, targets);
    assert!(set.update_timestamp(&back_targets.timestamp, NOW).unwrap());
    assert_eq!(
        set.update_snapshot(&back_targets.snapshot, NOW),
        Err(TufError::Rollback("targets"))
    );
    // A timestamp naming an older snapshot than the trusted one.
    let back = sign(
        &repo::timestamp(4, NOW + DAY, 1, &old.snapshot).unwrap(),
        &[&keys.timestamp],
    )
    .unwrap();
    assert_eq!(
        set.update_timestamp(&back, NOW),
        Err(TufError::Rollback("snapshot"))
    );
}

#[test]
fn frozen_metadata_is_refused_once_expired() {
    let keys = Keys::new(1);
    let mut set = trusted(&keys);
    let good = release(&keys, 1, NOW + DAY, PINS);
    refresh(&mut set, &good, NOW).unwrap();
    // The same timestamp again, once it has expired: refused, not "unchanged".
    assert_eq!(
        set.update_timestamp(&good.timestamp, NOW + 2 * DAY),
        Err(TufError::Expired("timestamp"))
    );
    // A day later the attacker can only replay what was fresh then.
    assert_eq!(
        set.update_timestamp(&release(&keys, 2, NOW + DAY, PINS).timestamp, NOW + 2 * DAY),
        Err(TufError::Expired("timestamp"))
    );
    // Expired snapshot and targets too, each named.
    let mut set = trusted(&keys);
    let short = release_of(
        &keys,
        1,
        1,
        NOW + DAY,
        targets_file(1, NOW + 10, PINS, &[&keys.targets]),
    );
    assert_eq!(
        refresh(&mut set, &short, NOW + 20),
        Err(TufError::Expired("targets"))
    );
    // An expired root stops a refresh before anything else.
    let set = TrustedSet::new(&keys.root(1, NOW - 1)).unwrap();
    assert_eq!(
        set.check_root_not_expired(NOW),
        Err(TufError::Expired("root"))
    );
}

#[test]
fn a_role_signed_by_the_wrong_key_or_too_few_keys_is_refused() {
    let keys = Keys::new(1);
    let mut set = trusted(&keys);
    let honest = release(&keys, 1, NOW + DAY, PINS);
    // The timestamp signed by the snapshot key.
    let wrong = sign(
        &repo::timestamp(1, NOW + DAY, 1, &honest.snapshot).unwrap(),
        &[&keys.snapshot],
    )
    .unwrap();
    assert_eq!(
        set.update_timestamp(&wrong, NOW),
        Err(TufError::Threshold("timestamp"))
    );
    // Unsigned, or signed by a stranger.
    let stranger = sign(
        &repo::timestamp(1, NOW + DAY, 1, &honest.snapshot).unwrap(),
        &[&key(99)],
    )
    .unwrap();
    assert_eq!(
        set.update_timestamp(&stranger, NOW),
        Err(TufError::Threshold("timestamp"))
    );
    // A signature over other bytes (the version changed after signing).
    let text = String::from_utf8(honest.timestamp.clone()).unwrap();
    let edited = text.replace("\"version\":1", "\"version\":7");
    assert_ne!(text, edited);
    assert_eq!(
        set.update_timestamp(edited.as_bytes(), NOW),
        Err(TufError::Threshold("timestamp"))
    );
}

#[test]
fn a_threshold_counts_distinct_keys_not_key_ids() {
    let keys = Keys::new(1);
    let (a, b) = (key(50), key(51));
    // Targets need two of {a, b}.
    let mut root = repo::root(
        1,
        NOW + DAY,
        [
            (&[&keys.root], 1),
            (&[&keys.timestamp], 1),
            (&[&keys.snapshot], 1),
            (&[&a, &b], 2),
        ],
    )
    .unwrap();
    // The same key a listed a second time under another id, also given to the role.
    root.keys.insert("alias-of-a".into(), a.public());
    root.roles
        .get_mut("targets")
        .unwrap()
        .keyids
        .push("alias-of-a".into());
    let mut set = TrustedSet::new(&sign(&root, &[&keys.root]).unwrap()).unwrap();
    let targets_of = |signers: &[&RoleKey]| {
        let targets = targets_file(1, NOW + DAY, PINS, signers);
        let mut text: serde_json::Value = serde_json::from_slice(&targets).unwrap();
        // A second copy of a's signature under the alias id.
        let first = text["signatures"][0].clone();
        let mut alias = first.clone();
        alias["keyid"] = "alias-of-a".into();
        text["signatures"].as_array_mut().unwrap().push(alias);
        serde_json::to_vec(&text).unwrap()
    };
    let threshold_one = release_of(&keys, 1, 1, NOW + DAY, targets_of(&[&a]));
    assert_eq!(
        refresh(&mut set, &threshold_one, NOW),
        Err(TufError::Threshold("targets"))
    );

    // Both keys: accepted.
    let mut set = TrustedSet::new(&sign(&root, &[&keys.root]).unwrap()).unwrap();
    let both = targets_file(1, NOW + DAY, PINS, &[&a, &b]);
    refresh(&mut set, &release_of(&keys, 1, 1, NOW + DAY, both), NOW).unwrap();
}

#[test]
fn mix_and_match_of_files_from_different_releases_is_refused() {
    let keys = Keys::new(1);
    let one = release(&keys, 1, NOW + DAY, b"one");
    let two = release(&keys, 2, NOW + DAY, b"two");
    let mut set = trusted(&keys);
    set.update_timestamp(&two.timestamp, NOW).unwrap();
    // The snapshot of release 1 under the timestamp of release 2.
    assert!(matches!(
        set.update_snapshot(&one.snapshot, NOW),
        Err(TufError::HashMismatch("snapshot") | TufError::LengthMismatch("snapshot"))
    ));
    set.update_snapshot(&two.snapshot, NOW).unwrap();
    // The targets of release 1 under the snapshot of release 2.
    assert!(matches!(
        set.update_targets(&one.targets, NOW),
        Err(TufError::HashMismatch("targets") | TufError::LengthMismatch("targets"))
    ));
    // Out of order.
    let mut fresh = trusted(&keys);
    assert_eq!(
        fresh.update_snapshot(&two.snapshot, NOW),
        Err(TufError::Order("snapshot before timestamp"))
    );
    // A file of another role where a timestamp was expected.
    assert_eq!(
        fresh.update_timestamp(&two.snapshot, NOW),
        Err(TufError::WrongType("timestamp"))
    );
}

#[test]
fn root_rotation_needs_both_thresholds_and_the_next_version() {
    let old = Keys::new(1);
    let new = Keys::new(10);
    let mut set = trusted(&old);
    let root_v2 = repo::root(
        2,
        NOW + 365 * DAY,
        [
            (&[&new.root], 1),
            (&[&new.timestamp], 1),
            (&[&new.snapshot], 1),
            (&[&new.targets], 1),
        ],
    )
    .unwrap();
    // Signed by the new root key only (an attacker's root), or the old one only.
    assert_eq!(
        set.update_root(&sign(&root_v2, &[&new.root]).unwrap()),
        Err(TufError::Threshold("root"))
    );
    assert_eq!(
        set.update_root(&sign(&root_v2, &[&old.root]).unwrap()),
        Err(TufError::Threshold("root"))
    );
    // Version 3 straight after 1.
    let mut root_v3 = root_v2.clone();
    root_v3.common.version = 3;
    assert!(matches!(
        set.update_root(&sign(&root_v3, &[&old.root, &new.root]).unwrap()),
        Err(TufError::BadVersion {
            role: "root",
            expected: 2,
            got: 3
        })
    ));
    // Both: rotated. The old timestamp key no longer signs anything the client accepts.
    set.update_root(&sign(&root_v2, &[&old.root, &new.root]).unwrap())
        .unwrap();
    assert_eq!(set.root().common.version, 2);
    assert_eq!(
        set.update_timestamp(&release(&old, 5, NOW + DAY, PINS).timestamp, NOW),
        Err(TufError::Threshold("timestamp"))
    );
    refresh(&mut set, &release(&new, 1, NOW + DAY, PINS), NOW).unwrap();
}

#[test]
fn a_fast_forwarded_timestamp_is_forgotten_when_its_key_is_rotated_out() {
    let keys = Keys::new(1);
    let mut set = trusted(&keys);
    refresh(&mut set, &release(&keys, 1, NOW + DAY, PINS), NOW).unwrap();
    // The stolen timestamp key signs version 1000: the honest repository, at 2, now looks
    // like a rollback.
    let forward = sign(
        &repo::timestamp(
            1000,
            NOW + DAY,
            1,
            &release(&keys, 1, NOW + DAY, PINS).snapshot,
        )
        .unwrap(),
        &[&keys.timestamp],
    )
    .unwrap();
    set.update_timestamp(&forward, NOW).unwrap();
    let honest = release(&keys, 2, NOW + DAY, PINS);
    assert_eq!(
        refresh(&mut set, &honest, NOW),
        Err(TufError::Rollback("timestamp"))
    );
    // The owner rotates the timestamp key in root version 2: the forwarded timestamp goes.
    let rotated = Keys {
        timestamp: key(77),
        ..Keys::new(1)
    };
    set.update_root(&rotated.root(2, NOW + 365 * DAY)).unwrap();
    assert!(set.timestamp().is_none());
    refresh(&mut set, &release(&rotated, 2, NOW + DAY, PINS), NOW).unwrap();
}

#[test]
fn hostile_bytes_are_refused_without_panicking() {
    let keys = Keys::new(1);
    let mut set = trusted(&keys);
    for bytes in [
        &b""[..],
        b"{",
        b"[]",
        b"{\"signed\": 1, \"signatures\": []}",
        b"{\"signed\": {\"_type\": \"timestamp\", \"x\": 1.5}, \"signatures\": []}",
    ] {
        assert!(set.update_timestamp(bytes, NOW).is_err());
    }
    let huge = vec![b' '; super::metadata::MAX_METADATA_BYTES + 1];
    assert_eq!(
        set.update_timestamp(&huge, NOW),
        Err(TufError::TooLarge("timestamp"))
    );
    // A key type outside the allow-list never counts.
    let mut root: serde_json::Value = serde_json::from_slice(&keys.root(2, NOW + DAY)).unwrap();
    for (_, key) in root["signed"]["keys"].as_object_mut().unwrap() {
        key["keytype"] = "rsa".into();
    }
    let bytes = serde_json::to_vec(&root).unwrap();
    assert!(set.update_root(&bytes).is_err());
    assert_eq!(
        Key::ed25519(&[0; 32]).key_id().len(),
        64,
        "key ids are hex SHA-256"
    );
    let _ = RoleName::Targets.file();
}
