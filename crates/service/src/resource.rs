//! What a DPoP-protected resource answers when it refuses a request (RFC 9449 §7.1, RFC 6750
//! §3): the refusals, their problem documents and `WWW-Authenticate` challenges, and reading the
//! credentials off a request. The gateway and the control plane's sealed-secret endpoint share
//! them, so a client sees one set of refusals.

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use http::header::{
    AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http_body_util::Full;
use medgate_proto::wire::{Problem, problem_type};
use medgate_verify::dpop;

use crate::problem;
use crate::ratelimit::retry_after_secs;

/// The `DPoP` request header.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// RFC 9421 §5.1: what a signature the resource accepts must cover.
pub const ACCEPT_SIGNATURE: HeaderName = HeaderName::from_static("accept-signature");
/// The signature a `dpop+signature` route asks for (a fresh `created` and `nonce`, keyid the
/// token's `cnf.jkt`).
const ACCEPTED_SIGNATURE: &str =
    r#"medgate=("@method" "@target-uri" "content-digest" "authorization");alg="ecdsa-p256-sha256""#;
/// The signature a `session-mac` route asks for (keyid the token's `jti`, the session key).
const ACCEPTED_SESSION_SIGNATURE: &str =
    r#"medgate=("@method" "@target-uri" "authorization");alg="hmac-sha256""#;

/// Why a request was refused. Each maps to one status and problem type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the path could be read differently upstream.
    UnsafePath,
    /// 414: the path is longer than [`path::MAX_PATH`].
    PathTooLong,
    /// 401 without an error code (RFC 6750 §3.1): no credentials at all.
    MissingToken,
    /// 401 `invalid_token`.
    InvalidToken(Why),
    /// 401 `invalid_dpop_proof`.
    InvalidProof(Why),
    /// 401 `invalid_signature`: the route needs an HTTP Message Signature (RFC 9421) over the
    /// request and its body's `Content-Digest`, and it is missing, does not verify, or the
    /// body does not match the digest. With `Accept-Signature` saying what to sign.
    InvalidSignature(Why),
    /// 401 `invalid_signature` on a `session-mac` route: the `hmac-sha256` signature by the
    /// token's session key is missing or does not verify. With `Accept-Signature` saying
    /// what to sign there.
    InvalidSessionSignature(Why),
    /// 413: a body to be checked against its digest is larger than the route reads.
    BodyTooLarge(usize),
    /// 400: the body did not arrive whole (the client stopped sending, or took too long).
    BodyIncomplete,
    /// 400: a tunnel route's polling body is not socket.io the gateway can read.
    TunnelMalformed,
    /// 403: no route rule covers this path and method.
    RouteDenied,
    /// 403 `insufficient_scope`: the scopes the route needs.
    InsufficientScope(Vec<String>),
    /// 429 with `Retry-After`.
    RateLimited(Duration),
    /// 503: the replay cache cannot take more entries.
    Overloaded,
    /// 503 with `Retry-After`: the shared state is unreachable and the route fails closed.
    SharedUnavailable,
}

/// Why a token or proof was refused: a stable code (for the audit tally) and the verifier's own
/// message (for the client), which quotes nothing the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    pub code: &'static str,
    pub detail: String,
}

impl Why {
    pub fn new(code: &'static str, detail: &str) -> Self {
        Why {
            code,
            detail: detail.to_string(),
        }
    }
}

impl From<medgate_verify::token::TokenError> for Why {
    fn from(error: medgate_verify::token::TokenError) -> Self {
        Why {
            code: error.code(),
            detail: error.to_string(),
        }
    }
}

impl From<dpop::ProofError> for Why {
    fn from(error: dpop::ProofError) -> Self {
        Why {
            code: error.code(),
            detail: error.to_string(),
        }
    }
}

