//! DPoP proof verification, RFC 9449 §4.3 (with the resource-access checks of §7.1).
//!
//! 1. The request carries exactly one DPoP header (checked by the caller, who sees headers).
//! 2. The value is a well-formed JWT (size-bounded).
//! 3. All required claims are present (`jti`, `htm`, `htu`, `iat`).
//! 4. `typ` is `dpop+jwt`.
//! 5. `alg` is an asymmetric algorithm on the allow-list.
//! 6. The signature verifies with the public key in the `jwk` header.
//! 7. `jwk` does not contain a private key (refused while parsing the header).
//! 8. `htm` matches the request method.
//! 9. `htu` matches the request URI, ignoring query and fragment.
//! 10. `nonce`: medgate does not issue DPoP nonces, so none is required.
//! 11. `iat` is within the acceptable window.
//! 12. With an access token: `ath` equals the token's hash and the proof key's thumbprint equals
//!     the token's `cnf.jkt`.
//!
//! `jti` uniqueness needs memory of earlier proofs; the caller keeps it, keyed by
//! [`VerifiedProof::replay_key`], for the length of the `iat` window.

use medgate_proto::wire::{self, DpopClaims};
use medgate_proto::{Alg, PublicJwk, Thumbprint};
use ring::digest;
use url::Url;

use crate::UnixTime;
use crate::jws::{self, JwsError};
use crate::time::IatWindow;
use crate::token::VerifiedToken;

/// The longest proof read.
pub const MAX_PROOF_LEN: usize = 4 * 1024;
const MAX_JTI_LEN: usize = 256;
const MAX_HTU_LEN: usize = 2048;

/// How proofs are judged.
#[derive(Debug, Clone)]
pub struct ProofPolicy {
    pub window: IatWindow,
    pub algs: Vec<Alg>,
}

/// The default is what discovery advertises (`dpop_signing_alg_values_supported`: ES256):
/// an algorithm the server does not announce is not accepted either.
impl Default for ProofPolicy {
    fn default() -> Self {
        ProofPolicy {
            window: IatWindow {
                max_age_secs: 60,
                max_skew_secs: 5,
            },
            algs: vec![Alg::Es256],
        }
    }
}

/// The request the proof must be for.
#[derive(Debug, Clone, Copy)]
pub struct RequestTarget<'a> {
    pub method: &'a str,
    /// The request's absolute URI without query and fragment, as [`target_uri`] builds it.
    pub uri: &'a str,
}

/// Builds the normalised `htu` for a request: `base` (the public URL the client uses) joined
/// with the request path, query and fragment dropped.
pub fn target_uri(base: &str, path: &str) -> Result<String, ProofError> {
    let joined = format!("{}{}", base.trim_end_matches('/'), path);
    normalise(&joined)
}

/// A public URL normalised once, to which request paths are joined as [`target_uri`] joins
/// them, without parsing the URL again for each request (the gateway's hot path).
#[derive(Debug, Clone)]
pub struct HtuBase {
    /// Normalised, without a trailing `/`.
    base: String,
}

impl HtuBase {
    /// `base` must be an absolute http(s) URL without query or fragment.
    pub fn new(base: &str) -> Result<HtuBase, ProofError> {
        if base.contains(['?', '#']) {
            return Err(ProofError::BadUri);
        }
        let normalised = normalise(base)?;
        Ok(HtuBase {
            base: normalised.trim_end_matches('/').to_string(),
        })
    }

    /// The normalised URI of `path` (which starts with `/`) under this base: what
    /// `normalise(base + path)` gives. A
    /// path the URL parser would leave as it is (no percent-encodings, no dot or empty
    /// segments, nothing it encodes) is appended; any other is parsed.
    pub fn join(&self, path: &str) -> Result<String, ProofError> {
        if !path.starts_with('/') {
            return Err(ProofError::BadUri);
        }
        let mut joined = String::with_capacity(self.base.len() + path.len());
        joined.push_str(&self.base);
        joined.push_str(path);
        if joined.len() <= MAX_HTU_LEN && is_plain_path(path) {
            Ok(joined)
        } else {
            normalise(&joined)
        }
    }
}

