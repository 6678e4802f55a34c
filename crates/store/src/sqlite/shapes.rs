//! Fixed expected values for what the store persists: the audit entry hash and every JSON
//! document in a column. A refactor that changes one fails here, before a database written
//! by an older medgate (or copied to another backend) stops reading back.

use medgate_proto::PublicJwk;
use medgate_proto::wire::{IntegrityLevel, Reason};
use medgate_verify::platform::{
    AndroidPolicy, ApplePolicy, MinSecurityLevel, OnFailure, PlayIntegrityPolicy,
};

use super::tests::open;
use super::*;
use crate::conformance::{add_sample_app, append_sample_audit};

fn column(store: &SqliteStore, sql: &str) -> String {
    Connection::open(store.path())
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

/// The expected hashes were computed apart from this code, with Python's hashlib over the
/// construction `audit::entry_hash` documents.
#[test]
fn the_audit_entry_hash_is_fixed() {
    let first = audit::entry_hash(
        &[0; 32],
        1,
        UnixTime::from_secs(1_800_000_000),
        "attestation.decision",
        "installation",
        "inst-1",
        r#"{"decision":"allow"}"#,
    );
    assert_eq!(
        medgate_proto::hex::encode(&first),
        "769f413ed64d451eaf6e970ef50bc25557b7231fb9c9e5f363447442a00ccd17"
    );
    let second = audit::entry_hash(
        &first,
        2,
        UnixTime::from_secs(1_800_000_001),
        "admin.app.create",
        "admin",
        "org.example.cgm",
        "{}",
    );
    assert_eq!(
        medgate_proto::hex::encode(&second),
        "0d3ffa4e3d1e7a08f2704a4ab5afe09946ac2e7351de06b763cf5c49636c272c"
    );
}

#[tokio::test]
async fn persisted_json_documents_are_fixed() {
    let (store, _dir) = open();
    add_sample_app(&store, "org.example.cgm").await;
    assert_eq!(
        column(&store, "SELECT body FROM policies WHERE platform = '*'"),
        r#"{"scopes":["entries:read","entries:write"],"limited_scopes":["entries:read"],"reject_on":["debugger","hook","injected_library","tamper"],"degrade_on":["root","emulator","mitm"],"sdk_evidence":"allow"}"#
    );
    let mut record = AttestationRecord {
        installation_id: "inst-1".into(),
        app_id: "org.example.cgm".into(),
        platform: "sdk".into(),
        app_version: "1.0.0".into(),
        at: UnixTime::from_secs(1_800_000_000),
        decision: Decision::AllowLimited,
        reasons: vec![Reason::SdkEvidenceLimited, Reason::RootDetected],
        integrity_level: Some(IntegrityLevel::SelfReported),
        hardware_key: false,
        identity: None,
    };
    store.record_attestation(&record).await.unwrap();
    assert_eq!(
        column(&store, "SELECT last_reasons FROM installations"),
        r#"["sdk_evidence_limited","root_detected"]"#
    );
    record.reasons.clear();
    store.record_attestation(&record).await.unwrap();
    assert_eq!(
        column(&store, "SELECT last_reasons FROM installations"),
        "[]"
    );

    let key = SigningKeyRecord {
        kid: "kid-1".into(),
        public_jwk: PublicJwk::P256 {
            x: [1; 32],
            y: [2; 32],
        },
        sealed_private_key: vec![0; 8],
        created_at: UnixTime::from_secs(1_800_000_000),
        retired_at: None,
    };
    store
        .rotate_signing_key(&key, &crate::conformance::change())
        .await
        .unwrap();
    assert_eq!(
        column(&store, "SELECT public_jwk FROM signing_keys"),
        r#"{"kty":"EC","crv":"P-256","x":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","y":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"}"#
    );

    // An audit row, first in a log of its own.
    let (store, _dir) = open();
    append_sample_audit(&store, 1).await;
    assert_eq!(
        column(&store, "SELECT detail FROM audit_log WHERE seq = 1"),
        r#"{"i":1}"#
    );
    assert_eq!(
        column(
            &store,
            "SELECT lower(hex(hash)) FROM audit_log WHERE seq = 1"
        ),
        "cc3bd802f03baf5324781c5e0563944ff272e72dd7a597a7ec807f5595496c12"
    );
}

/// The platform policies the server stores (it normalises what the admin sent through these
/// types before the store sees it).
#[test]
fn platform_policy_documents_are_fixed() {
    let apple = ApplePolicy {
        app_ids: vec!["ABCDE12345.org.example.cgm".into()],
        allow_development: false,
        allow_enrolment: true,
        on_failure: OnFailure::Degrade,
    };
    let android = AndroidPolicy {
        package_name: "org.example.cgm".into(),
        signing_cert_digests: vec!["ab".repeat(32)],
        min_security_level: MinSecurityLevel::StrongBox,
        require_locked_bootloader: true,
        require_verified_boot: false,
        max_patch_age_months: Some(12),
        allow_enrolment: false,
        on_failure: OnFailure::Reject,
    };
    let play: PlayIntegrityPolicy = serde_json::from_value(serde_json::json!({
        "package_name": "org.example.cgm",
    }))
    .unwrap();
    for (policy, expected) in [
        (
            serde_json::to_string(&apple).unwrap(),
            r#"{"app_ids":["ABCDE12345.org.example.cgm"],"allow_development":false,"allow_enrolment":true,"on_failure":"degrade"}"#,
        ),
        (
            serde_json::to_string(&android).unwrap(),
            r#"{"package_name":"org.example.cgm","signing_cert_digests":["abababababababababababababababababababababababababababababababab"],"min_security_level":"strong_box","require_locked_bootloader":true,"require_verified_boot":false,"max_patch_age_months":12,"allow_enrolment":false,"on_failure":"reject"}"#,
        ),
        (
            serde_json::to_string(&play).unwrap(),
            r#"{"package_name":"org.example.cgm","signing_cert_digests":[],"required_device_labels":["MEETS_DEVICE_INTEGRITY"],"require_play_recognized":true,"require_licensed":false,"check_environment":false,"max_age_secs":300,"allow_enrolment":false,"allow_test_responses":false,"on_failure":"reject"}"#,
        ),
    ] {
        assert_eq!(policy, expected);
    }
}

/// How a partner's row is written: the key source in one of two columns (the schema refuses
/// both or neither), the lists space-separated, DPoP as 0/1.
#[tokio::test]
async fn partner_rows_are_fixed() {
    let (store, _dir) = open();
    let partner = PartnerRecord {
        id: "ptn_0123456789abcdef".into(),
        name: "St. Elsewhere clinic EHR".into(),
        keys: PartnerKeys::Url("https://ehr.example.org/jwks.json".into()),
        scopes: vec!["system/Observation.rs".into(), "system/Patient.r".into()],
        audience: None,
        ip_allow: vec![],
        require_dpop: true,
        created_at: UnixTime::from_secs(1_800_000_000),
        rotated_at: None,
        disabled_at: None,
    };
    store
        .create_partner(&partner, &crate::conformance::change())
        .await
        .unwrap();
    assert_eq!(
        column(
            &store,
            "SELECT json_array(id, name, jwks_url, jwks, scopes, audience, ip_allow, require_dpop,
                               created_at, rotated_at, disabled_at) FROM partners"
        ),
        r#"["ptn_0123456789abcdef","St. Elsewhere clinic EHR","https://ehr.example.org/jwks.json",null,"system/Observation.rs system/Patient.r",null,"",1,1800000000,null,null]"#
    );
    let raw = Connection::open(store.path()).unwrap();
    for (jwks_url, jwks) in [(None, None), (Some("https://a.example"), Some("{}"))] {
        let refused = raw.execute(
            "INSERT INTO partners (id, name, jwks_url, jwks, scopes, ip_allow, require_dpop, created_at)
             VALUES ('ptn_x', 'x', ?1, ?2, '', '', 0, 0)",
            params![jwks_url, jwks],
        );
        assert!(
            is_constraint(
                &refused.unwrap_err(),
                rusqlite::ffi::SQLITE_CONSTRAINT_CHECK
            ),
            "{jwks_url:?} {jwks:?}"
        );
    }
}
