//! Public JSON Web Keys (RFC 7517) for the two curves medgate accepts, and their RFC 7638
//! thumbprints.
//!
//! A JWK that arrives in a JOSE header is hostile input: it is parsed strictly, refused if it
//! carries private key material (RFC 9449 §4.3 step 7), and reduced to the members that define
//! the key. Whether the point is on the curve is checked by the crypto backend when the key is
//! used; the thumbprint of an invalid point is harmless because no signature verifies under it.

use serde::{Deserialize, Serialize, de};
use sha2::{Digest, Sha256};

use crate::b64;

/// A public key in one of the shapes medgate accepts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PublicJwk {
    /// `{"kty":"EC","crv":"P-256","x":…,"y":…}`: the affine coordinates, 32 bytes each.
    P256 { x: [u8; 32], y: [u8; 32] },
    /// `{"kty":"OKP","crv":"Ed25519","x":…}` (RFC 8037).
    Ed25519 { x: [u8; 32] },
}

/// Why a JWK was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// The JWK is not a JSON object with the members its `kty` requires.
    #[error("JWK is malformed: {0}")]
    Malformed(&'static str),
    /// A key type or curve medgate does not accept.
    #[error("JWK key type or curve is not supported")]
    Unsupported,
    /// The JWK contains a private key member (`d`); a client must only ever send its public key.
    #[error("JWK contains private key material")]
    PrivateKeyMaterial,
}

impl PublicJwk {
    /// Builds a P-256 key from an uncompressed SEC1 point (`0x04 ‖ x ‖ y`).
    pub fn from_p256_sec1(point: &[u8]) -> Result<Self, JwkError> {
        match point {
            [0x04, rest @ ..] if rest.len() == 64 => {
                let mut x = [0u8; 32];
                let mut y = [0u8; 32];
                x.copy_from_slice(&rest[..32]);
                y.copy_from_slice(&rest[32..]);
                Ok(PublicJwk::P256 { x, y })
            }
            _ => Err(JwkError::Malformed(
                "P-256 point must be 65 bytes, uncompressed",
            )),
        }
    }

    /// The uncompressed SEC1 encoding of a P-256 key, or the 32 raw bytes of an Ed25519 key:
    /// the form the crypto backends take.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        match self {
            PublicJwk::P256 { x, y } => {
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                point
            }
            PublicJwk::Ed25519 { x } => x.to_vec(),
        }
    }

    /// The RFC 7638 JWK SHA-256 thumbprint: the hash of the required members in lexicographic
    /// order, without whitespace.
    pub fn thumbprint(&self) -> Thumbprint {
        let canonical = match self {
            PublicJwk::P256 { x, y } => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                b64::encode(x),
                b64::encode(y)
            ),
            PublicJwk::Ed25519 { x } => {
                format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    b64::encode(x)
                )
            }
        };
        Thumbprint(b64::encode(Sha256::digest(canonical.as_bytes())))
    }
}

impl std::fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Public keys are not secret, but the thumbprint is the readable identity.
        let kind = match self {
            PublicJwk::P256 { .. } => "P256",
            PublicJwk::Ed25519 { .. } => "Ed25519",
        };
        write!(f, "PublicJwk::{kind}({})", self.thumbprint())
    }
}

/// The members a JWK may carry that matter to medgate. Unknown members (`kid`, `use`, `alg`,
/// …) are ignored, as RFC 7517 §4 requires; duplicates are refused by serde.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<de::IgnoredAny>,
}

impl TryFrom<RawJwk> for PublicJwk {
    type Error = JwkError;

    fn try_from(raw: RawJwk) -> Result<Self, JwkError> {
        if raw.d.is_some() {
            return Err(JwkError::PrivateKeyMaterial);
        }
        let coordinate = |value: Option<String>, name: &'static str| {
            let text = value.ok_or(JwkError::Malformed(name))?;
            b64::decode_array::<32>(&text).map_err(|_| JwkError::Malformed(name))
        };
        match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("EC", Some("P-256")) => Ok(PublicJwk::P256 {
                x: coordinate(raw.x, "x must be 32 bytes of base64url")?,
                y: coordinate(raw.y, "y must be 32 bytes of base64url")?,
            }),
            ("OKP", Some("Ed25519")) => {
                if raw.y.is_some() {
                    return Err(JwkError::Malformed("an OKP key has no y"));
                }
                Ok(PublicJwk::Ed25519 {
                    x: coordinate(raw.x, "x must be 32 bytes of base64url")?,
                })
            }
            _ => Err(JwkError::Unsupported),
        }
    }
}