/// Whether the URL parser leaves `path` unchanged: `/`-separated segments of unreserved
/// characters, sub-delimiters, `:` and `@`, none empty (but a last one), `.` or `..`.
fn is_plain_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if (segment.is_empty() && !last)
            || segment == "."
            || segment == ".."
            || !segment.bytes().all(medgate_proto::uri::is_raw_pchar)
        {
            return false;
        }
    }
    true
}

fn normalise(uri: &str) -> Result<String, ProofError> {
    if uri.len() > MAX_HTU_LEN {
        return Err(ProofError::BadUri);
    }
    let mut url = Url::parse(uri).map_err(|_| ProofError::BadUri)?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ProofError::BadUri);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url.into())
}

/// Why a proof was refused. Every variant is the client's fault (HTTP 401 `invalid_dpop_proof`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("DPoP proof {0}")]
    Jws(#[from] JwsError),
    #[error("DPoP proof typ must be dpop+jwt")]
    WrongType,
    #[error("DPoP proof must carry its public key as jwk")]
    MissingKey,
    #[error("DPoP proof claims are malformed: {0}")]
    Claims(String),
    #[error("DPoP proof jti must be 1 to 256 characters")]
    BadJti,
    #[error("DPoP proof htm does not match the request method")]
    MethodMismatch,
    #[error("DPoP proof htu is not an absolute http(s) URI")]
    BadUri,
    #[error("DPoP proof htu does not match the request URI")]
    UriMismatch,
    #[error("DPoP proof iat is outside the accepted window")]
    Stale,
    #[error("DPoP proof lacks ath, the hash of the access token")]
    MissingAth,
    #[error("DPoP proof ath does not match the access token")]
    AthMismatch,
    #[error("DPoP proof key is not the key the access token is bound to")]
    KeyMismatch,
}

impl ProofError {
    /// A stable code for the refusal (a JWS refusal by its own code).
    pub fn code(&self) -> &'static str {
        match self {
            ProofError::Jws(error) => error.code(),
            ProofError::WrongType => "wrong_type",
            ProofError::MissingKey => "missing_key",
            ProofError::Claims(_) => "claims_malformed",
            ProofError::BadJti => "bad_jti",
            ProofError::MethodMismatch => "method_mismatch",
            ProofError::BadUri => "bad_uri",
            ProofError::UriMismatch => "uri_mismatch",
            ProofError::Stale => "stale",
            ProofError::MissingAth => "missing_ath",
            ProofError::AthMismatch => "ath_mismatch",
            ProofError::KeyMismatch => "key_mismatch",
        }
    }
}

/// A proof whose checks 2–11 passed. Only [`verify_proof`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedProof {
    jkt: Thumbprint,
    /// The key that signed it (whose thumbprint is `jkt`).
    key: PublicJwk,
    jti: String,
    iat: UnixTime,
    ath: Option<String>,
}

