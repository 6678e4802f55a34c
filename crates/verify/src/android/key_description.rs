//! Strict DER parsing of the Android Key Attestation extension (`KeyDescription`, OID
//! 1.3.6.1.4.1.11129.2.1.17), for hostile input.
//!
//! 1. Bound the input size ([`MAX_INPUT`]) before any work.
//! 2. The input is exactly one `KeyDescription` SEQUENCE: its eight fields in schema order, each
//!    of its universal type, and nothing after it.
//! 3. Security levels and the verified boot state are ENUMERATED values within their ranges.
//! 4. Each `AuthorizationList` is a run of `[n] EXPLICIT` fields whose tag numbers are strictly
//!    ascending (which also refuses duplicates); each holds exactly one value of its schema type.
//!    Tags this parser does not know are skipped whole and recorded in
//!    [`AuthorizationList::unknown_tags`], so a newer KeyMint does not break verification.
//! 5. A SET OF holds at most [`MAX_SET_ELEMENTS`] elements. The DER sort order of SET OF elements
//!    is *not* enforced: real devices emit unsorted sets (see `set_of` below).
//! 6. `rootOfTrust` and `attestationApplicationId` (the DER inside the `[709]` OCTET STRING) are
//!    parsed by the same rules; package names must be UTF-8.
//!
//! Everywhere: definite lengths in minimal form, validly encoded tags, INTEGER and ENUMERATED
//! contents in minimal form and within `i64`, BOOLEAN content `0x00` or `0xFF` only, empty NULL,
//! and no trailing bytes inside any value. Nesting is fixed by the schema (no recursion) and
//! every value is read once, so the work is linear in the input.
//!
//! The TLVs are read with the `der` crate's [`SliceReader`], [`AnyRef`] (tag, DER length, content)
//! and its primitive decoders (`i64`, [`IntRef`], `bool`, [`Null`]). `der`'s `SetOfVec` is not
//! used: it sorts what it decodes and has no element bound.
//!
//! Decoding says nothing about authenticity: the extension is only as trustworthy as the
//! certificate chain that carries it, which the caller verifies.

use der::asn1::{AnyRef, IntRef, Null};
use der::{Decode, ErrorKind, Reader, SliceReader, Tag, Tagged};
use serde::Serialize;

/// The extension's object identifier.
pub const OID: &str = "1.3.6.1.4.1.11129.2.1.17";

/// The largest extension accepted, in bytes. Real ones are under 1 KiB.
pub const MAX_INPUT: usize = 64 * 1024;

/// The most elements accepted in one SET OF.
pub const MAX_SET_ELEMENTS: usize = 1024;

/// Why a `KeyDescription` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDescriptionError {
    #[error("KeyDescription is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("{field}: {problem}")]
    Invalid { field: FieldPath, problem: Problem },
}

impl KeyDescriptionError {
    /// What is wrong, unless the input was refused for its size.
    pub fn problem(&self) -> Option<Problem> {
        match self {
            KeyDescriptionError::Invalid { problem, .. } => Some(*problem),
            KeyDescriptionError::TooLarge { .. } => None,
        }
    }

    /// Where it is wrong, unless the input was refused for its size.
    pub fn field(&self) -> Option<FieldPath> {
        match self {
            KeyDescriptionError::Invalid { field, .. } => Some(*field),
            KeyDescriptionError::TooLarge { .. } => None,
        }
    }
}

/// The schema field an error is about: `list` is `softwareEnforced` or `hardwareEnforced` for a
/// field of an authorization list; `field` uses the schema's names (`rootOfTrust.deviceLocked`),
/// and is empty for the `KeyDescription` itself. Displayed as a path from the root, such as
/// `KeyDescription.hardwareEnforced.rootOfTrust.deviceLocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPath {
    pub list: Option<&'static str>,
    pub field: &'static str,
}

impl FieldPath {
    const ROOT: FieldPath = FieldPath::top("");

    const fn top(field: &'static str) -> Self {
        FieldPath { list: None, field }
    }

    const fn in_list(list: &'static str, field: &'static str) -> Self {
        FieldPath {
            list: Some(list),
            field,
        }
    }

    fn err(self, problem: Problem) -> KeyDescriptionError {
        KeyDescriptionError::Invalid {
            field: self,
            problem,
        }
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyDescription")?;
        if let Some(list) = self.list {
            write!(f, ".{list}")?;
        }
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        Ok(())
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    #[error("input ends inside the value")]
    Truncated,
    #[error("indefinite length; DER requires definite lengths")]
    IndefiniteLength,
    #[error("length is not in minimal DER form")]
    NonMinimalLength,
    #[error("tag is not validly encoded")]
    BadTag,
    #[error("expected {0}")]
    WrongType(&'static str),
    #[error("content length is wrong for the type")]
    BadContentLength,
    #[error("INTEGER is empty or not in minimal DER form")]
    NonMinimalInteger,
    #[error("INTEGER does not fit in 64 bits")]
    IntegerTooLarge,
    #[error("BOOLEAN must be encoded as 0x00 or 0xFF")]
    BadBoolean,
    #[error("ENUMERATED value {0} is out of range")]
    EnumOutOfRange(i64),
    #[error(
        "authorization list tags must be in ascending order ([{previous}] is followed by [{next}])"
    )]
    TagsNotAscending { previous: u32, next: u32 },
    #[error("SET OF has more than {max} elements")]
    TooManyElements { max: usize },
    #[error("trailing bytes after the value")]
    TrailingBytes,
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("not valid DER")]
    Der,
}

/// `SecurityLevel ::= ENUMERATED { Software(0), TrustedEnvironment(1), StrongBox(2) }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SecurityLevel {
    Software,
    TrustedEnvironment,
    StrongBox,
}

impl SecurityLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            SecurityLevel::Software => "Software",
            SecurityLevel::TrustedEnvironment => "TrustedEnvironment",
            SecurityLevel::StrongBox => "StrongBox",
        }
    }

    fn from_value(value: i64) -> Option<Self> {
        match value {
            0 => Some(SecurityLevel::Software),
            1 => Some(SecurityLevel::TrustedEnvironment),
            2 => Some(SecurityLevel::StrongBox),
            _ => None,
        }
    }
}

/// `VerifiedBootState ::= ENUMERATED { Verified(0), SelfSigned(1), Unverified(2), Failed(3) }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VerifiedBootState {
    Verified,
    SelfSigned,
    Unverified,
    Failed,
}

impl VerifiedBootState {
    pub const fn as_str(self) -> &'static str {
        match self {
            VerifiedBootState::Verified => "Verified",
            VerifiedBootState::SelfSigned => "SelfSigned",
            VerifiedBootState::Unverified => "Unverified",
            VerifiedBootState::Failed => "Failed",
        }
    }

    fn from_value(value: i64) -> Option<Self> {
        match value {
            0 => Some(VerifiedBootState::Verified),
            1 => Some(VerifiedBootState::SelfSigned),
            2 => Some(VerifiedBootState::Unverified),
            3 => Some(VerifiedBootState::Failed),
            _ => None,
        }
    }
}

/// The decoded extension. Trust it only as far as the chain that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyDescription {
    pub attestation_version: i64,
    pub attestation_security_level: SecurityLevel,
    /// `keyMintVersion`, called `keymasterVersion` before attestation version 100.
    pub keymint_version: i64,
    pub keymint_security_level: SecurityLevel,
    #[serde(serialize_with = "hex::bytes")]
    pub attestation_challenge: Vec<u8>,
    #[serde(serialize_with = "hex::bytes")]
    pub unique_id: Vec<u8>,
    pub software_enforced: AuthorizationList,
    /// `hardwareEnforced`, called `teeEnforced` in older documentation.
    pub hardware_enforced: AuthorizationList,
}