impl Refusal {
    /// The refusal's stable reason code, where it has one beyond its kind.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Refusal::InvalidToken(why)
            | Refusal::InvalidProof(why)
            | Refusal::InvalidSignature(why)
            | Refusal::InvalidSessionSignature(why) => Some(why.code),
            _ => None,
        }
    }

    pub fn outcome(&self) -> &'static str {
        match self {
            Refusal::UnsafePath => "bad_request",
            Refusal::PathTooLong => "uri_too_long",
            Refusal::MissingToken => "missing_token",
            Refusal::InvalidToken(_) => "invalid_token",
            Refusal::InvalidProof(_) => "invalid_dpop_proof",
            Refusal::InvalidSignature(_) | Refusal::InvalidSessionSignature(_) => {
                "invalid_signature"
            }
            Refusal::BodyTooLarge(_) => "body_too_large",
            Refusal::BodyIncomplete => "body_incomplete",
            Refusal::TunnelMalformed => "tunnel_malformed",
            Refusal::RouteDenied => "route_denied",
            Refusal::InsufficientScope(_) => "insufficient_scope",
            Refusal::RateLimited(_) => "rate_limited",
            Refusal::Overloaded => "overloaded",
            Refusal::SharedUnavailable => "shared_state_unavailable",
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            Refusal::InvalidToken(why)
            | Refusal::InvalidProof(why)
            | Refusal::InvalidSignature(why)
            | Refusal::InvalidSessionSignature(why) => Some(why.detail.clone()),
            Refusal::BodyTooLarge(limit) => Some(format!(
                "a signed body is at most {limit} bytes on this route"
            )),
            Refusal::InsufficientScope(scopes) => {
                Some(format!("requires scope {}", scopes.join(" ")))
            }
            _ => None,
        }
    }

    /// The response: a problem document and, for 401 and 403 on scopes, `WWW-Authenticate`
    /// (RFC 9449 §7.1, RFC 6750 §3).
    pub fn response(&self, algs: &str) -> Response<Full<Bytes>> {
        let (problem_type, title, status) = match self {
            Refusal::UnsafePath => (problem_type::MALFORMED_REQUEST, "Path not accepted", 400),
            Refusal::PathTooLong => (
                problem_type::MALFORMED_REQUEST,
                "Request target too long",
                414,
            ),
            Refusal::MissingToken | Refusal::InvalidToken(_) => {
                (problem_type::INVALID_TOKEN, "Invalid access token", 401)
            }
            Refusal::InvalidProof(_) => {
                (problem_type::INVALID_DPOP_PROOF, "Invalid DPoP proof", 401)
            }
            Refusal::InvalidSignature(_) | Refusal::InvalidSessionSignature(_) => (
                problem_type::INVALID_SIGNATURE,
                "Invalid request signature",
                401,
            ),
            Refusal::BodyTooLarge(_) => (problem_type::PAYLOAD_TOO_LARGE, "Body too large", 413),
            Refusal::BodyIncomplete => (
                problem_type::MALFORMED_REQUEST,
                "Request body incomplete",
                400,
            ),
            Refusal::TunnelMalformed => (
                problem_type::MALFORMED_REQUEST,
                "Tunnel payload not accepted",
                400,
            ),
            Refusal::RouteDenied => (problem_type::ROUTE_DENIED, "Route not allowed", 403),
            Refusal::InsufficientScope(_) => {
                (problem_type::INSUFFICIENT_SCOPE, "Insufficient scope", 403)
            }
            Refusal::RateLimited(_) => (problem_type::RATE_LIMITED, "Too many requests", 429),
            Refusal::Overloaded => (problem_type::UNAVAILABLE, "Gateway overloaded", 503),
            Refusal::SharedUnavailable => (
                problem_type::UNAVAILABLE,
                "Replay and rate state unavailable",
                503,
            ),
        };
        let mut document = Problem::new(problem_type, title, status);
        document.detail = self.detail();
        let mut response = problem::response(&document);
        let challenge = match self {
            Refusal::MissingToken => Some(format!(r#"DPoP algs="{algs}""#)),
            Refusal::InvalidToken(why) => {
                Some(www_authenticate("invalid_token", &why.detail, algs))
            }
            Refusal::InvalidProof(why) => {
                Some(www_authenticate("invalid_dpop_proof", &why.detail, algs))
            }
            Refusal::InvalidSignature(why) | Refusal::InvalidSessionSignature(why) => {
                Some(www_authenticate("invalid_signature", &why.detail, algs))
            }
            Refusal::InsufficientScope(scopes) => Some(format!(
                r#"DPoP error="insufficient_scope", scope="{}", algs="{algs}""#,
                scopes.join(" ")
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|text| HeaderValue::from_str(&text).ok()) {
            response.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        let accepted = match self {
            Refusal::InvalidSignature(_) => Some(ACCEPTED_SIGNATURE),
            Refusal::InvalidSessionSignature(_) => Some(ACCEPTED_SESSION_SIGNATURE),
            _ => None,
        };
        if let Some(accepted) = accepted {
            response
                .headers_mut()
                .insert(ACCEPT_SIGNATURE, HeaderValue::from_static(accepted));
        }
        let wait = match self {
            Refusal::RateLimited(wait) => Some(*wait),
            Refusal::SharedUnavailable => Some(crate::shared::BACKOFF),
            _ => None,
        };
        if let Some(wait) = wait {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
        }
        response
    }
}

fn www_authenticate(error: &str, description: &str, algs: &str) -> String {
    // Our own error texts; quotes and backslashes are not in them, but never let them break
    // the quoted-string.
    let description: String = description
        .chars()
        .filter(|c| *c != '"' && *c != '\\')
        .collect();
    format!(r#"DPoP error="{error}", error_description="{description}", algs="{algs}""#)
}

/// A header that must appear at most once came twice, or not in ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotSingle;

/// The one value of header `name`, if any.
pub fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h str>, NotSingle> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(value), None) => value.to_str().map(Some).map_err(|_| NotSingle),
        (Some(_), Some(_)) => Err(NotSingle),
    }
}

/// Step 2 of a DPoP-protected request: the access token of `Authorization: DPoP <token>`,
/// exactly one header, with the DPoP scheme.
pub fn access_token(headers: &HeaderMap) -> Result<&str, Refusal> {
    let authorization = single_header(headers, &AUTHORIZATION)
        .map_err(|NotSingle| {
            Refusal::InvalidToken(Why::new(
                "authorization_header",
                "send exactly one Authorization header, in ASCII",
            ))
        })?
        .ok_or(Refusal::MissingToken)?;
    let (scheme, token) = authorization.split_once(' ').unwrap_or((authorization, ""));
    if !scheme.eq_ignore_ascii_case("DPoP") {
        return Err(Refusal::InvalidToken(Why::new(
            "wrong_scheme",
            "the token is DPoP-bound; use the DPoP scheme",
        )));
    }
    Ok(token.trim())
}

/// The proof of `DPoP: <proof>`: exactly one header, in ASCII.
pub fn dpop_proof(headers: &HeaderMap) -> Result<&str, Refusal> {
    single_header(headers, &DPOP)
        .map_err(|NotSingle| {
            Refusal::InvalidProof(Why::new(
                "dpop_header",
                "send exactly one DPoP header, in ASCII",
            ))
        })?
        .ok_or_else(|| Refusal::InvalidProof(Why::new("missing_proof", "a DPoP proof is required")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn refusals_carry_the_rfc_challenges() {
        let algs = "ES256 EdDSA";
        let missing = Refusal::MissingToken.response(algs);
        assert_eq!(missing.status(), 401);
        assert_eq!(
            missing.headers()[WWW_AUTHENTICATE],
            r#"DPoP algs="ES256 EdDSA""#
        );
        let invalid =
            Refusal::InvalidToken(Why::new("expired", "access token has expired")).response(algs);
        assert_eq!(
            invalid.headers()[WWW_AUTHENTICATE],
            r#"DPoP error="invalid_token", error_description="access token has expired", algs="ES256 EdDSA""#
        );
        let proof = Refusal::InvalidProof(Why::new("test", "x\"y")).response(algs);
        assert!(
            proof.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_dpop_proof", error_description="xy""#)
        );
        let scope = Refusal::InsufficientScope(vec!["entries:write".into()]).response(algs);
        assert_eq!(scope.status(), 403);
        assert!(
            scope.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains(r#"scope="entries:write""#)
        );
        let limited = Refusal::RateLimited(Duration::from_millis(1500)).response(algs);
        assert_eq!(
            (limited.status().as_u16(), &limited.headers()[RETRY_AFTER]),
            (429, &HeaderValue::from(2u64))
        );
        assert_eq!(Refusal::RouteDenied.response(algs).status(), 403);
        assert_eq!(Refusal::UnsafePath.response(algs).status(), 400);
    }

    #[test]
    fn credentials_are_read_once_each_and_with_the_dpop_scheme() {
        let headers = |pairs: &[(&HeaderName, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_str(value).unwrap());
            }
            map
        };
        assert_eq!(
            access_token(&headers(&[(&AUTHORIZATION, "DPoP  tok ")])),
            Ok("tok")
        );
        assert_eq!(access_token(&headers(&[])), Err(Refusal::MissingToken));
        for bad in [
            headers(&[(&AUTHORIZATION, "Bearer tok")]),
            headers(&[(&AUTHORIZATION, "DPoP a"), (&AUTHORIZATION, "DPoP b")]),
        ] {
            assert!(matches!(access_token(&bad), Err(Refusal::InvalidToken(_))));
        }
        assert_eq!(dpop_proof(&headers(&[(&DPOP, "p")])), Ok("p"));
        for bad in [headers(&[]), headers(&[(&DPOP, "a"), (&DPOP, "b")])] {
            assert!(matches!(dpop_proof(&bad), Err(Refusal::InvalidProof(_))));
        }
    }
}
