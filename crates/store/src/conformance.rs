//! The conformance suite every [`Store`] backend runs, test for test.
//!
//! A backend's test module invokes `store_conformance_tests!(expr)`, where `expr` yields a
//! fresh `(store, guard)` pair per test (the guard keeps its database alive). A backend in
//! another crate enables this crate's `conformance` feature in its dev-dependencies.
// Test code: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use medgate_proto::PublicJwk;
use medgate_proto::wire::{Decision, IntegrityLevel, Reason};
use medgate_verify::UnixTime;
use medgate_verify::policy::{AppPolicy, default_degrade_on, default_reject_on};

use crate::{
    App, AppleKeyRecord, AttestationRecord, Challenge, ConsoleSession, CredentialRecord, Enrolment,
    EnrolmentClaim, GrantOutcome, GrantWrites, InstallationFilter, InstallationKeys, NewAuditEntry,
    OperatorRecord, OperatorRole, PartnerKeys, PartnerRecord, PinRecord, Release, RevocationTarget,
    SecretRecord, SigningKeyRecord, Store, StoreError, TelemetryCount, TelemetrySeries,
    TrustKeyRecord, TrustMetadataRecord, verify_audit_chain,
};

#[macro_export]
macro_rules! store_conformance_tests {
    ($open:expr) => {
        $crate::store_conformance_tests!(@each $open;
            apps_round_trip, releases_round_trip_and_revoke, installations_record_and_revoke,
            challenges_are_single_use, concurrent_takes_of_one_challenge_yield_one_winner,
            signing_keys_rotate, audit_appends_chain, concurrent_audit_appends_keep_the_chain,
            meta_round_trip, platform_policies_round_trip, apple_counters_only_grow,
            concurrent_assertions_with_one_counter_yield_one_winner, enrolment_codes_are_single_use,
            app_secrets_round_trip, release_version_codes_and_revoked_versions,
            enrolments_can_be_revoked, audit_prunes_up_to_a_kept_entry,
            a_refused_grant_writes_nothing, concurrent_grants_claiming_one_code_yield_one_winner,
            admin_changes_commit_with_their_audit_entries, secrets_are_versioned_and_audited,
            concurrent_rotations_of_one_secret_yield_one_winner,
            the_trust_repository_publishes_each_version_once,
            concurrent_publications_of_one_version_yield_one_winner,
            installation_keys_commit_with_their_grant,
            credentials_are_revoked_once_and_audited,
            partners_are_disabled_once_rotated_and_audited,
            telemetry_adds_up_per_period_and_prunes,
            operators_and_their_sessions_end_together);
    };
    (@each $open:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $open;
                $crate::conformance::$name(std::sync::Arc::new(store)).await;
            }
        )*
    };
}

const T0: i64 = 1_800_000_000;

fn at(offset: i64) -> UnixTime {
    UnixTime::from_secs(T0 + offset)
}

fn policy() -> AppPolicy {
    AppPolicy {
        scopes: vec!["entries:read".into(), "entries:write".into()],
        limited_scopes: vec!["entries:read".into()],
        reject_on: default_reject_on(),
        degrade_on: default_degrade_on(),
        sdk_evidence: medgate_verify::policy::SdkEvidence::Allow,
        require_coverage: false,
    }
}

/// The audit entry a test's admin change commits with.
pub fn change() -> NewAuditEntry {
    NewAuditEntry {
        at: at(0),
        kind: "admin.test".into(),
        actor: "admin".into(),
        subject: "conformance".into(),
        detail: serde_json::json!({"asked": true}),
    }
}

/// Adds the app, unless a scenario run before on the same store did (`copy`'s test runs
/// several on one store).
pub async fn add_sample_app(store: &dyn Store, id: &str) {
    if store
        .get_app(id)
        .await
        .expect("apps are readable")
        .is_some()
    {
        return;
    }
    store
        .create_app(
            &App {
                id: id.into(),
                policy: policy(),
                created_at: at(0),
            },
            &change(),
        )
        .await
        .expect("app is created");
}

pub async fn append_sample_audit(store: &dyn Store, n: i64) {
    let entries: Vec<_> = (1..=n)
        .map(|i| NewAuditEntry {
            at: at(i),
            kind: "admin.app.create".into(),
            actor: "admin".into(),
            subject: format!("app-{i}"),
            detail: serde_json::json!({"i": i}),
        })
        .collect();
    store.append_audit(&entries).await.expect("audit appends");
}

fn release(version: &str, hash: &str) -> Release {
    Release {
        app_id: "org.example.cgm".into(),
        version: version.into(),
        binary_sha256: Some(hash.repeat(32)),
        version_code: None,
        created_at: at(1),
        revoked_at: None,
    }
}

pub fn attestation(
    id: &str,
    offset: i64,
    decision: Decision,
    reasons: Vec<Reason>,
) -> AttestationRecord {
    AttestationRecord {
        installation_id: id.into(),
        app_id: "org.example.cgm".into(),
        platform: "sdk".into(),
        app_version: format!("1.0.{offset}"),
        at: at(offset),
        decision,
        reasons,
        integrity_level: Some(IntegrityLevel::SelfReported),
        hardware_key: false,
        identity: None,
    }
}

/// A grant of `id` with nothing but the installation.
fn grant(id: &str, offset: i64) -> GrantWrites {
    GrantWrites {
        record: attestation(id, offset, Decision::Allow, vec![]),
        apple_key: None,
        enrolment: None,
        keys: None,
        audit: NewAuditEntry {
            kind: "attestation.decision".into(),
            subject: id.into(),
            ..change()
        },
    }
}

/// A grant that stores `key` with its installation.
async fn grant_apple_key(store: &dyn Store, key: &AppleKeyRecord) -> GrantOutcome {
    store
        .record_grant(&GrantWrites {
            apple_key: Some(key.clone()),
            ..grant(&key.installation_id, 1)
        })
        .await
        .unwrap()
}

/// A grant of `installation` for `app` at `offset` that claims `code` for `identity`; whether
/// it was recorded.
async fn claim(
    store: &dyn Store,
    code: &str,
    app: &str,
    installation: &str,
    identity: &str,
    offset: i64,
) -> bool {
    let mut writes = grant(installation, offset);
    writes.record.app_id = app.into();
    writes.enrolment = Some(EnrolmentClaim {
        code_sha256: code.into(),
        identity: identity.into(),
    });
    match store.record_grant(&writes).await.unwrap() {
        GrantOutcome::Recorded => true,
        GrantOutcome::EnrolmentUnavailable => false,
        GrantOutcome::AppleKeyTaken => panic!("no App Attest key in this grant"),
    }
}

pub async fn apps_round_trip(store: Arc<impl Store>) {
    assert!(store.get_app("org.example.cgm").await.unwrap().is_none());
    add_sample_app(&*store, "org.example.cgm").await;
    add_sample_app(&*store, "org.example.another").await;
    let app = store.get_app("org.example.cgm").await.unwrap().unwrap();
    assert_eq!(app.policy, policy());
    assert_eq!(app.created_at, at(0));
    let duplicate = App {
        id: "org.example.cgm".into(),
        policy: policy(),
        created_at: at(5),
    };
    assert!(matches!(
        store.create_app(&duplicate, &change()).await,
        Err(StoreError::Conflict("app"))
    ));
    let ids: Vec<_> = store
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["org.example.another", "org.example.cgm"]);
}