impl<'de> Deserialize<'de> for PublicJwk {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawJwk::deserialize(deserializer)?;
        PublicJwk::try_from(raw).map_err(de::Error::custom)
    }
}

impl Serialize for PublicJwk {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            PublicJwk::P256 { x, y } => {
                let mut map = serializer.serialize_map(Some(4))?;
                map.serialize_entry("kty", "EC")?;
                map.serialize_entry("crv", "P-256")?;
                map.serialize_entry("x", &b64::encode(x))?;
                map.serialize_entry("y", &b64::encode(y))?;
                map.end()
            }
            PublicJwk::Ed25519 { x } => {
                let mut map = serializer.serialize_map(Some(3))?;
                map.serialize_entry("kty", "OKP")?;
                map.serialize_entry("crv", "Ed25519")?;
                map.serialize_entry("x", &b64::encode(x))?;
                map.end()
            }
        }
    }
}

/// An RFC 7638 SHA-256 thumbprint in base64url: the `jkt` of RFC 9449 and medgate's
/// installation id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Thumbprint(String);

impl Thumbprint {
    /// Wraps a thumbprint received on the wire (a token's `cnf.jkt`). It is only ever compared
    /// with thumbprints computed here, so its shape needs no further check.
    pub fn from_wire(text: String) -> Self {
        Thumbprint(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 32 digest bytes, when the text is a well-formed thumbprint.
    pub fn digest(&self) -> Option<[u8; 32]> {
        b64::decode_array::<32>(&self.0).ok()
    }
}

impl std::fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Thumbprint({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8037 Appendix A.3: the thumbprint of the example Ed25519 key.
    #[test]
    fn rfc8037_ed25519_thumbprint() {
        let jwk: PublicJwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint().as_str(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    // RFC 9449 §6.1: the jkt of the key in the example DPoP proofs.
    #[test]
    fn rfc9449_p256_thumbprint_ignores_extra_members() {
        let jwk: PublicJwk = serde_json::from_str(
            r#"{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                "y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256","use":"sig","kid":"k"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk.thumbprint().as_str(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn refuses_private_keys_unknown_curves_and_bad_coordinates() {
        let parse = |s: &str| serde_json::from_str::<PublicJwk>(s).map_err(|e| e.to_string());
        let x = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs";
        let private = format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{x}","d":"{x}"}}"#);
        assert!(
            parse(&private)
                .unwrap_err()
                .contains("private key material")
        );
        let p384 = format!(r#"{{"kty":"EC","crv":"P-384","x":"{x}","y":"{x}"}}"#);
        assert!(parse(&p384).unwrap_err().contains("not supported"));
        assert!(
            parse(r#"{"kty":"oct","k":"AAAA"}"#)
                .unwrap_err()
                .contains("not supported")
        );
        let short = format!(r#"{{"kty":"EC","crv":"P-256","x":"AAAA","y":"{x}"}}"#);
        assert!(parse(&short).unwrap_err().contains("x must be"));
        let missing = format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}"}}"#);
        assert!(parse(&missing).unwrap_err().contains("y must be"));
        let twice = format!(r#"{{"kty":"EC","kty":"EC","crv":"P-256","x":"{x}","y":"{x}"}}"#);
        assert!(parse(&twice).unwrap_err().contains("duplicate"));
    }

    #[test]
    fn serialises_only_the_public_members_and_round_trips() {
        let jwk = PublicJwk::P256 {
            x: [1; 32],
            y: [2; 32],
        };
        let json = serde_json::to_string(&jwk).unwrap();
        insta::assert_snapshot!(json, @r#"{"kty":"EC","crv":"P-256","x":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE","y":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"}"#);
        assert_eq!(serde_json::from_str::<PublicJwk>(&json).unwrap(), jwk);
        let point = jwk.public_key_bytes();
        assert_eq!(PublicJwk::from_p256_sec1(&point).unwrap(), jwk);
        assert!(PublicJwk::from_p256_sec1(&point[1..]).is_err());
    }
}
