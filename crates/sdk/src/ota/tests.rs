// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use medgate_trust::tuf::repository::{self as repo, RoleKey, sign};

use super::*;
use medgate_trust::roots::ROOTS_TARGET;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
const PIN_A: &str = "XNJS+wzokyQ2+vjM0QQJgbie5K1rn+niorfnGqyyfNM=";
const PIN_B: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// A repository in memory: its keys and the files it serves.
struct Repository {
    keys: Vec<RoleKey>,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    root: Vec<u8>,
}

fn pins_json(pins: &[&str]) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"pins": [{"host": "**.example.org", "spki_sha256": pins}]}),
    )
    .unwrap()
}

impl Repository {
    fn new() -> Repository {
        Repository::new_with_seed(1)
    }

    /// A repository whose four keys are made from seeds `base`..`base + 3`.
    fn new_with_seed(base: u8) -> Repository {
        let keys: Vec<RoleKey> = (base..base + 4)
            .map(|n| RoleKey::from_seed(&[n; 32]))
            .collect();
        let root = Self::signed_root(&keys, 1);
        let files = Arc::new(Mutex::new(HashMap::new()));
        files
            .lock()
            .unwrap()
            .insert("1.root.json".to_string(), root.clone());
        Repository { keys, files, root }
    }

    fn signed_root(keys: &[RoleKey], version: u64) -> Vec<u8> {
        sign(
            &repo::root(
                version,
                NOW + 365 * DAY,
                [
                    (&[&keys[0]], 1),
                    (&[&keys[1]], 1),
                    (&[&keys[2]], 1),
                    (&[&keys[3]], 1),
                ],
            )
            .unwrap(),
            &[&keys[0]],
        )
        .unwrap()
    }

    /// This repository's root at `version` (same keys), signed by its root key.
    fn root_of_version(&self, version: u64) -> Vec<u8> {
        Self::signed_root(&self.keys, version)
    }

    /// Publishes release `version` of `pins`, expiring at `expires`.
    fn publish(&self, version: u64, expires: i64, pins: &[u8]) {
        self.publish_with_roots(version, expires, pins, None);
    }

    /// Publishes release `version` of `pins` and, if given, `roots.pem` for `hosts`.
    fn publish_with_roots(
        &self,
        version: u64,
        expires: i64,
        pins: &[u8],
        roots: Option<(&[u8], serde_json::Value)>,
    ) {
        let mut files: Vec<(&str, &[u8])> = vec![(PINS_TARGET, pins)];
        if let Some((pem, _)) = &roots {
            files.push((ROOTS_TARGET, pem));
        }
        let mut described = repo::targets(version, expires, &files).unwrap();
        if let Some((_, custom)) = &roots {
            described.targets.get_mut(ROOTS_TARGET).unwrap().custom = Some(custom.clone());
        }
        let targets = sign(&described, &[&self.keys[3]]).unwrap();
        let snapshot = sign(
            &repo::snapshot(version, expires, version, &targets).unwrap(),
            &[&self.keys[2]],
        )
        .unwrap();
        let timestamp = sign(
            &repo::timestamp(version, expires, version, &snapshot).unwrap(),
            &[&self.keys[1]],
        )
        .unwrap();
        let mut files = self.files.lock().unwrap();
        files.insert("timestamp.json".into(), timestamp);
        files.insert("snapshot.json".into(), snapshot);
        files.insert("targets.json".into(), targets);
        files.insert("targets/pins.json".into(), pins.to_vec());
        match roots {
            Some((pem, _)) => files.insert("targets/roots.pem".into(), pem.to_vec()),
            None => files.remove("targets/roots.pem"),
        };
    }

