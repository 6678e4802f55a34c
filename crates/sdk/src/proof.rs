//! DPoP proofs (RFC 9449 §4.2): a fresh JWT per request, signed by the installation key; and
//! for writes, an HTTP Message Signature (RFC 9421) by the same key over the method, the URL,
//! the token and the body's `Content-Digest` (RFC 9530), so the body cannot change on the way.

use medgate_proto::b64;
use medgate_proto::jws::HeaderFields;
use medgate_proto::wire::{self, DpopClaims};
use sha2::{Digest, Sha256};

use crate::signer::{Signer, SignerError, sign_compact};

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("the system random generator failed")]
    Random,
    #[error(transparent)]
    Sign(#[from] SignerError),
    #[error("the request cannot be signed: {0}")]
    Fields(#[from] medgate_proto::httpsig::FieldError),
}

/// What a signed write carries besides `Authorization` and `DPoP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub signature_input: String,
    pub signature: String,
    pub content_digest: String,
}

/// A session key for `session-mac` routes: the token's `jti` names it.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &"…")
            .finish_non_exhaustive()
    }
}

/// What a request on a `session-mac` route carries besides `Authorization`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSignature {
    pub signature_input: String,
    pub signature: String,
}

/// The components a session signature covers (what the gateway requires).
pub const SESSION_COMPONENTS: [&str; 3] = ["@method", "@target-uri", "authorization"];

/// Signs a request for `method` on `url` carrying `authorization` with the session key
/// (`hmac-sha256`, keyid the session's id, a fresh nonce, `created` = `now`).
pub fn session_signature(
    session: &Session,
    method: &str,
    url: &str,
    authorization: &str,
    now: i64,
) -> Result<SessionSignature, ProofError> {
    use hmac::{KeyInit, Mac};
    use medgate_proto::httpsig::{self, RequestMessage, SignatureParams};
    let nonce = crate::random_b64(16).map_err(|_| ProofError::Random)?;
    let params = SignatureParams::new(
        &SESSION_COMPONENTS,
        now,
        None,
        &nonce,
        &session.id,
        "hmac-sha256",
    )?;
    let message = RequestMessage {
        method,
        target_uri: url,
        fields: vec![("authorization".into(), authorization.to_string())],
    };
    let base = httpsig::signature_base(&params, &message)?;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(session.key.as_slice())
        .map_err(|_| ProofError::Random)?;
    mac.update(base.as_bytes());
    Ok(SessionSignature {
        signature_input: params.header_value("medgate"),
        signature: httpsig::signature_header("medgate", &mac.finalize().into_bytes()),
    })
}

/// The components a write's signature covers (what the gateway requires).
pub const SIGNED_COMPONENTS: [&str; 4] =
    ["@method", "@target-uri", "content-digest", "authorization"];

/// Signs a request for `method` on `url` (absolute, with its query) carrying `authorization`
/// (the whole `Authorization` value) and `body` (the bytes as sent, after any
/// `Content-Encoding`): label `medgate`, `ecdsa-p256-sha256`, keyid the key's thumbprint, a
/// fresh nonce, `created` = `now`.
pub fn signature_headers(
    key: &dyn Signer,
    method: &str,
    url: &str,
    authorization: &str,
    body: &[u8],
    now: i64,
) -> Result<SignatureHeaders, ProofError> {
    use medgate_proto::httpsig::{self, DigestAlg, RequestMessage, SignatureParams};
    let content_digest = httpsig::content_digest(DigestAlg::Sha256, body);
    let nonce = crate::random_b64(16).map_err(|_| ProofError::Random)?;
    let params = SignatureParams::new(
        &SIGNED_COMPONENTS,
        now,
        None,
        &nonce,
        key.thumbprint().as_str(),
        "ecdsa-p256-sha256",
    )?;
    let message = RequestMessage {
        method,
        target_uri: url,
        fields: vec![
            ("authorization".into(), authorization.to_string()),
            ("content-digest".into(), content_digest.clone()),
        ],
    };
    let base = httpsig::signature_base(&params, &message)?;
    let signature = key.sign(base.as_bytes())?;
    Ok(SignatureHeaders {
        signature_input: params.header_value("medgate"),
        signature: httpsig::signature_header("medgate", &signature),
        content_digest,
    })
}

/// A proof for `method` on `htu` (the absolute URL without query or fragment), bound to
/// `access_token` through `ath` when one is presented.
pub fn dpop_proof(
    key: &dyn Signer,
    method: &str,
    htu: &str,
    access_token: Option<&str>,
    iat: i64,
) -> Result<String, ProofError> {
    let htu = htu.split(['?', '#']).next().unwrap_or(htu);
    let claims = DpopClaims {
        jti: crate::random_b64(16).map_err(|_| ProofError::Random)?,
        htm: method.to_string(),
        htu: htu.to_string(),
        iat,
        ath: access_token.map(|token| b64::encode(Sha256::digest(token.as_bytes()))),
        nonce: None,
    };
    let header = HeaderFields {
        typ: Some(wire::TYP_DPOP),
        kid: None,
        jwk: Some(key.public_jwk()),
    };
    Ok(sign_compact(header, &claims, key)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::InstallationKey;

    fn claims(proof: &str) -> serde_json::Value {
        let payload = proof.split('.').nth(1).unwrap();
        serde_json::from_slice(&b64::decode(payload, 4096).unwrap()).unwrap()
    }

    #[test]
    fn proofs_carry_fresh_jtis_ath_and_no_query() {
        let key = InstallationKey::generate().unwrap();
        let first = dpop_proof(
            &key,
            "GET",
            "https://gw.example/api?x=1#f",
            Some("token"),
            1000,
        )
        .unwrap();
        let second = dpop_proof(&key, "GET", "https://gw.example/api", None, 1000).unwrap();
        let (a, b) = (claims(&first), claims(&second));
        assert_ne!(a["jti"], b["jti"]);
        assert_eq!(a["htu"], "https://gw.example/api");
        // RFC 9449 §4.2: ath = base64url(SHA-256(ASCII token)).
        assert_eq!(a["ath"], b64::encode(Sha256::digest(b"token")));
        assert!(b.get("ath").is_none());
        let header: serde_json::Value =
            serde_json::from_slice(&b64::decode(first.split('.').next().unwrap(), 4096).unwrap())
                .unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header["jwk"].get("d").is_none());
    }
}
