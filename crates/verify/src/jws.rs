//! Compact JWS parsing and signature verification (RFC 7515), for hostile input.
//!
//! 1. Bound the input size before any work.
//! 2. Split into exactly three base64url parts.
//! 3. Decode the protected header as a JSON object; map `alg` through the caller's allow-list
//!    (the token never picks the algorithm or the key); refuse `crit`, which no medgate format
//!    uses (RFC 7515 §4.1.11: unknown critical extensions must be rejected).
//! 4. Decode the payload and the signature.
//! 5. Verify the signature over `b64(header) "." b64(payload)` with a key the *caller* supplies
//!    and whose type must fit the allowed `alg`.

use medgate_proto::{Alg, PublicJwk, b64};
use ring::signature;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Why a JWS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    #[error("JWS is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("JWS is malformed: {0}")]
    Malformed(&'static str),
    #[error("JWS header is malformed: {0}")]
    BadHeader(String),
    #[error("JWS algorithm is not allowed here")]
    AlgorithmNotAllowed,
    #[error("JWS carries critical header parameters, which are not supported")]
    CriticalHeader,
    #[error("the key does not fit the JWS algorithm")]
    KeyMismatch,
    #[error("JWS signature does not verify")]
    BadSignature,
}

impl JwsError {
    /// A stable code for the refusal, as the forgery suite's data file names it.
    pub fn code(&self) -> &'static str {
        match self {
            JwsError::TooLarge { .. } => "too_large",
            JwsError::Malformed(_) => "malformed",
            JwsError::BadHeader(_) => "bad_header",
            JwsError::AlgorithmNotAllowed => "algorithm_not_allowed",
            JwsError::CriticalHeader => "critical_header",
            JwsError::KeyMismatch => "key_mismatch",
            JwsError::BadSignature => "bad_signature",
        }
    }
}

/// The protected header members medgate reads.
#[derive(Debug, Clone)]
pub struct JoseHeader {
    pub alg: Alg,
    pub typ: Option<String>,
    pub kid: Option<String>,
    /// A public key embedded in the header (DPoP proofs, evidence). Parsed strictly: private
    /// key material is refused while parsing.
    pub jwk: Option<PublicJwk>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    jwk: Option<PublicJwk>,
    /// Present at all (even `null`) means refused.
    #[serde(default, deserialize_with = "present")]
    crit: Option<IgnoredAny>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<IgnoredAny>, D::Error> {
    IgnoredAny::deserialize(deserializer).map(Some)
}

/// A compact JWS whose structure has been checked but whose signature has not.
#[derive(Debug)]
pub struct ParsedJws<'a> {
    header: JoseHeader,
    payload: Vec<u8>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

/// Steps 1–4: parses `compact` with at most `max_len` bytes, accepting only `allowed` algorithms.
pub fn parse<'a>(
    compact: &'a str,
    max_len: usize,
    allowed: &[Alg],
) -> Result<ParsedJws<'a>, JwsError> {
    // Step 1.
    if compact.len() > max_len {
        return Err(JwsError::TooLarge { max: max_len });
    }
    // Step 2.
    let mut parts = compact.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed("a compact JWS has exactly three parts"));
    };
    let signing_input = &compact[..header_b64.len() + 1 + payload_b64.len()];
    // Step 3.
    let header_bytes = b64::decode(header_b64, max_len)
        .map_err(|_| JwsError::Malformed("header is not base64url"))?;
    let raw: RawHeader = from_json_object(&header_bytes).map_err(JwsError::BadHeader)?;
    let alg = Alg::from_name(&raw.alg)
        .filter(|alg| allowed.contains(alg))
        .ok_or(JwsError::AlgorithmNotAllowed)?;
    if raw.crit.is_some() {
        return Err(JwsError::CriticalHeader);
    }
    // Step 4.
    let payload = b64::decode(payload_b64, max_len)
        .map_err(|_| JwsError::Malformed("payload is not base64url"))?;
    let signature = b64::decode(signature_b64, max_len)
        .map_err(|_| JwsError::Malformed("signature is not base64url"))?;
    Ok(ParsedJws {
        header: JoseHeader {
            alg,
            typ: raw.typ,
            kid: raw.kid,
            jwk: raw.jwk,
        },
        payload,
        signing_input,
        signature,
    })
}

impl ParsedJws<'_> {
    pub fn header(&self) -> &JoseHeader {
        &self.header
    }

    /// The payload bytes. Not authenticated until [`ParsedJws::verify`] has succeeded.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// `b64(header) "." b64(payload)` and the decoded signature, for a verifier whose keys are
    /// not [`PublicJwk`]s (partner backends' JWKS).
    pub(crate) fn signed_parts(&self) -> (&[u8], &[u8]) {
        (self.signing_input.as_bytes(), &self.signature)
    }

    /// Step 5: verifies the signature with `key`, which must fit the header's (allowed) `alg`.
    pub fn verify(&self, key: &PublicJwk) -> Result<(), JwsError> {
        if !self.header.alg.fits(key) {
            return Err(JwsError::KeyMismatch);
        }
        verify_signature(
            self.header.alg,
            key,
            self.signing_input.as_bytes(),
            &self.signature,
        )
    }
}

