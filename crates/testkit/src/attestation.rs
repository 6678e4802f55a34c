//! Test certificate authorities that mint realistic attestation evidence: an App Attest CA
//! (attestation objects and assertions) and an Android key attestation CA (chains whose leaf
//! carries a KeyDescription). They are trust roots only where a test adds them; no shipped
//! configuration can.

use ciborium::Value;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DistinguishedName,
    DnType, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, SerialNumber,
};
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "medgate test CA");
    name
}

fn ca_params(common_name: &str, serial: u64) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.serial_number = Some(SerialNumber::from(serial));
    params
}

/// A two-level CA: a P-384 root and an intermediate of `intermediate_alg`.
pub struct TestCa {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new(label: &str, intermediate_serial: u64) -> TestCa {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let root =
            CertifiedIssuer::self_signed(ca_params(&format!("{label} root"), 1), root_key).unwrap();
        let intermediate_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("{label} intermediate"), intermediate_serial),
            intermediate_key,
            &root,
        )
        .unwrap();
        TestCa { root, intermediate }
    }

    /// The root certificate (DER): what a test adds as a trust anchor.
    pub fn root_der(&self) -> Vec<u8> {
        self.root.der().to_vec()
    }

    pub fn intermediate_der(&self) -> Vec<u8> {
        self.intermediate.der().to_vec()
    }

    /// A leaf for the P-256 `point` with the extensions given, signed by the intermediate;
    /// validity as given (Unix seconds), default 1975–4096.
    pub fn leaf(
        &self,
        point: &[u8],
        extensions: Vec<CustomExtension>,
        serial: u64,
        validity: Option<(i64, i64)>,
    ) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name("attested key");
        params.serial_number = Some(SerialNumber::from(serial));
        params.custom_extensions = extensions;
        if let Some((not_before, not_after)) = validity {
            params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
            params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        }
        params
            .signed_by(&P256Point(point.to_vec()), &self.intermediate)
            .unwrap()
            .der()
            .to_vec()
    }
}

/// A P-256 public key (uncompressed point) for rcgen to certify.
struct P256Point(Vec<u8>);

impl rcgen::PublicKeyData for P256Point {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// A P-256 key as App Attest and Android KeyStore make them.
pub struct TestKey {
    pair: EcdsaKeyPair,
}

impl TestKey {
    pub fn generate() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        TestKey {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        }
    }

    /// The uncompressed point.
    pub fn point(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// ECDSA P-256 over SHA-256(`message`), DER.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

/// Which App Attest environment a key claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppleEnvironment {
    Production,
    Development,
}

/// A test App Attest CA.
pub struct TestAppleCa(TestCa);

/// A key attested by [`TestAppleCa`], with what the app sends.
pub struct AppleKey {
    pub key: TestKey,
    pub key_id: [u8; 32],
    pub attestation_object: Vec<u8>,
}

/// What to get wrong in an attestation object, for negative tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppleFaults {
    pub wrong_nonce: bool,
    pub counter: u32,
    pub wrong_credential_id: bool,
    pub aaguid: Option<[u8; 16]>,
    pub leaf_validity: Option<(i64, i64)>,
}

impl Default for TestAppleCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestAppleCa {
    pub fn new() -> Self {
        TestAppleCa(TestCa::new("test App Attest", 2))
    }

    pub fn root_der(&self) -> Vec<u8> {
        self.0.root_der()
    }

    /// A new key attested for `app_id` over `client_data_hash`.
    pub fn attest(
        &self,
        app_id: &str,
        client_data_hash: &[u8],
        environment: AppleEnvironment,
    ) -> AppleKey {
        self.attest_with(
            app_id,
            client_data_hash,
            environment,
            AppleFaults::default(),
        )
    }