/// Which authorization list a value was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnforcedBy {
    /// `hardwareEnforced`: enforced by the secure environment named by
    /// [`KeyDescription::attestation_security_level`] (which is itself `Software` for keys
    /// attested by a software keystore, as on old devices).
    Hardware,
    /// `softwareEnforced`: reported by Android, not by the secure environment.
    Software,
}

impl KeyDescription {
    /// The value `get` picks from `hardwareEnforced` or, failing that, from `softwareEnforced`,
    /// with the list it came from.
    pub fn lookup<'s, T>(
        &'s self,
        get: impl Fn(&'s AuthorizationList) -> Option<T>,
    ) -> Option<(T, EnforcedBy)> {
        get(&self.hardware_enforced)
            .map(|value| (value, EnforcedBy::Hardware))
            .or_else(|| get(&self.software_enforced).map(|value| (value, EnforcedBy::Software)))
    }

    fn value<'s, T>(&'s self, get: impl Fn(&'s AuthorizationList) -> Option<T>) -> Option<T> {
        self.lookup(get).map(|(value, _)| value)
    }

    /// `rootOfTrust` (hardware list first). Absent on keys attested by a software keystore.
    pub fn root_of_trust(&self) -> Option<&RootOfTrust> {
        self.value(|list| list.root_of_trust.as_ref())
    }

    /// `attestationApplicationId` (hardware list first). Android fills it in, so real devices put
    /// it in `softwareEnforced`.
    pub fn attestation_application_id(&self) -> Option<&AttestationApplicationId> {
        self.value(|list| list.attestation_application_id.as_ref())
    }

    pub fn os_version(&self) -> Option<i64> {
        self.value(|list| list.os_version)
    }

    /// `osPatchLevel`, as `YYYYMM`.
    pub fn os_patch_level(&self) -> Option<i64> {
        self.value(|list| list.os_patch_level)
    }

    /// `vendorPatchLevel`, as `YYYYMMDD`.
    pub fn vendor_patch_level(&self) -> Option<i64> {
        self.value(|list| list.vendor_patch_level)
    }

    /// `bootPatchLevel`, as `YYYYMMDD`.
    pub fn boot_patch_level(&self) -> Option<i64> {
        self.value(|list| list.boot_patch_level)
    }

    /// `creationDateTime`, in milliseconds since the Unix epoch.
    pub fn creation_date_time(&self) -> Option<i64> {
        self.value(|list| list.creation_date_time)
    }

    pub fn algorithm(&self) -> Option<i64> {
        self.value(|list| list.algorithm)
    }

    pub fn key_size(&self) -> Option<i64> {
        self.value(|list| list.key_size)
    }

    pub fn ec_curve(&self) -> Option<i64> {
        self.value(|list| list.ec_curve)
    }

    pub fn origin(&self) -> Option<i64> {
        self.value(|list| list.origin)
    }

    /// `rootOfTrust` from `hardwareEnforced` only: what the secure environment vouches for.
    /// Policy reads only this one; a value in `softwareEnforced` is Android's word.
    pub fn hardware_root_of_trust(&self) -> Option<&RootOfTrust> {
        self.hardware_enforced.root_of_trust.as_ref()
    }

    /// `osPatchLevel` from `hardwareEnforced` only.
    pub fn hardware_os_patch_level(&self) -> Option<i64> {
        self.hardware_enforced.os_patch_level
    }

    /// `origin` from `hardwareEnforced` only (0 is GENERATED: made inside the secure
    /// environment, never imported).
    pub fn hardware_origin(&self) -> Option<i64> {
        self.hardware_enforced.origin
    }
}

/// `AuthorizationList`: one field per known tag. NULL-typed tags are `bool` (present or not);
/// SET OF INTEGER tags keep the device's element order. Absent fields are left out when
/// serialised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuthorizationList {
    /// `[1]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub purpose: Vec<i64>,
    /// `[2]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<i64>,
    /// `[3]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_size: Option<i64>,
    /// `[4]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub block_mode: Vec<i64>,
    /// `[5]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub digest: Vec<i64>,
    /// `[6]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub padding: Vec<i64>,
    /// `[7]`
    #[serde(skip_serializing_if = "is_false")]
    pub caller_nonce: bool,
    /// `[8]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_mac_length: Option<i64>,
    /// `[10]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ec_curve: Option<i64>,
    /// `[200]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rsa_public_exponent: Option<i64>,
    /// `[203]`
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mgf_digest: Vec<i64>,
    /// `[303]`
    #[serde(skip_serializing_if = "is_false")]
    pub rollback_resistance: bool,
    /// `[305]`
    #[serde(skip_serializing_if = "is_false")]
    pub early_boot_only: bool,
    /// `[400]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_date_time: Option<i64>,
    /// `[401]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origination_expire_date_time: Option<i64>,
    /// `[402]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_expire_date_time: Option<i64>,
    /// `[405]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_count_limit: Option<i64>,
    /// `[503]`
    #[serde(skip_serializing_if = "is_false")]
    pub no_auth_required: bool,
    /// `[504]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_auth_type: Option<i64>,
    /// `[505]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_timeout: Option<i64>,
    /// `[506]`
    #[serde(skip_serializing_if = "is_false")]
    pub allow_while_on_body: bool,
    /// `[507]`
    #[serde(skip_serializing_if = "is_false")]
    pub trusted_user_presence_required: bool,
    /// `[508]`
    #[serde(skip_serializing_if = "is_false")]
    pub trusted_confirmation_required: bool,
    /// `[509]`
    #[serde(skip_serializing_if = "is_false")]
    pub unlocked_device_required: bool,
    /// `[600]`
    #[serde(skip_serializing_if = "is_false")]
    pub all_applications: bool,
    /// `[601]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub application_id: Option<Vec<u8>>,
    /// `[701]`, milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_date_time: Option<i64>,
    /// `[702]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<i64>,
    /// `[703]`
    #[serde(skip_serializing_if = "is_false")]
    pub rollback_resistant: bool,
    /// `[704]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_of_trust: Option<RootOfTrust>,
    /// `[705]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_version: Option<i64>,
    /// `[706]`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_patch_level: Option<i64>,
    /// `[709]`, decoded from the DER its OCTET STRING holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation_application_id: Option<AttestationApplicationId>,
    /// `[710]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_brand: Option<Vec<u8>>,
    /// `[711]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_device: Option<Vec<u8>>,
    /// `[712]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_product: Option<Vec<u8>>,
    /// `[713]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_serial: Option<Vec<u8>>,
    /// `[714]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_imei: Option<Vec<u8>>,
    /// `[715]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_meid: Option<Vec<u8>>,
    /// `[716]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_manufacturer: Option<Vec<u8>>,
    /// `[717]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_model: Option<Vec<u8>>,
    /// `[718]`, as `YYYYMMDD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_patch_level: Option<i64>,
    /// `[719]`, as `YYYYMMDD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_patch_level: Option<i64>,
    /// `[720]`
    #[serde(skip_serializing_if = "is_false")]
    pub device_unique_attestation: bool,
    /// `[723]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub attestation_id_second_imei: Option<Vec<u8>>,
    /// `[724]`
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "hex::optional"
    )]
    pub module_hash: Option<Vec<u8>>,
    /// Tag numbers present but unknown to this parser, in order; their values were skipped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_tags: Vec<u32>,
}

/// `RootOfTrust` (`[704]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootOfTrust {
    #[serde(serialize_with = "hex::bytes")]
    pub verified_boot_key: Vec<u8>,
    pub device_locked: bool,
    pub verified_boot_state: VerifiedBootState,
    /// Present from attestation version 3.
    #[serde(serialize_with = "hex::optional")]
    pub verified_boot_hash: Option<Vec<u8>>,
}

