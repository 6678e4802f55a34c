//! Partner backends: the client assertions of SMART Backend Services (RFC 7523
//! `private_key_jwt` in an RFC 6749 §4.4 client credentials request) and the grant a token is
//! issued from.
//!
//! A partner's JWKS ([`PartnerJwks::parse`], bounded) holds RSA (2048–4096 bits), P-256 and
//! P-384 signing keys, each with a `kid`; keys medgate cannot use are passed over, and a
//! private member anywhere or a repeated `kid` refuses the whole set.
//!
//! Verifying an assertion, for the partner the caller found by its (unverified) `iss`:
//!
//! 1. Parse the JWS (size-bounded; RS384, ES384, ES256 only: SMART's two and medgate's one);
//!    `typ`, if present, is `JWT`.
//! 2. `kid` names a key of the partner's JWKS whose type fits `alg`: the key comes from the
//!    set, never the header.
//! 3. The signature verifies.
//! 4. `iss` and `sub` are both the partner's `client_id`.
//! 5. `aud` names this authorization server: the token endpoint's URL (SMART) or its issuer
//!    identifier (RFC 7523's successor, and what openid-client sends); a string, or an array
//!    of exactly that one value (an assertion also addressed to another server could be
//!    replayed here by it).
//! 6. `exp` is after `now` and at most five minutes (and the leeway) ahead; `iat` and `nbf`,
//!    when present, are not in the future beyond the leeway.
//! 7. `jti` is present and bounded; single use is the caller's replay cache's, until `exp`.
//!
//! [`grant`] then takes the [`VerifiedAssertion`], the partner's policy, the asked scopes and
//! the token request's verified DPoP proof, if any, and makes the [`PartnerGrant`] that
//! `token::issue_partner` signs.

use medgate_proto::{Alg, Thumbprint, b64};
use ring::signature;
use serde::Deserialize;

use crate::UnixTime;
use crate::dpop::VerifiedProof;
use crate::jws::{self, JwsError};
use crate::smart_scope;

/// The longest assertion and JWKS read, and the most keys a JWKS may hold.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;
pub const MAX_JWKS_LEN: usize = 64 * 1024;
pub const MAX_KEYS: usize = 16;
/// The longest an assertion may live (SMART: "no more than five minutes in the future").
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;
const MAX_JTI_LEN: usize = 256;
const MAX_KID_LEN: usize = 128;

/// The algorithms a client assertion may use.
pub const ASSERTION_ALGS: [Alg; 3] = [Alg::Rs384, Alg::Es384, Alg::Es256];

/// A partner's public signing key.
#[derive(Clone, PartialEq, Eq)]
pub enum PartnerKey {
    /// Modulus and exponent, big-endian.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 points.
    P256(Vec<u8>),
    P384(Vec<u8>),
}

impl std::fmt::Debug for PartnerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PartnerKey::Rsa { .. } => "PartnerKey::Rsa",
            PartnerKey::P256(_) => "PartnerKey::P256",
            PartnerKey::P384(_) => "PartnerKey::P384",
        })
    }
}

/// Why a JWKS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    #[error("the JWKS is larger than {MAX_JWKS_LEN} bytes")]
    TooLarge,
    #[error("the JWKS is malformed: {0}")]
    Malformed(String),
    #[error("the JWKS holds more than {MAX_KEYS} keys")]
    TooManyKeys,
    #[error("the JWKS holds private key material")]
    PrivateKey,
    #[error("a key of the JWKS is unusable: {0}")]
    BadKey(&'static str),
    #[error("two keys of the JWKS share a kid")]
    DuplicateKid,
    #[error("the JWKS holds no RSA, P-256 or P-384 signing key with a kid")]
    NoUsableKey,
}

