//! The Android Key Attestation vectors in ../shared/vectors/android-key-attestation: every
//! leaf's KeyDescription is parsed and compared, field for field, with the independent decode in
//! `cases.json` and, where upstream ships one, with upstream's own decode (the companion JSON).

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medgate_testkit::{vector_json, vectors_dir};
use medgate_verify::android::key_description::{
    self, AuthorizationList, EnforcedBy, KeyDescription, Problem, RootOfTrust,
};
use serde_json::{Map, Value, json};
use x509_cert::Certificate;
use x509_cert::der::Decode;

const FOLDER: &str = "android-key-attestation";

/// The certificates of a PEM file, decoded leniently: some upstream files have 76-character
/// lines and no final newline, which strict RFC 7468 readers refuse.
fn pem_certificates(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut certificates = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN CERTIFICATE") {
            body = Some(String::new());
        } else if line.starts_with("-----END CERTIFICATE") {
            let base64 = body.take().expect("END without BEGIN");
            certificates.push(STANDARD.decode(base64).expect("PEM body is base64"));
        } else if let Some(body) = body.as_mut() {
            body.push_str(line);
        }
    }
    assert!(body.is_none(), "{}: BEGIN without END", path.display());
    certificates
}

/// The DER of a case's leaf certificate. The google/android-key-attestation cases name a folder
/// of `cert0.pem..cert3.pem`, whose leaf is `cert0.pem`.
fn leaf(dir: &Path, file: &str) -> Vec<u8> {
    let file = match file.strip_suffix("cert0.pem..cert3.pem") {
        Some(folder) => format!("{folder}cert0.pem"),
        None => file.to_string(),
    };
    let mut certificates = pem_certificates(&dir.join(FOLDER).join(&file));
    assert!(!certificates.is_empty(), "{file}: no certificate");
    certificates.swap_remove(0)
}

/// The value of the leaf's KeyDescription extension, if it has one.
fn extension(certificate: &[u8]) -> Option<Vec<u8>> {
    let certificate = Certificate::from_der(certificate).expect("leaf is a DER certificate");
    let extensions = certificate.tbs_certificate().extensions()?;
    let mut found = extensions
        .iter()
        .filter(|extension| extension.extn_id.to_string() == key_description::OID);
    let value = found.next()?.extn_value.as_bytes().to_vec();
    assert!(found.next().is_none(), "the extension appears twice");
    Some(value)
}

struct Case {
    file: String,
    case: Value,
    extension: Option<Vec<u8>>,
}

fn cases(dir: &Path) -> Vec<Case> {
    let cases = vector_json(dir, &format!("{FOLDER}/cases.json"));
    cases["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let file = case["file"].as_str().expect("file").to_string();
            let extension = extension(&leaf(dir, &file));
            Case {
                file,
                case: case.clone(),
                extension,
            }
        })
        .collect()
}

fn enforced_by(by: EnforcedBy) -> &'static str {
    match by {
        EnforcedBy::Hardware => "hardware",
        EnforcedBy::Software => "software",
    }
}

type IntegerField = fn(&AuthorizationList) -> Option<i64>;
type BytesField = fn(&AuthorizationList) -> Option<&Vec<u8>>;

/// The integer fields `cases.json` reports with the list that enforces them.
const INTEGERS: &[(&str, IntegerField)] = &[
    ("osVersion", |list| list.os_version),
    ("osPatchLevel", |list| list.os_patch_level),
    ("vendorPatchLevel", |list| list.vendor_patch_level),
    ("bootPatchLevel", |list| list.boot_patch_level),
    ("creationDateTime", |list| list.creation_date_time),
    ("algorithm", |list| list.algorithm),
    ("keySize", |list| list.key_size),
    ("ecCurve", |list| list.ec_curve),
    ("origin", |list| list.origin),
];