/// `AttestationApplicationId` (the content of `[709]`). Both sets keep the device's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestationApplicationId {
    pub packages: Vec<PackageInfo>,
    /// SHA-256 digests of the signing certificates.
    #[serde(serialize_with = "hex::list")]
    pub signature_digests: Vec<Vec<u8>>,
}

/// `AttestationPackageInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageInfo {
    pub name: String,
    pub version: i64,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Parses the extension value (the content of the certificate extension's `extnValue`).
pub fn parse(der: &[u8]) -> Result<KeyDescription, KeyDescriptionError> {
    // Step 1.
    if der.len() > MAX_INPUT {
        return Err(KeyDescriptionError::TooLarge { max: MAX_INPUT });
    }
    // Step 2.
    let at = FieldPath::ROOT;
    within(der, at, |reader| sequence(reader, at, key_description))
}

fn key_description(reader: &mut SliceReader<'_>) -> Result<KeyDescription, KeyDescriptionError> {
    let attestation_version = integer(reader, FieldPath::top("attestationVersion"))?;
    // Step 3.
    let attestation_security_level =
        security_level(reader, FieldPath::top("attestationSecurityLevel"))?;
    let keymint_version = integer(reader, FieldPath::top("keyMintVersion"))?;
    let keymint_security_level = security_level(reader, FieldPath::top("keyMintSecurityLevel"))?;
    let attestation_challenge = octets(reader, FieldPath::top("attestationChallenge"))?.to_vec();
    let unique_id = octets(reader, FieldPath::top("uniqueId"))?.to_vec();
    // Step 4.
    let software_enforced = sequence(reader, FieldPath::top("softwareEnforced"), |r| {
        authorization_list(r, "softwareEnforced")
    })?;
    let hardware_enforced = sequence(reader, FieldPath::top("hardwareEnforced"), |r| {
        authorization_list(r, "hardwareEnforced")
    })?;
    Ok(KeyDescription {
        attestation_version,
        attestation_security_level,
        keymint_version,
        keymint_security_level,
        attestation_challenge,
        unique_id,
        software_enforced,
        hardware_enforced,
    })
}

fn security_level(
    reader: &mut SliceReader<'_>,
    at: FieldPath,
) -> Result<SecurityLevel, KeyDescriptionError> {
    let value = enumerated(reader, at)?;
    SecurityLevel::from_value(value).ok_or(at.err(Problem::EnumOutOfRange(value)))
}

/// The schema name of an `AuthorizationList` tag this parser knows.
fn tag_name(number: u32) -> Option<&'static str> {
    Some(match number {
        1 => "purpose",
        2 => "algorithm",
        3 => "keySize",
        4 => "blockMode",
        5 => "digest",
        6 => "padding",
        7 => "callerNonce",
        8 => "minMacLength",
        10 => "ecCurve",
        200 => "rsaPublicExponent",
        203 => "mgfDigest",
        303 => "rollbackResistance",
        305 => "earlyBootOnly",
        400 => "activeDateTime",
        401 => "originationExpireDateTime",
        402 => "usageExpireDateTime",
        405 => "usageCountLimit",
        503 => "noAuthRequired",
        504 => "userAuthType",
        505 => "authTimeout",
        506 => "allowWhileOnBody",
        507 => "trustedUserPresenceRequired",
        508 => "trustedConfirmationRequired",
        509 => "unlockedDeviceRequired",
        600 => "allApplications",
        601 => "applicationId",
        701 => "creationDateTime",
        702 => "origin",
        703 => "rollbackResistant",
        704 => "rootOfTrust",
        705 => "osVersion",
        706 => "osPatchLevel",
        709 => "attestationApplicationId",
        710 => "attestationIdBrand",
        711 => "attestationIdDevice",
        712 => "attestationIdProduct",
        713 => "attestationIdSerial",
        714 => "attestationIdImei",
        715 => "attestationIdMeid",
        716 => "attestationIdManufacturer",
        717 => "attestationIdModel",
        718 => "vendorPatchLevel",
        719 => "bootPatchLevel",
        720 => "deviceUniqueAttestation",
        723 => "attestationIdSecondImei",
        724 => "moduleHash",
        _ => return None,
    })
}

/// Step 4: the fields of one authorization list, `list` naming it in errors.
fn authorization_list(
    reader: &mut SliceReader<'_>,
    list: &'static str,
) -> Result<AuthorizationList, KeyDescriptionError> {
    let mut out = AuthorizationList::default();
    let mut previous: Option<u32> = None;
    while !reader.is_finished() {
        let tlv = any(reader, FieldPath::in_list(list, "field"))?;
        let Tag::ContextSpecific {
            constructed: true,
            number,
        } = tlv.tag()
        else {
            return Err(FieldPath::in_list(list, "field")
                .err(Problem::WrongType("a context-specific [n] EXPLICIT field")));
        };
        let number = number.value();
        let at = FieldPath::in_list(list, tag_name(number).unwrap_or("unknownTag"));
        if let Some(previous) = previous
            && number <= previous
        {
            return Err(at.err(Problem::TagsNotAscending {
                previous,
                next: number,
            }));
        }
        previous = Some(number);
        within(tlv.value(), at, |inner| {
            authorization(&mut out, number, inner, list, at)
        })?;
    }
    Ok(out)
}

/// Reads the single value inside the `[number] EXPLICIT` field into `out`.
fn authorization(
    out: &mut AuthorizationList,
    number: u32,
    reader: &mut SliceReader<'_>,
    list: &'static str,
    at: FieldPath,
) -> Result<(), KeyDescriptionError> {
    match number {
        1 => out.purpose = set_of(reader, at, |r| integer(r, at))?,
        2 => out.algorithm = Some(integer(reader, at)?),
        3 => out.key_size = Some(integer(reader, at)?),
        4 => out.block_mode = set_of(reader, at, |r| integer(r, at))?,
        5 => out.digest = set_of(reader, at, |r| integer(r, at))?,
        6 => out.padding = set_of(reader, at, |r| integer(r, at))?,
        7 => out.caller_nonce = null(reader, at)?,
        8 => out.min_mac_length = Some(integer(reader, at)?),
        10 => out.ec_curve = Some(integer(reader, at)?),
        200 => out.rsa_public_exponent = Some(integer(reader, at)?),
        203 => out.mgf_digest = set_of(reader, at, |r| integer(r, at))?,
        303 => out.rollback_resistance = null(reader, at)?,
        305 => out.early_boot_only = null(reader, at)?,
        400 => out.active_date_time = Some(integer(reader, at)?),
        401 => out.origination_expire_date_time = Some(integer(reader, at)?),
        402 => out.usage_expire_date_time = Some(integer(reader, at)?),
        405 => out.usage_count_limit = Some(integer(reader, at)?),
        503 => out.no_auth_required = null(reader, at)?,
        504 => out.user_auth_type = Some(integer(reader, at)?),
        505 => out.auth_timeout = Some(integer(reader, at)?),
        506 => out.allow_while_on_body = null(reader, at)?,
        507 => out.trusted_user_presence_required = null(reader, at)?,
        508 => out.trusted_confirmation_required = null(reader, at)?,
        509 => out.unlocked_device_required = null(reader, at)?,
        600 => out.all_applications = null(reader, at)?,
        601 => out.application_id = Some(octets(reader, at)?.to_vec()),
        701 => out.creation_date_time = Some(integer(reader, at)?),
        702 => out.origin = Some(integer(reader, at)?),
        703 => out.rollback_resistant = null(reader, at)?,
        // Step 6.
        704 => out.root_of_trust = Some(root_of_trust(reader, list)?),
        705 => out.os_version = Some(integer(reader, at)?),
        706 => out.os_patch_level = Some(integer(reader, at)?),
        709 => {
            let content = octets(reader, at)?;
            out.attestation_application_id = Some(attestation_application_id(content, list)?);
        }
        710 => out.attestation_id_brand = Some(octets(reader, at)?.to_vec()),
        711 => out.attestation_id_device = Some(octets(reader, at)?.to_vec()),
        712 => out.attestation_id_product = Some(octets(reader, at)?.to_vec()),
        713 => out.attestation_id_serial = Some(octets(reader, at)?.to_vec()),
        714 => out.attestation_id_imei = Some(octets(reader, at)?.to_vec()),
        715 => out.attestation_id_meid = Some(octets(reader, at)?.to_vec()),
        716 => out.attestation_id_manufacturer = Some(octets(reader, at)?.to_vec()),
        717 => out.attestation_id_model = Some(octets(reader, at)?.to_vec()),
        718 => out.vendor_patch_level = Some(integer(reader, at)?),
        719 => out.boot_patch_level = Some(integer(reader, at)?),
        720 => out.device_unique_attestation = null(reader, at)?,
        723 => out.attestation_id_second_imei = Some(octets(reader, at)?.to_vec()),
        724 => out.module_hash = Some(octets(reader, at)?.to_vec()),
        _ => {
            // A newer KeyMint's tag: one well-formed TLV, skipped unread.
            any(reader, at)?;
            out.unknown_tags.push(number);
        }
    }
    Ok(())
}

