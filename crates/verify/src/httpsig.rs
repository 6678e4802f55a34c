//! Verification of an HTTP Message Signature (RFC 9421) on a request, by the installation key
//! (`ecdsa-p256-sha256`) or by a session key (`hmac-sha256`).
//!
//! [`verify`], in order:
//!
//! 1. `Signature-Input` and `Signature` parse (bounded, `sfv`), and both carry the policy's
//!    label; components are ones medgate reads, without component parameters
//!    (`medgate_proto::httpsig`).
//! 2. The algorithm is the key's (an allow-list of one per key kind): `alg`, when present,
//!    must name it; absent, the key decides (RFC 9421 §3.2), so no algorithm is ever chosen by
//!    the request.
//! 3. `keyid` is the expected one: the token's `cnf.jkt`, or the session's id.
//! 4. Every component the policy requires is covered.
//! 5. `created` is present and within the window around `now`; `expires`, when present, is
//!    not past.
//! 6. `nonce` is present (when the policy requires it) and bounded; the caller takes it in its
//!    replay cache after this returns, as for a DPoP `jti`.
//! 7. The signature base is built from the message (a missing component fails here).
//! 8. The signature verifies: ECDSA P-256 SHA-256 over the base, `r ‖ s` 64 bytes, under the
//!    installation key; or HMAC-SHA-256, compared in constant time.
//!
//! No I/O and no clock; errors quote nothing from the request.

use medgate_proto::PublicJwk;
use medgate_proto::httpsig::{self, FieldError, Message, SignatureParams};
use ring::{hmac, signature};

use crate::UnixTime;
use crate::time::IatWindow;

/// `alg` of a signature by the installation key.
pub const ALG_ECDSA_P256: &str = "ecdsa-p256-sha256";
/// `alg` of a signature by a session key.
pub const ALG_HMAC_SHA256: &str = "hmac-sha256";
/// The label medgate's signatures carry.
pub const LABEL: &str = "medgate";

/// The key a signature must be made with.
#[derive(Clone, Copy)]
pub enum SigningKey<'a> {
    /// The installation's public key (the token's `cnf.jkt` names it).
    Installation(&'a PublicJwk),
    /// A session key shared with the installation.
    Session(&'a [u8]),
}

impl std::fmt::Debug for SigningKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigningKey::Installation(jwk) => write!(f, "Installation({})", jwk.thumbprint()),
            SigningKey::Session(_) => f.write_str("Session(…)"),
        }
    }
}

impl SigningKey<'_> {
    fn alg(&self) -> &'static str {
        match self {
            SigningKey::Installation(_) => ALG_ECDSA_P256,
            SigningKey::Session(_) => ALG_HMAC_SHA256,
        }
    }
}

/// What a signature must be.
#[derive(Debug, Clone)]
pub struct SignaturePolicy {
    pub label: String,
    /// Components every signature must cover.
    pub required: Vec<String>,
    /// Around `now`, where `created` must lie.
    pub window: IatWindow,
    pub require_nonce: bool,
}

impl SignaturePolicy {
    /// medgate's policy for requests: label `medgate`; method, target URI, body digest and the
    /// token covered; `created` within a minute (five seconds ahead); a nonce.
    pub fn for_requests(window: IatWindow) -> SignaturePolicy {
        SignaturePolicy {
            label: LABEL.into(),
            required: ["@method", "@target-uri", "content-digest", "authorization"]
                .map(String::from)
                .to_vec(),
            window,
            require_nonce: true,
        }
    }
}

/// Why a signature was refused. Each has a stable [`code`](SignatureError::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("signature fields: {0}")]
    Field(#[from] FieldError),
    #[error("signature alg is not the key's ({expected})")]
    Alg { expected: &'static str },
    #[error("signature keyid is not the key the request is bound to")]
    KeyId,
    #[error("signature does not cover a required component")]
    NotCovered,
    #[error("signature created is missing or outside the accepted window")]
    Stale,
    #[error("signature has expired")]
    Expired,
    #[error("signature nonce is missing")]
    NoNonce,
    #[error("signature does not verify")]
    Invalid,
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Field(FieldError::NoLabel) => "signature_missing",
            SignatureError::Field(FieldError::MissingComponent) => "signature_component_absent",
            SignatureError::Field(_) => "signature_malformed",
            SignatureError::Alg { .. } => "signature_alg",
            SignatureError::KeyId => "signature_keyid",
            SignatureError::NotCovered => "signature_coverage",
            SignatureError::Stale => "signature_stale",
            SignatureError::Expired => "signature_expired",
            SignatureError::NoNonce => "signature_nonce",
            SignatureError::Invalid => "signature_invalid",
        }
    }
}