pub async fn releases_round_trip_and_revoke(store: Arc<impl Store>) {
    assert!(matches!(
        store.add_release(&release("1.0.0", "aa"), &change()).await,
        Err(StoreError::NotFound("app"))
    ));
    add_sample_app(&*store, "org.example.cgm").await;
    store
        .add_release(&release("1.0.0", "aa"), &change())
        .await
        .unwrap();
    store
        .add_release(&release("1.0.0", "bb"), &change())
        .await
        .unwrap();
    store
        .add_release(&release("2.0.0", "cc"), &change())
        .await
        .unwrap();
    assert!(matches!(
        store.add_release(&release("1.0.0", "aa"), &change()).await,
        Err(StoreError::Conflict("release"))
    ));
    assert_eq!(
        store
            .releases("org.example.cgm", "1.0.0")
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .releases("org.example.cgm", "9.9.9")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.list_releases("org.example.cgm").await.unwrap().len(),
        3
    );

    assert_eq!(
        store
            .revoke_release("org.example.cgm", "1.0.0", at(10), &change())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .revoke_release("org.example.cgm", "1.0.0", at(11), &change())
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        store
            .revoke_release("org.example.cgm", "9.9.9", at(11), &change())
            .await,
        Err(StoreError::NotFound("release"))
    ));
    let revoked = store.releases("org.example.cgm", "1.0.0").await.unwrap();
    assert!(revoked.iter().all(|r| r.revoked_at == Some(at(10))));
    assert!(
        store.releases("org.example.cgm", "2.0.0").await.unwrap()[0]
            .revoked_at
            .is_none()
    );

    let feed = store.revocations_since(0).await.unwrap();
    assert_eq!(
        feed.len(),
        1,
        "a second revoke of the same version adds nothing"
    );
    assert_eq!(
        feed[0].target,
        RevocationTarget::Release {
            app_id: "org.example.cgm".into(),
            version: "1.0.0".into()
        }
    );
    assert!(
        store
            .revocations_since(feed[0].seq)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn installations_record_and_revoke(store: Arc<impl Store>) {
    assert!(matches!(
        store
            .record_attestation(&attestation("inst-1", 1, Decision::Allow, vec![]))
            .await,
        Err(StoreError::NotFound("app"))
    ));
    add_sample_app(&*store, "org.example.cgm").await;
    store
        .record_attestation(&attestation("inst-1", 1, Decision::Allow, vec![]))
        .await
        .unwrap();
    store
        .record_attestation(&attestation(
            "inst-1",
            5,
            Decision::AllowLimited,
            vec![Reason::RootDetected],
        ))
        .await
        .unwrap();
    store
        .record_attestation(&attestation(
            "inst-2",
            3,
            Decision::Reject,
            vec![Reason::HookDetected],
        ))
        .await
        .unwrap();

    // Filtered by version, platform, last decision and integrity level.
    let ids = |filter: InstallationFilter<'static>| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_installations(&filter, None, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|installation| installation.id)
                .collect::<Vec<_>>()
        }
    };
    let all = InstallationFilter::app(Some("org.example.cgm"));
    for (filter, expected) in [
        (
            InstallationFilter {
                decision: Some(Decision::Reject),
                ..all
            },
            vec!["inst-2"],
        ),
        (
            InstallationFilter {
                version: Some("1.0.5"),
                ..all
            },
            vec!["inst-1"],
        ),
        (
            InstallationFilter {
                platform: Some("sdk"),
                ..all
            },
            vec!["inst-1", "inst-2"],
        ),
        (
            InstallationFilter {
                platform: Some("ios"),
                ..all
            },
            vec![],
        ),
        (
            InstallationFilter {
                integrity_level: Some(IntegrityLevel::SelfReported),
                ..all
            },
            vec!["inst-1", "inst-2"],
        ),
        (
            InstallationFilter {
                integrity_level: Some(IntegrityLevel::Hardware),
                ..all
            },
            vec![],
        ),
        (
            InstallationFilter {
                decision: Some(Decision::AllowLimited),
                version: Some("1.0.5"),
                ..InstallationFilter::default()
            },
            vec!["inst-1"],
        ),
    ] {
        assert_eq!(ids(filter).await, expected, "{filter:?}");
    }
    // In use: inst-1 (last seen at 5), not inst-2, refused at its last attestation; nor a
    // revoked one (below).
    for (since, in_use) in [(0, 1), (5, 1), (6, 0)] {
        assert_eq!(
            store.installations_in_use_since(at(since)).await.unwrap(),
            in_use,
            "since {since}"
        );
    }
    // By the version each was last granted on.
    assert_eq!(
        store
            .active_installations_by_version("org.example.cgm")
            .await
            .unwrap(),
        [("1.0.5".to_string(), 1)]
    );
    let first = store.get_installation("inst-1").await.unwrap().unwrap();
    assert_eq!((first.first_seen, first.last_seen), (at(1), at(5)));
    assert_eq!(first.app_version, "1.0.5");
    assert_eq!(first.last_decision, Decision::AllowLimited);
    assert_eq!(first.last_reasons, [Reason::RootDetected]);
    assert!(first.revoked_at.is_none());
    assert_eq!(
        store
            .list_installations(&InstallationFilter::app(Some("org.example.cgm")), None, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .list_installations(&InstallationFilter::app(None), None, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    // Pages, in id order.
    let first = store
        .list_installations(&InstallationFilter::app(None), None, 1)
        .await
        .unwrap();
    let second = store
        .list_installations(&InstallationFilter::app(None), Some(&first[0].id), 1)
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (1, 1));
    assert!(first[0].id < second[0].id);
    assert!(
        store
            .list_installations(&InstallationFilter::app(None), Some(&second[0].id), 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_installations(&InstallationFilter::app(Some("org.other")), None, 100)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        store
            .revoke_installation("inst-1", at(9), &change())
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_installation("inst-1", at(10), &change())
            .await
            .unwrap()
    );
    assert!(matches!(
        store.revoke_installation("nobody", at(10), &change()).await,
        Err(StoreError::NotFound("installation"))
    ));
    assert!(
        store
            .active_installations_by_version("org.example.cgm")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.installations_in_use_since(at(0)).await.unwrap(), 0);
    assert!(
        store
            .active_installations_by_version("org.example.other")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .get_installation("inst-1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(9))
    );
    // A later attestation does not lift the revocation.
    store
        .record_attestation(&attestation("inst-1", 12, Decision::Reject, vec![]))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_installation("inst-1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(at(9))
    );

    let feed = store.revocations_since(0).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(
        feed[0].target,
        RevocationTarget::Installation {
            app_id: "org.example.cgm".into(),
            installation_id: "inst-1".into()
        }
    );
    assert_eq!(feed[0].at, at(9));
}

fn challenge(value: &str, expires: i64) -> Challenge {
    Challenge {
        value: value.into(),
        app_id: "org.example.cgm".into(),
        created_at: at(0),
        expires_at: at(expires),
    }
}

pub async fn challenges_are_single_use(store: Arc<impl Store>) {
    store.insert_challenge(&challenge("c1", 60)).await.unwrap();
    store.insert_challenge(&challenge("c2", 10)).await.unwrap();
    assert!(matches!(
        store.insert_challenge(&challenge("c1", 60)).await,
        Err(StoreError::Conflict("challenge"))
    ));
    assert_eq!(
        store.take_challenge("c1").await.unwrap(),
        Some(challenge("c1", 60))
    );
    assert_eq!(store.take_challenge("c1").await.unwrap(), None);
    assert_eq!(store.take_challenge("never").await.unwrap(), None);
    // Purging removes what expired and keeps the rest.
    store.insert_challenge(&challenge("c3", 60)).await.unwrap();
    assert_eq!(store.purge_challenges(at(30)).await.unwrap(), 1);
    assert_eq!(store.take_challenge("c2").await.unwrap(), None);
    assert!(store.take_challenge("c3").await.unwrap().is_some());
}

pub async fn concurrent_takes_of_one_challenge_yield_one_winner(store: Arc<impl Store>) {
    store
        .insert_challenge(&challenge("contested", 60))
        .await
        .unwrap();
    let takers: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.take_challenge("contested").await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for taker in takers {
        winners += usize::from(taker.await.unwrap().is_some());
    }
    assert_eq!(winners, 1);
}

fn key(kid: &str, created: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        public_jwk: PublicJwk::P256 {
            x: [1; 32],
            y: [2; 32],
        },
        sealed_private_key: vec![0, 1, 2, 3],
        created_at: at(created),
        retired_at: None,
    }
}

pub async fn signing_keys_rotate(store: Arc<impl Store>) {
    assert!(store.signing_keys().await.unwrap().is_empty());
    store
        .rotate_signing_key(&key("k1", 0), &change())
        .await
        .unwrap();
    store
        .rotate_signing_key(&key("k2", 100), &change())
        .await
        .unwrap();
    assert!(matches!(
        store.rotate_signing_key(&key("k2", 200), &change()).await,
        Err(StoreError::Conflict("signing key"))
    ));
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].kid.as_str(), keys[0].retired_at),
        ("k1", Some(at(100)))
    );
    assert_eq!((keys[1].kid.as_str(), keys[1].retired_at), ("k2", None));
    assert_eq!(
        keys[1].public_jwk,
        PublicJwk::P256 {
            x: [1; 32],
            y: [2; 32]
        }
    );
    // The retired key stays published for the retention period, then disappears.
    assert!(keys[0].is_published(at(100 + 309), 310));
    assert!(!keys[0].is_published(at(100 + 310), 310));
    assert!(keys[1].is_published(at(1_000_000), 310));

    store.reseal_signing_key("k1", &[1, 9, 9]).await.unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap()[0].sealed_private_key,
        [1, 9, 9]
    );
    assert!(matches!(
        store.reseal_signing_key("nope", &[1]).await,
        Err(StoreError::NotFound("signing key"))
    ));
}

