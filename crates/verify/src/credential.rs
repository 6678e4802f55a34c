//! Credentials for apps that cannot attest: a Nightscout follower's share link, a legacy
//! uploader's token. Weaker than an attested installation (a bearer secret, no key, no
//! device), so the gateway accepts one only on routes that allow it and only for the scopes it
//! was given; what it can do is graded by the operator, never by the client.
//!
//! A credential's secret is `<kind>-<32 hex>` (Nightscout's access-token shape,
//! `name-<hex>`), made once and shown once; the store keeps two digests of it (`digests`),
//! so that the secret itself, and the SHA-1 hex a Nightscout client computes from it, both find
//! it. Looking a presented value up by its SHA-256 reveals nothing about the secrets through
//! timing: an attacker would have to control the digest.
//!
//! Steps, for a presented value ([`CredentialSet::find`]):
//! 1. Bounded: at most [`MAX_PRESENTED`] bytes.
//! 2. The value, or what follows `token=` (py-nightscout's spelling in the `api-secret`
//!    header), is digested and looked up.
//! 3. The credential has not expired at `now` (revoked ones are not in the set).
//!
//! For an exchange token ([`ExchangeKey::verify`], the JWT `/api/v2/authorization/request/`
//! answers, which Nightscout's v3 clients send as `Authorization: Bearer`):
//! 1. Bounded, three parts, the header exactly the one medgate writes (HS256, nothing else).
//! 2. The HMAC-SHA-256 verifies under the deployment's exchange key (constant time).
//! 3. `iat`, `exp` and `sub` are present; `now` is before `exp` and not before `iat` (with
//!    the skew allowed).
//! 4. `sub` names a credential of the set, which must pass step 3 above: revoking or expiring
//!    the credential ends its exchange tokens too.

use std::collections::HashMap;
use std::sync::Arc;

use medgate_proto::{b64, hex};
use serde::{Deserialize, Serialize};

use crate::UnixTime;

/// The longest presented value read.
pub const MAX_PRESENTED: usize = 512;
/// The longest exchange token read.
pub const MAX_EXCHANGE_TOKEN: usize = 1024;
/// How much clock skew an exchange token's `iat` may show.
const IAT_SKEW_SECS: i64 = 60;
/// The only header an exchange token has (`{"alg":"HS256","typ":"JWT"}`).
const EXCHANGE_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Why a presented credential was refused; the codes are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the credential is not known, or was revoked")]
    Unknown,
    #[error("the credential has expired")]
    Expired,
    #[error("the exchange token is malformed")]
    Malformed,
    #[error("the exchange token's signature does not verify")]
    BadSignature,
    #[error("the exchange token has expired or is not yet valid")]
    TokenExpired,
}

impl CredentialError {
    pub fn code(&self) -> &'static str {
        match self {
            CredentialError::Unknown => "credential_unknown",
            CredentialError::Expired => "credential_expired",
            CredentialError::Malformed => "exchange_token_malformed",
            CredentialError::BadSignature => "exchange_token_signature",
            CredentialError::TokenExpired => "exchange_token_expired",
        }
    }
}

/// What the gateway knows of one live credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    pub app_id: String,
    pub kind: String,
    /// The operator's label, for the audit log.
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<UnixTime>,
}

/// A credential that was presented and found live; only [`CredentialSet`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedCredential(Arc<Credential>);

impl VerifiedCredential {
    pub fn credential(&self) -> &Credential {
        &self.0
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }
}

/// The hex SHA-256 of `secret`: how the store files a credential.
pub fn digest(secret: &str) -> String {
    hex::encode(&crate::sha256(&[secret.as_bytes()]))
}

/// The lower-case hex SHA-1 of `text`: what Nightscout and its clients compare and send for
/// `API_SECRET` (SHA-1 is Nightscout's choice, kept for compatibility, not for security).
pub fn sha1_hex(bytes: impl AsRef<[u8]>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes.as_ref());
    hex::encode(digest.as_ref())
}

/// The two digests a credential is filed under: of the secret, and of its SHA-1 hex.
pub fn digests(secret: &str) -> (String, String) {
    (digest(secret), digest(&sha1_hex(secret)))
}

/// The live credentials, by digest and by id.
#[derive(Debug, Default)]
pub struct CredentialSet {
    by_digest: HashMap<String, Arc<Credential>>,
    by_id: HashMap<String, Arc<Credential>>,
}