/// The device-ID fields, which `cases.json` reports as text.
const DEVICE_IDS: &[(&str, BytesField)] = &[
    ("attestationIdBrand", |list| {
        list.attestation_id_brand.as_ref()
    }),
    ("attestationIdDevice", |list| {
        list.attestation_id_device.as_ref()
    }),
    ("attestationIdProduct", |list| {
        list.attestation_id_product.as_ref()
    }),
    ("attestationIdSerial", |list| {
        list.attestation_id_serial.as_ref()
    }),
    ("attestationIdImei", |list| {
        list.attestation_id_imei.as_ref()
    }),
    ("attestationIdMeid", |list| {
        list.attestation_id_meid.as_ref()
    }),
    ("attestationIdManufacturer", |list| {
        list.attestation_id_manufacturer.as_ref()
    }),
    ("attestationIdModel", |list| {
        list.attestation_id_model.as_ref()
    }),
];

fn root_of_trust_json(rot: &RootOfTrust) -> Value {
    json!({
        "verifiedBootKey": medgate_proto::hex::encode(&rot.verified_boot_key),
        "deviceLocked": rot.device_locked,
        "verifiedBootState": rot.verified_boot_state.as_str(),
        "verifiedBootHash": rot.verified_boot_hash.as_deref().map(medgate_proto::hex::encode),
    })
}

/// Compares every field of `expected` (a `cases.json` decode) with `parsed`, and, for every
/// field some case reports (`reported`), checks that a case without it has no such field.
fn check_expected(file: &str, expected: &Value, reported: &BTreeSet<String>, kd: &KeyDescription) {
    let expected = expected.as_object().expect("expected is an object");
    for key in expected.keys() {
        let known = matches!(
            key.as_str(),
            "attestation_version"
                | "attestation_security_level"
                | "keymint_or_keymaster_version"
                | "keymint_security_level"
                | "attestation_challenge_hex"
                | "attestation_challenge_utf8"
                | "attestation_application_id"
                | "root_of_trust"
        ) || INTEGERS
            .iter()
            .any(|(name, _)| key == name || *key == format!("{name}_enforced_by"))
            || DEVICE_IDS.iter().any(|(name, _)| key == name);
        assert!(known, "{file}: expected field {key} is not compared");
    }
    assert_eq!(
        expected["attestation_version"],
        json!(kd.attestation_version),
        "{file}"
    );
    assert_eq!(
        expected["attestation_security_level"],
        kd.attestation_security_level.as_str(),
        "{file}"
    );
    assert_eq!(
        expected["keymint_or_keymaster_version"],
        json!(kd.keymint_version),
        "{file}"
    );
    assert_eq!(
        expected["keymint_security_level"],
        kd.keymint_security_level.as_str(),
        "{file}"
    );
    assert_eq!(
        expected["attestation_challenge_hex"],
        medgate_proto::hex::encode(&kd.attestation_challenge),
        "{file}"
    );
    // Only the printable challenges: the others were decoded with replacement characters.
    if let Ok(text) = std::str::from_utf8(&kd.attestation_challenge) {
        assert_eq!(expected["attestation_challenge_utf8"], text, "{file}");
    }

    let aaid = kd.attestation_application_id().map(|aaid| {
        json!({
            "packages": aaid.packages.iter()
                .map(|package| json!({"name": package.name, "version": package.version}))
                .collect::<Vec<_>>(),
            "signature_digests_sha256_hex": aaid.signature_digests.iter()
                .map(|digest| medgate_proto::hex::encode(digest))
                .collect::<Vec<_>>(),
        })
    });
    assert_eq!(
        expected.get("attestation_application_id"),
        aaid.as_ref(),
        "{file}: attestation_application_id"
    );
    assert_eq!(
        expected.get("root_of_trust"),
        kd.root_of_trust().map(root_of_trust_json).as_ref(),
        "{file}: root_of_trust"
    );

    for (name, get) in INTEGERS {
        let found = kd.lookup(*get);
        match expected.get(*name) {
            Some(value) => {
                let (found, by) = found.unwrap_or_else(|| panic!("{file}: {name} is missing"));
                assert_eq!(value, &json!(found), "{file}: {name}");
                assert_eq!(
                    expected[format!("{name}_enforced_by").as_str()],
                    enforced_by(by),
                    "{file}: {name}_enforced_by"
                );
            }
            None if reported.contains(*name) => {
                assert_eq!(
                    found, None,
                    "{file}: {name} is not in the independent decode"
                )
            }
            None => {}
        }
    }
    for (name, get) in DEVICE_IDS {
        let found = kd.lookup(|list| get(list)).map(|(bytes, _)| bytes);
        match expected.get(*name) {
            Some(value) => {
                let text = value.as_str().expect("device IDs are text");
                assert_eq!(
                    found.map(Vec::as_slice),
                    Some(text.as_bytes()),
                    "{file}: {name}"
                );
            }
            None if reported.contains(*name) => {
                assert_eq!(
                    found, None,
                    "{file}: {name} is not in the independent decode"
                )
            }
            None => {}
        }
    }
}