pub async fn audit_appends_chain(store: Arc<impl Store>) {
    assert_eq!(verify_audit_chain(&*store).await.unwrap().unwrap().0, 0);
    assert_eq!(store.audit_head().await.unwrap(), None);
    append_sample_audit(&*store, 3).await;
    append_sample_audit(&*store, 2).await;
    let entries = store.audit_entries(0, 100).await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(entries[3].prev_hash, entries[2].hash);
    assert_eq!(entries[0].detail, r#"{"i":1}"#);
    assert_eq!(store.audit_entries(3, 1).await.unwrap()[0].seq, 4);
    let (count, head) = verify_audit_chain(&*store).await.unwrap().unwrap();
    assert_eq!(count, 5);
    assert_eq!(head, medgate_proto::hex::encode(&entries[4].hash));
    assert_eq!(
        store.audit_head().await.unwrap().as_ref(),
        Some(&entries[4])
    );
}

pub async fn audit_prunes_up_to_a_kept_entry(store: Arc<impl Store>) {
    append_sample_audit(&*store, 5).await;
    assert!(matches!(
        store.prune_audit(99).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.prune_audit(3).await.unwrap(), 2);
    let report = crate::audit_chain_report(&*store, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.entries, report.first_seq), (5, 3));
    // The chain goes on from where it was.
    append_sample_audit(&*store, 1).await;
    let head = store.audit_head().await.unwrap().unwrap();
    assert_eq!(head.seq, 6);
    let report = crate::audit_chain_report(&*store, Some(head.hash))
        .await
        .unwrap()
        .unwrap();
    assert!(report.contains_expected);
    assert_eq!(report.entries, 6);
}

pub async fn concurrent_audit_appends_keep_the_chain(store: Arc<impl Store>) {
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for _ in 0..5 {
                    append_sample_audit(&*store, 2).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(verify_audit_chain(&*store).await.unwrap().unwrap().0, 80);
}

pub async fn meta_round_trip(store: Arc<impl Store>) {
    assert_eq!(store.get_meta("admin_token_sha256").await.unwrap(), None);
    store.set_meta("admin_token_sha256", "one").await.unwrap();
    store.set_meta("admin_token_sha256", "two").await.unwrap();
    assert_eq!(
        store
            .get_meta("admin_token_sha256")
            .await
            .unwrap()
            .as_deref(),
        Some("two")
    );
    store.ping().await.unwrap();
}

pub async fn platform_policies_round_trip(store: Arc<impl Store>) {
    let apple =
        serde_json::json!({"app_ids": ["ABCDE12345.org.example.cgm"], "allow_development": true});
    assert!(matches!(
        store
            .set_platform_policy(
                "org.example.cgm",
                "apple-app-attest",
                &apple,
                at(1),
                &change()
            )
            .await,
        Err(StoreError::NotFound("app"))
    ));
    add_sample_app(&*store, "org.example.cgm").await;
    assert_eq!(
        store
            .platform_policy("org.example.cgm", "apple-app-attest")
            .await
            .unwrap(),
        None
    );
    store
        .set_platform_policy(
            "org.example.cgm",
            "apple-app-attest",
            &apple,
            at(1),
            &change(),
        )
        .await
        .unwrap();
    let android = serde_json::json!({"package_name": "org.example.cgm"});
    store
        .set_platform_policy(
            "org.example.cgm",
            "android-key-attestation",
            &android,
            at(2),
            &change(),
        )
        .await
        .unwrap();
    let replaced = serde_json::json!({"app_ids": []});
    store
        .set_platform_policy(
            "org.example.cgm",
            "apple-app-attest",
            &replaced,
            at(3),
            &change(),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .platform_policy("org.example.cgm", "apple-app-attest")
            .await
            .unwrap(),
        Some(replaced.clone())
    );
    let all = store.platform_policies("org.example.cgm").await.unwrap();
    assert_eq!(
        all,
        vec![
            ("android-key-attestation".to_string(), android),
            ("apple-app-attest".to_string(), replaced)
        ]
    );
    // The app's base policy is not a platform policy.
    assert_eq!(
        store
            .get_app("org.example.cgm")
            .await
            .unwrap()
            .unwrap()
            .policy,
        policy()
    );
}

fn apple_key(installation: &str, key_id: u8) -> AppleKeyRecord {
    AppleKeyRecord {
        installation_id: installation.into(),
        key_id: vec![key_id; 32],
        app_id: "ABCDE12345.org.example.cgm".into(),
        public_key: vec![4; 65],
        environment: "production".into(),
        counter: 0,
        receipt: vec![1, 2, 3],
        created_at: at(1),
    }
}

pub async fn apple_counters_only_grow(store: Arc<impl Store>) {
    add_sample_app(&*store, "org.example.cgm").await;
    assert_eq!(
        grant_apple_key(&*store, &apple_key("inst-1", 1)).await,
        GrantOutcome::Recorded
    );
    assert_eq!(
        grant_apple_key(&*store, &apple_key("inst-2", 1)).await,
        GrantOutcome::AppleKeyTaken,
        "one installation per key id"
    );
    assert_eq!(
        store.apple_key("inst-1").await.unwrap(),
        Some(apple_key("inst-1", 1))
    );
    assert_eq!(store.apple_key("inst-2").await.unwrap(), None);
    assert_eq!(
        store.get_installation("inst-2").await.unwrap(),
        None,
        "a refused grant writes nothing"
    );
    assert!(store.advance_apple_counter("inst-1", 1).await.unwrap());
    assert!(
        !store.advance_apple_counter("inst-1", 1).await.unwrap(),
        "the same counter twice"
    );
    assert!(
        !store.advance_apple_counter("inst-1", 0).await.unwrap(),
        "a lower counter"
    );
    assert!(store.advance_apple_counter("inst-1", 7).await.unwrap());
    assert_eq!(store.apple_key("inst-1").await.unwrap().unwrap().counter, 7);
    // A new key attested for the installation replaces the old one, counter and all; the old
    // key id is then free.
    assert_eq!(
        grant_apple_key(&*store, &apple_key("inst-1", 2)).await,
        GrantOutcome::Recorded
    );
    assert_eq!(
        store.apple_key("inst-1").await.unwrap(),
        Some(apple_key("inst-1", 2))
    );
    assert_eq!(
        grant_apple_key(&*store, &apple_key("inst-2", 1)).await,
        GrantOutcome::Recorded
    );
    assert!(!store.advance_apple_counter("nobody", 9).await.unwrap());
    // Integrity facts are kept with the installation.
    let mut hardware = attestation("inst-3", 2, Decision::Allow, vec![]);
    hardware.integrity_level = Some(IntegrityLevel::Strongbox);
    hardware.hardware_key = true;
    hardware.identity = Some("signer:ab".into());
    store.record_attestation(&hardware).await.unwrap();
    let stored = store.get_installation("inst-3").await.unwrap().unwrap();
    assert_eq!(
        (
            stored.integrity_level,
            stored.hardware_key,
            stored.identity.as_deref()
        ),
        (Some(IntegrityLevel::Strongbox), true, Some("signer:ab"))
    );
}

pub async fn concurrent_assertions_with_one_counter_yield_one_winner(store: Arc<impl Store>) {
    add_sample_app(&*store, "org.example.cgm").await;
    assert_eq!(
        grant_apple_key(&*store, &apple_key("inst-1", 1)).await,
        GrantOutcome::Recorded
    );
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.advance_apple_counter("inst-1", 5).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap());
    }
    assert_eq!(winners, 1);
}