impl VerifiedProof {
    pub fn jkt(&self) -> &Thumbprint {
        &self.jkt
    }
    /// The installation key, verified to have signed the proof.
    pub fn key(&self) -> &PublicJwk {
        &self.key
    }
    pub fn jti(&self) -> &str {
        &self.jti
    }
    pub fn iat(&self) -> UnixTime {
        self.iat
    }
    pub fn ath(&self) -> Option<&str> {
        self.ath.as_deref()
    }
    /// SHA-256 over the key thumbprint and the `jti`: what a replay cache remembers.
    pub fn replay_key(&self) -> [u8; 32] {
        let mut context = digest::Context::new(&digest::SHA256);
        context.update(self.jkt.as_str().as_bytes());
        context.update(b"\0");
        context.update(self.jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(context.finish().as_ref());
        key
    }
}

/// Steps 2–11.
pub fn verify_proof(
    proof: &str,
    target: RequestTarget<'_>,
    policy: &ProofPolicy,
    now: UnixTime,
) -> Result<VerifiedProof, ProofError> {
    // Steps 2 and 5 (the allow-list holds only asymmetric algorithms) and 7.
    let parsed = jws::parse(proof, MAX_PROOF_LEN, &policy.algs)?;
    // Step 3.
    let claims: DpopClaims = jws::from_json_object(parsed.payload()).map_err(ProofError::Claims)?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofError::BadJti);
    }
    // Step 4.
    if !jws::typ_is(parsed.header().typ.as_deref(), wire::TYP_DPOP) {
        return Err(ProofError::WrongType);
    }
    // Step 6.
    let key = parsed.header().jwk.as_ref().ok_or(ProofError::MissingKey)?;
    parsed.verify(key)?;
    // Step 8.
    if claims.htm != target.method {
        return Err(ProofError::MethodMismatch);
    }
    // Step 9.
    // A proof whose `htu` is already the normalised target needs no parse.
    if claims.htu != target.uri && normalise(&claims.htu)? != target.uri {
        return Err(ProofError::UriMismatch);
    }
    // Step 11.
    if !policy.window.admits(claims.iat, now) {
        return Err(ProofError::Stale);
    }
    Ok(VerifiedProof {
        jkt: key.thumbprint(),
        key: key.clone(),
        jti: claims.jti,
        iat: UnixTime::from_secs(claims.iat),
        ath: claims.ath,
    })
}

/// A proof that passed every check against the access token it was presented with.
#[derive(Debug, Clone)]
pub struct BoundProof<'t> {
    token: &'t VerifiedToken,
    proof: VerifiedProof,
}

impl<'t> BoundProof<'t> {
    pub fn token(&self) -> &'t VerifiedToken {
        self.token
    }
    pub fn proof(&self) -> &VerifiedProof {
        &self.proof
    }
}

/// Steps 2–12 for a request to a protected resource.
pub fn verify_bound<'t>(
    proof: &str,
    token: &'t VerifiedToken,
    target: RequestTarget<'_>,
    policy: &ProofPolicy,
    now: UnixTime,
) -> Result<BoundProof<'t>, ProofError> {
    let proof = verify_proof_for(proof, token.ath(), token.jkt(), target, policy, now)?;
    Ok(BoundProof { token, proof })
}