/// The keys of one partner, by `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerJwks {
    keys: Vec<(String, PartnerKey)>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Members that only a private key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl PartnerJwks {
    /// Reads a JWKS document. Keys of other types or uses (encryption, OKP) are skipped; a
    /// malformed key of a supported type, a private member or a repeated `kid` refuses it all.
    pub fn parse(bytes: &[u8]) -> Result<PartnerJwks, JwksError> {
        if bytes.len() > MAX_JWKS_LEN {
            return Err(JwksError::TooLarge);
        }
        let raw: RawJwks = jws::from_json_object(bytes).map_err(JwksError::Malformed)?;
        if raw.keys.len() > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut keys: Vec<(String, PartnerKey)> = Vec::new();
        for member in &raw.keys {
            if PRIVATE_MEMBERS
                .iter()
                .any(|name| member.contains_key(*name))
            {
                return Err(JwksError::PrivateKey);
            }
            let text = |name: &str| member.get(name).and_then(serde_json::Value::as_str);
            if text("use").is_some_and(|usage| usage != "sig") {
                continue;
            }
            let key = match (text("kty"), text("crv")) {
                (Some("RSA"), _) => rsa_key(text("n"), text("e")),
                (Some("EC"), Some("P-256")) => ec_key(text("x"), text("y"), 32),
                (Some("EC"), Some("P-384")) => ec_key(text("x"), text("y"), 48),
                _ => continue,
            };
            // A key medgate cannot use (malformed, too short or long, for an algorithm it
            // does not allow, without a kid) is passed over: the partner's other keys count.
            let Ok(key) = key else { continue };
            let fits = text("alg")
                .is_none_or(|alg| Alg::from_name(alg).is_some_and(|alg| key_fits(alg, &key)));
            let kid = text("kid").filter(|kid| !kid.is_empty() && kid.len() <= MAX_KID_LEN);
            let (true, Some(kid)) = (fits, kid) else {
                continue;
            };
            if keys.iter().any(|(known, _)| known == kid) {
                return Err(JwksError::DuplicateKid);
            }
            keys.push((kid.to_string(), key));
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(PartnerJwks { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&PartnerKey> {
        self.keys
            .iter()
            .find(|(known, _)| known == kid)
            .map(|(_, key)| key)
    }

    /// The key ids, in document order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }
}

fn decoded(value: Option<&str>, max: usize) -> Result<Vec<u8>, JwksError> {
    value
        .and_then(|text| b64::decode(text, max * 2).ok())
        .ok_or(JwksError::BadKey(
            "a key member is missing or not base64url",
        ))
}

fn rsa_key(n: Option<&str>, e: Option<&str>) -> Result<PartnerKey, JwksError> {
    let n = decoded(n, 512)?;
    let e = decoded(e, 8)?;
    // 2048 to 4096 bits, minimally encoded (SMART: RSA keys of at least 2048 bits; beyond
    // 4096 a verification costs an unauthenticated caller's request too much).
    if n.first() == Some(&0) || !(256..=512).contains(&n.len()) {
        return Err(JwksError::BadKey(
            "an RSA modulus must have 2048 to 4096 bits",
        ));
    }
    if e.is_empty() || e.len() > 4 || e.first() == Some(&0) {
        return Err(JwksError::BadKey("an RSA exponent must be 1 to 4 bytes"));
    }
    Ok(PartnerKey::Rsa { n, e })
}

fn ec_key(x: Option<&str>, y: Option<&str>, size: usize) -> Result<PartnerKey, JwksError> {
    let (x, y) = (decoded(x, size)?, decoded(y, size)?);
    if x.len() != size || y.len() != size {
        return Err(JwksError::BadKey("an EC coordinate has the wrong length"));
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(if size == 32 {
        PartnerKey::P256(point)
    } else {
        PartnerKey::P384(point)
    })
}

fn key_fits(alg: Alg, key: &PartnerKey) -> bool {
    matches!(
        (alg, key),
        (Alg::Rs384, PartnerKey::Rsa { .. })
            | (Alg::Es384, PartnerKey::P384(_))
            | (Alg::Es256, PartnerKey::P256(_))
    )
}

fn verify_signature(
    alg: Alg,
    key: &PartnerKey,
    message: &[u8],
    sig: &[u8],
) -> Result<(), JwsError> {
    let verified = match (alg, key) {
        (Alg::Rs384, PartnerKey::Rsa { n, e }) => signature::RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA384, message, sig),
        (Alg::Es384, PartnerKey::P384(point)) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                .verify(message, sig)
        }
        (Alg::Es256, PartnerKey::P256(point)) => {
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, sig)
        }
        _ => return Err(JwsError::KeyMismatch),
    };
    verified.map_err(|_| JwsError::BadSignature)
}

/// Why an assertion was refused: every variant is the RFC 6749 `invalid_client`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssertionError {
    #[error("client assertion {0}")]
    Jws(#[from] JwsError),
    #[error("client assertion typ must be JWT")]
    WrongType,
    #[error("client assertion claims are malformed: {0}")]
    Claims(String),
    #[error("client assertion names no kid")]
    MissingKid,
    #[error("client assertion names a key the client's JWKS does not hold")]
    UnknownKey,
    #[error("client assertion iss and sub must both be the client_id")]
    WrongIssuer,
    #[error("client assertion aud must be the token endpoint or the issuer")]
    WrongAudience,
    #[error("client assertion has expired")]
    Expired,
    #[error("client assertion expires more than five minutes ahead")]
    TooLongLived,
    #[error("client assertion is issued in the future")]
    NotYetValid,
    #[error("client assertion jti is missing or too long")]
    BadJti,
}

impl AssertionError {
    /// A stable code for the refusal (a JWS refusal by its own code).
    pub fn code(&self) -> &'static str {
        match self {
            AssertionError::Jws(error) => error.code(),
            AssertionError::WrongType => "wrong_type",
            AssertionError::Claims(_) => "claims_malformed",
            AssertionError::MissingKid => "kid_missing",
            AssertionError::UnknownKey => "unknown_key",
            AssertionError::WrongIssuer => "wrong_issuer",
            AssertionError::WrongAudience => "wrong_audience",
            AssertionError::Expired => "expired",
            AssertionError::TooLongLived => "exp_too_far",
            AssertionError::NotYetValid => "not_yet_valid",
            AssertionError::BadJti => "bad_jti",
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    jti: String,
}

/// An assertion whose structure has been read (step 1) but nothing else: its `iss` only
/// tells the caller which partner's keys to verify it with.
pub struct ClientAssertion<'a> {
    parsed: jws::ParsedJws<'a>,
    claims: AssertionClaims,
}

impl<'a> ClientAssertion<'a> {
    /// Step 1.
    pub fn parse(text: &'a str) -> Result<ClientAssertion<'a>, AssertionError> {
        let parsed = jws::parse(text, MAX_ASSERTION_LEN, &ASSERTION_ALGS)?;
        if let Some(typ) = parsed.header().typ.as_deref()
            && !jws::typ_is(Some(typ), "JWT")
        {
            return Err(AssertionError::WrongType);
        }
        let claims: AssertionClaims =
            jws::from_json_object(parsed.payload()).map_err(AssertionError::Claims)?;
        Ok(ClientAssertion { parsed, claims })
    }

    /// The header's `kid`, which names the key step 2 takes.
    pub fn kid(&self) -> Option<&str> {
        self.parsed.header().kid.as_deref()
    }

    /// The `iss` claim, not yet verified.
    pub fn claimed_client(&self) -> &str {
        &self.claims.iss
    }

    /// Steps 2–7 under `keys`, the JWKS of the partner `client_id` (which the caller found
    /// by [`claimed_client`](Self::claimed_client)); `audiences` are the token endpoint's URL
    /// and the issuer identifier.
    pub fn verify(
        self,
        client_id: &str,
        keys: &PartnerJwks,
        audiences: &[&str],
        leeway_secs: i64,
        now: UnixTime,
    ) -> Result<VerifiedAssertion, AssertionError> {
        let header = self.parsed.header();
        // Step 2.
        let kid = header.kid.as_deref().ok_or(AssertionError::MissingKid)?;
        let key = keys.get(kid).ok_or(AssertionError::UnknownKey)?;
        if !key_fits(header.alg, key) {
            return Err(AssertionError::Jws(JwsError::KeyMismatch));
        }
        // Step 3.
        let (message, sig) = self.parsed.signed_parts();
        verify_signature(header.alg, key, message, sig)?;
        let claims = self.claims;
        // Step 4.
        if claims.iss != client_id || claims.sub != client_id {
            return Err(AssertionError::WrongIssuer);
        }
        // Step 5.
        let audience_ok = match &claims.aud {
            Audience::One(aud) => audiences.contains(&aud.as_str()),
            Audience::Many(auds) => match auds.as_slice() {
                [aud] => audiences.contains(&aud.as_str()),
                _ => false,
            },
        };
        if !audience_ok {
            return Err(AssertionError::WrongAudience);
        }
        // Step 6.
        if now.secs() >= claims.exp {
            return Err(AssertionError::Expired);
        }
        if claims.exp > now.plus(MAX_ASSERTION_LIFETIME_SECS + leeway_secs).secs() {
            return Err(AssertionError::TooLongLived);
        }
        let future = now.plus(leeway_secs).secs();
        if claims.iat.is_some_and(|iat| iat > future) || claims.nbf.is_some_and(|nbf| nbf > future)
        {
            return Err(AssertionError::NotYetValid);
        }
        // Step 7.
        if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
            return Err(AssertionError::BadJti);
        }
        Ok(VerifiedAssertion {
            client_id: client_id.to_string(),
            jti: claims.jti,
            expires_at: UnixTime::from_secs(claims.exp),
        })
    }
}

/// An assertion that passed steps 1–7. Only [`ClientAssertion::verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedAssertion {
    client_id: String,
    jti: String,
    expires_at: UnixTime,
}

impl VerifiedAssertion {
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// Until when the replay cache must remember it.
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }
    /// SHA-256 over a label, the client and the `jti`: what the replay cache remembers (in
    /// the same cache as proofs, apart from them by the label).
    pub fn replay_key(&self) -> [u8; 32] {
        crate::sha256(&[
            b"medgate client assertion\0",
            self.client_id.as_bytes(),
            b"\0",
            self.jti.as_bytes(),
        ])
    }
}