fn enrolment(code: &str, app_id: &str, expires: i64) -> Enrolment {
    Enrolment {
        code_sha256: code.into(),
        app_id: app_id.into(),
        created_at: at(0),
        expires_at: at(expires),
        used_at: None,
        installation_id: None,
        identity: None,
        revoked_at: None,
    }
}

pub async fn enrolment_codes_are_single_use(store: Arc<impl Store>) {
    assert!(matches!(
        store
            .create_enrolment(&enrolment("c1", "org.example.cgm", 100), &change())
            .await,
        Err(StoreError::NotFound("app"))
    ));
    add_sample_app(&*store, "org.example.cgm").await;
    add_sample_app(&*store, "org.example.other").await;
    store
        .create_enrolment(&enrolment("c1", "org.example.cgm", 100), &change())
        .await
        .unwrap();
    store
        .create_enrolment(&enrolment("c2", "org.example.cgm", 10), &change())
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_enrolment(&enrolment("c1", "org.example.cgm", 100), &change())
            .await,
        Err(StoreError::Conflict("enrolment"))
    ));
    assert_eq!(
        store.enrolment("c1").await.unwrap(),
        Some(enrolment("c1", "org.example.cgm", 100))
    );
    assert_eq!(store.enrolment("nope").await.unwrap(), None);

    assert!(
        !claim(&*store, "c1", "org.example.other", "inst-1", "apple:T.b", 5).await,
        "another app's code"
    );
    assert!(claim(&*store, "c1", "org.example.cgm", "inst-1", "apple:T.b", 5).await);
    assert!(
        !claim(&*store, "c1", "org.example.cgm", "inst-2", "apple:X.y", 6).await,
        "reuse"
    );
    assert!(
        !claim(&*store, "c2", "org.example.cgm", "inst-2", "apple:X.y", 10).await,
        "expired"
    );
    assert_eq!(
        store.get_installation("inst-2").await.unwrap(),
        None,
        "a grant whose code is refused writes nothing"
    );
    let used = store.enrolment("c1").await.unwrap().unwrap();
    assert_eq!(
        (
            used.used_at,
            used.installation_id.as_deref(),
            used.identity.as_deref()
        ),
        (Some(at(5)), Some("inst-1"), Some("apple:T.b"))
    );
    assert_eq!(
        store.enrolled_identities("org.example.cgm").await.unwrap(),
        ["apple:T.b"]
    );
    assert!(
        store
            .enrolled_identities("org.example.other")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_enrolments("org.example.cgm")
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn release_version_codes_and_revoked_versions(store: Arc<impl Store>) {
    add_sample_app(&*store, "org.example.cgm").await;
    let coded = Release {
        version_code: Some(42),
        binary_sha256: None,
        ..release("1.0.0", "aa")
    };
    store.add_release(&coded, &change()).await.unwrap();
    assert_eq!(
        store.releases("org.example.cgm", "1.0.0").await.unwrap(),
        std::slice::from_ref(&coded)
    );
    store
        .revoke_release("org.example.cgm", "1.0.0", at(10), &change())
        .await
        .unwrap();
    // A new build of a revoked version would make attestation disagree with the gateway's
    // revocation feed: refused, and nothing changes.
    assert!(matches!(
        store.add_release(&release("1.0.0", "bb"), &change()).await,
        Err(StoreError::Conflict("release of a revoked version"))
    ));
    let releases = store.releases("org.example.cgm", "1.0.0").await.unwrap();
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0].revoked_at, Some(at(10)));
    assert_eq!(store.revocations_since(0).await.unwrap().len(), 1);
}

pub async fn enrolments_can_be_revoked(store: Arc<impl Store>) {
    add_sample_app(&*store, "org.example.cgm").await;
    for code in ["used", "unused"] {
        store
            .create_enrolment(&enrolment(code, "org.example.cgm", 100), &change())
            .await
            .unwrap();
    }
    assert!(claim(&*store, "used", "org.example.cgm", "inst-1", "id:a", 1).await);
    assert_eq!(
        store.enrolled_identities("org.example.cgm").await.unwrap(),
        ["id:a"]
    );
    assert!(
        store
            .revoke_enrolment("org.example.cgm", "used", at(2), &change())
            .await
            .unwrap()
            .newly_revoked
    );
    assert!(
        !store
            .revoke_enrolment("org.example.cgm", "used", at(3), &change())
            .await
            .unwrap()
            .newly_revoked,
        "already revoked"
    );
    assert!(matches!(
        store
            .revoke_enrolment("org.example.cgm", "nope", at(3), &change())
            .await,
        Err(StoreError::NotFound("enrolment"))
    ));
    assert!(
        store
            .enrolled_identities("org.example.cgm")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.enrolment("used").await.unwrap().unwrap().revoked_at,
        Some(at(2))
    );
    // A revoked code that was never used can no longer be claimed.
    store
        .revoke_enrolment("org.example.cgm", "unused", at(4), &change())
        .await
        .unwrap();
    assert!(!claim(&*store, "unused", "org.example.cgm", "inst-2", "id:b", 5).await);
}

