//! Compact JWS *encoding* (RFC 7515 §7.1). Parsing and verification live in `medgate-verify`.
//!
//! Signing is delegated to a [`JwsSigner`]: the server signs tokens with a fast native backend,
//! the SDK signs evidence and DPoP proofs with a pure-Rust key that cross-compiles to phones.

use serde::Serialize;

use crate::b64;
use crate::jwk::PublicJwk;

/// The JWS algorithms medgate knows. Anything else (`none`, `HS256`, RSA, …) is not
/// representable, so no code path can be talked into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256, signature `r ‖ s` (RFC 7518 §3.4).
    Es256,
    /// Ed25519 under its polymorphic name `EdDSA` (RFC 8037).
    EdDsa,
    /// Ed25519 under its fully-specified name (RFC 9864), as newer clients send it.
    Ed25519,
    /// RSASSA-PKCS1-v1_5 with SHA-384 and ECDSA P-384 with SHA-384: only partner backends'
    /// client assertions allow them (SMART Backend Services), under keys from the partner's
    /// JWKS, never a [`PublicJwk`].
    Rs384,
    Es384,
}

impl Alg {
    pub const fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
            Alg::Ed25519 => "Ed25519",
            Alg::Rs384 => "RS384",
            Alg::Es384 => "ES384",
        }
    }

    /// Maps a header's `alg` to a known algorithm; `None` for every other value.
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            "Ed25519" => Some(Alg::Ed25519),
            "RS384" => Some(Alg::Rs384),
            "ES384" => Some(Alg::Es384),
            _ => None,
        }
    }

    /// Whether `jwk` is a key of the kind this algorithm uses.
    pub fn fits(self, jwk: &PublicJwk) -> bool {
        matches!(
            (self, jwk),
            (Alg::Es256, PublicJwk::P256 { .. })
                | (Alg::EdDsa | Alg::Ed25519, PublicJwk::Ed25519 { .. })
        )
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why signing failed. Carries no key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("the signing backend failed")]
    Backend,
    #[error("the JWS header or payload could not be serialised")]
    Serialize,
}

/// Something that holds a private key and produces JWS signatures with it.
pub trait JwsSigner {
    /// The algorithm this key signs with; it becomes the header's `alg`.
    fn alg(&self) -> Alg;
    /// The signature over the JWS signing input, in JWS form (`r ‖ s` for ES256).
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// The protected header members medgate sets. `alg` always comes from the signer.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeaderFields<'a> {
    pub typ: Option<&'a str>,
    pub kid: Option<&'a str>,
    pub jwk: Option<&'a PublicJwk>,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    typ: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwk: Option<&'a PublicJwk>,
}

/// Serialises `payload` as JSON and signs it: `b64(header).b64(payload).b64(signature)`.
pub fn sign_compact(
    fields: HeaderFields<'_>,
    payload: &impl Serialize,
    signer: &dyn JwsSigner,
) -> Result<String, SignError> {
    let header = Header {
        alg: signer.alg().as_str(),
        typ: fields.typ,
        kid: fields.kid,
        jwk: fields.jwk,
    };
    let header = serde_json::to_vec(&header).map_err(|_| SignError::Serialize)?;
    let payload = serde_json::to_vec(payload).map_err(|_| SignError::Serialize)?;
    let mut compact = b64::encode(header);
    compact.push('.');
    compact.push_str(&b64::encode(payload));
    let signature = signer.sign(compact.as_bytes())?;
    compact.push('.');
    compact.push_str(&b64::encode(signature));
    Ok(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl JwsSigner for Fixed {
        fn alg(&self) -> Alg {
            Alg::Es256
        }
        fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
            Ok(signing_input.len().to_be_bytes().to_vec())
        }
    }

    #[test]
    fn header_takes_alg_from_the_signer_and_signs_the_first_two_parts() {
        let jws = sign_compact(
            HeaderFields {
                typ: Some("at+jwt"),
                kid: Some("k1"),
                jwk: None,
            },
            &serde_json::json!({"sub": "x"}),
            &Fixed,
        )
        .unwrap();
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = b64::decode(parts[0], 1000).unwrap();
        assert_eq!(header, br#"{"alg":"ES256","typ":"at+jwt","kid":"k1"}"#);
        let signed_len = parts[0].len() + 1 + parts[1].len();
        assert_eq!(
            b64::decode(parts[2], 100).unwrap(),
            signed_len.to_be_bytes().to_vec()
        );
    }

    #[test]
    fn only_known_algorithms_have_names() {
        assert_eq!(Alg::from_name("ES256"), Some(Alg::Es256));
        assert_eq!(Alg::from_name("EdDSA"), Some(Alg::EdDsa));
        assert_eq!(Alg::from_name("Ed25519"), Some(Alg::Ed25519));
        assert_eq!(Alg::from_name("RS384"), Some(Alg::Rs384));
        assert_eq!(Alg::from_name("ES384"), Some(Alg::Es384));
        for refused in ["none", "HS256", "es256", "RS256", "PS384", "ES512", ""] {
            assert_eq!(Alg::from_name(refused), None, "{refused}");
        }
    }
}