/// A signature that verified. Only [`verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    params: SignatureParams,
}

impl VerifiedSignature {
    pub fn params(&self) -> &SignatureParams {
        &self.params
    }

    /// The nonce, for the replay cache (present when the policy required one).
    pub fn nonce(&self) -> Option<&str> {
        self.params.nonce.as_deref()
    }

    pub fn created(&self) -> i64 {
        self.params.created.unwrap_or_default()
    }

    /// The key the replay cache files this nonce under: SHA-256 of a prefix no DPoP replay
    /// key starts with (those start with a base64url thumbprint), then the key id's and the
    /// nonce's lengths and bytes, so no proof `jti` and no other key id and nonce meet it.
    pub fn replay_key(&self) -> [u8; 32] {
        let keyid = self.params.keyid.as_deref().unwrap_or_default().as_bytes();
        let nonce = self.nonce().unwrap_or_default().as_bytes();
        crate::sha256(&[
            b"\x01medgate-signature-nonce\0",
            &(keyid.len() as u64).to_be_bytes(),
            keyid,
            &(nonce.len() as u64).to_be_bytes(),
            nonce,
        ])
    }
}

/// Steps 1–8.
pub fn verify(
    signature_input: &str,
    signature_field: &str,
    message: &dyn Message,
    key: SigningKey<'_>,
    expected_keyid: &str,
    policy: &SignaturePolicy,
    now: UnixTime,
) -> Result<VerifiedSignature, SignatureError> {
    // Step 1.
    let (params, signature) = httpsig::parse(signature_input, signature_field, &policy.label)?;
    // Step 2.
    let expected = key.alg();
    if params.alg.as_deref().is_some_and(|alg| alg != expected) {
        return Err(SignatureError::Alg { expected });
    }
    // Step 3.
    if params.keyid.as_deref() != Some(expected_keyid) {
        return Err(SignatureError::KeyId);
    }
    // Step 4.
    if !policy.required.iter().all(|c| params.covers(c)) {
        return Err(SignatureError::NotCovered);
    }
    // Step 5.
    let created = params.created.ok_or(SignatureError::Stale)?;
    if !policy.window.admits(created, now) {
        return Err(SignatureError::Stale);
    }
    if params.expires.is_some_and(|expires| expires < now.secs()) {
        return Err(SignatureError::Expired);
    }
    // Step 6.
    if policy.require_nonce && params.nonce.as_deref().is_none_or(str::is_empty) {
        return Err(SignatureError::NoNonce);
    }
    // Step 7.
    let base = httpsig::signature_base(&params, message)?;
    // Step 8.
    match key {
        SigningKey::Installation(jwk) => {
            let PublicJwk::P256 { .. } = jwk else {
                return Err(SignatureError::Alg { expected });
            };
            signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                jwk.public_key_bytes(),
            )
            .verify(base.as_bytes(), &signature)
            .map_err(|_| SignatureError::Invalid)?;
        }
        SigningKey::Session(secret) => {
            hmac::verify(
                &hmac::Key::new(hmac::HMAC_SHA256, secret),
                base.as_bytes(),
                &signature,
            )
            .map_err(|_| SignatureError::Invalid)?;
        }
    }
    Ok(VerifiedSignature { params })
}

/// A signed write as an upstream kept it: what the gateway forwarded on a `dpop+signature`
/// route, with the URL the app addressed.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoredRequest {
    pub method: String,
    /// The gateway's public URL, path and query.
    pub target_uri: String,
    /// Header fields as forwarded (names in any case): at least `signature-input`,
    /// `signature`, `content-digest`, `x-medgate-key` and `x-medgate-authorization`.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body, standard base64.
    pub body_base64: String,
}

/// What [`verify_stored`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProvenanceReport {
    pub verified: bool,
    pub installation_id: String,
    /// Unix seconds, when the signature verified.
    pub created: Option<i64>,
    pub covered: Option<Vec<String>>,
    /// Why it does not verify; empty when it does.
    pub failures: Vec<String>,
}