pub async fn app_secrets_round_trip(store: Arc<impl Store>) {
    assert!(matches!(
        store
            .set_app_secret("org.example.cgm", "play", &[1], at(1), &change())
            .await,
        Err(StoreError::NotFound("app"))
    ));
    add_sample_app(&*store, "org.example.cgm").await;
    assert_eq!(
        store.app_secret("org.example.cgm", "play").await.unwrap(),
        None
    );
    store
        .set_app_secret("org.example.cgm", "play", &[1, 2], at(1), &change())
        .await
        .unwrap();
    store
        .set_app_secret("org.example.cgm", "play", &[3], at(2), &change())
        .await
        .unwrap();
    assert_eq!(
        store.app_secret("org.example.cgm", "play").await.unwrap(),
        Some(vec![3])
    );
}

pub async fn a_refused_grant_writes_nothing(store: Arc<impl Store>) {
    add_sample_app(&*store, "org.example.cgm").await;
    store
        .create_enrolment(&enrolment("code", "org.example.cgm", 100), &change())
        .await
        .unwrap();
    assert_eq!(
        grant_apple_key(&*store, &apple_key("inst-1", 1)).await,
        GrantOutcome::Recorded
    );
    // inst-2 brings inst-1's App Attest key id and a valid code: the key is taken, so neither
    // the installation nor the claim is written.
    let writes = GrantWrites {
        apple_key: Some(apple_key("inst-2", 1)),
        enrolment: Some(EnrolmentClaim {
            code_sha256: "code".into(),
            identity: "apple:T.b".into(),
        }),
        ..grant("inst-2", 2)
    };
    assert_eq!(
        store.record_grant(&writes).await.unwrap(),
        GrantOutcome::AppleKeyTaken
    );
    assert_eq!(store.get_installation("inst-2").await.unwrap(), None);
    let code = store.enrolment("code").await.unwrap().unwrap();
    assert_eq!((code.used_at, code.installation_id), (None, None));
    // The granted one's decision is in the log; the refused one's is not.
    let subjects: Vec<String> = store
        .audit_entries(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|entry| entry.kind == "attestation.decision")
        .map(|entry| entry.subject)
        .collect();
    assert_eq!(subjects, ["inst-1"]);
    // A known installation whose grant is refused keeps its earlier record.
    assert_eq!(
        grant_apple_key(&*store, &apple_key("inst-3", 3)).await,
        GrantOutcome::Recorded
    );
    let before = store.get_installation("inst-1").await.unwrap();
    let mut again = grant("inst-1", 3);
    again.apple_key = Some(AppleKeyRecord {
        key_id: vec![3; 32],
        ..apple_key("inst-1", 2)
    });
    assert_eq!(
        store.record_grant(&again).await.unwrap(),
        GrantOutcome::AppleKeyTaken
    );
    assert_eq!(store.get_installation("inst-1").await.unwrap(), before);
}

pub async fn concurrent_grants_claiming_one_code_yield_one_winner(store: Arc<impl Store>) {
    add_sample_app(&*store, "org.example.cgm").await;
    store
        .create_enrolment(&enrolment("code", "org.example.cgm", 100), &change())
        .await
        .unwrap();
    let racers: Vec<_> = (0..16)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let installation = format!("inst-{n}");
                claim(&*store, "code", "org.example.cgm", &installation, "id:x", 5).await
            })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap());
    }
    assert_eq!(winners, 1);
    let installations = store
        .list_installations(&InstallationFilter::app(Some("org.example.cgm")), None, 100)
        .await
        .unwrap();
    assert_eq!(
        installations.len(),
        1,
        "only the winner's installation is stored"
    );
}

pub async fn admin_changes_commit_with_their_audit_entries(store: Arc<impl Store>) {
    let entries = || async { store.audit_entries(0, 100).await.unwrap() };
    add_sample_app(&*store, "org.example.cgm").await;
    assert_eq!(entries().await.len(), 1, "the app and its entry");
    // A change refused by the store leaves no entry.
    let duplicate = App {
        id: "org.example.cgm".into(),
        policy: policy(),
        created_at: at(1),
    };
    assert!(matches!(
        store.create_app(&duplicate, &change()).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .revoke_release("org.example.cgm", "9.9.9", at(2), &change())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .revoke_enrolment("org.example.cgm", "nope", at(2), &change())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(entries().await.len(), 1);
    // What only the store learns is in the entry, next to what the caller said.
    store
        .add_release(&release("1.0.0", "aa"), &change())
        .await
        .unwrap();
    store
        .add_release(&release("1.0.0", "bb"), &change())
        .await
        .unwrap();
    assert_eq!(
        store
            .revoke_release("org.example.cgm", "1.0.0", at(3), &change())
            .await
            .unwrap(),
        2
    );
    let last = entries().await.pop().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&last.detail).unwrap(),
        serde_json::json!({"asked": true, "revoked": 2})
    );
    // Revoking an enrolment revokes the installation it enrolled, in the same unit.
    store
        .create_enrolment(&enrolment("code", "org.example.cgm", 100), &change())
        .await
        .unwrap();
    assert!(claim(&*store, "code", "org.example.cgm", "inst-1", "id:a", 5).await);
    let feed = store.revocations_since(0).await.unwrap().len();
    let revoked = store
        .revoke_enrolment("org.example.cgm", "code", at(6), &change())
        .await
        .unwrap();
    assert_eq!(
        revoked,
        crate::EnrolmentRevocation {
            newly_revoked: true,
            installation_id: Some("inst-1".into()),
        }
    );
    assert!(
        store
            .get_installation("inst-1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(store.revocations_since(0).await.unwrap().len(), feed + 1);
    let last = entries().await.pop().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&last.detail).unwrap(),
        serde_json::json!({"asked": true, "newly_revoked": true, "installation_id": "inst-1"})
    );
    assert_eq!(
        verify_audit_chain(&*store).await.unwrap().unwrap().0,
        entries().await.len() as u64
    );
}

fn secret(app_id: &str, name: &str, sealed: &[u8]) -> SecretRecord {
    SecretRecord {
        app_id: app_id.into(),
        name: name.into(),
        version: 1,
        sealed: sealed.to_vec(),
        created_at: at(1),
        updated_at: at(1),
    }
}

pub async fn secrets_are_versioned_and_audited(store: Arc<impl Store>) {
    let entries = || async { store.audit_entries(0, 10_000).await.unwrap().len() };
    assert!(matches!(
        store
            .create_secret(&secret("org.example.absent", "api", &[1]), &change())
            .await,
        Err(StoreError::NotFound("app"))
    ));
    add_sample_app(&*store, "org.example.cgm").await;
    add_sample_app(&*store, "org.example.other").await;
    let before = entries().await;
    store
        .create_secret(&secret("org.example.cgm", "api", &[1]), &change())
        .await
        .unwrap();
    store
        .create_secret(&secret("org.example.cgm", "b", &[2]), &change())
        .await
        .unwrap();
    store
        .create_secret(&secret("org.example.other", "api", &[3]), &change())
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_secret(&secret("org.example.cgm", "api", &[9]), &change())
            .await,
        Err(StoreError::Conflict("secret"))
    ));
    store
        .rotate_secret("org.example.cgm", "api", 1, &[4, 4], at(5), &change())
        .await
        .unwrap();
    // A rotation from a version that is no longer current, and one of nothing, are refused.
    assert!(matches!(
        store
            .rotate_secret("org.example.cgm", "api", 1, &[5], at(6), &change())
            .await,
        Err(StoreError::Conflict("secret version"))
    ));
    assert!(matches!(
        store
            .rotate_secret("org.example.cgm", "nope", 1, &[5], at(6), &change())
            .await,
        Err(StoreError::NotFound("secret"))
    ));
    let mine = store.secrets(Some("org.example.cgm")).await.unwrap();
    assert_eq!(
        mine,
        vec![
            SecretRecord {
                version: 2,
                sealed: vec![4, 4],
                updated_at: at(5),
                ..secret("org.example.cgm", "api", &[])
            },
            secret("org.example.cgm", "b", &[2]),
        ]
    );
    assert_eq!(store.secrets(None).await.unwrap().len(), 3);
    store
        .delete_secret("org.example.cgm", "b", &change())
        .await
        .unwrap();
    assert!(matches!(
        store.delete_secret("org.example.cgm", "b", &change()).await,
        Err(StoreError::NotFound("secret"))
    ));
    assert_eq!(
        store.secrets(Some("org.example.cgm")).await.unwrap().len(),
        1
    );
    // Five changes made it, each with its entry; the five refused left none.
    assert_eq!(entries().await, before + 5);
}