    pub fn attest_with(
        &self,
        app_id: &str,
        client_data_hash: &[u8],
        environment: AppleEnvironment,
        faults: AppleFaults,
    ) -> AppleKey {
        let key = TestKey::generate();
        let point = key.point();
        let key_id = sha256(&[&point]);
        let aaguid = faults.aaguid.unwrap_or(match environment {
            AppleEnvironment::Production => *b"appattest\0\0\0\0\0\0\0",
            AppleEnvironment::Development => *b"appattestdevelop",
        });
        let credential_id = if faults.wrong_credential_id {
            [7u8; 32]
        } else {
            key_id
        };
        let mut auth_data = sha256(&[app_id.as_bytes()]).to_vec();
        auth_data.push(0x40);
        auth_data.extend_from_slice(&faults.counter.to_be_bytes());
        auth_data.extend_from_slice(&aaguid);
        auth_data.extend_from_slice(&(credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&credential_id);
        auth_data.extend_from_slice(&[0xa0]); // an (empty) COSE key map; not read by verifiers
        let nonce = if faults.wrong_nonce {
            [9u8; 32]
        } else {
            sha256(&[&auth_data, client_data_hash])
        };
        let mut extension = vec![0x30, 0x24, 0xa1, 0x22, 0x04, 0x20];
        extension.extend_from_slice(&nonce);
        let nonce_extension =
            CustomExtension::from_oid_content(&[1, 2, 840, 113635, 100, 8, 2], extension);
        let leaf = self
            .0
            .leaf(&point, vec![nonce_extension], 99, faults.leaf_validity);
        let object = Value::Map(vec![
            (
                Value::Text("fmt".into()),
                Value::Text("apple-appattest".into()),
            ),
            (
                Value::Text("attStmt".into()),
                Value::Map(vec![
                    (
                        Value::Text("x5c".into()),
                        Value::Array(vec![
                            Value::Bytes(leaf),
                            Value::Bytes(self.0.intermediate_der()),
                        ]),
                    ),
                    (
                        Value::Text("receipt".into()),
                        Value::Bytes(b"test receipt".to_vec()),
                    ),
                ]),
            ),
            (Value::Text("authData".into()), Value::Bytes(auth_data)),
        ]);
        let mut attestation_object = Vec::new();
        ciborium::ser::into_writer(&object, &mut attestation_object).unwrap();
        AppleKey {
            key,
            key_id,
            attestation_object,
        }
    }
}

impl AppleKey {
    /// An assertion over `client_data_hash` with `counter`.
    pub fn assert(&self, app_id: &str, client_data_hash: &[u8], counter: u32) -> Vec<u8> {
        let mut authenticator_data = sha256(&[app_id.as_bytes()]).to_vec();
        authenticator_data.push(0x00);
        authenticator_data.extend_from_slice(&counter.to_be_bytes());
        let nonce = sha256(&[&authenticator_data, client_data_hash]);
        let signature = self.key.sign(&nonce);
        let assertion = Value::Map(vec![
            (Value::Text("signature".into()), Value::Bytes(signature)),
            (
                Value::Text("authenticatorData".into()),
                Value::Bytes(authenticator_data),
            ),
        ]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&assertion, &mut out).unwrap();
        out
    }
}

/// A test Android key attestation CA (the "batch" intermediate is serial 0x7e57).
pub struct TestAndroidCa(TestCa);

impl Default for TestAndroidCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestAndroidCa {
    pub const INTERMEDIATE_SERIAL_HEX: &'static str = "7e57";

    pub fn new() -> Self {
        TestAndroidCa(TestCa::new("test Android attestation", 0x7e57))
    }

    pub fn root_der(&self) -> Vec<u8> {
        self.0.root_der()
    }

    /// Leaf (the attested `point`, carrying `description`), intermediate, root.
    pub fn chain(&self, point: &[u8], description: &KeyDescription) -> Vec<Vec<u8>> {
        self.chain_with(point, description, None)
    }

    pub fn chain_with(
        &self,
        point: &[u8],
        description: &KeyDescription,
        leaf_validity: Option<(i64, i64)>,
    ) -> Vec<Vec<u8>> {
        let extension = CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17],
            description.to_der(),
        );
        let leaf = self.0.leaf(point, vec![extension], 1, leaf_validity);
        vec![leaf, self.0.intermediate_der(), self.0.root_der()]
    }

    /// Leaf (the attested `point`, carrying exactly `extensions`), intermediate, root.
    pub fn chain_with_extensions(
        &self,
        point: &[u8],
        extensions: Vec<CustomExtension>,
    ) -> Vec<Vec<u8>> {
        let leaf = self.0.leaf(point, extensions, 1, None);
        vec![leaf, self.0.intermediate_der(), self.0.root_der()]
    }

    /// A chain whose intermediate also carries a key description: an attested key pretending
    /// to be a CA.
    pub fn chain_with_description_in_intermediate(
        &self,
        point: &[u8],
        description: &KeyDescription,
    ) -> Vec<Vec<u8>> {
        let extension = || {
            CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17],
                description.to_der(),
            )
        };
        let fake_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = ca_params("attested key acting as CA", 5);
        params.custom_extensions = vec![extension()];
        let fake_issuer =
            CertifiedIssuer::signed_by(params, fake_key, &self.0.intermediate).unwrap();
        let mut leaf = CertificateParams::default();
        leaf.distinguished_name = name("attested key");
        leaf.custom_extensions = vec![extension()];
        let leaf = leaf
            .signed_by(&P256Point(point.to_vec()), &fake_issuer)
            .unwrap()
            .der()
            .to_vec();
        vec![
            leaf,
            fake_issuer.der().to_vec(),
            self.0.intermediate_der(),
            self.0.root_der(),
        ]
    }
}