/// Verifies a raw JWS signature (`r ‖ s` for ES256) over `message`.
pub fn verify_signature(
    alg: Alg,
    key: &PublicJwk,
    message: &[u8],
    sig: &[u8],
) -> Result<(), JwsError> {
    let algorithm: &dyn signature::VerificationAlgorithm = match (alg, key) {
        (Alg::Es256, PublicJwk::P256 { .. }) => &signature::ECDSA_P256_SHA256_FIXED,
        (Alg::EdDsa | Alg::Ed25519, PublicJwk::Ed25519 { .. }) => &signature::ED25519,
        _ => return Err(JwsError::KeyMismatch),
    };
    signature::UnparsedPublicKey::new(algorithm, key.public_key_bytes())
        .verify(message, sig)
        .map_err(|_| JwsError::BadSignature)
}

/// Deserialises a JOSE header or JWT claims set, which must be a JSON object (serde would
/// otherwise also fill a struct from a JSON array).
pub fn from_json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err("expected a JSON object".to_string());
    }
    serde_json::from_slice(bytes).map_err(|e| medgate_proto::redact::json_error(&e))
}

/// Whether a header's `typ` names `expected`, also in its `application/` form (RFC 7515 §4.1.9:
/// the comparison is case-insensitive and the prefix may be omitted).
pub fn typ_is(typ: Option<&str>, expected: &str) -> bool {
    typ.is_some_and(|typ| {
        let typ = match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        };
        typ.eq_ignore_ascii_case(expected)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7515 Appendix A.3, reproduced in the RFC text (also in ../shared/vectors, which the
    // integration tests read).
    const A3_JWS: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    fn a3_key() -> PublicJwk {
        serde_json::from_str(r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#).unwrap()
    }

    #[test]
    fn rfc7515_a3_verifies_and_a_flipped_bit_does_not() {
        let parsed = parse(A3_JWS, 4096, &[Alg::Es256]).unwrap();
        assert_eq!(parsed.header().alg, Alg::Es256);
        parsed.verify(&a3_key()).unwrap();
        assert!(parsed.payload().starts_with(b"{\"iss\":\"joe\",\r\n"));

        let mut tampered = A3_JWS.to_string();
        tampered.replace_range(40..41, "x");
        let parsed = parse(&tampered, 4096, &[Alg::Es256]).unwrap();
        assert_eq!(parsed.verify(&a3_key()), Err(JwsError::BadSignature));
    }

    #[test]
    fn the_allow_list_decides_not_the_header() {
        assert_eq!(
            parse(A3_JWS, 4096, &[Alg::EdDsa]).unwrap_err(),
            JwsError::AlgorithmNotAllowed
        );
        for alg in ["none", "HS256", "RS256", "es256"] {
            let header = b64::encode(format!(r#"{{"alg":"{alg}"}}"#));
            let jws = format!("{header}.e30.");
            assert_eq!(
                parse(&jws, 4096, &[Alg::Es256, Alg::EdDsa]).unwrap_err(),
                JwsError::AlgorithmNotAllowed,
                "{alg}"
            );
        }
        let parsed = parse(A3_JWS, 4096, &[Alg::Es256]).unwrap();
        let ed = PublicJwk::Ed25519 { x: [0; 32] };
        assert_eq!(parsed.verify(&ed), Err(JwsError::KeyMismatch));
    }

    #[test]
    fn structural_damage_is_a_clear_error() {
        let cases: &[(&str, &str)] = &[
            ("", "three parts"),
            ("a.b", "three parts"),
            ("a.b.c.d", "three parts"),
            ("!!.e30.", "header is not base64url"),
            ("e30.e30.", "missing member alg"),
            ("W10.e30.", "expected a JSON object"),
            ("eyJhbGciOiJFUzI1NiJ9.!.", "payload is not base64url"),
            ("eyJhbGciOiJFUzI1NiJ9.e30.=", "signature is not base64url"),
        ];
        for (input, expected) in cases {
            let error = parse(input, 4096, &[Alg::Es256]).unwrap_err().to_string();
            assert!(error.contains(expected), "{input}: {error}");
        }
        assert_eq!(
            parse(A3_JWS, 10, &[Alg::Es256]).unwrap_err(),
            JwsError::TooLarge { max: 10 }
        );
    }

    #[test]
    fn critical_headers_and_private_keys_are_refused() {
        let null_crit = b64::encode(r#"{"alg":"ES256","crit":null}"#);
        assert_eq!(
            parse(&format!("{null_crit}.e30.AA"), 4096, &[Alg::Es256]).unwrap_err(),
            JwsError::CriticalHeader
        );
        let crit = b64::encode(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#);
        assert_eq!(
            parse(&format!("{crit}.e30.AA"), 4096, &[Alg::Es256]).unwrap_err(),
            JwsError::CriticalHeader
        );
        let private = b64::encode(
            r#"{"alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}}"#,
        );
        let error = parse(&format!("{private}.e30.AA"), 4096, &[Alg::Es256]).unwrap_err();
        assert!(
            error.to_string().contains("private key material"),
            "{error}"
        );
    }

    #[test]
    fn typ_comparison_follows_rfc7515() {
        assert!(typ_is(Some("at+jwt"), "at+jwt"));
        assert!(typ_is(Some("application/AT+JWT"), "at+jwt"));
        assert!(!typ_is(Some("JWT"), "at+jwt"));
        assert!(!typ_is(None, "at+jwt"));
        assert!(!typ_is(Some("application/"), "at+jwt"));
    }
}
