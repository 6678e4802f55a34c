//! Android Key Attestation: a certificate chain whose leaf certifies the attested key and
//! carries the KeyDescription extension (1.3.6.1.4.1.11129.2.1.17).
//!
//! 1. Parse the chain, leaf first, within budget.
//! 2. Anchor it to a Google hardware root key; failing that to an AOSP software root key, which
//!    makes it a software attestation (policy decides); otherwise refuse it.
//! 3. Every link verifies and every certificate below the anchor is valid at `now`.
//! 4. No certificate is on the revocation status list (REVOKED or SUSPENDED), by serial.
//! 5. Only the leaf carries a KeyDescription: an attested key must not issue attestations.
//! 6. The leaf carries exactly one KeyDescription, and it parses (strict DER).
//! 7. Its attestationChallenge is the expected one.
//!
//! What policy then weighs (security levels, root of trust, patch level, package and signer,
//! whether the attested key is the installation key) is in `crate::platform`. The remote
//! provisioning extension (1.3.6.1.4.1.11129.2.1.30) on an intermediate is reported, not
//! required or refused.

use serde::Serialize;

use crate::UnixTime;
use crate::android::key_description::{self, KeyDescription, KeyDescriptionError};
use crate::android::revocation::{RevocationEntry, RevocationList};
use crate::roots;
use crate::x509::{self, CertSummary, Certificate, PublicKey, TrustAnchor, X509Error};

const PROVISIONING_INFO_OID: &str = "1.3.6.1.4.1.11129.2.1.30";

/// Where Android chains may end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidRoots {
    /// Google's hardware attestation root keys (and, in tests only, a test CA).
    pub hardware: Vec<TrustAnchor>,
    /// The AOSP software attestation root keys.
    pub software: Vec<TrustAnchor>,
}

impl Default for AndroidRoots {
    fn default() -> Self {
        AndroidRoots {
            hardware: roots::google_hardware(),
            software: roots::aosp_software(),
        }
    }
}

/// Which kind of root the chain ends at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnchorKind {
    Hardware,
    Software,
}

/// Why an Android attestation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AndroidError {
    #[error("Android attestation chain: {0}")]
    Chain(#[from] X509Error),
    #[error(
        "certificate {index} of the Android attestation chain is {status} on the revocation status list"
    )]
    Revoked { index: usize, status: String },
    #[error("certificate {index} is not the leaf but carries a key description")]
    KeyDescriptionOutsideLeaf { index: usize },
    #[error("the leaf certificate carries no key description")]
    MissingKeyDescription,
    #[error("the leaf certificate carries more than one key description")]
    DuplicateKeyDescription,
    #[error("key description: {0}")]
    KeyDescription(#[from] KeyDescriptionError),
    #[error("the attestation challenge is not the expected one")]
    ChallengeMismatch,
}

impl AndroidError {
    /// A stable code for the refusal, as the forgery suite's data file names it.
    pub fn code(&self) -> &'static str {
        match self {
            AndroidError::Chain(error) => error.code(),
            AndroidError::Revoked { .. } => "revoked",
            AndroidError::KeyDescriptionOutsideLeaf { .. } => "key_description_outside_leaf",
            AndroidError::MissingKeyDescription => "missing_key_description",
            AndroidError::DuplicateKeyDescription => "duplicate_key_description",
            AndroidError::KeyDescription(_) => "key_description_malformed",
            AndroidError::ChallengeMismatch => "challenge_mismatch",
        }
    }

    /// The certificate the refusal is about (0 is the leaf), where there is one.
    pub fn index(&self) -> Option<usize> {
        match self {
            AndroidError::Chain(error) => error.index(),
            AndroidError::Revoked { index, .. }
            | AndroidError::KeyDescriptionOutsideLeaf { index } => Some(*index),
            _ => None,
        }
    }

    /// Whether the refusal comes from the revocation status list.
    pub fn is_revocation(&self) -> bool {
        matches!(self, AndroidError::Revoked { .. })
    }
}