pub async fn concurrent_rotations_of_one_secret_yield_one_winner(store: Arc<impl Store>) {
    add_sample_app(&*store, "org.example.cgm").await;
    store
        .create_secret(&secret("org.example.cgm", "api", &[0]), &change())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .rotate_secret("org.example.cgm", "api", 1, &[i], at(2), &change())
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => winners += 1,
            Err(StoreError::Conflict("secret version")) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(store.secrets(None).await.unwrap()[0].version, 2);
}

fn trust_file(role: &str, version: i64) -> TrustMetadataRecord {
    TrustMetadataRecord {
        role: role.into(),
        version,
        body: format!("{role} {version}").into_bytes(),
        expires_at: at(1000),
        created_at: at(version),
    }
}

fn trust_key(id: &str, role: &str) -> TrustKeyRecord {
    TrustKeyRecord {
        key_id: id.into(),
        role: role.into(),
        sealed: id.as_bytes().to_vec(),
        created_at: at(1),
        retired_at: None,
    }
}

pub async fn the_trust_repository_publishes_each_version_once(store: Arc<impl Store>) {
    let entries = || async { store.audit_entries(0, 10_000).await.unwrap().len() };
    let before = entries().await;
    assert!(matches!(
        store.add_root(&trust_file("root", 2), &[], &change()).await,
        Err(StoreError::NotFound("trust repository"))
    ));
    let online = [
        trust_key("t1", "timestamp"),
        trust_key("s1", "snapshot"),
        trust_key("g1", "targets"),
    ];
    store
        .init_trust(&trust_file("root", 1), &online, &change())
        .await
        .unwrap();
    assert!(matches!(
        store
            .init_trust(&trust_file("root", 1), &[], &change())
            .await,
        Err(StoreError::Conflict("trust repository"))
    ));
    // Root 3 straight after 1 is refused; 2 rotates the timestamp key.
    assert!(matches!(
        store.add_root(&trust_file("root", 3), &[], &change()).await,
        Err(StoreError::Conflict("root version"))
    ));
    store
        .add_root(
            &trust_file("root", 2),
            &[trust_key("t2", "timestamp")],
            &change(),
        )
        .await
        .unwrap();
    let keys: Vec<String> = store
        .trust_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(keys, vec!["s1", "g1", "t2"]);
    let versions: Vec<i64> = store
        .trust_roots()
        .await
        .unwrap()
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, vec![1, 2]);

    // A publication, then a timestamp alone (no audit entry), then a repeated version.
    let release = [
        trust_file("targets", 1),
        trust_file("snapshot", 1),
        trust_file("timestamp", 1),
    ];
    store
        .publish_trust(&release, Some(&change()))
        .await
        .unwrap();
    store
        .publish_trust(&[trust_file("timestamp", 2)], None)
        .await
        .unwrap();
    assert!(matches!(
        store
            .publish_trust(
                &[trust_file("targets", 2), trust_file("timestamp", 2)],
                Some(&change())
            )
            .await,
        Err(StoreError::Conflict("trust metadata version"))
    ));
    // The refused publication left nothing: targets 2 is not there.
    assert_eq!(
        store
            .trust_metadata("targets", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        store.trust_metadata("timestamp", None).await.unwrap(),
        Some(trust_file("timestamp", 2))
    );
    assert_eq!(
        store.trust_metadata("root", Some(1)).await.unwrap(),
        Some(trust_file("root", 1))
    );
    assert_eq!(store.trust_metadata("root", Some(9)).await.unwrap(), None);

    // Pins.
    let pin = |pattern: &str, pin: &str| PinRecord {
        pattern: pattern.into(),
        pin: pin.into(),
        created_at: at(3),
    };
    for (pattern, value) in [
        ("**.example.org", "A"),
        ("**.example.org", "B"),
        ("api.example.com", "C"),
    ] {
        store
            .add_pin(&pin(pattern, value), &change())
            .await
            .unwrap();
    }
    assert!(matches!(
        store.add_pin(&pin("**.example.org", "A"), &change()).await,
        Err(StoreError::Conflict("pin"))
    ));
    assert_eq!(store.pins().await.unwrap().len(), 3);
    assert_eq!(
        store
            .remove_pins("**.example.org", Some("A"), &change())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .remove_pins("api.example.com", None, &change())
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.remove_pins("nowhere", None, &change()).await,
        Err(StoreError::NotFound("pin"))
    ));
    assert_eq!(
        store.pins().await.unwrap(),
        vec![pin("**.example.org", "B")]
    );
    // init, root 2, one audited publication, three pins added, two removals.
    assert_eq!(entries().await, before + 8);
}

pub async fn concurrent_publications_of_one_version_yield_one_winner(store: Arc<impl Store>) {
    store
        .init_trust(&trust_file("root", 1), &[], &change())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .publish_trust(&[trust_file("timestamp", 1)], None)
                    .await
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => winners += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(winners, 1);
}