fn root_of_trust(
    reader: &mut SliceReader<'_>,
    list: &'static str,
) -> Result<RootOfTrust, KeyDescriptionError> {
    sequence(reader, FieldPath::in_list(list, "rootOfTrust"), |r| {
        let verified_boot_key =
            octets(r, FieldPath::in_list(list, "rootOfTrust.verifiedBootKey"))?.to_vec();
        let device_locked = boolean(r, FieldPath::in_list(list, "rootOfTrust.deviceLocked"))?;
        let at = FieldPath::in_list(list, "rootOfTrust.verifiedBootState");
        let state = enumerated(r, at)?;
        let verified_boot_state =
            VerifiedBootState::from_value(state).ok_or(at.err(Problem::EnumOutOfRange(state)))?;
        // OPTIONAL and last: present when anything is left.
        let verified_boot_hash = if r.is_finished() {
            None
        } else {
            let at = FieldPath::in_list(list, "rootOfTrust.verifiedBootHash");
            Some(octets(r, at)?.to_vec())
        };
        Ok(RootOfTrust {
            verified_boot_key,
            device_locked,
            verified_boot_state,
            verified_boot_hash,
        })
    })
}

/// Parses the DER held in the `[709]` OCTET STRING; it must be exactly one SEQUENCE.
fn attestation_application_id(
    content: &[u8],
    list: &'static str,
) -> Result<AttestationApplicationId, KeyDescriptionError> {
    let at = FieldPath::in_list(list, "attestationApplicationId");
    within(content, at, |reader| {
        sequence(reader, at, |r| {
            let packages = set_of(
                r,
                FieldPath::in_list(list, "attestationApplicationId.packageInfos"),
                |r| package_info(r, list),
            )?;
            let at = FieldPath::in_list(list, "attestationApplicationId.signatureDigests");
            let signature_digests = set_of(r, at, |r| Ok(octets(r, at)?.to_vec()))?;
            Ok(AttestationApplicationId {
                packages,
                signature_digests,
            })
        })
    })
}

fn package_info(
    reader: &mut SliceReader<'_>,
    list: &'static str,
) -> Result<PackageInfo, KeyDescriptionError> {
    let at = FieldPath::in_list(list, "attestationApplicationId.packageInfos");
    sequence(reader, at, |r| {
        let at = FieldPath::in_list(list, "attestationApplicationId.packageInfos.packageName");
        let name = std::str::from_utf8(octets(r, at)?)
            .map_err(|_| at.err(Problem::NotUtf8))?
            .to_owned();
        let version = integer(
            r,
            FieldPath::in_list(list, "attestationApplicationId.packageInfos.version"),
        )?;
        Ok(PackageInfo { name, version })
    })
}

// ---- DER primitives, each reading one TLV and naming `at` in its errors ----

/// Problems found while reading a tag and length (and slicing out the content).
fn header_problem(error: der::Error) -> Problem {
    match error.kind() {
        ErrorKind::Incomplete { .. } => Problem::Truncated,
        ErrorKind::IndefiniteLength => Problem::IndefiniteLength,
        // `der` reports a non-minimal or over-long length as `Length` (from `Overlength`).
        ErrorKind::Length { .. } | ErrorKind::Overlength | ErrorKind::Overflow => {
            Problem::NonMinimalLength
        }
        ErrorKind::TagUnknown { .. } | ErrorKind::TagNumberInvalid => Problem::BadTag,
        ErrorKind::TrailingData { .. } => Problem::TrailingBytes,
        _ => Problem::Der,
    }
}

/// Problems found while decoding a primitive's content.
fn value_problem(error: der::Error) -> Problem {
    match error.kind() {
        ErrorKind::Noncanonical { tag: Tag::Boolean } => Problem::BadBoolean,
        ErrorKind::Noncanonical { tag: Tag::Integer } => Problem::NonMinimalInteger,
        ErrorKind::Length { .. } => Problem::BadContentLength,
        ErrorKind::Incomplete { .. } => Problem::Truncated,
        ErrorKind::TrailingData { .. } => Problem::TrailingBytes,
        _ => Problem::Der,
    }
}

/// Runs `f` over `content`, which it must consume entirely.
fn within<'a, T>(
    content: &'a [u8],
    at: FieldPath,
    f: impl FnOnce(&mut SliceReader<'a>) -> Result<T, KeyDescriptionError>,
) -> Result<T, KeyDescriptionError> {
    let mut reader = SliceReader::new(content).map_err(|e| at.err(header_problem(e)))?;
    let value = f(&mut reader)?;
    if reader.is_finished() {
        Ok(value)
    } else {
        Err(at.err(Problem::TrailingBytes))
    }
}

/// One complete TLV of any type: validly encoded tag, definite minimal length, content present.
fn any<'a>(reader: &mut SliceReader<'a>, at: FieldPath) -> Result<AnyRef<'a>, KeyDescriptionError> {
    AnyRef::decode(reader).map_err(|e| at.err(header_problem(e)))
}

/// One TLV whose tag must be `tag` (`name` in the error).
fn expect<'a>(
    reader: &mut SliceReader<'a>,
    at: FieldPath,
    tag: Tag,
    name: &'static str,
) -> Result<AnyRef<'a>, KeyDescriptionError> {
    let tlv = any(reader, at)?;
    if tlv.tag() == tag {
        Ok(tlv)
    } else {
        Err(at.err(Problem::WrongType(name)))
    }
}

fn sequence<'a, T>(
    reader: &mut SliceReader<'a>,
    at: FieldPath,
    f: impl FnOnce(&mut SliceReader<'a>) -> Result<T, KeyDescriptionError>,
) -> Result<T, KeyDescriptionError> {
    let tlv = expect(reader, at, Tag::Sequence, "SEQUENCE")?;
    within(tlv.value(), at, f)
}

/// Step 5: a SET OF, each element read by `element`, at most [`MAX_SET_ELEMENTS`] of them.
///
/// DER (X.690 §11.6) wants SET OF elements sorted by their encodings, but real devices do not
/// sort: `allow_while_on_body.pem` (a 2025 production leaf) has `purpose` `{3, 2}` and `digest`
/// `{6, 4}` in `hardwareEnforced`. Refusing those would refuse genuine attestations, and the
/// order carries no meaning an attacker could use (the chain's signature covers the bytes as
/// they are), so the order is neither checked nor changed.
fn set_of<'a, T>(
    reader: &mut SliceReader<'a>,
    at: FieldPath,
    mut element: impl FnMut(&mut SliceReader<'a>) -> Result<T, KeyDescriptionError>,
) -> Result<Vec<T>, KeyDescriptionError> {
    let tlv = expect(reader, at, Tag::Set, "SET OF")?;
    within(tlv.value(), at, |r| {
        let mut out = Vec::new();
        while !r.is_finished() {
            if out.len() == MAX_SET_ELEMENTS {
                return Err(at.err(Problem::TooManyElements {
                    max: MAX_SET_ELEMENTS,
                }));
            }
            out.push(element(r)?);
        }
        Ok(out)
    })
}