/// A partner, as a replay cache files its entries (its share of the cache).
pub fn owner_key(client_id: &str) -> [u8; 32] {
    crate::sha256(&[b"medgate partner\0", client_id.as_bytes()])
}

/// What the partner's registration allows.
#[derive(Debug, Clone, Copy)]
pub struct PartnerPolicy<'a> {
    /// Its registered SMART scopes.
    pub scopes: &'a [String],
    /// Tokens only bound to a DPoP key.
    pub require_dpop: bool,
    /// Its tokens' `aud`, when not the gateway's.
    pub audience: Option<&'a str>,
}

/// Why no token is issued although the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// RFC 6749 `invalid_scope`.
    #[error("none of the requested scopes is granted to this client")]
    NoScope,
    /// RFC 6749 `invalid_request`.
    #[error("this client must send a DPoP proof with its token request")]
    DpopRequired,
}

/// What a partner token is issued for. Only [`grant`] makes one.
#[derive(Debug, Clone)]
pub struct PartnerGrant {
    client_id: String,
    scopes: Vec<String>,
    jkt: Option<Thumbprint>,
    audience: Option<String>,
}

impl PartnerGrant {
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    /// The DPoP key the token is bound to.
    pub fn jkt(&self) -> Option<&Thumbprint> {
        self.jkt.as_ref()
    }
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }
}