pub async fn installation_keys_commit_with_their_grant(store: Arc<impl Store>) {
    // Its own installation ids and key ids, so it can run after other scenarios (the copy test).
    add_sample_app(&*store, "org.example.cgm").await;
    let jwk = |n: u8| format!(r#"{{"kty":"EC","crv":"P-256","x":"{n}","y":"{n}"}}"#);
    let keys = |encryption: Option<u8>| InstallationKeys {
        public_jwk: jwk(0),
        encryption_jwk: encryption.map(jwk),
    };
    assert_eq!(store.installation_keys("enc-1").await.unwrap(), None);
    let with = |id: &str, offset: i64, encryption: Option<u8>| GrantWrites {
        keys: Some(keys(encryption)),
        ..grant(id, offset)
    };
    assert_eq!(
        store
            .record_grant(&with("enc-1", 1, Some(1)))
            .await
            .unwrap(),
        GrantOutcome::Recorded
    );
    assert_eq!(
        store.installation_keys("enc-1").await.unwrap(),
        Some(keys(Some(1)))
    );
    // A later grant that names another key-agreement key replaces it; one that names none
    // keeps it.
    store
        .record_grant(&with("enc-1", 2, Some(2)))
        .await
        .unwrap();
    store.record_grant(&with("enc-1", 3, None)).await.unwrap();
    store.record_grant(&grant("enc-1", 4)).await.unwrap();
    assert_eq!(
        store.installation_keys("enc-1").await.unwrap(),
        Some(keys(Some(2)))
    );
    // A refused grant (its App Attest key is taken) writes no keys.
    assert_eq!(
        grant_apple_key(&*store, &apple_key("enc-2", 0xe1)).await,
        GrantOutcome::Recorded
    );
    let refused = GrantWrites {
        apple_key: Some(apple_key("enc-3", 0xe1)),
        ..with("enc-3", 5, Some(3))
    };
    assert_eq!(
        store.record_grant(&refused).await.unwrap(),
        GrantOutcome::AppleKeyTaken
    );
    assert_eq!(store.installation_keys("enc-3").await.unwrap(), None);
}

fn credential(id: &str, app_id: &str) -> CredentialRecord {
    CredentialRecord {
        id: id.into(),
        app_id: app_id.into(),
        kind: "follower".into(),
        name: "School nurse".into(),
        scopes: vec!["nightscout:read".into(), "nightscout:tunnel".into()],
        digest: format!("{id}-digest"),
        sha1_digest: format!("{id}-sha1"),
        created_at: at(0),
        expires_at: Some(at(3600)),
        revoked_at: None,
    }
}

pub async fn credentials_are_revoked_once_and_audited(store: Arc<impl Store>) {
    let entries = || async { store.audit_entries(0, 10_000).await.unwrap().len() };
    assert!(matches!(
        store
            .create_credential(&credential("cred_a", "org.example.absent"), &change())
            .await,
        Err(StoreError::NotFound("app"))
    ));
    add_sample_app(&*store, "org.example.cgm").await;
    add_sample_app(&*store, "org.example.other").await;
    let before = entries().await;
    let uploader = CredentialRecord {
        kind: "uploader".into(),
        expires_at: None,
        scopes: vec!["nightscout:data-write".into()],
        ..credential("cred_b", "org.example.cgm")
    };
    store
        .create_credential(&credential("cred_a", "org.example.cgm"), &change())
        .await
        .unwrap();
    store.create_credential(&uploader, &change()).await.unwrap();
    store
        .create_credential(&credential("cred_c", "org.example.other"), &change())
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_credential(&credential("cred_a", "org.example.cgm"), &change())
            .await,
        Err(StoreError::Conflict("credential"))
    ));
    assert_eq!(
        store.credentials(Some("org.example.cgm")).await.unwrap(),
        vec![credential("cred_a", "org.example.cgm"), uploader.clone()]
    );
    store
        .revoke_credential("cred_a", at(60), &change())
        .await
        .unwrap();
    assert!(matches!(
        store.revoke_credential("cred_a", at(61), &change()).await,
        Err(StoreError::Conflict("credential revoked"))
    ));
    assert!(matches!(
        store.revoke_credential("cred_z", at(61), &change()).await,
        Err(StoreError::NotFound("credential"))
    ));
    let all = store.credentials(None).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["cred_a", "cred_b", "cred_c"]
    );
    assert_eq!(all[0].revoked_at, Some(at(60)));
    assert_eq!(all[1].revoked_at, None);
    // Three creations and one revocation, each with its entry; the refused ones wrote nothing.
    assert_eq!(entries().await, before + 4);
}

fn partner(id: &str) -> PartnerRecord {
    PartnerRecord {
        id: id.into(),
        name: "St. Elsewhere clinic EHR".into(),
        keys: PartnerKeys::Url(format!("https://{id}.example.org/.well-known/jwks.json")),
        scopes: vec!["system/Observation.rs".into(), "system/Patient.r".into()],
        audience: None,
        ip_allow: vec!["192.0.2.0/24".into(), "2001:db8::/32".into()],
        require_dpop: false,
        created_at: at(0),
        rotated_at: None,
        disabled_at: None,
    }
}

pub async fn partners_are_disabled_once_rotated_and_audited(store: Arc<impl Store>) {
    let entries = || async { store.audit_entries(0, 10_000).await.unwrap().len() };
    let before = entries().await;
    assert_eq!(store.partner("ptn_a").await.unwrap(), None);
    // A registered JWKS document is kept as it was sent; no address list means any address.
    let jwks = "{\"keys\": [\n  {\"kty\": \"EC\", \"crv\": \"P-384\", \"kid\": \"k1\"}\n]}";
    let registered = PartnerRecord {
        name: "Lab results relay".into(),
        keys: PartnerKeys::Jwks(jwks.into()),
        scopes: vec!["system/Observation.cruds".into()],
        audience: Some("https://fhir.example.org/r4".into()),
        ip_allow: vec![],
        require_dpop: true,
        ..partner("ptn_b")
    };
    // Created out of id order: the list is by id all the same.
    for created in [&partner("ptn_c"), &registered, &partner("ptn_a")] {
        store.create_partner(created, &change()).await.unwrap();
    }
    assert_eq!(entries().await, before + 3);
    let duplicate = PartnerRecord {
        name: "Another".into(),
        ..partner("ptn_a")
    };
    assert!(matches!(
        store.create_partner(&duplicate, &change()).await,
        Err(StoreError::Conflict("partner"))
    ));
    assert_eq!(
        store.partner("ptn_a").await.unwrap(),
        Some(partner("ptn_a"))
    );
    assert_eq!(
        store.partner("ptn_b").await.unwrap(),
        Some(registered.clone())
    );
    assert_eq!(store.partner("ptn_z").await.unwrap(), None);
    assert_eq!(
        store.partners().await.unwrap(),
        vec![partner("ptn_a"), registered.clone(), partner("ptn_c")]
    );
    assert_eq!(
        entries().await,
        before + 3,
        "a refused creation writes no entry"
    );

    // Keys are replaced either way, and `rotated_at` says when.
    let rotated =
        PartnerKeys::Jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k2"}]}"#.into());
    store
        .rotate_partner_keys("ptn_a", &rotated, at(30), &change())
        .await
        .unwrap();
    let url = PartnerKeys::Url("https://relay.example.org/jwks".into());
    store
        .rotate_partner_keys("ptn_b", &url, at(31), &change())
        .await
        .unwrap();
    assert_eq!(entries().await, before + 5);
    let after_rotation = PartnerRecord {
        keys: rotated.clone(),
        rotated_at: Some(at(30)),
        ..partner("ptn_a")
    };
    assert_eq!(
        store.partner("ptn_a").await.unwrap(),
        Some(after_rotation.clone())
    );
    assert_eq!(
        store.partner("ptn_b").await.unwrap(),
        Some(PartnerRecord {
            keys: url.clone(),
            rotated_at: Some(at(31)),
            ..registered.clone()
        })
    );
    assert!(matches!(
        store
            .rotate_partner_keys("ptn_z", &url, at(32), &change())
            .await,
        Err(StoreError::NotFound("partner"))
    ));
    assert_eq!(entries().await, before + 5);

    // Disabled once; a disabled partner's keys stay as they were.
    store
        .disable_partner("ptn_a", at(60), &change())
        .await
        .unwrap();
    assert_eq!(entries().await, before + 6);
    assert!(matches!(
        store.disable_partner("ptn_a", at(61), &change()).await,
        Err(StoreError::Conflict("partner disabled"))
    ));
    assert!(matches!(
        store.disable_partner("ptn_z", at(61), &change()).await,
        Err(StoreError::NotFound("partner"))
    ));
    assert!(matches!(
        store
            .rotate_partner_keys("ptn_a", &url, at(62), &change())
            .await,
        Err(StoreError::Conflict("partner disabled"))
    ));
    let disabled = PartnerRecord {
        disabled_at: Some(at(60)),
        ..after_rotation
    };
    assert_eq!(
        store.partner("ptn_a").await.unwrap(),
        Some(disabled.clone())
    );
    let all = store.partners().await.unwrap();
    assert_eq!(
        all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["ptn_a", "ptn_b", "ptn_c"]
    );
    assert_eq!(all[0], disabled);
    assert_eq!(all[1].disabled_at, None);
    assert_eq!(all[2], partner("ptn_c"));
    // Three creations, two rotations and one disabling, each with its entry; the refused ones
    // wrote nothing, and the chain holds.
    assert_eq!(entries().await, before + 6);
    assert!(verify_audit_chain(&*store).await.unwrap().is_ok());
}