fn octets<'a>(
    reader: &mut SliceReader<'a>,
    at: FieldPath,
) -> Result<&'a [u8], KeyDescriptionError> {
    // DER has no constructed OCTET STRING: `der` refuses tag 0x24 as an unknown tag.
    Ok(expect(reader, at, Tag::OctetString, "OCTET STRING")?.value())
}

fn boolean(reader: &mut SliceReader<'_>, at: FieldPath) -> Result<bool, KeyDescriptionError> {
    expect(reader, at, Tag::Boolean, "BOOLEAN")?
        .decode_as::<bool>()
        .map_err(|e| at.err(value_problem(e)))
}

/// A NULL, which is how the schema says "this flag is set": returns `true`.
fn null(reader: &mut SliceReader<'_>, at: FieldPath) -> Result<bool, KeyDescriptionError> {
    expect(reader, at, Tag::Null, "NULL")?
        .decode_as::<Null>()
        .map_err(|e| at.err(value_problem(e)))?;
    Ok(true)
}

fn integer(reader: &mut SliceReader<'_>, at: FieldPath) -> Result<i64, KeyDescriptionError> {
    let tlv = expect(reader, at, Tag::Integer, "INTEGER")?;
    integer_content(tlv.value(), at)
}

fn enumerated(reader: &mut SliceReader<'_>, at: FieldPath) -> Result<i64, KeyDescriptionError> {
    let tlv = expect(reader, at, Tag::Enumerated, "ENUMERATED")?;
    // ENUMERATED content is encoded as INTEGER content is (X.690 §8.4).
    integer_content(tlv.value(), at)
}

/// INTEGER content: non-empty, minimal two's complement, at most 8 bytes.
fn integer_content(content: &[u8], at: FieldPath) -> Result<i64, KeyDescriptionError> {
    let as_integer = AnyRef::new(Tag::Integer, content).map_err(|e| at.err(value_problem(e)))?;
    // `IntRef` checks the minimal form at any size, so that an over-long value is reported as
    // too large rather than as badly encoded.
    let minimal: IntRef<'_> = as_integer
        .decode_as()
        .map_err(|e| at.err(value_problem(e)))?;
    if minimal.as_bytes().len() > 8 {
        return Err(at.err(Problem::IntegerTooLarge));
    }
    as_integer
        .decode_as::<i64>()
        .map_err(|e| at.err(value_problem(e)))
}

/// Bytes as lowercase hex in JSON.
mod hex {
    use serde::Serializer;
    use serde::ser::SerializeSeq;

    use medgate_proto::hex::encode;