#[test]
fn key_description_of_every_leaf_matches_the_independent_decode() {
    let Some(dir) = vectors_dir() else { return };
    let cases = cases(&dir);
    assert_eq!(cases.len(), 23, "cases.json changed; review this test");
    let reported: BTreeSet<String> = cases
        .iter()
        .filter_map(|case| case.case["expected"].as_object())
        .flat_map(|expected| expected.keys().cloned())
        .collect();

    let (mut decoded, mut refused) = (0, 0);
    for Case {
        file,
        case,
        extension,
    } in &cases
    {
        let bytes = extension.as_deref();
        match file.as_str() {
            "android-keyattestation/invalid/malformed_rot_device_locked.pem" => {
                // A real device encoded deviceLocked as BOOLEAN 0x01. DER allows only 0x00 and
                // 0xFF, and we do not guess what a non-DER boolean means: refused.
                let bytes = bytes.expect("extension");
                let error = key_description::parse(bytes).unwrap_err();
                assert_eq!(error.problem(), Some(Problem::BadBoolean));
                assert_eq!(
                    error.field().unwrap().to_string(),
                    "KeyDescription.hardwareEnforced.rootOfTrust.deviceLocked"
                );
                // ...and that byte is its only problem: with it set to 0xFF, every field
                // matches the independent decode (which read it leniently as true).
                let at = bytes
                    .windows(5)
                    .position(|w| w == [0x01, 0x01, 0x01, 0x0a, 0x01])
                    .expect("the 0x01 BOOLEAN before verifiedBootState");
                let mut repaired = bytes.to_vec();
                repaired[at + 2] = 0xff;
                let kd = key_description::parse(&repaired).unwrap();
                check_expected(file, &case["expected"], &reported, &kd);
                refused += 1;
            }
            "android-keyattestation/invalid/tags_not_in_ascending_order.pem" => {
                // The leaf was re-encoded with hardwareEnforced [2] before [1].
                let error = key_description::parse(bytes.expect("extension")).unwrap_err();
                assert_eq!(
                    error.problem(),
                    Some(Problem::TagsNotAscending {
                        previous: 2,
                        next: 1
                    })
                );
                assert!(
                    error
                        .to_string()
                        .contains("tags must be in ascending order"),
                    "{error}"
                );
                refused += 1;
            }
            "android-keyattestation/p256_sha384_intermediate.pem" => {
                // Described as having no extension, but its (synthetic) leaf does carry the OID,
                // with the value OCTET STRING { OCTET STRING { NULL } }: not a KeyDescription.
                assert!(case.get("expected").is_none());
                let bytes = bytes.expect("the leaf carries the OID");
                assert_eq!(bytes, [0x04, 0x04, 0x04, 0x02, 0x05, 0x00]);
                let error = key_description::parse(bytes).unwrap_err();
                assert_eq!(error.problem(), Some(Problem::WrongType("SEQUENCE")));
                refused += 1;
            }
            _ => {
                let bytes = bytes.unwrap_or_else(|| panic!("{file}: no extension"));
                let kd = key_description::parse(bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
                check_expected(file, &case["expected"], &reported, &kd);
                decoded += 1;
            }
        }
    }
    assert_eq!((decoded, refused), (20, 3));
}

#[test]
fn key_description_set_of_is_unsorted_on_real_devices() {
    let Some(dir) = vectors_dir() else { return };
    // Evidence for not enforcing DER SET OF order (see `set_of` in key_description.rs).
    let certificate = leaf(&dir, "android-keyattestation/allow_while_on_body.pem");
    let kd = key_description::parse(&extension(&certificate).unwrap()).unwrap();
    assert_eq!(kd.hardware_enforced.purpose, [3, 2]);
    assert_eq!(kd.hardware_enforced.digest, [6, 4]);
    assert!(kd.software_enforced.allow_while_on_body);
}

/// A list in upstream's JSON form (android/keyattestation's testdata): integers as strings,
/// bytes as base64, `origin` by name.
fn upstream_list(list: &AuthorizationList) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    let number = |value: i64| Value::String(value.to_string());
    let numbers = |values: &[i64]| Value::Array(values.iter().map(|v| number(*v)).collect());
    let text = |bytes: &[u8]| {
        Value::String(String::from_utf8(bytes.to_vec()).expect("device IDs are UTF-8"))
    };
    let base64 = |bytes: &[u8]| Value::String(STANDARD.encode(bytes));

    let sets: [(&str, &Vec<i64>); 5] = [
        ("purposes", &list.purpose),
        ("blockModes", &list.block_mode),
        ("digests", &list.digest),
        ("paddings", &list.padding),
        ("rsaOaepMgfDigests", &list.mgf_digest),
    ];
    for (key, values) in sets {
        if !values.is_empty() {
            put(key, numbers(values));
        }
    }
    let integers: [(&str, Option<i64>); 16] = [
        ("algorithms", list.algorithm),
        ("keySize", list.key_size),
        ("minMacLength", list.min_mac_length),
        ("ecCurve", list.ec_curve),
        ("rsaPublicExponent", list.rsa_public_exponent),
        ("activeDateTime", list.active_date_time),
        (
            "originationExpireDateTime",
            list.origination_expire_date_time,
        ),
        ("usageExpireDateTime", list.usage_expire_date_time),
        ("usageCountLimit", list.usage_count_limit),
        ("userAuthType", list.user_auth_type),
        ("authTimeout", list.auth_timeout),
        ("creationDateTime", list.creation_date_time),
        ("osVersion", list.os_version),
        ("osPatchLevel", list.os_patch_level),
        ("vendorPatchLevel", list.vendor_patch_level),
        ("bootPatchLevel", list.boot_patch_level),
    ];
    for (key, value) in integers {
        if let Some(value) = value {
            put(key, number(value));
        }
    }
    let flags: [(&str, bool); 12] = [
        ("callerNonce", list.caller_nonce),
        ("rollbackResistance", list.rollback_resistance),
        ("earlyBootOnly", list.early_boot_only),
        ("noAuthRequired", list.no_auth_required),
        ("allowWhileOnBody", list.allow_while_on_body),
        (
            "trustedUserPresenceRequired",
            list.trusted_user_presence_required,
        ),
        (
            "trustedConfirmationRequired",
            list.trusted_confirmation_required,
        ),
        ("unlockedDeviceRequired", list.unlocked_device_required),
        ("allApplications", list.all_applications),
        ("rollbackResistant", list.rollback_resistant),
        ("deviceUniqueAttestation", list.device_unique_attestation),
        ("hasUnknownTags", !list.unknown_tags.is_empty()),
    ];
    for (key, set) in flags {
        if set {
            put(key, Value::Bool(true));
        }
    }
    let ids: [(&str, &Option<Vec<u8>>); 9] = [
        ("attestationIdBrand", &list.attestation_id_brand),
        ("attestationIdDevice", &list.attestation_id_device),
        ("attestationIdProduct", &list.attestation_id_product),
        ("attestationIdSerial", &list.attestation_id_serial),
        ("attestationIdImei", &list.attestation_id_imei),
        ("attestationIdMeid", &list.attestation_id_meid),
        (
            "attestationIdManufacturer",
            &list.attestation_id_manufacturer,
        ),
        ("attestationIdModel", &list.attestation_id_model),
        ("attestationIdSecondImei", &list.attestation_id_second_imei),
    ];
    for (key, value) in ids {
        if let Some(value) = value {
            put(key, text(value));
        }
    }
    if let Some(value) = &list.application_id {
        put("applicationId", base64(value));
    }
    if let Some(value) = &list.module_hash {
        put("moduleHash", base64(value));
    }
    if let Some(origin) = list.origin {
        let name = match origin {
            0 => "GENERATED".to_string(),
            1 => "DERIVED".to_string(),
            2 => "IMPORTED".to_string(),
            3 => "RESERVED".to_string(),
            4 => "SECURELY_IMPORTED".to_string(),
            other => other.to_string(),
        };
        put("origin", Value::String(name));
    }
    if let Some(rot) = &list.root_of_trust {
        let mut value = json!({
            "verifiedBootKey": base64(&rot.verified_boot_key),
            "deviceLocked": rot.device_locked,
            "verifiedBootState": rot.verified_boot_state.as_str().to_uppercase()
                .replace("SELFSIGNED", "SELF_SIGNED"),
        });
        if let Some(hash) = &rot.verified_boot_hash {
            value["verifiedBootHash"] = base64(hash);
        }
        put("rootOfTrust", value);
    }
    if let Some(aaid) = &list.attestation_application_id {
        put(
            "attestationApplicationId",
            json!({
                "packages": aaid.packages.iter()
                    .map(|p| json!({"name": p.name, "version": number(p.version)}))
                    .collect::<Vec<_>>(),
                "signatures": aaid.signature_digests.iter()
                    .map(|d| base64(d))
                    .collect::<Vec<_>>(),
            }),
        );
    }
    out
}