/// Re-verifies a stored signed write with the installation's public key, whenever it was made
/// (`created` is reported, not judged): the key is the one `X-Medgate-Key` and the signature's
/// `keyid` name, the signature verifies over the stored components (`authorization` from
/// `X-Medgate-Authorization`), and the body is the one `Content-Digest` names.
pub fn verify_stored(stored: &StoredRequest, key: &PublicJwk) -> ProvenanceReport {
    use base64::Engine as _;
    let header = |name: &str| {
        stored
            .headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    let installation = key.thumbprint();
    let mut failures = Vec::new();
    // One name, one field: two spellings of a name would let two readers of the record see
    // two different values.
    let mut names: Vec<String> = stored
        .headers
        .keys()
        .map(|name| name.to_ascii_lowercase())
        .collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        failures.push("a header name appears twice (in another case)".to_string());
    }
    if header("x-medgate-key") != Some(installation.as_str()) {
        failures.push("the key is not the one X-Medgate-Key names".to_string());
    }
    let mut fields: Vec<(String, String)> = stored
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
        .filter(|(name, _)| name != "authorization")
        .collect();
    if let Some(authorization) = header("x-medgate-authorization") {
        fields.push(("authorization".into(), authorization.to_string()));
    }
    let message = httpsig::RequestMessage {
        method: &stored.method,
        target_uri: &stored.target_uri,
        fields,
    };
    let policy = SignaturePolicy {
        window: IatWindow {
            max_age_secs: i64::MAX / 4,
            max_skew_secs: i64::MAX / 4,
        },
        ..SignaturePolicy::for_requests(IatWindow {
            max_age_secs: 0,
            max_skew_secs: 0,
        })
    };
    let verified = match (header("signature-input"), header("signature")) {
        (Some(input), Some(signature)) => match verify(
            input,
            signature,
            &message,
            SigningKey::Installation(key),
            installation.as_str(),
            &policy,
            UnixTime::from_secs(0),
        ) {
            Ok(verified) => Some(verified),
            Err(error) => {
                failures.push(format!("signature: {error}"));
                None
            }
        },
        _ => {
            failures.push("no Signature-Input and Signature".into());
            None
        }
    };
    let body = base64::engine::general_purpose::STANDARD.decode(stored.body_base64.trim());
    match (
        header("content-digest").map(httpsig::parse_content_digest),
        body,
    ) {
        (Some(Ok(claimed)), Ok(body)) => {
            let mut digest = httpsig::BodyDigest::new(claimed.iter().map(|(alg, _)| *alg));
            digest.update(&body);
            if !digest.matches(&claimed) {
                failures.push("the body is not the one Content-Digest names".into());
            }
        }
        (_, Err(_)) => failures.push("body_base64 is not standard base64".into()),
        _ => failures.push("no readable Content-Digest".into()),
    }
    ProvenanceReport {
        verified: failures.is_empty(),
        installation_id: installation.as_str().to_string(),
        created: verified.as_ref().map(VerifiedSignature::created),
        covered: verified.map(|v| v.params.components),
        failures,
    }
}

/// The secret session keys derive from, shared by the control plane and every gateway.
pub struct SessionSecret(zeroize::Zeroizing<[u8; 32]>);

impl SessionSecret {
    pub fn new(bytes: [u8; 32]) -> SessionSecret {
        SessionSecret(zeroize::Zeroizing::new(bytes))
    }

    /// The session key of the access token with `jti`: HKDF-SHA-256 of the secret, salted
    /// with medgate's label, the `jti` as info. Stateless, so any gateway recomputes it.
    pub fn session_key(&self, token_jti: &str) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"medgate session-mac v1");
        let info = [token_jti.as_bytes()];
        let prk = salt.extract(self.0.as_slice());
        let okm = prk.expand(&info, ring::hkdf::HKDF_SHA256).ok()?;
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        okm.fill(key.as_mut_slice()).ok()?;
        Some(key)
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(…)")
    }
}

/// What a `session-mac` route requires of a request's signature: label `medgate`,
/// `hmac-sha256` by the token's session key (keyid the token's `jti`), covering the method,
/// the target URI and the token, `created` in the window, a nonce.
pub fn session_policy(window: IatWindow) -> SignaturePolicy {
    SignaturePolicy {
        required: ["@method", "@target-uri", "authorization"]
            .map(String::from)
            .to_vec(),
        ..SignaturePolicy::for_requests(window)
    }
}