    pub fn bytes<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode(bytes))
    }

    pub fn optional<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => serializer.serialize_str(&encode(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn list<S: Serializer>(items: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            seq.serialize_element(&encode(item))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small DER writer for hand-built inputs (minimal encodings unless a test says otherwise).
    mod build {
        pub fn length(n: usize) -> Vec<u8> {
            if n < 0x80 {
                return vec![n as u8];
            }
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            let mut out = vec![0x80 | bytes.len() as u8];
            out.extend(bytes);
            out
        }

        pub fn tlv(tag: &[u8], content: &[u8]) -> Vec<u8> {
            let mut out = tag.to_vec();
            out.extend(length(content.len()));
            out.extend_from_slice(content);
            out
        }

        fn minimal(value: i64) -> Vec<u8> {
            let mut bytes = value.to_be_bytes().to_vec();
            while bytes.len() > 1
                && ((bytes[0] == 0x00 && bytes[1] < 0x80) || (bytes[0] == 0xff && bytes[1] >= 0x80))
            {
                bytes.remove(0);
            }
            bytes
        }

        pub fn int(value: i64) -> Vec<u8> {
            tlv(&[0x02], &minimal(value))
        }

        pub fn enumerated(value: i64) -> Vec<u8> {
            tlv(&[0x0a], &minimal(value))
        }

        pub fn octets(bytes: &[u8]) -> Vec<u8> {
            tlv(&[0x04], bytes)
        }

        pub fn boolean(value: bool) -> Vec<u8> {
            tlv(&[0x01], &[if value { 0xff } else { 0x00 }])
        }

        pub fn null() -> Vec<u8> {
            vec![0x05, 0x00]
        }

        pub fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
            tlv(&[0x30], &parts.concat())
        }

        pub fn set(parts: &[Vec<u8>]) -> Vec<u8> {
            tlv(&[0x31], &parts.concat())
        }

        /// The identifier octets of `[number]`, constructed, context-specific.
        pub fn explicit_tag(number: u32) -> Vec<u8> {
            if number < 31 {
                return vec![0xa0 | number as u8];
            }
            let mut digits = vec![(number & 0x7f) as u8];
            let mut rest = number >> 7;
            while rest > 0 {
                digits.push(0x80 | (rest & 0x7f) as u8);
                rest >>= 7;
            }
            digits.push(0xbf);
            digits.reverse();
            digits
        }

        pub fn explicit(number: u32, value: Vec<u8>) -> Vec<u8> {
            tlv(&explicit_tag(number), &value)
        }
    }

    // Named explicitly so that they shadow the parser's functions of the same names.
    use build::{boolean, enumerated, explicit, explicit_tag, int, null, octets, seq, set, tlv};

    fn description(software: &[Vec<u8>], hardware: &[Vec<u8>]) -> Vec<u8> {
        description_with(int(3), enumerated(1), octets(b"abc"), software, hardware)
    }

    fn description_with(
        version: Vec<u8>,
        level: Vec<u8>,
        challenge: Vec<u8>,
        software: &[Vec<u8>],
        hardware: &[Vec<u8>],
    ) -> Vec<u8> {
        seq(&[
            version,
            level,
            int(4),
            enumerated(1),
            challenge,
            octets(b""),
            seq(software),
            seq(hardware),
        ])
    }

    fn root_of_trust_with(device_locked: Vec<u8>, state: Vec<u8>) -> Vec<u8> {
        seq(&[
            octets(&[0xaa; 32]),
            device_locked,
            state,
            octets(&[0xbb; 32]),
        ])
    }

    fn package(name: &[u8], version: i64) -> Vec<u8> {
        seq(&[octets(name), int(version)])
    }

    fn application_id() -> Vec<u8> {
        seq(&[
            set(&[
                package(b"com.example.app", 7),
                package(b"com.example.other", 1),
            ]),
            set(&[octets(&[0xcc; 32])]),
        ])
    }

    fn software() -> Vec<Vec<u8>> {
        vec![
            explicit(701, int(1_727_389_887_639)),
            explicit(709, octets(&application_id())),
        ]
    }

    fn hardware() -> Vec<Vec<u8>> {
        vec![
            explicit(1, set(&[int(2), int(3)])),
            explicit(2, int(3)),
            explicit(3, int(256)),
            explicit(10, int(1)),
            explicit(503, null()),
            explicit(702, int(0)),
            explicit(704, root_of_trust_with(boolean(true), enumerated(0))),
            explicit(705, int(140_000)),
            explicit(706, int(202_408)),
            explicit(718, int(20_240_805)),
            explicit(719, int(20_240_805)),
        ]
    }

    fn full() -> Vec<u8> {
        description(&software(), &hardware())
    }

    fn refusal(input: &[u8]) -> (String, Problem) {
        let error = parse(input).unwrap_err();
        (error.field().unwrap().to_string(), error.problem().unwrap())
    }

    fn with_hardware(field: Vec<u8>) -> Vec<u8> {
        description(&[], &[field])
    }

    #[test]
    fn parses_a_complete_description() {
        let parsed = parse(&full()).unwrap();
        assert_eq!(parsed.attestation_version, 3);
        assert_eq!(
            parsed.attestation_security_level,
            SecurityLevel::TrustedEnvironment
        );
        assert_eq!(parsed.keymint_version, 4);
        assert_eq!(parsed.attestation_challenge, b"abc");
        assert!(parsed.unique_id.is_empty());
        let hw = &parsed.hardware_enforced;
        assert_eq!(hw.purpose, [2, 3]);
        assert_eq!(
            (hw.algorithm, hw.key_size, hw.ec_curve),
            (Some(3), Some(256), Some(1))
        );
        assert!(hw.no_auth_required);
        assert!(!hw.caller_nonce);
        assert!(hw.unknown_tags.is_empty());
        assert_eq!(
            parsed.root_of_trust(),
            Some(&RootOfTrust {
                verified_boot_key: vec![0xaa; 32],
                device_locked: true,
                verified_boot_state: VerifiedBootState::Verified,
                verified_boot_hash: Some(vec![0xbb; 32]),
            })
        );
        assert_eq!(
            parsed.attestation_application_id(),
            Some(&AttestationApplicationId {
                packages: vec![
                    PackageInfo {
                        name: "com.example.app".into(),
                        version: 7
                    },
                    PackageInfo {
                        name: "com.example.other".into(),
                        version: 1
                    },
                ],
                signature_digests: vec![vec![0xcc; 32]],
            })
        );
        assert_eq!(parsed.os_version(), Some(140_000));
        assert_eq!(parsed.os_patch_level(), Some(202_408));
        assert_eq!(parsed.vendor_patch_level(), Some(20_240_805));
        assert_eq!(parsed.boot_patch_level(), Some(20_240_805));
        assert_eq!(parsed.origin(), Some(0));
        assert_eq!(
            parsed.lookup(|list| list.creation_date_time),
            Some((1_727_389_887_639, EnforcedBy::Software))
        );
        assert_eq!(
            parsed.lookup(|list| list.os_patch_level),
            Some((202_408, EnforcedBy::Hardware))
        );
        assert_eq!(parsed.lookup(|list| list.usage_count_limit), None);
    }

    #[test]
    fn hardware_list_wins_over_software_list() {
        let parsed = parse(&description(
            &[explicit(706, int(201_801))],
            &[explicit(706, int(202_408))],
        ))
        .unwrap();
        assert_eq!(
            parsed.lookup(|list| list.os_patch_level),
            Some((202_408, EnforcedBy::Hardware))
        );
    }

    #[test]
    fn root_of_trust_hash_is_optional() {
        let rot = seq(&[octets(b""), boolean(false), enumerated(2)]);
        let parsed = parse(&with_hardware(explicit(704, rot))).unwrap();
        let rot = parsed.root_of_trust().unwrap();
        assert_eq!(rot.verified_boot_hash, None);
        assert_eq!(rot.verified_boot_state, VerifiedBootState::Unverified);
        assert!(!rot.device_locked);
    }

    #[test]
    fn every_known_tag_is_dispatched_and_unknown_tags_are_recorded() {
        // A NULL is the right type for the flag tags and the wrong type for every other known
        // tag, so each known tag either sets its flag or is refused under its own name.
        for number in 0..=1000u32 {
            let input = with_hardware(explicit(number, null()));
            match (tag_name(number), parse(&input)) {
                (Some(_), Ok(parsed)) => {
                    assert!(
                        parsed.hardware_enforced.unknown_tags.is_empty(),
                        "[{number}]"
                    );
                    assert_ne!(parsed.hardware_enforced, AuthorizationList::default());
                }
                (Some(name), Err(error)) => {
                    assert_eq!(error.field().unwrap().field, name, "[{number}]");
                    assert!(
                        matches!(error.problem(), Some(Problem::WrongType(_))),
                        "[{number}]"
                    );
                }
                (None, Ok(parsed)) => {
                    assert_eq!(parsed.hardware_enforced.unknown_tags, [number]);
                    let mut rest = parsed.hardware_enforced.clone();
                    rest.unknown_tags.clear();
                    assert_eq!(rest, AuthorizationList::default());
                }
                (None, Err(error)) => panic!("unknown tag [{number}] refused: {error}"),
            }
        }
    }

    #[test]
    fn unknown_tags_are_skipped_between_known_ones() {
        let input = description(
            &[],
            &[
                explicit(2, int(3)),
                explicit(11, int(1)),
                explicit(704, root_of_trust_with(boolean(false), enumerated(2))),
                explicit(725, seq(&[int(1), octets(b"x")])),
                explicit(5000, octets(b"future")),
            ],
        );
        let parsed = parse(&input).unwrap();
        assert_eq!(parsed.hardware_enforced.unknown_tags, [11, 725, 5000]);
        assert_eq!(parsed.hardware_enforced.algorithm, Some(3));
        assert!(parsed.root_of_trust().is_some());
    }

    #[test]
    fn unknown_tags_must_still_be_well_formed() {
        // Two values in one EXPLICIT field.
        let two = tlv(&explicit_tag(11), &[int(1), int(2)].concat());
        assert_eq!(
            refusal(&with_hardware(two)),
            (
                "KeyDescription.hardwareEnforced.unknownTag".into(),
                Problem::TrailingBytes
            )
        );
        // A primitive context-specific tag is not EXPLICIT.
        let primitive = tlv(&[0x8b], &[0x00]);
        let (field, problem) = refusal(&with_hardware(primitive));
        assert_eq!(field, "KeyDescription.hardwareEnforced.field");
        assert!(matches!(problem, Problem::WrongType(_)));
        // A universal type where a tagged field belongs.
        let (field, problem) = refusal(&with_hardware(int(1)));
        assert_eq!(field, "KeyDescription.hardwareEnforced.field");
        assert!(matches!(problem, Problem::WrongType(_)));
        // An empty EXPLICIT field.
        assert_eq!(
            refusal(&with_hardware(tlv(&explicit_tag(900), &[]))),
            (
                "KeyDescription.hardwareEnforced.unknownTag".into(),
                Problem::Truncated
            )
        );
    }

    #[test]
    fn refuses_indefinite_lengths() {
        let good = full();
        assert_eq!(good[1], 0x82, "the sample has a two-byte length");
        let mut top = vec![0x30, 0x80];
        top.extend_from_slice(&good[4..]); // the content after `30 82 LL LL`
        top.extend_from_slice(&[0x00, 0x00]);
        assert_eq!(
            refusal(&top),
            ("KeyDescription".into(), Problem::IndefiniteLength)
        );

        let rot = root_of_trust_with(boolean(true), enumerated(0));
        let mut indefinite = vec![0x30, 0x80];
        indefinite.extend_from_slice(&rot[2..]);
        indefinite.extend_from_slice(&[0x00, 0x00]);
        assert_eq!(
            refusal(&with_hardware(explicit(704, indefinite))),
            (
                "KeyDescription.hardwareEnforced.rootOfTrust".into(),
                Problem::IndefiniteLength
            )
        );
    }

    #[test]
    fn refuses_non_minimal_lengths() {
        let challenge = [vec![0x04, 0x81, 0x03], b"abc".to_vec()].concat();
        let input = description_with(int(3), enumerated(1), challenge, &[], &[]);
        assert_eq!(
            refusal(&input),
            (
                "KeyDescription.attestationChallenge".into(),
                Problem::NonMinimalLength
            )
        );
        let challenge = [vec![0x04, 0x82, 0x00, 0x03], b"abc".to_vec()].concat();
        let input = description_with(int(3), enumerated(1), challenge, &[], &[]);
        assert_eq!(
            refusal(&input),
            (
                "KeyDescription.attestationChallenge".into(),
                Problem::NonMinimalLength
            )
        );
        // A five-byte length form.
        let input = [0x30, 0x85, 0x00, 0x00, 0x00, 0x00, 0x01, 0x05].to_vec();
        assert_eq!(
            refusal(&input),
            ("KeyDescription".into(), Problem::NonMinimalLength)
        );
    }

    #[test]
    fn refuses_bad_tag_encodings() {
        // [5] in the long form, which DER keeps for numbers from 31.
        let long_form = tlv(&[0xbf, 0x05], &int(1));
        assert_eq!(
            refusal(&with_hardware(long_form)),
            (
                "KeyDescription.hardwareEnforced.field".into(),
                Problem::BadTag
            )
        );
        // [704] with a leading 0x80 subsequent octet.
        let padded = tlv(&[0xbf, 0x80, 0x85, 0x40], &int(1));
        assert_eq!(
            refusal(&with_hardware(padded)),
            (
                "KeyDescription.hardwareEnforced.field".into(),
                Problem::BadTag
            )
        );
        // A constructed OCTET STRING (BER only).
        let constructed = tlv(&[0x24], &octets(b"abc"));
        let input = description_with(int(3), enumerated(1), constructed, &[], &[]);
        assert_eq!(
            refusal(&input),
            (
                "KeyDescription.attestationChallenge".into(),
                Problem::BadTag
            )
        );
    }

    #[test]
    fn refuses_non_minimal_and_empty_integers() {
        for content in [&[0x00, 0x03][..], &[0xff, 0x80], &[]] {
            let input =
                description_with(tlv(&[0x02], content), enumerated(1), octets(b""), &[], &[]);
            assert_eq!(
                refusal(&input),
                (
                    "KeyDescription.attestationVersion".into(),
                    Problem::NonMinimalInteger
                ),
                "{content:02x?}"
            );
        }
        let level = tlv(&[0x0a], &[0x00, 0x01]);
        let input = description_with(int(3), level, octets(b""), &[], &[]);
        assert_eq!(
            refusal(&input),
            (
                "KeyDescription.attestationSecurityLevel".into(),
                Problem::NonMinimalInteger
            )
        );
    }

    #[test]
    fn integers_must_fit_in_64_bits() {
        for value in [i64::MAX, i64::MIN, -1, 0, 0x80] {
            let parsed = parse(&with_hardware(explicit(701, int(value)))).unwrap();
            assert_eq!(parsed.hardware_enforced.creation_date_time, Some(value));
        }
        let two_to_63 = tlv(&[0x02], &[0x00, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        let below_min = tlv(
            &[0x02],
            &[0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        );
        let huge = tlv(&[0x02], &[0x01; 40]);
        for integer in [two_to_63, below_min, huge] {
            assert_eq!(
                refusal(&with_hardware(explicit(701, integer))),
                (
                    "KeyDescription.hardwareEnforced.creationDateTime".into(),
                    Problem::IntegerTooLarge
                )
            );
        }
    }

    #[test]
    fn refuses_booleans_other_than_00_and_ff() {
        for content in [&[0x01][..], &[0x7f], &[0xfe]] {
            let rot = root_of_trust_with(tlv(&[0x01], content), enumerated(0));
            assert_eq!(
                refusal(&with_hardware(explicit(704, rot))),
                (
                    "KeyDescription.hardwareEnforced.rootOfTrust.deviceLocked".into(),
                    Problem::BadBoolean
                )
            );
        }
        for content in [&[][..], &[0xff, 0xff]] {
            let rot = root_of_trust_with(tlv(&[0x01], content), enumerated(0));
            assert_eq!(
                refusal(&with_hardware(explicit(704, rot))),
                (
                    "KeyDescription.hardwareEnforced.rootOfTrust.deviceLocked".into(),
                    Problem::BadContentLength
                )
            );
        }
    }

    #[test]
    fn refuses_null_with_content() {
        assert_eq!(
            refusal(&with_hardware(explicit(503, tlv(&[0x05], &[0x00])))),
            (
                "KeyDescription.hardwareEnforced.noAuthRequired".into(),
                Problem::BadContentLength
            )
        );
    }

    #[test]
    fn refuses_tags_out_of_ascending_order() {
        let input = description(&[], &[explicit(2, int(3)), explicit(1, set(&[int(2)]))]);
        let error = parse(&input).unwrap_err();
        assert_eq!(
            error.problem(),
            Some(Problem::TagsNotAscending {
                previous: 2,
                next: 1
            })
        );
        assert_eq!(
            error.field().unwrap().to_string(),
            "KeyDescription.hardwareEnforced.purpose"
        );
        assert!(
            error
                .to_string()
                .contains("tags must be in ascending order"),
            "{error}"
        );

        let duplicate = description(&[explicit(701, int(1)), explicit(701, int(2))], &[]);
        assert_eq!(
            refusal(&duplicate),
            (
                "KeyDescription.softwareEnforced.creationDateTime".into(),
                Problem::TagsNotAscending {
                    previous: 701,
                    next: 701
                }
            )
        );
        // Unknown tags take part in the order too.
        let unknown = description(&[], &[explicit(800, null()), explicit(799, null())]);
        assert!(matches!(
            refusal(&unknown).1,
            Problem::TagsNotAscending {
                previous: 800,
                next: 799
            }
        ));
    }

    #[test]
    fn refuses_trailing_bytes_everywhere() {
        let mut after = full();
        after.push(0x00);
        assert_eq!(
            refusal(&after),
            ("KeyDescription".into(), Problem::TrailingBytes)
        );

        let ninth = seq(&[
            int(3),
            enumerated(1),
            int(4),
            enumerated(1),
            octets(b""),
            octets(b""),
            seq(&[]),
            seq(&[]),
            int(0),
        ]);
        assert_eq!(
            refusal(&ninth),
            ("KeyDescription".into(), Problem::TrailingBytes)
        );

        let two_values = tlv(&explicit_tag(2), &[int(3), int(3)].concat());
        assert_eq!(
            refusal(&with_hardware(two_values)),
            (
                "KeyDescription.hardwareEnforced.algorithm".into(),
                Problem::TrailingBytes
            )
        );

        let rot = seq(&[
            octets(b""),
            boolean(true),
            enumerated(0),
            octets(b""),
            octets(b""),
        ]);
        assert_eq!(
            refusal(&with_hardware(explicit(704, rot))),
            (
                "KeyDescription.hardwareEnforced.rootOfTrust".into(),
                Problem::TrailingBytes
            )
        );

        let mut inner = application_id();
        inner.push(0x00);
        assert_eq!(
            refusal(&description(&[explicit(709, octets(&inner))], &[])),
            (
                "KeyDescription.softwareEnforced.attestationApplicationId".into(),
                Problem::TrailingBytes
            )
        );

        let three = seq(&[set(&[seq(&[octets(b"a"), int(1), int(2)])]), set(&[])]);
        assert_eq!(
            refusal(&description(&[explicit(709, octets(&three))], &[])),
            (
                "KeyDescription.softwareEnforced.attestationApplicationId.packageInfos".into(),
                Problem::TrailingBytes
            )
        );
    }

    #[test]
    fn refuses_input_over_the_size_limit_before_reading_it() {
        assert_eq!(
            parse(&vec![0u8; MAX_INPUT + 1]),
            Err(KeyDescriptionError::TooLarge { max: MAX_INPUT })
        );
        // Exactly MAX_INPUT bytes of valid DER are accepted.
        let overhead = description(&[], &[]).len();
        let exact = (0..16)
            .map(|slack| {
                let challenge = octets(&vec![0x5a; MAX_INPUT - overhead - slack]);
                description_with(int(3), enumerated(1), challenge, &[], &[])
            })
            .find(|input| input.len() == MAX_INPUT)
            .unwrap();
        assert!(parse(&exact).is_ok());
    }

    #[test]
    fn refuses_enumerated_values_out_of_range() {
        let input = description_with(int(3), enumerated(3), octets(b""), &[], &[]);
        assert_eq!(
            refusal(&input),
            (
                "KeyDescription.attestationSecurityLevel".into(),
                Problem::EnumOutOfRange(3)
            )
        );
        let input = seq(&[
            int(3),
            enumerated(1),
            int(4),
            enumerated(-1),
            octets(b""),
            octets(b""),
            seq(&[]),
            seq(&[]),
        ]);
        assert_eq!(
            refusal(&input),
            (
                "KeyDescription.keyMintSecurityLevel".into(),
                Problem::EnumOutOfRange(-1)
            )
        );
        let rot = root_of_trust_with(boolean(true), enumerated(4));
        assert_eq!(
            refusal(&with_hardware(explicit(704, rot))),
            (
                "KeyDescription.hardwareEnforced.rootOfTrust.verifiedBootState".into(),
                Problem::EnumOutOfRange(4)
            )
        );
        // ENUMERATED, not INTEGER.
        let rot = root_of_trust_with(boolean(true), int(0));
        assert_eq!(
            refusal(&with_hardware(explicit(704, rot))),
            (
                "KeyDescription.hardwareEnforced.rootOfTrust.verifiedBootState".into(),
                Problem::WrongType("ENUMERATED")
            )
        );
    }

    #[test]
    fn refuses_wrong_universal_types() {
        let input = description_with(enumerated(3), enumerated(1), octets(b""), &[], &[]);
        assert_eq!(
            refusal(&input),
            (
                "KeyDescription.attestationVersion".into(),
                Problem::WrongType("INTEGER")
            )
        );
        let utf8 = tlv(&[0x0c], b"abc");
        let input = description_with(int(3), enumerated(1), utf8, &[], &[]);
        assert_eq!(
            refusal(&input),
            (
                "KeyDescription.attestationChallenge".into(),
                Problem::WrongType("OCTET STRING")
            )
        );
        let set_list = seq(&[
            int(3),
            enumerated(1),
            int(4),
            enumerated(1),
            octets(b""),
            octets(b""),
            set(&[]),
            seq(&[]),
        ]);
        assert_eq!(
            refusal(&set_list),
            (
                "KeyDescription.softwareEnforced".into(),
                Problem::WrongType("SEQUENCE")
            )
        );
        assert_eq!(
            refusal(&with_hardware(explicit(1, int(2)))),
            (
                "KeyDescription.hardwareEnforced.purpose".into(),
                Problem::WrongType("SET OF")
            )
        );
        assert_eq!(
            refusal(&with_hardware(explicit(1, set(&[null()])))),
            (
                "KeyDescription.hardwareEnforced.purpose".into(),
                Problem::WrongType("INTEGER")
            )
        );
        // [709] holds an OCTET STRING around the DER, not the SEQUENCE itself.
        assert_eq!(
            refusal(&description(&[explicit(709, application_id())], &[])),
            (
                "KeyDescription.softwareEnforced.attestationApplicationId".into(),
                Problem::WrongType("OCTET STRING")
            )
        );
        assert_eq!(
            refusal(&int(3)),
            ("KeyDescription".into(), Problem::WrongType("SEQUENCE"))
        );
        assert_eq!(refusal(&[]), ("KeyDescription".into(), Problem::Truncated));
    }

    #[test]
    fn set_of_is_bounded_and_keeps_device_order() {
        let elements = |n: usize| (0..n).map(|i| int(i as i64 % 7)).collect::<Vec<_>>();
        let parsed = parse(&with_hardware(explicit(
            1,
            set(&elements(MAX_SET_ELEMENTS)),
        )))
        .unwrap();
        assert_eq!(parsed.hardware_enforced.purpose.len(), MAX_SET_ELEMENTS);
        assert_eq!(
            refusal(&with_hardware(explicit(
                1,
                set(&elements(MAX_SET_ELEMENTS + 1))
            ))),
            (
                "KeyDescription.hardwareEnforced.purpose".into(),
                Problem::TooManyElements {
                    max: MAX_SET_ELEMENTS
                }
            )
        );
        let digests = (0..=MAX_SET_ELEMENTS)
            .map(|_| octets(b""))
            .collect::<Vec<_>>();
        let aaid = seq(&[set(&[]), set(&digests)]);
        assert_eq!(
            refusal(&description(&[explicit(709, octets(&aaid))], &[])).1,
            Problem::TooManyElements {
                max: MAX_SET_ELEMENTS
            }
        );
        // Unsorted, as real devices send them (see `set_of`).
        let parsed = parse(&with_hardware(explicit(5, set(&[int(6), int(4)])))).unwrap();
        assert_eq!(parsed.hardware_enforced.digest, [6, 4]);
    }

    #[test]
    fn package_names_must_be_utf8() {
        let aaid = seq(&[set(&[package(b"com.\xffexample", 1)]), set(&[])]);
        assert_eq!(
            refusal(&description(&[explicit(709, octets(&aaid))], &[])),
            (
                "KeyDescription.softwareEnforced.attestationApplicationId.packageInfos.packageName"
                    .into(),
                Problem::NotUtf8
            )
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        let input = full();
        for end in 0..input.len() {
            assert!(parse(&input[..end]).is_err(), "prefix of {end} bytes");
        }
    }

    #[test]
    fn error_messages_name_the_field_and_do_not_echo_input() {
        let rot = root_of_trust_with(tlv(&[0x01], &[0x01]), enumerated(0));
        let error = parse(&with_hardware(explicit(704, rot))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "KeyDescription.hardwareEnforced.rootOfTrust.deviceLocked: BOOLEAN must be encoded as 0x00 or 0xFF"
        );
        let big = description_with(int(3), enumerated(9), octets(&[0x41; 5000]), &[], &[]);
        assert!(parse(&big).unwrap_err().to_string().len() < 120);
    }

    #[test]
    fn serialises_with_hex_bytes_and_without_absent_fields() {
        let parsed = parse(&full()).unwrap();
        let json = serde_json::to_value(&parsed).unwrap();
        assert_eq!(json["attestation_security_level"], "TrustedEnvironment");
        assert_eq!(json["attestation_challenge"], "616263");
        assert_eq!(json["unique_id"], "");
        let hw = &json["hardware_enforced"];
        assert_eq!(hw["purpose"], serde_json::json!([2, 3]));
        assert_eq!(hw["no_auth_required"], true);
        assert_eq!(hw["root_of_trust"]["verified_boot_key"], "aa".repeat(32));
        assert_eq!(hw["root_of_trust"]["verified_boot_state"], "Verified");
        assert!(hw.get("caller_nonce").is_none());
        assert!(hw.get("usage_count_limit").is_none());
        assert!(hw.get("unknown_tags").is_none());
        let aaid = &json["software_enforced"]["attestation_application_id"];
        assert_eq!(aaid["packages"][0]["name"], "com.example.app");
        assert_eq!(aaid["signature_digests"][0], "cc".repeat(32));

        for level in [
            SecurityLevel::Software,
            SecurityLevel::TrustedEnvironment,
            SecurityLevel::StrongBox,
        ] {
            assert_eq!(serde_json::to_value(level).unwrap(), level.as_str());
        }
        for state in [
            VerifiedBootState::Verified,
            VerifiedBootState::SelfSigned,
            VerifiedBootState::Unverified,
            VerifiedBootState::Failed,
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
    }
}