/// The grant for an authenticated client: the intersection of what it asked and what it was
/// registered for (at least one scope), bound to the token request's DPoP key if it sent a
/// proof (and it must, when its policy says so).
pub fn grant(
    assertion: &VerifiedAssertion,
    policy: &PartnerPolicy<'_>,
    asked: &str,
    proof: Option<&VerifiedProof>,
) -> Result<PartnerGrant, GrantError> {
    if policy.require_dpop && proof.is_none() {
        return Err(GrantError::DpopRequired);
    }
    let scopes = smart_scope::intersect(asked, policy.scopes)
        .filter(|scopes| !scopes.is_empty())
        .ok_or(GrantError::NoScope)?;
    Ok(PartnerGrant {
        client_id: assertion.client_id.clone(),
        scopes,
        jkt: proof.map(|proof| proof.jkt().clone()),
        audience: policy.audience.map(str::to_string),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use medgate_testkit::partner::PartnerSigner as Signer;

    pub(crate) const NOW: i64 = 1_800_000_000;
    pub(crate) const CLIENT: &str = "ptn_0123456789abcdef";
    pub(crate) const ENDPOINT: &str = "https://attest.example/v1/oauth/token";
    const ISSUER: &str = "https://attest.example";

    pub(crate) fn claims() -> serde_json::Value {
        serde_json::json!({"iss": CLIENT, "sub": CLIENT, "aud": ENDPOINT, "exp": NOW + 240,
            "iat": NOW, "jti": "a-1"})
    }

    fn jwks(signers: &[(&Signer, &str)]) -> PartnerJwks {
        let jwks = medgate_testkit::partner::jwks(signers);
        PartnerJwks::parse(jwks.to_string().as_bytes()).unwrap()
    }

    fn check(text: &str, keys: &PartnerJwks) -> Result<VerifiedAssertion, AssertionError> {
        let assertion = ClientAssertion::parse(text)?;
        assertion.verify(
            CLIENT,
            keys,
            &[ENDPOINT, ISSUER],
            5,
            UnixTime::from_secs(NOW),
        )
    }

    fn header(signer: &Signer, kid: &str) -> serde_json::Value {
        serde_json::json!({"alg": signer.alg(), "kid": kid, "typ": "JWT"})
    }

    #[test]
    fn assertions_by_each_allowed_algorithm_verify() {
        for signer in [Signer::rs384(), Signer::es384(), Signer::es256()] {
            let keys = jwks(&[(&signer, "k1")]);
            let text = signer.sign(&header(&signer, "k1"), &claims());
            assert_eq!(
                ClientAssertion::parse(&text).unwrap().claimed_client(),
                CLIENT
            );
            let verified = check(&text, &keys).unwrap();
            assert_eq!(verified.client_id(), CLIENT);
            assert_eq!(verified.expires_at(), UnixTime::from_secs(NOW + 240));
            // aud as an array of the endpoint alone; no typ.
            let mut claims = claims();
            claims["aud"] = serde_json::json!([ENDPOINT]);
            let header = serde_json::json!({"alg": signer.alg(), "kid": "k1"});
            check(&signer.sign(&header, &claims), &keys).unwrap();
            // The issuer identifier, as openid-client sends it, with an nbf.
            claims["aud"] = ISSUER.into();
            claims["nbf"] = NOW.into();
            check(&signer.sign(&header, &claims), &keys).unwrap();
        }
    }

    #[test]
    fn every_refusal_has_its_reason() {
        let signer = Signer::es384();
        let stranger = Signer::es384();
        let keys = jwks(&[(&signer, "k1")]);
        let signed = |claims: &serde_json::Value| signer.sign(&header(&signer, "k1"), claims);
        let with = |name: &str, value: serde_json::Value| {
            let mut claims = claims();
            claims[name] = value;
            check(&signed(&claims), &keys).unwrap_err().code()
        };
        // Step 1: alg none, HS256, RS256, a DPoP proof's typ.
        for alg in ["none", "HS256", "RS256", "PS384"] {
            let text = format!(
                "{}.{}.{}",
                b64::encode(serde_json::json!({"alg": alg, "kid": "k1"}).to_string()),
                b64::encode(claims().to_string()),
                b64::encode(b"sig")
            );
            assert_eq!(
                check(&text, &keys).unwrap_err().code(),
                "algorithm_not_allowed"
            );
        }
        let dpop = serde_json::json!({"alg": "ES384", "kid": "k1", "typ": "dpop+jwt"});
        assert_eq!(
            check(&signer.sign(&dpop, &claims()), &keys)
                .unwrap_err()
                .code(),
            "wrong_type"
        );
        // Step 2: no kid, a kid not in the JWKS, a kid whose key is of another type.
        let no_kid = serde_json::json!({"alg": "ES384"});
        let code = |text: String| check(&text, &keys).unwrap_err().code();
        assert_eq!(code(signer.sign(&no_kid, &claims())), "kid_missing");
        assert_eq!(
            code(signer.sign(&header(&signer, "k2"), &claims())),
            "unknown_key"
        );
        let p256 = Signer::es256();
        let mixed = jwks(&[(&signer, "k1"), (&p256, "k2")]);
        let wrong_type = serde_json::json!({"alg": "ES384", "kid": "k2"});
        assert_eq!(
            check(&signer.sign(&wrong_type, &claims()), &mixed)
                .unwrap_err()
                .code(),
            "key_mismatch"
        );
        // Step 3: signed by a key not in the partner's JWKS, under its kid.
        assert_eq!(
            code(stranger.sign(&header(&signer, "k1"), &claims())),
            "bad_signature"
        );
        // Step 4.
        assert_eq!(with("iss", "ptn_ffffffffffffffff".into()), "wrong_issuer");
        assert_eq!(with("sub", "someone".into()), "wrong_issuer");
        // Step 5.
        assert_eq!(
            with("aud", "https://attest.example/v1/other".into()),
            "wrong_audience"
        );
        assert_eq!(
            with("aud", serde_json::json!(["https://x.example"])),
            "wrong_audience"
        );
        // Also addressed to another server, which could replay it here.
        assert_eq!(
            with(
                "aud",
                serde_json::json!(["https://other-as.example", ENDPOINT])
            ),
            "wrong_audience"
        );
        // Step 6.
        assert_eq!(with("exp", NOW.into()), "expired");
        assert_eq!(with("exp", (NOW + 306).into()), "exp_too_far");
        assert_eq!(with("iat", (NOW + 6).into()), "not_yet_valid");
        assert_eq!(with("nbf", (NOW + 6).into()), "not_yet_valid");
        // Step 7.
        assert_eq!(with("jti", "".into()), "bad_jti");
        assert_eq!(with("jti", "j".repeat(257).into()), "bad_jti");
        // Step 1's claims: a missing jti, a string exp.
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove("jti");
        assert_eq!(code(signed(&claims)), "claims_malformed");
        assert_eq!(with("exp", "soon".into()), "claims_malformed");
        // The untouched assertion passes, and its replay key is per client and jti.
        let verified = check(&signed(&claims_with_jti("a-1")), &keys).unwrap();
        let again = check(&signed(&claims_with_jti("a-1")), &keys).unwrap();
        let other = check(&signed(&claims_with_jti("a-2")), &keys).unwrap();
        assert_eq!(verified.replay_key(), again.replay_key());
        assert_ne!(verified.replay_key(), other.replay_key());
    }

    /// A grant for [`CLIENT`] of `system/Observation.rs`, unbound.
    pub(crate) fn granted() -> PartnerGrant {
        let signer = Signer::es256();
        let keys = jwks(&[(&signer, "k1")]);
        let assertion = check(&signer.sign(&header(&signer, "k1"), &claims()), &keys).unwrap();
        let registered = vec!["system/Observation.rs".to_string()];
        let policy = PartnerPolicy {
            scopes: &registered,
            require_dpop: false,
            audience: None,
        };
        grant(&assertion, &policy, "system/Observation.rs", None).unwrap()
    }

    fn claims_with_jti(jti: &str) -> serde_json::Value {
        let mut claims = claims();
        claims["jti"] = jti.into();
        claims
    }

    #[test]
    fn a_jwks_is_read_strictly() {
        let signer = Signer::rs384();
        let good = signer.jwk("k1");
        let parse = |keys: serde_json::Value| {
            PartnerJwks::parse(serde_json::json!({ "keys": keys }).to_string().as_bytes())
        };
        let with = |name: &str, value: serde_json::Value| {
            let mut key = good.clone();
            key[name] = value;
            parse(serde_json::json!([key]))
        };
        assert_eq!(with("d", "AAAA".into()), Err(JwksError::PrivateKey));
        assert!(with("alg", "RS384".into()).is_ok());
        // Keys it cannot use are passed over; alone, they leave no usable key.
        for (name, value) in [
            ("alg", serde_json::json!("ES256")),
            ("alg", "RS256".into()),
            ("kid", "".into()),
            ("kid", serde_json::Value::Null),
            ("n", b64::encode([0xff; 128]).into()),
            ("n", b64::encode([0xff; 513]).into()),
            ("e", "!!".into()),
            ("use", "enc".into()),
        ] {
            assert_eq!(
                with(name, value.clone()),
                Err(JwksError::NoUsableKey),
                "{name}"
            );
            let mut unusable = good.clone();
            unusable[name] = value;
            if name != "kid" {
                unusable["kid"] = "other".into();
            }
            let both = parse(serde_json::json!([unusable, good])).unwrap();
            assert_eq!(both.kids().collect::<Vec<_>>(), ["k1"], "{name}");
        }
        assert_eq!(
            parse(serde_json::json!([good, good])),
            Err(JwksError::DuplicateKid)
        );
        assert_eq!(
            parse(serde_json::json!([{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "e"}])),
            Err(JwksError::NoUsableKey)
        );
        assert_eq!(
            parse(serde_json::json!(vec![good.clone(); 17])),
            Err(JwksError::TooManyKeys)
        );
        assert!(matches!(
            PartnerJwks::parse(b"[]"),
            Err(JwksError::Malformed(_))
        ));
        assert_eq!(
            PartnerJwks::parse(&vec![b' '; MAX_JWKS_LEN + 1]),
            Err(JwksError::TooLarge)
        );
        let keys = parse(serde_json::json!([good])).unwrap();
        assert_eq!(keys.kids().collect::<Vec<_>>(), ["k1"]);
    }

    #[test]
    fn a_grant_takes_the_scopes_registered_and_the_proof_key() {
        let signer = Signer::es256();
        let keys = jwks(&[(&signer, "k1")]);
        let assertion = check(&signer.sign(&header(&signer, "k1"), &claims()), &keys).unwrap();
        let registered = vec!["system/Observation.rs".to_string()];
        let policy = PartnerPolicy {
            scopes: &registered,
            require_dpop: false,
            audience: None,
        };
        let granted = grant(
            &assertion,
            &policy,
            "system/Observation.read system/Patient.rs",
            None,
        )
        .unwrap();
        assert_eq!(granted.client_id(), CLIENT);
        assert_eq!(granted.scopes(), ["system/Observation.read"]);
        assert_eq!(granted.jkt(), None);
        assert_eq!(
            grant(&assertion, &policy, "system/Patient.rs", None).unwrap_err(),
            GrantError::NoScope
        );
        let strict = PartnerPolicy {
            require_dpop: true,
            ..policy
        };
        assert_eq!(
            grant(&assertion, &strict, "system/Observation.rs", None).unwrap_err(),
            GrantError::DpopRequired
        );
    }
}