    /// What a client's fetch sees.
    fn fetcher(
        &self,
    ) -> impl Fn(String) -> std::future::Ready<Result<Option<Vec<u8>>, OtaError>> + use<> {
        let files = Arc::clone(&self.files);
        move |name| std::future::ready(Ok(files.lock().unwrap().get(&name).cloned()))
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn a_refresh_installs_verified_pins_and_keeps_them_for_the_next_run() {
    let repository = Repository::new();
    repository.publish(1, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    let dir = tempfile::tempdir().unwrap();
    let ota = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    // Before the first refresh: nothing pinned, WebPKI alone.
    assert!(ota.pins_for("api.example.org").is_empty());
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    assert_eq!(ota.pins_for("api.example.org").len(), 2);
    assert_eq!(ota.status(NOW).targets_version, Some(1));

    // The next run starts from the kept files, offline.
    let again = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(again.pins(), ota.pins());
    assert_eq!(again.status(NOW).targets_version, Some(1));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("pins.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_failed_refresh_keeps_the_last_good_pins_and_says_why() {
    let repository = Repository::new();
    repository.publish(2, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    let ota = OtaPins::new(&repository.root, None).unwrap();
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    let good = ota.pins();

    // A rolled-back release (version 1, properly signed, with other pins).
    repository.publish(1, NOW + DAY, &pins_json(&[PIN_B, PIN_B]));
    assert_eq!(
        block_on(ota.refresh(NOW, repository.fetcher())),
        Err(OtaError::Tuf(TufError::Rollback("timestamp")))
    );
    assert_eq!(ota.pins(), good);
    assert!(ota.status(NOW).last_error.unwrap().contains("rolled back"));

    // Pins changed after signing.
    repository.publish(3, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    repository
        .files
        .lock()
        .unwrap()
        .insert("targets/pins.json".into(), pins_json(&[PIN_B, PIN_A]));
    assert!(block_on(ota.refresh(NOW, repository.fetcher())).is_err());
    assert_eq!(ota.pins(), good);

    // The repository unreachable.
    let unreachable = |_name: String| {
        std::future::ready(Err::<Option<Vec<u8>>, _>(OtaError::Fetch {
            file: "timestamp.json".into(),
            reason: "connection refused".into(),
        }))
    };
    assert!(block_on(ota.refresh(NOW, unreachable)).is_err());
    assert_eq!(ota.pins(), good);
    // A later good refresh clears the error.
    repository.publish(4, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    assert_eq!(ota.status(NOW).last_error, None);
}

#[test]
fn expired_metadata_keeps_its_pins_in_force_and_is_reported() {
    let repository = Repository::new();
    repository.publish(1, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    let ota = OtaPins::new(&repository.root, None).unwrap();
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    // Two days on, nothing new was published: the refresh fails (freeze), the pins stay.
    let later = NOW + 2 * DAY;
    assert_eq!(
        block_on(ota.refresh(later, repository.fetcher())),
        Err(OtaError::Tuf(TufError::Expired("timestamp")))
    );
    assert_eq!(ota.pins_for("x.example.org").len(), 2);
    let status = ota.status(later);
    assert_eq!(status.expired, vec!["timestamp", "snapshot", "targets"]);
}

#[test]
fn pin_sets_are_read_strictly() {
    assert!(parse_pins(&pins_json(&[PIN_A, PIN_B])).is_ok());
    for bad in [
        &br#"{"pins": [{"host": "a b", "spki_sha256": ["x"]}]}"#[..],
        br#"{"pins": [{"host": "a.example", "spki_sha256": []}]}"#,
        br#"{"pins": [{"host": "a.example", "spki_sha256": ["short"]}]}"#,
        br#"{"pins": [], "extra": 1}"#,
        b"[]",
    ] {
        assert!(parse_pins(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    assert!(parse_pins(&vec![b' '; MAX_PINS_BYTES + 1]).is_err());
}

#[test]
fn a_root_planted_in_the_folder_is_not_trusted() {
    // Found in review: a self-signed root of a higher version, written into the folder by
    // someone who can write there, must not replace the shipped root.
    let repository = Repository::new();
    repository.publish(1, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    let dir = tempfile::tempdir().unwrap();
    let attacker = Repository::new_with_seed(40);
    let planted = attacker.root_of_version(2);
    for name in ["root.json", "2.root.json"] {
        std::fs::write(dir.path().join(name), &planted).unwrap();
    }
    attacker.publish(1, NOW + DAY, &pins_json(&[PIN_B, PIN_B]));
    for (name, bytes) in attacker.files.lock().unwrap().iter() {
        if !name.contains('/') && !name.contains("root") {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
    }
    std::fs::write(dir.path().join("pins.json"), pins_json(&[PIN_B, PIN_B])).unwrap();
    let ota = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(ota.status(NOW).root_version, 1);
    assert!(ota.pins_for("api.example.org").is_empty());
    // The genuine repository still refreshes.
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    assert_eq!(
        ota.pins_for("api.example.org"),
        vec![Pin::parse(PIN_A).unwrap(), Pin::parse(PIN_B).unwrap()]
    );
}

#[test]
fn kept_roots_are_walked_from_the_shipped_one() {
    let repository = Repository::new();
    let dir = tempfile::tempdir().unwrap();
    // Root 2, signed by root 1's key: kept by a refresh, walked again at the next start.
    let root2 = repository.root_of_version(2);
    repository
        .files
        .lock()
        .unwrap()
        .insert("2.root.json".into(), root2);
    repository.publish(1, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    let ota = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    assert_eq!(ota.status(NOW).root_version, 2);
    let again = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(again.status(NOW).root_version, 2);
    assert_eq!(again.pins(), ota.pins());
}

#[test]
fn managed_roots_arrive_with_a_release_and_leave_with_the_next() {
    let repository = Repository::new();
    let ca = medgate_testkit::pki::TestCa::new("managed").root_pem();
    let hosts = medgate_trust::roots::target_custom(&["**.example.org".to_string()]);
    repository.publish_with_roots(
        1,
        NOW + DAY,
        &pins_json(&[PIN_A, PIN_B]),
        Some((ca.as_bytes(), hosts.clone())),
    );
    let dir = tempfile::tempdir().unwrap();
    let ota = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    assert!(ota.managed_roots().is_none());
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    let managed = ota.managed_roots().unwrap();
    assert!(managed.covers("api.example.org") && !managed.covers("api.example.com"));
    assert_eq!(ota.status(NOW).managed_root_hosts, 1);
    // Kept for the next run, offline.
    let again = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(
        again.managed_roots().unwrap().certificates(),
        managed.certificates()
    );

    // A roots.pem that is not the one the targets describe: refused, the last good stays.
    repository.publish_with_roots(
        2,
        NOW + DAY,
        &pins_json(&[PIN_A, PIN_B]),
        Some((ca.as_bytes(), hosts.clone())),
    );
    let other = medgate_testkit::pki::TestCa::new("planted").root_pem();
    repository
        .files
        .lock()
        .unwrap()
        .insert("targets/roots.pem".into(), other.into_bytes());
    assert!(block_on(ota.refresh(NOW, repository.fetcher())).is_err());
    assert_eq!(
        ota.managed_roots().unwrap().certificates(),
        managed.certificates()
    );
    // A roots.pem target without the hosts it covers: refused too.
    repository.publish_with_roots(
        3,
        NOW + DAY,
        &pins_json(&[PIN_A, PIN_B]),
        Some((ca.as_bytes(), serde_json::json!({}))),
    );
    assert!(matches!(
        block_on(ota.refresh(NOW, repository.fetcher())),
        Err(OtaError::Roots(_))
    ));
    assert!(ota.managed_roots().is_some());

    // The next release without roots.pem: the device's roots again.
    repository.publish(4, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    assert!(ota.managed_roots().is_none());
    let again = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    assert!(again.managed_roots().is_none());
}

#[test]
fn kept_metadata_whose_pins_did_not_load_is_fetched_again() {
    let repository = Repository::new();
    repository.publish(1, NOW + DAY, &pins_json(&[PIN_A, PIN_B]));
    let dir = tempfile::tempdir().unwrap();
    let ota = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    // The kept pins file is lost; the kept metadata is not.
    std::fs::remove_file(dir.path().join("pins.json")).unwrap();
    let again = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    assert!(again.pins_for("api.example.org").is_empty());
    // The timestamp has not changed, and still the refresh brings the pins back.
    block_on(again.refresh(NOW, repository.fetcher())).unwrap();
    assert_eq!(again.pins_for("api.example.org").len(), 2);
}

#[test]
fn kept_roots_that_did_not_keep_leave_the_pins_in_force_until_the_next_refresh() {
    let repository = Repository::new();
    let ca = medgate_testkit::pki::TestCa::new("managed").root_pem();
    let hosts = medgate_trust::roots::target_custom(&["**.example.org".to_string()]);
    repository.publish_with_roots(
        1,
        NOW + DAY,
        &pins_json(&[PIN_A, PIN_B]),
        Some((ca.as_bytes(), hosts)),
    );
    let dir = tempfile::tempdir().unwrap();
    let ota = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    block_on(ota.refresh(NOW, repository.fetcher())).unwrap();
    // A crash lost the kept roots.pem.
    std::fs::remove_file(dir.path().join("roots.pem")).unwrap();
    let again = OtaPins::new(&repository.root, Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(again.pins_for("api.example.org").len(), 2);
    assert!(again.managed_roots().is_none());
    // The next refresh, with the timestamp unchanged, brings the whole release back.
    block_on(again.refresh(NOW, repository.fetcher())).unwrap();
    assert!(again.managed_roots().is_some());
}