/// A verified attestation. Only [`verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedAndroidAttestation {
    key_description: KeyDescription,
    anchor: AnchorKind,
    leaf_key: PublicKey,
    remotely_provisioned: bool,
}

impl VerifiedAndroidAttestation {
    pub fn key_description(&self) -> &KeyDescription {
        &self.key_description
    }
    pub fn anchor(&self) -> AnchorKind {
        self.anchor
    }
    /// The attested key.
    pub fn leaf_key(&self) -> &PublicKey {
        &self.leaf_key
    }
    pub fn remotely_provisioned(&self) -> bool {
        self.remotely_provisioned
    }
}

/// Steps 1–7. `challenge` is `None` only for offline inspection.
pub fn verify(
    chain: &[Vec<u8>],
    roots: &AndroidRoots,
    revocations: Option<&RevocationList>,
    challenge: Option<&[u8]>,
    now: UnixTime,
) -> Result<VerifiedAndroidAttestation, AndroidError> {
    // Step 1.
    let certs = Certificate::chain_from_der(chain)?;
    // Steps 2 and 3.
    let anchor = match x509::verify_chain(&certs, &roots.hardware, now) {
        Ok(_) => AnchorKind::Hardware,
        Err(X509Error::UntrustedRoot) => {
            x509::verify_chain(&certs, &roots.software, now)?;
            AnchorKind::Software
        }
        Err(error) => return Err(error.into()),
    };
    // Step 4.
    if let Some(list) = revocations
        && let Some((index, entry)) = first_revoked(&certs, list)
    {
        return Err(AndroidError::Revoked {
            index,
            status: entry.status.clone(),
        });
    }
    // Step 5.
    if let Some(index) =
        (1..certs.len()).find(|&i| certs[i].extension(key_description::OID).is_some())
    {
        return Err(AndroidError::KeyDescriptionOutsideLeaf { index });
    }
    // Step 6.
    let leaf = certs.first().ok_or(X509Error::Empty)?;
    if leaf.extension_count(key_description::OID) > 1 {
        return Err(AndroidError::DuplicateKeyDescription);
    }
    let extension = leaf
        .extension(key_description::OID)
        .ok_or(AndroidError::MissingKeyDescription)?;
    let key_description = key_description::parse(extension)?;
    // Step 7.
    if let Some(expected) = challenge
        && key_description.attestation_challenge != expected
    {
        return Err(AndroidError::ChallengeMismatch);
    }
    Ok(VerifiedAndroidAttestation {
        remotely_provisioned: certs
            .iter()
            .any(|cert| cert.extension(PROVISIONING_INFO_OID).is_some()),
        leaf_key: leaf.public_key(),
        key_description,
        anchor,
    })
}

fn first_revoked<'l>(
    certs: &[Certificate],
    list: &'l RevocationList,
) -> Option<(usize, &'l RevocationEntry)> {
    certs
        .iter()
        .enumerate()
        .find_map(|(index, cert)| list.lookup(&cert.serial_hex()).map(|entry| (index, entry)))
}

/// What a chain says, verified or not, for reports (`medgate inspect android-chain`).
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub certificates: Vec<CertSummary>,
    pub key_description: Option<KeyDescription>,
    pub key_description_error: Option<String>,
    pub remotely_provisioned: bool,
}

/// Decodes a chain without verifying it.
pub fn describe(chain: &[Vec<u8>]) -> Result<ChainReport, AndroidError> {
    let certs = Certificate::chain_from_der(chain)?;
    let parsed = certs
        .first()
        .and_then(|leaf| leaf.extension(key_description::OID))
        .map(key_description::parse);
    let (key_description, key_description_error) = match parsed {
        Some(Ok(description)) => (Some(description), None),
        Some(Err(error)) => (None, Some(error.to_string())),
        None => (None, Some(AndroidError::MissingKeyDescription.to_string())),
    };
    Ok(ChainReport {
        certificates: certs.iter().map(Certificate::summary).collect(),
        key_description,
        key_description_error,
        remotely_provisioned: certs
            .iter()
            .any(|cert| cert.extension(PROVISIONING_INFO_OID).is_some()),
    })
}
