//! Access tokens: JWTs (RFC 9068) bound to the installation key (RFC 9449 §6).
//!
//! Issuing takes a [`Grant`], so no token exists without a policy verdict. Verifying:
//!
//! 1. Parse the JWS (size-bounded; ES256 only — the allow-list, never the header, picks `alg`).
//! 2. `typ` is `at+jwt`.
//! 3. `kid` names a key in the published key set; the key comes from the set, never the token.
//! 4. The signature verifies.
//! 5. The claims have the documented shape.
//! 6. `iss` and `aud` are the expected ones.
//! 7. `exp` is after `now`; `iat` is not in the future beyond the leeway.
//! 8. `cnf.jkt` is a well-formed thumbprint (the key the token is bound to).
//!
//! A partner backend's token (`issue_partner`, from a `partner::PartnerGrant`) has the same
//! format with `sub` = `client_id` (RFC 9068 §2.2 for client credentials) and no installation
//! claims; its `cnf` is there only when it is DPoP-bound. [`verify_any`] runs the same steps
//! and tells the two apart by that `sub`, each parsed strictly as its own kind.

use medgate_proto::jws::{HeaderFields, SignError, sign_compact};
use medgate_proto::redact::Secret;
use medgate_proto::wire::{self, AccessTokenClaims, Confirmation, PartnerTokenClaims};
use medgate_proto::{Alg, Thumbprint, b64};
use ring::digest;

use crate::UnixTime;
use crate::jws::{self, JwsError};
use crate::keys::{KeySet, TokenSigningKey};
use crate::partner::PartnerGrant;
use crate::policy::Grant;

/// The longest token the gateway reads.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// What the issuer puts in every token besides the grant.
#[derive(Debug, Clone, Copy)]
pub struct IssueParams<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub ttl_secs: i64,
    /// A fresh random token id, made by the caller.
    pub jti: &'a str,
}

/// A freshly signed token and its claims.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Secret<String>,
    pub claims: AccessTokenClaims,
}

/// Signs an access token for `grant`.
pub fn issue(
    grant: &Grant,
    key: &TokenSigningKey,
    params: &IssueParams<'_>,
    now: UnixTime,
) -> Result<IssuedToken, SignError> {
    let claims = AccessTokenClaims {
        iss: params.issuer.to_string(),
        sub: grant.installation_id().as_str().to_string(),
        aud: params.audience.to_string(),
        iat: now.secs(),
        exp: now.plus(params.ttl_secs).secs(),
        jti: params.jti.to_string(),
        client_id: grant.app_id().to_string(),
        scope: grant.scopes().join(" "),
        cnf: Confirmation {
            jkt: grant.installation_id().clone(),
        },
        app_version: grant.app_version().to_string(),
        platform: grant.platform().to_string(),
        decision: grant.decision(),
        integrity_level: Some(grant.integrity_level()),
        hardware_key: Some(grant.hardware_key()),
    };
    let header = HeaderFields {
        typ: Some(wire::TYP_ACCESS_TOKEN),
        kid: Some(key.kid()),
        jwk: None,
    };
    let token = sign_compact(header, &claims, key)?;
    Ok(IssuedToken {
        token: Secret::new(token),
        claims,
    })
}

/// A freshly signed partner token and its claims.
#[derive(Debug)]
pub struct IssuedPartnerToken {
    pub token: Secret<String>,
    pub claims: PartnerTokenClaims,
}

/// Signs a partner backend's token for `grant` (its `aud` the partner's own audience when it
/// has one, else `params.audience`).
pub fn issue_partner(
    grant: &PartnerGrant,
    key: &TokenSigningKey,
    params: &IssueParams<'_>,
    now: UnixTime,
) -> Result<IssuedPartnerToken, SignError> {
    let claims = PartnerTokenClaims {
        iss: params.issuer.to_string(),
        sub: grant.client_id().to_string(),
        aud: grant.audience().unwrap_or(params.audience).to_string(),
        iat: now.secs(),
        exp: now.plus(params.ttl_secs).secs(),
        jti: params.jti.to_string(),
        client_id: grant.client_id().to_string(),
        scope: grant.scopes().join(" "),
        cnf: grant.jkt().map(|jkt| Confirmation { jkt: jkt.clone() }),
    };
    let header = HeaderFields {
        typ: Some(wire::TYP_ACCESS_TOKEN),
        kid: Some(key.kid()),
        jwk: None,
    };
    let token = sign_compact(header, &claims, key)?;
    Ok(IssuedPartnerToken {
        token: Secret::new(token),
        claims,
    })
}