/// Steps 2–12 for a token that is not an installation's (a partner backend's, bound to its
/// DPoP key): `ath` is its hash and `jkt` its `cnf.jkt`.
pub fn verify_proof_for(
    proof: &str,
    ath: &str,
    jkt: &Thumbprint,
    target: RequestTarget<'_>,
    policy: &ProofPolicy,
    now: UnixTime,
) -> Result<VerifiedProof, ProofError> {
    let proof = verify_proof(proof, target, policy, now)?;
    // Step 12.
    match proof.ath.as_deref() {
        None => return Err(ProofError::MissingAth),
        Some(presented) if presented != ath => return Err(ProofError::AthMismatch),
        Some(_) => {}
    }
    if proof.jkt() != jkt {
        return Err(ProofError::KeyMismatch);
    }
    Ok(proof)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeySet, TokenSigningKey};
    use crate::testkey::TestKey;
    use crate::token::tests::{NOW, expectations, issue_at};
    use crate::token::{self, access_token_hash};
    use medgate_proto::b64;

    const URI: &str = "https://api.example/v1/entries";

    fn claims(ath: Option<&str>) -> serde_json::Value {
        let mut claims = serde_json::json!({"jti": "j-1", "htm": "GET", "htu": URI, "iat": NOW});
        if let Some(ath) = ath {
            claims["ath"] = ath.into();
        }
        claims
    }

    fn target() -> RequestTarget<'static> {
        RequestTarget {
            method: "GET",
            uri: URI,
        }
    }

    fn check(proof: &str) -> Result<VerifiedProof, ProofError> {
        verify_proof(
            proof,
            target(),
            &ProofPolicy::default(),
            UnixTime::from_secs(NOW),
        )
    }

    #[test]
    fn target_uris_are_normalised() {
        assert_eq!(
            target_uri("HTTPS://API.example:443/", "/v1/entries").unwrap(),
            URI
        );
        assert_eq!(
            target_uri("http://127.0.0.1:8701", "/a/b").unwrap(),
            "http://127.0.0.1:8701/a/b"
        );
        assert_eq!(
            target_uri("https://x.example/prefix", "/a").unwrap(),
            "https://x.example/prefix/a"
        );
        assert_eq!(target_uri("ftp://x", "/a").unwrap_err(), ProofError::BadUri);
        assert_eq!(
            HtuBase::new("https://x.example/?q").unwrap_err(),
            ProofError::BadUri
        );
    }

    #[test]
    fn joining_to_a_normalised_base_is_what_parsing_the_whole_uri_gives() {
        let mut paths: Vec<String> = [
            "/",
            "/a",
            "/a/",
            "/a/b.json",
            "/a//b",
            "//a",
            "/a/./b",
            "/a/../b",
            "/a/.",
            "/a/..",
            "/%2e%2e/x",
            "/a%2Fb",
            "/a%20b",
            "/a b",
            "/a\\b",
            "/é",
            "/a?b",
            "/a#b",
            "/{x}",
            "/a|b",
            "/a^b",
            "/a`b",
            "/a\"b",
            "/<a>",
            "/a[b]",
            "/a;b=c",
            "/~u/@x:y",
            "/!$&'()*+,=",
        ]
        .map(String::from)
        .to_vec();
        // Every printable ASCII character, alone in a segment and inside one.
        for byte in 0x20u8..0x7f {
            let c = byte as char;
            paths.push(format!("/{c}"));
            paths.push(format!("/a{c}b/c"));
        }
        for base in [
            "https://API.example:443/",
            "http://127.0.0.1:8701",
            "https://x.example/p/",
        ] {
            let htu = HtuBase::new(base).unwrap();
            for path in &paths {
                let slow = normalise(&format!("{}{}", base.trim_end_matches('/'), path));
                assert_eq!(htu.join(path), slow, "{base} + {path:?}");
            }
            let long = format!("/{}", "a".repeat(MAX_HTU_LEN));
            assert_eq!(htu.join(&long), Err(ProofError::BadUri));
            assert_eq!(htu.join("a"), Err(ProofError::BadUri));
            assert_eq!(htu.join(""), Err(ProofError::BadUri));
        }
    }

    #[test]
    fn a_genuine_proof_verifies() {
        let key = TestKey::new(1);
        let verified = check(&key.proof(&claims(None))).unwrap();
        assert_eq!(verified.jkt(), &key.jwk().thumbprint());
        assert_eq!(verified.jti(), "j-1");
        // Query and fragment of htu are ignored (step 9), as are case and default ports.
        let mut with_query = claims(None);
        with_query["htu"] = "https://API.example:443/v1/entries?x=1#f".into();
        assert!(check(&key.proof(&with_query)).is_ok());
    }

    #[test]
    fn every_rejection_branch() {
        let key = TestKey::new(1);
        // Step 2.
        assert!(matches!(
            check("not.a.jwt").unwrap_err(),
            ProofError::Jws(_)
        ));
        // Step 3.
        let mut missing = claims(None);
        missing.as_object_mut().unwrap().remove("htm");
        assert!(matches!(
            check(&key.proof(&missing)).unwrap_err(),
            ProofError::Claims(_)
        ));
        let mut long_jti = claims(None);
        long_jti["jti"] = "j".repeat(257).into();
        assert_eq!(
            check(&key.proof(&long_jti)).unwrap_err(),
            ProofError::BadJti
        );
        // Step 4.
        let wrong_typ = key.sign_jws("JWT", Some(&key.jwk()), &claims(None));
        assert_eq!(check(&wrong_typ).unwrap_err(), ProofError::WrongType);
        // Step 5: HS256 and none are never accepted.
        let hs = format!(
            "{}.{}.c2ln",
            b64::encode(r#"{"alg":"HS256","typ":"dpop+jwt"}"#),
            b64::encode(claims(None).to_string())
        );
        assert_eq!(
            check(&hs).unwrap_err(),
            ProofError::Jws(JwsError::AlgorithmNotAllowed)
        );
        // Step 6: no key, or signed by another key than the header's.
        let no_key = key.sign_jws(wire::TYP_DPOP, None, &claims(None));
        assert_eq!(check(&no_key).unwrap_err(), ProofError::MissingKey);
        let swapped = key.sign_jws(wire::TYP_DPOP, Some(&TestKey::new(2).jwk()), &claims(None));
        assert_eq!(
            check(&swapped).unwrap_err(),
            ProofError::Jws(JwsError::BadSignature)
        );
        // Step 8.
        let mut post = claims(None);
        post["htm"] = "POST".into();
        assert_eq!(
            check(&key.proof(&post)).unwrap_err(),
            ProofError::MethodMismatch
        );
        let mut lower = claims(None);
        lower["htm"] = "get".into();
        assert_eq!(
            check(&key.proof(&lower)).unwrap_err(),
            ProofError::MethodMismatch
        );
        // Step 9.
        let mut elsewhere = claims(None);
        elsewhere["htu"] = "https://api.example/v1/treatments".into();
        assert_eq!(
            check(&key.proof(&elsewhere)).unwrap_err(),
            ProofError::UriMismatch
        );
        let mut other_host = claims(None);
        other_host["htu"] = "https://evil.example/v1/entries".into();
        assert_eq!(
            check(&key.proof(&other_host)).unwrap_err(),
            ProofError::UriMismatch
        );
        let mut relative = claims(None);
        relative["htu"] = "/v1/entries".into();
        assert_eq!(
            check(&key.proof(&relative)).unwrap_err(),
            ProofError::BadUri
        );
        // Step 11.
        let mut stale = claims(None);
        stale["iat"] = (NOW - 61).into();
        assert_eq!(check(&key.proof(&stale)).unwrap_err(), ProofError::Stale);
        let mut future = claims(None);
        future["iat"] = (NOW + 6).into();
        assert_eq!(check(&key.proof(&future)).unwrap_err(), ProofError::Stale);
    }

    #[test]
    fn bound_proofs_check_ath_and_the_key_binding() {
        let (signing, _) = TokenSigningKey::generate().unwrap();
        let keys = KeySet::new([(signing.kid().to_string(), signing.public_jwk().clone())]);
        // The grant in token tests is for TestKey::new(7).
        let holder = TestKey::new(7);
        let token = issue_at(&signing, NOW).token.into_inner();
        let verified =
            token::verify(&token, &keys, &expectations(), UnixTime::from_secs(NOW)).unwrap();
        let ath = access_token_hash(&token);
        let bind = |proof: &str| {
            verify_bound(
                proof,
                &verified,
                target(),
                &ProofPolicy::default(),
                UnixTime::from_secs(NOW),
            )
        };

        let bound = bind(&holder.proof(&claims(Some(&ath)))).unwrap();
        assert_eq!(
            bound.token().installation_id(),
            holder.jwk().thumbprint().as_str()
        );
        assert_eq!(bound.proof().jkt(), &holder.jwk().thumbprint());

        assert_eq!(
            bind(&holder.proof(&claims(None))).unwrap_err(),
            ProofError::MissingAth
        );
        let other_ath = access_token_hash("another token");
        assert_eq!(
            bind(&holder.proof(&claims(Some(&other_ath)))).unwrap_err(),
            ProofError::AthMismatch
        );
        // A thief holding the token but not the key signs with their own key.
        let thief = TestKey::new(9);
        assert_eq!(
            bind(&thief.proof(&claims(Some(&ath)))).unwrap_err(),
            ProofError::KeyMismatch
        );
    }

    #[test]
    fn replay_keys_separate_installations() {
        let first = check(&TestKey::new(1).proof(&claims(None))).unwrap();
        let again = check(&TestKey::new(1).proof(&claims(None))).unwrap();
        let other = check(&TestKey::new(2).proof(&claims(None))).unwrap();
        assert_eq!(first.replay_key(), again.replay_key());
        assert_ne!(first.replay_key(), other.replay_key());
    }
}