fn count(
    at: i64,
    series: TelemetrySeries,
    outcome: &str,
    reason: &str,
    platform: &str,
    n: u64,
) -> TelemetryCount {
    TelemetryCount {
        at: UnixTime::from_secs(at),
        series,
        outcome: outcome.into(),
        reason: reason.into(),
        platform: platform.into(),
        count: n,
    }
}

pub async fn telemetry_adds_up_per_period_and_prunes(store: Arc<impl Store>) {
    use TelemetrySeries::{Attestation, Gateway};
    let minute = |n: i64| T0 - T0 % 60 + 60 * n;
    store
        .add_telemetry(&[
            count(minute(0), Attestation, "allow", "", "sdk", 3),
            count(minute(0), Attestation, "reject", "hook_detected", "sdk", 1),
            count(minute(1), Gateway, "forwarded", "", "", 10),
            count(minute(2), Attestation, "allow", "", "sdk", 2),
        ])
        .await
        .unwrap();
    // A second flush of the same minute adds to it.
    store
        .add_telemetry(&[count(minute(0), Attestation, "allow", "", "sdk", 4)])
        .await
        .unwrap();
    store.add_telemetry(&[]).await.unwrap();
    let per_minute = store
        .telemetry(
            UnixTime::from_secs(minute(0)),
            UnixTime::from_secs(minute(3)),
            60,
        )
        .await
        .unwrap();
    assert_eq!(
        per_minute,
        [
            count(minute(0), Attestation, "allow", "", "sdk", 7),
            count(minute(0), Attestation, "reject", "hook_detected", "sdk", 1),
            count(minute(1), Gateway, "forwarded", "", "", 10),
            count(minute(2), Attestation, "allow", "", "sdk", 2),
        ]
    );
    // Periods of two minutes from the first: minutes 0 and 1 sum, 2 starts the next.
    let per_two = store
        .telemetry(
            UnixTime::from_secs(minute(0)),
            UnixTime::from_secs(minute(3)),
            120,
        )
        .await
        .unwrap();
    assert_eq!(
        per_two,
        [
            count(minute(0), Attestation, "allow", "", "sdk", 7),
            count(minute(0), Attestation, "reject", "hook_detected", "sdk", 1),
            count(minute(0), Gateway, "forwarded", "", "", 10),
            count(minute(2), Attestation, "allow", "", "sdk", 2),
        ]
    );
    // Whole hours are read from the hours: the same sums.
    let hour = minute(0) - minute(0).rem_euclid(3600);
    let per_hour = store
        .telemetry(
            UnixTime::from_secs(hour),
            UnixTime::from_secs(hour + 3600),
            3600,
        )
        .await
        .unwrap();
    assert_eq!(
        per_hour,
        [
            count(hour, Attestation, "allow", "", "sdk", 9),
            count(hour, Attestation, "reject", "hook_detected", "sdk", 1),
            count(hour, Gateway, "forwarded", "", "", 10),
        ]
    );
    // `to` is exclusive; `from` inclusive.
    let middle = store
        .telemetry(
            UnixTime::from_secs(minute(1)),
            UnixTime::from_secs(minute(2)),
            60,
        )
        .await
        .unwrap();
    assert_eq!(middle, [count(minute(1), Gateway, "forwarded", "", "", 10)]);
    // Three minutes go; their hour stays until all of it is past.
    assert_eq!(
        store
            .prune_telemetry(UnixTime::from_secs(minute(2)))
            .await
            .unwrap(),
        3
    );
    let left = store
        .telemetry(UnixTime::from_secs(0), UnixTime::from_secs(minute(10)), 60)
        .await
        .unwrap();
    assert_eq!(left, [count(minute(2), Attestation, "allow", "", "sdk", 2)]);
    assert_eq!(
        store
            .prune_telemetry(UnixTime::from_secs(hour + 3600))
            .await
            .unwrap(),
        4,
        "the last minute and the hour's three rows"
    );
}

pub async fn operators_and_their_sessions_end_together(store: Arc<impl Store>) {
    // Audit entries this scenario added (the copy test runs it on a store with others).
    let before = store.audit_entries(0, 1000).await.unwrap().len();
    let entries = || async { store.audit_entries(0, 1000).await.unwrap().len() - before };
    let operator = |name: &str, role| OperatorRecord {
        name: name.into(),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${name}"),
        created_at: at(0),
    };
    let session = |id: &str, name: &str, expires: i64| ConsoleSession {
        id_sha256: id.repeat(64),
        operator: name.into(),
        created_at: at(0),
        expires_at: at(expires),
    };
    store
        .create_operator(&operator("bob", OperatorRole::Viewer), &change())
        .await
        .unwrap();
    store
        .create_operator(&operator("alice", OperatorRole::Operator), &change())
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_operator(&operator("alice", OperatorRole::Admin), &change())
            .await,
        Err(StoreError::Conflict("operator"))
    ));
    assert_eq!(
        entries().await,
        2,
        "each operator with its entry, the refused one without"
    );
    let listed = store.operators().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|o| (o.name.as_str(), o.role))
            .collect::<Vec<_>>(),
        [
            ("alice", OperatorRole::Operator),
            ("bob", OperatorRole::Viewer)
        ]
    );
    assert!(store.operator("carol").await.unwrap().is_none());
    let alice = store.operator("alice").await.unwrap().unwrap();
    assert!(alice == operator("alice", OperatorRole::Operator));

    // Sessions: only for an operator that exists, found until they expire.
    assert!(matches!(
        store
            .create_console_session(&session("c", "carol", 100), &change())
            .await,
        Err(StoreError::NotFound("operator"))
    ));
    for (id, name, expires) in [("a", "alice", 100), ("b", "alice", 10), ("d", "bob", 100)] {
        store
            .create_console_session(&session(id, name, expires), &change())
            .await
            .unwrap();
    }
    assert_eq!(entries().await, 5, "each sign-in with its entry");
    let (found, who) = store
        .console_session(&"a".repeat(64), at(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, session("a", "alice", 100));
    assert!(who == alice);
    assert!(
        store
            .console_session(&"b".repeat(64), at(10))
            .await
            .unwrap()
            .is_none(),
        "expired at its expiry"
    );
    assert!(
        store
            .console_session(&"e".repeat(64), at(0))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.purge_console_sessions(at(10)).await.unwrap(), 1);
    // Signing out ends one session, twice is no error.
    store.end_console_session(&"d".repeat(64)).await.unwrap();
    store.end_console_session(&"d".repeat(64)).await.unwrap();
    assert!(
        store
            .console_session(&"d".repeat(64), at(0))
            .await
            .unwrap()
            .is_none()
    );
    // Removing an operator ends their sessions with it.
    store.remove_operator("alice", &change()).await.unwrap();
    assert!(
        store
            .console_session(&"a".repeat(64), at(0))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.remove_operator("alice", &change()).await,
        Err(StoreError::NotFound("operator"))
    ));
    assert_eq!(entries().await, 6);
    assert_eq!(store.operators().await.unwrap().len(), 1);
}