/// What a verifier expects of a token.
#[derive(Debug, Clone, Copy)]
pub struct TokenExpectations<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    /// Allowed clock difference for `iat` in the future.
    pub leeway_secs: i64,
}

/// Why a token was refused. Every variant is the client's fault (HTTP 401 `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("access token {0}")]
    Jws(#[from] JwsError),
    #[error("access token typ must be at+jwt")]
    WrongType,
    #[error("access token names no known signing key")]
    UnknownKey,
    #[error("access token claims are malformed: {0}")]
    Claims(String),
    #[error("access token was issued by another issuer")]
    WrongIssuer,
    #[error("access token is meant for another audience")]
    WrongAudience,
    #[error("access token has expired")]
    Expired,
    #[error("access token is issued in the future")]
    NotYetValid,
    #[error("access token has no valid key confirmation (cnf.jkt)")]
    BadConfirmation,
}

impl TokenError {
    /// A stable code for the refusal (a JWS refusal by its own code).
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Jws(error) => error.code(),
            TokenError::WrongType => "wrong_type",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Claims(_) => "claims_malformed",
            TokenError::WrongIssuer => "wrong_issuer",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::BadConfirmation => "bad_confirmation",
        }
    }
}

/// A token whose signature and claims have been checked. Only [`verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    claims: AccessTokenClaims,
    scopes: Vec<String>,
    /// base64url(SHA-256(token)): what a DPoP proof presented with this token must carry as
    /// `ath` (RFC 9449 §4.2).
    ath: String,
}

impl VerifiedToken {
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.claims
    }
    pub fn installation_id(&self) -> &str {
        &self.claims.sub
    }
    pub fn app_id(&self) -> &str {
        &self.claims.client_id
    }
    pub fn jkt(&self) -> &Thumbprint {
        &self.claims.cnf.jkt
    }
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }
    pub fn ath(&self) -> &str {
        &self.ath
    }
    pub fn expires_at(&self) -> UnixTime {
        UnixTime::from_secs(self.claims.exp)
    }
    /// Whether the token is still unexpired at `now` (for caches of verified tokens).
    pub fn is_live(&self, now: UnixTime) -> bool {
        now < self.expires_at()
    }
}

/// base64url(SHA-256(ASCII token)), the `ath` value of RFC 9449 §4.2.
pub fn access_token_hash(token: &str) -> String {
    b64::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// A partner backend's token whose signature and claims have been checked. Only
/// [`verify_any`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedPartnerToken {
    claims: PartnerTokenClaims,
    ath: String,
}

impl VerifiedPartnerToken {
    pub fn claims(&self) -> &PartnerTokenClaims {
        &self.claims
    }
    pub fn client_id(&self) -> &str {
        &self.claims.client_id
    }
    /// Its SMART scopes, space-separated.
    pub fn scope(&self) -> &str {
        &self.claims.scope
    }
    /// The DPoP key it is bound to, if any.
    pub fn jkt(&self) -> Option<&Thumbprint> {
        self.claims.cnf.as_ref().map(|cnf| &cnf.jkt)
    }
    pub fn ath(&self) -> &str {
        &self.ath
    }
    pub fn expires_at(&self) -> UnixTime {
        UnixTime::from_secs(self.claims.exp)
    }
}

/// A verified token of either kind.
#[derive(Debug, Clone)]
pub enum AnyToken {
    Installation(VerifiedToken),
    Partner(VerifiedPartnerToken),
}

impl AnyToken {
    /// base64url(SHA-256(token)): the `ath` a proof presented with it carries.
    pub fn ath(&self) -> &str {
        match self {
            AnyToken::Installation(token) => token.ath(),
            AnyToken::Partner(token) => token.ath(),
        }
    }

    /// Whether the token is still unexpired at `now` (for caches of verified tokens).
    pub fn is_live(&self, now: UnixTime) -> bool {
        let exp = match self {
            AnyToken::Installation(token) => token.claims.exp,
            AnyToken::Partner(token) => token.claims.exp,
        };
        now.secs() < exp
    }
}