/// The KeyDescription fields tests vary; `to_der` encodes it as KeyMint 300 would.
#[derive(Debug, Clone)]
pub struct KeyDescription {
    pub challenge: Vec<u8>,
    /// 0 Software, 1 TrustedEnvironment, 2 StrongBox.
    pub security_level: u8,
    pub package: String,
    pub signing_digests: Vec<[u8; 32]>,
    pub device_locked: bool,
    /// 0 Verified, 1 SelfSigned, 2 Unverified, 3 Failed.
    pub verified_boot_state: u8,
    /// YYYYMM.
    pub os_patch_level: i64,
    /// The attested package's versionCode.
    pub version_code: i64,
    /// KeyMint's own level, when it differs from `security_level`.
    pub keymint_security_level: Option<u8>,
    /// KeyMint `origin`: 0 GENERATED, 2 IMPORTED.
    pub origin: i64,
    /// Put rootOfTrust and osPatchLevel in `softwareEnforced` (Android's word) instead of
    /// `hardwareEnforced`.
    pub device_state_in_software_list: bool,
}

impl KeyDescription {
    /// A locked, verified TEE device with a recent patch, for `package` signed by `digest`.
    pub fn genuine(challenge: &[u8], package: &str, digest: [u8; 32], os_patch_level: i64) -> Self {
        KeyDescription {
            challenge: challenge.to_vec(),
            security_level: 1,
            package: package.into(),
            signing_digests: vec![digest],
            device_locked: true,
            verified_boot_state: 0,
            os_patch_level,
            version_code: Self::VERSION_CODE,
            keymint_security_level: None,
            origin: 0,
            device_state_in_software_list: false,
        }
    }

    /// The versionCode `genuine` attests.
    pub const VERSION_CODE: i64 = 42;

    pub fn to_der(&self) -> Vec<u8> {
        let app_id = sequence(&[
            set(&[sequence(&[
                octets(self.package.as_bytes()),
                integer(self.version_code),
            ])]),
            set(&self
                .signing_digests
                .iter()
                .map(|d| octets(d))
                .collect::<Vec<_>>()),
        ]);
        let root_of_trust = sequence(&[
            octets(&[0x11; 32]),
            tlv(&[0x01], &[if self.device_locked { 0xff } else { 0x00 }]),
            enumerated(i64::from(self.verified_boot_state)),
            octets(&[0x22; 32]),
        ]);
        let device_state = vec![
            explicit(704, root_of_trust),
            explicit(705, integer(150_000)),
            explicit(706, integer(self.os_patch_level)),
        ];
        let mut software = vec![explicit(701, integer(1_700_000_000_000))];
        let mut hardware = vec![
            explicit(1, set(&[integer(2)])),
            explicit(2, integer(3)),
            explicit(3, integer(256)),
            explicit(10, integer(1)),
            explicit(702, integer(self.origin)),
        ];
        if self.device_state_in_software_list {
            software.extend(device_state);
        } else {
            hardware.extend(device_state);
        }
        software.push(explicit(709, octets(&app_id)));
        let (software, hardware) = (sequence(&software), sequence(&hardware));
        let keymint_level = self.keymint_security_level.unwrap_or(self.security_level);
        sequence(&[
            integer(300),
            enumerated(i64::from(self.security_level)),
            integer(300),
            enumerated(i64::from(keymint_level)),
            octets(&self.challenge),
            octets(&[]),
            software,
            hardware,
        ])
    }
}

pub(crate) fn tlv(tag: &[u8], content: &[u8]) -> Vec<u8> {
    let mut out = tag.to_vec();
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn sequence(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(&[0x30], &items.concat())
}

pub(crate) fn set(items: &[Vec<u8>]) -> Vec<u8> {
    tlv(&[0x31], &items.concat())
}

pub(crate) fn octets(bytes: &[u8]) -> Vec<u8> {
    tlv(&[0x04], bytes)
}

fn minimal_integer(value: i64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    bytes[start..].to_vec()
}

pub(crate) fn integer(value: i64) -> Vec<u8> {
    tlv(&[0x02], &minimal_integer(value))
}

fn enumerated(value: i64) -> Vec<u8> {
    tlv(&[0x0a], &minimal_integer(value))
}

/// `[number] EXPLICIT`, context-specific and constructed, high tag numbers in base 128.
fn explicit(number: u32, inner: Vec<u8>) -> Vec<u8> {
    let tag = if number < 31 {
        vec![0xa0 | number as u8]
    } else {
        let mut digits = vec![(number & 0x7f) as u8];
        let mut rest = number >> 7;
        while rest > 0 {
            digits.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        digits.reverse();
        let mut tag = vec![0xbf];
        tag.extend(digits);
        tag
    };
    tlv(&tag, &inner)
}

/// SHA-256 helper for tests.
pub fn sha256_of(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}
