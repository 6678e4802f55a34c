//! The issuer's token-signing keys and the set of published verification keys.

use std::collections::HashMap;

use medgate_proto::jws::{JwsSigner, SignError};
use medgate_proto::{Alg, PublicJwk};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::Serialize;
use zeroize::Zeroizing;

/// Why a signing key could not be made or loaded. Never carries key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("key generation failed")]
    Generation,
    #[error("stored signing key is not a valid P-256 PKCS#8 key")]
    InvalidPkcs8,
}

/// An ES256 key that signs access tokens. Its `kid` is its RFC 7638 thumbprint.
pub struct TokenSigningKey {
    kid: String,
    pair: EcdsaKeyPair,
    public: PublicJwk,
    rng: SystemRandom,
}

impl TokenSigningKey {
    /// A fresh key and its PKCS#8 encoding (to be sealed and stored by the caller).
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), KeyError> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Generation)?;
        let pkcs8 = Zeroizing::new(document.as_ref().to_vec());
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| KeyError::InvalidPkcs8)?;
        let public = PublicJwk::from_p256_sec1(pair.public_key().as_ref())
            .map_err(|_| KeyError::InvalidPkcs8)?;
        Ok(TokenSigningKey {
            kid: public.thumbprint().as_str().to_string(),
            pair,
            public,
            rng,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }
}

impl std::fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwsSigner for TokenSigningKey {
    fn alg(&self) -> Alg {
        Alg::Es256
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.pair
            .sign(&self.rng, signing_input)
            .map(|signature| signature.as_ref().to_vec())
            .map_err(|_| SignError::Backend)
    }
}

/// The verification keys a token may name by `kid`. Tokens are ES256 only.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, PublicJwk>,
}

impl KeySet {
    pub fn new(keys: impl IntoIterator<Item = (String, PublicJwk)>) -> Self {
        KeySet {
            keys: keys.into_iter().collect(),
        }
    }

    pub fn get(&self, kid: &str) -> Option<&PublicJwk> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The JWKS document (RFC 7517 §5), keys sorted by `kid` so the output is stable.
    pub fn to_jwks(&self) -> Jwks<'_> {
        let mut keys: Vec<_> = self
            .keys
            .iter()
            .map(|(kid, jwk)| JwksEntry {
                jwk,
                kid,
                use_: "sig",
                alg: Alg::Es256.as_str(),
            })
            .collect();
        keys.sort_by(|a, b| a.kid.cmp(b.kid));
        Jwks { keys }
    }
}

/// A JWKS document, serialisable.
#[derive(Debug, Serialize)]
pub struct Jwks<'a> {
    pub keys: Vec<JwksEntry<'a>>,
}

#[derive(Debug, Serialize)]
pub struct JwksEntry<'a> {
    #[serde(flatten)]
    jwk: &'a PublicJwk,
    kid: &'a str,
    #[serde(rename = "use")]
    use_: &'static str,
    alg: &'static str,
}

impl JwksEntry<'_> {
    pub fn kid(&self) -> &str {
        self.kid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgate_proto::jws::{HeaderFields, sign_compact};

    #[test]
    fn generated_key_signs_what_its_public_key_verifies_and_reloads() {
        let (key, pkcs8) = TokenSigningKey::generate().unwrap();
        let jws =
            sign_compact(HeaderFields::default(), &serde_json::json!({"a": 1}), &key).unwrap();
        let parsed = crate::jws::parse(&jws, 4096, &[Alg::Es256]).unwrap();
        parsed.verify(key.public_jwk()).unwrap();

        let reloaded = TokenSigningKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(reloaded.kid(), key.kid());
        assert_eq!(reloaded.kid(), key.public_jwk().thumbprint().as_str());
        assert_eq!(
            TokenSigningKey::from_pkcs8(&pkcs8[1..]).unwrap_err(),
            KeyError::InvalidPkcs8
        );
        assert!(!format!("{key:?}").contains(&format!("{:?}", &pkcs8[..])));
    }

    #[test]
    fn jwks_lists_every_key_with_kid_use_and_alg() {
        let set = KeySet::new([(
            "k2".to_string(),
            PublicJwk::P256 {
                x: [2; 32],
                y: [3; 32],
            },
        )]);
        insta::assert_snapshot!(serde_json::to_string(&set.to_jwks()).unwrap(), @r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI","y":"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM","kid":"k2","use":"sig","alg":"ES256"}]}"#);
    }
}
