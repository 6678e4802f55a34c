//! Partner backends' signing keys, for client assertions (SMART Backend Services): RS384 with
//! a fixed 2048-bit test key (`data/partner-rsa-2048.pk8`, made once with `openssl genpkey`),
//! ES384 and ES256 with fresh keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

const RSA_PKCS8: &[u8] = include_bytes!("../data/partner-rsa-2048.pk8");

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A partner's private key.
pub enum PartnerSigner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, &'static str),
}

impl PartnerSigner {
    pub fn rs384() -> PartnerSigner {
        PartnerSigner::Rsa(RsaKeyPair::from_pkcs8(RSA_PKCS8).unwrap())
    }

    pub fn es384() -> PartnerSigner {
        Self::ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "ES384")
    }

    pub fn es256() -> PartnerSigner {
        Self::ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "ES256")
    }

    fn ec(algorithm: &'static signature::EcdsaSigningAlgorithm, alg: &'static str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm, &rng).unwrap();
        PartnerSigner::Ec(
            EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &rng).unwrap(),
            alg,
        )
    }

    /// The JWS `alg` it signs with.
    pub fn alg(&self) -> &'static str {
        match self {
            PartnerSigner::Rsa(_) => "RS384",
            PartnerSigner::Ec(_, alg) => alg,
        }
    }

    /// Its public JWK, with `kid`.
    pub fn jwk(&self, kid: &str) -> serde_json::Value {
        match self {
            PartnerSigner::Rsa(pair) => {
                let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                serde_json::json!({"kty": "RSA", "kid": kid, "n": b64(&public.n), "e": b64(&public.e)})
            }
            PartnerSigner::Ec(pair, alg) => {
                let point = pair.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                let crv = if *alg == "ES384" { "P-384" } else { "P-256" };
                serde_json::json!({"kty": "EC", "crv": crv, "kid": kid,
                    "x": b64(&point[1..=size]), "y": b64(&point[size + 1..])})
            }
        }
    }

    /// A compact JWS of `claims` under `header`, as given.
    pub fn sign(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match self {
            PartnerSigner::Rsa(pair) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA384,
                    &rng,
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            PartnerSigner::Ec(pair, _) => {
                pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec()
            }
        };
        format!("{input}.{}", b64(sig))
    }

    /// A client assertion with `kid` and `typ: JWT`.
    pub fn assertion(&self, kid: &str, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": self.alg(), "kid": kid, "typ": "JWT"});
        self.sign(&header, claims)
    }
}

/// A JWKS of the signers' public keys, under their kids.
pub fn jwks(signers: &[(&PartnerSigner, &str)]) -> serde_json::Value {
    let keys: Vec<_> = signers
        .iter()
        .map(|(signer, kid)| signer.jwk(kid))
        .collect();
    serde_json::json!({ "keys": keys })
}
