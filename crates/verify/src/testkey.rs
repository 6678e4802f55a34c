//! A deterministic P-256 client key for unit tests (pure-Rust `p256`, as the SDK uses).

use medgate_proto::jws::{HeaderFields, JwsSigner, SignError, sign_compact};
use medgate_proto::wire;
use medgate_proto::{Alg, PublicJwk};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};

pub(crate) struct TestKey(SigningKey);

impl TestKey {
    pub(crate) fn new(seed: u8) -> Self {
        TestKey(SigningKey::from_slice(&[seed; 32]).expect("a valid scalar"))
    }

    pub(crate) fn jwk(&self) -> PublicJwk {
        let point = self.0.verifying_key().to_sec1_point(false);
        PublicJwk::from_p256_sec1(point.as_bytes()).expect("uncompressed point")
    }

    pub(crate) fn sign_jws(
        &self,
        typ: &str,
        jwk: Option<&PublicJwk>,
        payload: &serde_json::Value,
    ) -> String {
        sign_compact(
            HeaderFields {
                typ: Some(typ),
                kid: None,
                jwk,
            },
            payload,
            self,
        )
        .expect("signs")
    }

    pub(crate) fn evidence(&self, claims: &serde_json::Value) -> String {
        self.sign_jws(wire::TYP_EVIDENCE, Some(&self.jwk()), claims)
    }

    pub(crate) fn proof(&self, claims: &serde_json::Value) -> String {
        self.sign_jws(wire::TYP_DPOP, Some(&self.jwk()), claims)
    }
}

impl JwsSigner for TestKey {
    fn alg(&self) -> Alg {
        Alg::Es256
    }
    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature: Signature = self.0.sign(signing_input);
        Ok(signature.to_bytes().to_vec())
    }
}