impl CredentialSet {
    /// From each live credential and its two digests (revoked ones left out by the caller).
    pub fn new(live: impl IntoIterator<Item = (Credential, String, String)>) -> CredentialSet {
        let mut set = CredentialSet::default();
        for (credential, digest, sha1_digest) in live {
            let credential = Arc::new(credential);
            set.by_digest.insert(digest, Arc::clone(&credential));
            set.by_digest.insert(sha1_digest, Arc::clone(&credential));
            set.by_id.insert(credential.id.clone(), credential);
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Steps 1–3 for a value as a client sent it.
    pub fn find(
        &self,
        presented: &str,
        now: UnixTime,
    ) -> Result<VerifiedCredential, CredentialError> {
        // Step 1.
        if presented.len() > MAX_PRESENTED {
            return Err(CredentialError::Unknown);
        }
        // Step 2.
        let value = presented.strip_prefix("token=").unwrap_or(presented);
        let credential = self
            .by_digest
            .get(&digest(value))
            .ok_or(CredentialError::Unknown)?;
        // Step 3.
        live(credential, now)
    }

    /// Whether the credential `id` is in the set and not expired at `now` (a tunnel it opened
    /// stays open only while it is).
    pub fn is_live(&self, id: &str, now: UnixTime) -> bool {
        self.by_id(id, now).is_ok()
    }

    fn by_id(&self, id: &str, now: UnixTime) -> Result<VerifiedCredential, CredentialError> {
        live(self.by_id.get(id).ok_or(CredentialError::Unknown)?, now)
    }
}

fn live(
    credential: &Arc<Credential>,
    now: UnixTime,
) -> Result<VerifiedCredential, CredentialError> {
    if credential.expires_at.is_some_and(|expires| now >= expires) {
        return Err(CredentialError::Expired);
    }
    Ok(VerifiedCredential(Arc::clone(credential)))
}

/// An exchange token's claims.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeClaims {
    sub: String,
    iat: i64,
    exp: i64,
}

/// What `/api/v2/authorization/request/<token>` answers, in Nightscout's shape.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeAnswer {
    pub token: String,
    pub sub: String,
    #[serde(rename = "permissionGroups")]
    pub permission_groups: Vec<Vec<String>>,
    pub iat: i64,
    pub exp: i64,
}

/// The deployment's key for exchange tokens, shared by every gateway.
pub struct ExchangeKey(ring::hmac::Key);

impl ExchangeKey {
    pub fn new(secret: &[u8; 32]) -> ExchangeKey {
        ExchangeKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// A token standing for `credential` from `now` for `lifetime_secs` (never past the
    /// credential's own expiry).
    pub fn mint(
        &self,
        credential: &VerifiedCredential,
        now: UnixTime,
        lifetime_secs: i64,
    ) -> ExchangeAnswer {
        let c = credential.credential();
        let mut exp = now.secs() + lifetime_secs;
        if let Some(expires) = c.expires_at {
            exp = exp.min(expires.secs());
        }
        let claims = ExchangeClaims {
            sub: c.id.clone(),
            iat: now.secs(),
            exp,
        };
        // Serialising three plain fields cannot fail.
        let payload = b64::encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signing_input = format!("{EXCHANGE_HEADER}.{payload}");
        let tag = ring::hmac::sign(&self.0, signing_input.as_bytes());
        ExchangeAnswer {
            token: format!("{signing_input}.{}", b64::encode(tag.as_ref())),
            sub: c.id.clone(),
            permission_groups: vec![c.scopes.clone()],
            iat: claims.iat,
            exp,
        }
    }

    /// Steps 1–4 of the module documentation.
    pub fn verify(
        &self,
        token: &str,
        credentials: &CredentialSet,
        now: UnixTime,
    ) -> Result<VerifiedCredential, CredentialError> {
        // Step 1.
        if token.len() > MAX_EXCHANGE_TOKEN {
            return Err(CredentialError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CredentialError::Malformed);
        };
        if header != EXCHANGE_HEADER {
            return Err(CredentialError::Malformed);
        }
        // Step 2.
        let tag = b64::decode(tag, 64).map_err(|_| CredentialError::Malformed)?;
        let signing_input = &token[..header.len() + 1 + payload.len()];
        ring::hmac::verify(&self.0, signing_input.as_bytes(), &tag)
            .map_err(|_| CredentialError::BadSignature)?;
        // Step 3.
        let payload =
            b64::decode(payload, MAX_EXCHANGE_TOKEN).map_err(|_| CredentialError::Malformed)?;
        let claims: ExchangeClaims =
            serde_json::from_slice(&payload).map_err(|_| CredentialError::Malformed)?;
        if now.secs() >= claims.exp || claims.iat > now.secs() + IAT_SKEW_SECS {
            return Err(CredentialError::TokenExpired);
        }
        // Step 4.
        credentials.by_id(&claims.sub, now)
    }
}

impl std::fmt::Debug for ExchangeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExchangeKey(…)")
    }
}

#[cfg(test)]
mod tests;
