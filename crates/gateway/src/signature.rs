//! Routes with `proof = "dpop+signature"`: after the DPoP checks passed
//! ([`crate::Gateway::authorize`]), the request must also carry an HTTP Message Signature
//! (RFC 9421, label `medgate`, `ecdsa-p256-sha256` by the installation key the proof was
//! signed with, keyid its thumbprint) covering `@method`, `@target-uri`, `content-digest` and
//! `authorization`, and a body that is the one its `Content-Digest` (RFC 9530) names.
//!
//! In order ([`check`]):
//!
//! 1. Exactly one `Signature-Input`, `Signature` and `Content-Digest`.
//! 2. The digest field names `sha-256` or `sha-512` (others are ignored).
//! 3. The signature verifies ([`medgate_verify::httpsig::verify`]) over the request as the
//!    client addressed it: `@target-uri` is `gateway.public_url`, the canonical path and the
//!    query, never the hop to the upstream.
//! 4. Its `nonce` takes a place in the replay cache (filed apart from proof `jti`s), within
//!    the installation's share.
//! 5. The body, read whole up to `gateway.max_signed_body` (413 beyond; a declared
//!    `Content-Length` over it is refused before reading), in the coded bytes as received
//!    (`Content-Encoding` is not undone), matches every digest claimed.
//!
//! The body is then forwarded as read, with the signature fields, so the upstream can keep
//! them with the record (`X-Medgate-Key` names the key). With `[redis]`, the request's DPoP
//! `jti` is already single-use across gateways; the nonce is checked in this gateway's cache.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName};
use http::request::Parts;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use medgate_proto::httpsig::{BodyDigest, Fields, RequestMessage, parse_content_digest};
use medgate_service::replay::ReplayError;
use medgate_service::resource::{Refusal, Why, single_header};
use medgate_verify::UnixTime;
use medgate_verify::httpsig::{self, SigningKey};

use crate::{Authorized, Inner};

pub(crate) const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
pub(crate) const SIGNATURE: HeaderName = HeaderName::from_static("signature");
pub(crate) const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");

fn refused(code: &'static str, detail: &str) -> Refusal {
    Refusal::InvalidSignature(Why::new(code, detail))
}

/// Steps 1–5; the body, read and checked, to forward.
pub(crate) async fn check(
    inner: &Inner,
    parts: &Parts,
    body: Incoming,
    authorized: &Authorized,
    now: UnixTime,
) -> Result<Bytes, Refusal> {
    // Step 1.
    let one = |name: &HeaderName| {
        single_header(&parts.headers, name)
            .map_err(|_| {
                refused(
                    "signature_malformed",
                    "send exactly one Signature-Input, Signature and Content-Digest",
                )
            })?
            .ok_or_else(|| {
                refused(
                    "signature_missing",
                    "this route needs an HTTP Message Signature (label medgate) and Content-Digest",
                )
            })
    };
    let (input, signature, digest) = (
        one(&SIGNATURE_INPUT)?,
        one(&SIGNATURE)?,
        one(&CONTENT_DIGEST)?,
    );
    // Step 2.
    let claimed = parse_content_digest(digest).map_err(|_| {
        refused(
            "digest_malformed",
            "Content-Digest must name sha-256 or sha-512 as a byte sequence",
        )
    })?;
    // Step 3.
    let target_uri = target_uri(inner, &authorized.path, parts)?;
    let key = authorized
        .key
        .as_ref()
        .ok_or_else(|| refused("signature_key", "the request proved no installation key"))?;
    let message = RequestMessage {
        method: parts.method.as_str(),
        target_uri: &target_uri,
        fields: HeaderFields(&parts.headers),
    };
    let verified = httpsig::verify(
        input,
        signature,
        &message,
        SigningKey::Installation(key),
        &authorized.jkt,
        &inner.signature_policy,
        now,
    )
    .map_err(|error| refused(error.code(), &error.to_string()))?;
    // Step 4.
    let window = inner.signature_policy.window;
    let acceptable_until = UnixTime::from_secs(verified.created()).plus(window.max_age_secs);
    let owner = authorized.owner;
    inner
        .replays
        .admit(verified.replay_key(), owner, acceptable_until, now)
        .map_err(|error| match error {
            ReplayError::Replayed => refused(
                "signature_replayed",
                "the signature's nonce was already used",
            ),
            ReplayError::ShareExhausted => Refusal::RateLimited(Duration::from_secs(1)),
            ReplayError::Full => Refusal::Overloaded,
        })?;
    // Step 5.
    let bytes = read_body(inner, parts, body, inner.params.max_signed_body).await?;
    let mut computed = BodyDigest::new(claimed.iter().map(|(alg, _)| *alg));
    computed.update(&bytes);
    if !computed.matches(&claimed) {
        return Err(refused(
            "digest_mismatch",
            "the body is not the one its Content-Digest names",
        ));
    }
    Ok(bytes)
}

/// The whole body, at most `limit` bytes (413 beyond, by its `Content-Length` or as it
/// arrives), within the upstream timeout (400 when it does not arrive whole).
pub(crate) async fn read_body(
    inner: &Inner,
    parts: &Parts,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, Refusal> {
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Refusal::BodyTooLarge(limit));
    }
    let read = tokio::time::timeout(
        inner.params.upstream_timeout,
        Limited::new(body, limit).collect(),
    )
    .await
    .map_err(|_| Refusal::BodyIncomplete)?;
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(Refusal::BodyTooLarge(limit))
        }
        Err(_) => Err(Refusal::BodyIncomplete),
    }
}

/// The URI the client addressed: the gateway's public URL, the canonical path and the query
/// (never the hop to the upstream).
pub(crate) fn target_uri(inner: &Inner, path: &str, parts: &Parts) -> Result<String, Refusal> {
    let mut uri = htu(inner, path)?;
    if let Some(query) = parts.uri.query() {
        uri.push('?');
        uri.push_str(query);
    }
    Ok(uri)
}

/// The URI a DPoP proof's `htu` must name: the gateway's public URL and the canonical path.
pub(crate) fn htu(inner: &Inner, path: &str) -> Result<String, Refusal> {
    inner
        .htu_base
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|base| base.join(path))
        .map_err(|error| Refusal::InvalidProof(error.into()))
}

/// The request's header fields as the signature base reads them, straight from the header
/// map, for the covered components only (values that are not visible ASCII are left out, so a
/// component naming one is absent).
pub(crate) struct HeaderFields<'a>(pub &'a HeaderMap);

impl Fields for HeaderFields<'_> {
    fn values(&self, name: &str) -> Vec<String> {
        self.0
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok().map(str::to_string))
            .collect()
    }
}
