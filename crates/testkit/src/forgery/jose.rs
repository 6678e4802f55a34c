//! Forged JOSE objects (access tokens, DPoP proofs, SDK evidence) for the forgery suite. A case
//! names a recipe (`forge`) and optional RFC 7386 merge patches for the protected header and
//! the claims; the recipe decides who signs the result: nobody, an HMAC keyed with the
//! verifier's public key, the original signature kept, the legitimate key (so only the claim
//! checks can refuse it), or the attacker's own key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::Value;

use super::Case;

/// A P-256 key that signs JOSE style (raw r‖s).
pub struct EsKey {
    pair: EcdsaKeyPair,
}

impl Default for EsKey {
    fn default() -> Self {
        Self::generate()
    }
}

impl EsKey {
    pub fn generate() -> EsKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EsKey {
            pair: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        }
    }

    /// The uncompressed point.
    pub fn point(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        let point = self.point();
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), input)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

/// A JWS before it is signed.
#[derive(Debug, Clone)]
pub struct Jws {
    pub header: Value,
    pub claims: Value,
}

impl Jws {
    fn signing_input(&self) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&self.claims).unwrap())
        )
    }

    /// Compact serialisation with `signature`.
    fn with_signature(&self, signature: &[u8]) -> String {
        format!(
            "{}.{}",
            self.signing_input(),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    pub fn signed_by(&self, key: &EsKey) -> String {
        self.with_signature(&key.sign(self.signing_input().as_bytes()))
    }
}

/// RFC 7386 JSON merge patch: `null` removes a member, objects merge, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(object) = target else {
        return;
    };
    for (name, value) in members {
        if value.is_null() {
            object.remove(name);
        } else {
            merge_patch(object.entry(name.clone()).or_insert(Value::Null), value);
        }
    }
}

/// `$attacker_jwk` anywhere in a patch stands for the attacker's public key.
fn resolve(patch: &Value, attacker: &EsKey) -> Value {
    match patch {
        Value::String(text) if text == "$attacker_jwk" => attacker.jwk(),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), resolve(v, attacker)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Raw r‖s to an ASN.1 DER ECDSA signature.
fn der_signature(raw: &[u8]) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut content = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            Vec::new()
        };
        content.extend(trimmed);
        let mut out = vec![0x02, content.len() as u8];
        out.extend(content);
        out
    };
    let body = [integer(&raw[..32]), integer(&raw[32..])].concat();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

/// Builds the forgery a case describes from `genuine`, which `legit` signs.
pub fn forge(case: &Case, genuine: &Jws, legit: &EsKey, attacker: &EsKey) -> String {
    let mut forged = genuine.clone();
    if let Some(patch) = &case.header_patch {
        merge_patch(&mut forged.header, &resolve(patch, attacker));
    }
    if let Some(patch) = &case.claims_patch {
        merge_patch(&mut forged.claims, &resolve(patch, attacker));
    }
    let genuine_signature = legit.sign(genuine.signing_input().as_bytes());
    match case.forge.as_str() {
        "unsigned" => forged.with_signature(&[]),
        "hmac_with_public_key" => {
            let secret = serde_json::to_vec(&legit.jwk()).unwrap();
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
            let tag = ring::hmac::sign(&key, forged.signing_input().as_bytes());
            forged.with_signature(tag.as_ref())
        }
        "keep_signature" => forged.with_signature(&genuine_signature),
        "resigned" => forged.signed_by(legit),
        "attacker_signed" => forged.signed_by(attacker),
        "signature_bit_flipped" => {
            let mut signature = genuine_signature;
            signature[63] ^= 1;
            forged.with_signature(&signature)
        }
        "signature_der" => forged.with_signature(&der_signature(&genuine_signature)),
        other => panic!("{}: no JOSE recipe {other:?}", case.id),
    }
}