fn upstream_level(level: key_description::SecurityLevel) -> &'static str {
    match level {
        key_description::SecurityLevel::Software => "SOFTWARE",
        key_description::SecurityLevel::TrustedEnvironment => "TRUSTED_ENVIRONMENT",
        key_description::SecurityLevel::StrongBox => "STRONG_BOX",
    }
}

#[test]
fn key_description_of_every_leaf_matches_upstream_decode() {
    let Some(dir) = vectors_dir() else { return };
    let mut compared = 0;
    for Case {
        file,
        case,
        extension,
    } in cases(&dir)
    {
        let Some(companion) = case["companion_json"].as_str() else {
            continue;
        };
        let kd = key_description::parse(&extension.expect("extension")).unwrap();
        let mut upstream = vector_json(&dir, &format!("{FOLDER}/{companion}"));
        // Upstream's own bookkeeping, not a field of the extension.
        for list in ["softwareEnforced", "hardwareEnforced"] {
            if let Some(list) = upstream[list].as_object_mut() {
                list.remove("areTagsOrdered");
            }
        }
        let ours = json!({
            "attestationVersion": kd.attestation_version.to_string(),
            "attestationSecurityLevel": upstream_level(kd.attestation_security_level),
            "keyMintVersion": kd.keymint_version.to_string(),
            "keyMintSecurityLevel": upstream_level(kd.keymint_security_level),
            "attestationChallenge": STANDARD.encode(&kd.attestation_challenge),
            "uniqueId": STANDARD.encode(&kd.unique_id),
            "softwareEnforced": upstream_list(&kd.software_enforced),
            "hardwareEnforced": upstream_list(&kd.hardware_enforced),
        });
        assert_eq!(ours, upstream, "{file} against {companion}");
        compared += 1;
    }
    assert_eq!(compared, 16);
}

#[test]
fn key_description_prefixes_and_byte_flips_of_real_extensions() {
    let Some(dir) = vectors_dir() else { return };
    let mut parses = 0u64;
    for Case {
        file, extension, ..
    } in cases(&dir)
    {
        let Some(bytes) = extension else { continue };
        for end in 0..bytes.len() {
            assert!(
                key_description::parse(&bytes[..end]).is_err(),
                "{file}: prefix of {end} bytes"
            );
            parses += 1;
        }
        // Must never panic, whatever the outcome.
        let mut mutated = bytes.clone();
        for at in 0..mutated.len() {
            for flip in [0x01, 0x80, 0xff] {
                mutated[at] ^= flip;
                let _ = key_description::parse(&mutated);
                mutated[at] ^= flip;
                parses += 1;
            }
        }
    }
    assert!(parses > 10_000, "{parses}");
}