/// Steps 1–4: the payload of a token signed by a published key.
fn signed_payload(token: &str, keys: &KeySet) -> Result<Vec<u8>, TokenError> {
    // Step 1.
    let parsed = jws::parse(token, MAX_TOKEN_LEN, &[Alg::Es256])?;
    // Step 2.
    if !jws::typ_is(parsed.header().typ.as_deref(), wire::TYP_ACCESS_TOKEN) {
        return Err(TokenError::WrongType);
    }
    // Step 3.
    let key = parsed
        .header()
        .kid
        .as_deref()
        .and_then(|kid| keys.get(kid))
        .ok_or(TokenError::UnknownKey)?;
    // Step 4.
    parsed.verify(key)?;
    Ok(parsed.payload().to_vec())
}

/// Steps 6 and 7, for the claims both kinds share.
fn check_times_and_parties(
    (iss, aud, iat, exp): (&str, &str, i64, i64),
    expect: &TokenExpectations<'_>,
    now: UnixTime,
) -> Result<(), TokenError> {
    // Step 6.
    if iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if aud != expect.audience {
        return Err(TokenError::WrongAudience);
    }
    // Step 7.
    if now.secs() >= exp {
        return Err(TokenError::Expired);
    }
    if iat > now.plus(expect.leeway_secs).secs() {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// Steps 5–8 for an installation's token.
fn installation_token(
    payload: &[u8],
    token: &str,
    expect: &TokenExpectations<'_>,
    now: UnixTime,
) -> Result<VerifiedToken, TokenError> {
    // Step 5.
    let claims: AccessTokenClaims = jws::from_json_object(payload).map_err(TokenError::Claims)?;
    check_times_and_parties(
        (&claims.iss, &claims.aud, claims.iat, claims.exp),
        expect,
        now,
    )?;
    // Step 8.
    if claims.cnf.jkt.digest().is_none() {
        return Err(TokenError::BadConfirmation);
    }
    Ok(VerifiedToken {
        scopes: claims
            .scope
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
        ath: access_token_hash(token),
        claims,
    })
}

/// Steps 1–8 for an installation's token (a partner's is refused at step 5).
pub fn verify(
    token: &str,
    keys: &KeySet,
    expect: &TokenExpectations<'_>,
    now: UnixTime,
) -> Result<VerifiedToken, TokenError> {
    let payload = signed_payload(token, keys)?;
    installation_token(&payload, token, expect, now)
}

/// Steps 1–8 for a token of either kind: one whose `sub` is its `client_id` is a partner's,
/// parsed with no member beyond a partner token's; any other, an installation's.
pub fn verify_any(
    token: &str,
    keys: &KeySet,
    expect: &TokenExpectations<'_>,
    now: UnixTime,
) -> Result<AnyToken, TokenError> {
    #[derive(serde::Deserialize)]
    struct Parties {
        sub: String,
        client_id: String,
    }
    let payload = signed_payload(token, keys)?;
    // Step 5.
    let parties: Parties = jws::from_json_object(&payload).map_err(TokenError::Claims)?;
    if parties.sub != parties.client_id {
        return installation_token(&payload, token, expect, now).map(AnyToken::Installation);
    }
    let claims: PartnerTokenClaims = jws::from_json_object(&payload).map_err(TokenError::Claims)?;
    check_times_and_parties(
        (&claims.iss, &claims.aud, claims.iat, claims.exp),
        expect,
        now,
    )?;
    // Step 8.
    if claims
        .cnf
        .as_ref()
        .is_some_and(|cnf| cnf.jkt.digest().is_none())
    {
        return Err(TokenError::BadConfirmation);
    }
    Ok(AnyToken::Partner(VerifiedPartnerToken {
        ath: access_token_hash(token),
        claims,
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::tests::{evidence_with, fresh, policy};
    use crate::policy::{InstallationCheck, ReleaseCheck, Verdict, decide};
    use crate::testkey::TestKey;

    pub(crate) const NOW: i64 = 1_800_000_000;
    pub(crate) const ISSUER: &str = "https://attest.example";
    pub(crate) const AUDIENCE: &str = "https://api.example";

    pub(crate) fn grant() -> Grant {
        let evidence = evidence_with(&[]);
        match decide(
            &evidence,
            &fresh(&evidence),
            Some(&policy()),
            ReleaseCheck::Matched,
            InstallationCheck::New,
            &crate::platform::PlatformOutcome::sdk(),
        ) {
            Verdict::Granted(grant) => grant,
            Verdict::Rejected(reasons) => panic!("{reasons:?}"),
        }
    }

    pub(crate) fn issue_at(key: &TokenSigningKey, now: i64) -> IssuedToken {
        let params = IssueParams {
            issuer: ISSUER,
            audience: AUDIENCE,
            ttl_secs: 300,
            jti: "t-1",
        };
        issue(&grant(), key, &params, UnixTime::from_secs(now)).unwrap()
    }

    pub(crate) fn expectations() -> TokenExpectations<'static> {
        TokenExpectations {
            issuer: ISSUER,
            audience: AUDIENCE,
            leeway_secs: 5,
        }
    }

    fn keyset(key: &TokenSigningKey) -> KeySet {
        KeySet::new([(key.kid().to_string(), key.public_jwk().clone())])
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_grant() {
        let (key, _) = TokenSigningKey::generate().unwrap();
        let issued = issue_at(&key, NOW);
        let verified = verify(
            issued.token.expose(),
            &keyset(&key),
            &expectations(),
            UnixTime::from_secs(NOW + 10),
        )
        .unwrap();
        assert_eq!(verified.claims(), &issued.claims);
        assert_eq!(verified.scopes(), ["entries:read", "entries:write"]);
        assert!(verified.has_scope("entries:write") && !verified.has_scope("entries"));
        assert_eq!(verified.jkt(), grant().installation_id());
        assert_eq!(
            verified.installation_id(),
            grant().installation_id().as_str()
        );
        assert_eq!(issued.claims.exp, NOW + 300);
        assert!(verified.is_live(UnixTime::from_secs(NOW + 299)));
        assert!(!verified.is_live(UnixTime::from_secs(NOW + 300)));
    }

    #[test]
    fn every_rejection_branch() {
        let (key, _) = TokenSigningKey::generate().unwrap();
        let (other, _) = TokenSigningKey::generate().unwrap();
        let keys = keyset(&key);
        let now = UnixTime::from_secs(NOW);
        let good = issue_at(&key, NOW).token.into_inner();
        let check = |token: &str| verify(token, &keys, &expectations(), now).unwrap_err();

        // Step 1: alg none, HS256 keyed with the public key, a flipped signature bit.
        let claims = serde_json::to_vec(&issue_at(&key, NOW).claims).unwrap();
        let none = format!(
            "{}.{}.",
            b64::encode(format!(
                r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
                key.kid()
            )),
            b64::encode(&claims)
        );
        assert_eq!(check(&none), TokenError::Jws(JwsError::AlgorithmNotAllowed));
        let hs_input = format!(
            "{}.{}",
            b64::encode(format!(
                r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
                key.kid()
            )),
            b64::encode(&claims)
        );
        let hmac_key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            &key.public_jwk().public_key_bytes(),
        );
        let hs = format!(
            "{hs_input}.{}",
            b64::encode(ring::hmac::sign(&hmac_key, hs_input.as_bytes()))
        );
        assert_eq!(check(&hs), TokenError::Jws(JwsError::AlgorithmNotAllowed));
        let at = good.len() - 10;
        let flipped = if &good[at..=at] == "A" { "B" } else { "A" };
        let forged = format!("{}{flipped}{}", &good[..at], &good[at + 1..]);
        assert_eq!(check(&forged), TokenError::Jws(JwsError::BadSignature));
        // Step 2.
        let client = TestKey::new(3);
        let jwt = client.sign_jws(
            "JWT",
            None,
            &serde_json::to_value(&issue_at(&key, NOW).claims).unwrap(),
        );
        assert_eq!(check(&jwt), TokenError::WrongType);
        // Step 3: signed by a key that is not published.
        let unpublished = issue_at(&other, NOW).token.into_inner();
        assert_eq!(check(&unpublished), TokenError::UnknownKey);
        // Step 4: a token signed by another key that claims a published kid.
        let header = HeaderFields {
            typ: Some(wire::TYP_ACCESS_TOKEN),
            kid: Some(key.kid()),
            jwk: None,
        };
        let substituted = sign_compact(header, &issue_at(&key, NOW).claims, &other).unwrap();
        assert_eq!(check(&substituted), TokenError::Jws(JwsError::BadSignature));
        // Step 6.
        let mut claims = issue_at(&key, NOW).claims;
        claims.iss = "https://evil.example".into();
        assert_eq!(
            check(&sign_compact(header, &claims, &key).unwrap()),
            TokenError::WrongIssuer
        );
        let mut claims = issue_at(&key, NOW).claims;
        claims.aud = "https://other-api.example".into();
        assert_eq!(
            check(&sign_compact(header, &claims, &key).unwrap()),
            TokenError::WrongAudience
        );
        // Step 7.
        assert_eq!(
            verify(&good, &keys, &expectations(), now.plus(300)).unwrap_err(),
            TokenError::Expired
        );
        let future = issue_at(&key, NOW + 6).token.into_inner();
        assert_eq!(check(&future), TokenError::NotYetValid);
        // Step 8.
        let mut claims = issue_at(&key, NOW).claims;
        claims.cnf.jkt = Thumbprint::from_wire("short".into());
        assert_eq!(
            check(&sign_compact(header, &claims, &key).unwrap()),
            TokenError::BadConfirmation
        );
        // Step 5.
        let garbage = sign_compact(header, &serde_json::json!({"sub": 1}), &key).unwrap();
        assert!(matches!(check(&garbage), TokenError::Claims(_)));

        assert!(verify(&good, &keys, &expectations(), now).is_ok());
    }

    #[test]
    fn partner_tokens_are_their_own_kind() {
        let (key, _) = TokenSigningKey::generate().unwrap();
        let keys = keyset(&key);
        let now = UnixTime::from_secs(NOW);
        let params = IssueParams {
            issuer: ISSUER,
            audience: AUDIENCE,
            ttl_secs: 300,
            jti: "p-1",
        };
        let grant = crate::partner::tests::granted();
        let issued = issue_partner(&grant, &key, &params, now).unwrap();
        assert_eq!(issued.claims.sub, issued.claims.client_id);
        assert_eq!(issued.claims.cnf, None);
        let any = |token: &str| verify_any(token, &keys, &expectations(), now);
        match any(issued.token.expose()).unwrap() {
            AnyToken::Partner(token) => {
                assert_eq!(token.client_id(), crate::partner::tests::CLIENT);
                assert_eq!(token.scope(), "system/Observation.rs");
                assert_eq!(token.jkt(), None);
                assert_eq!(token.ath(), access_token_hash(issued.token.expose()));
                assert_eq!(token.expires_at(), now.plus(300));
            }
            other => panic!("{other:?}"),
        }
        // An installation's token is still one, by either function.
        let installation = issue_at(&key, NOW).token.into_inner();
        assert!(matches!(any(&installation), Ok(AnyToken::Installation(_))));
        // A partner token is no installation's: `verify` refuses it.
        assert!(matches!(
            verify(issued.token.expose(), &keys, &expectations(), now),
            Err(TokenError::Claims(_))
        ));
        // Installation claims smuggled into a partner-shaped token are refused, as are the
        // shared checks.
        let header = HeaderFields {
            typ: Some(wire::TYP_ACCESS_TOKEN),
            kid: Some(key.kid()),
            jwk: None,
        };
        let mut smuggled = serde_json::to_value(&issued.claims).unwrap();
        smuggled["app_version"] = "1.0".into();
        let smuggled = sign_compact(header, &smuggled, &key).unwrap();
        assert!(matches!(any(&smuggled), Err(TokenError::Claims(_))));
        let mut claims = issued.claims.clone();
        claims.aud = "https://other-api.example".into();
        let other = sign_compact(header, &claims, &key).unwrap();
        assert_eq!(any(&other).unwrap_err(), TokenError::WrongAudience);
        let mut claims = issued.claims.clone();
        claims.cnf = Some(Confirmation {
            jkt: Thumbprint::from_wire("short".into()),
        });
        let bad_cnf = sign_compact(header, &claims, &key).unwrap();
        assert_eq!(any(&bad_cnf).unwrap_err(), TokenError::BadConfirmation);
        assert_eq!(
            verify_any(issued.token.expose(), &keys, &expectations(), now.plus(300)).unwrap_err(),
            TokenError::Expired
        );
    }
}
