//! The hop to the upstream, for an [`Authorized`] request: the request stripped of what
//! speaks for someone else, the route's credentials injected, medgate's own headers set, and
//! the answer streamed back. A failed hop is an [`UpstreamError`], with its source kept for the
//! log and whether a retry might help.

use std::net::IpAddr;
use std::time::Instant;

use http::header::{CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use medgate_proto::redact::short;
use medgate_proto::wire::{Problem, problem_type};
use medgate_service::problem;

use crate::authorize::{Authorized, Subject};
use crate::routes::ProofMode;
use crate::signature::{CONTENT_DIGEST, SIGNATURE, SIGNATURE_INPUT};
use crate::{Gateway, GatewayBody, UpstreamBody, inject, local};

const X_INSTALLATION: HeaderName = HeaderName::from_static("x-medgate-installation");
const X_CREDENTIAL: HeaderName = HeaderName::from_static("x-medgate-credential");
const X_PARTNER: HeaderName = HeaderName::from_static("x-medgate-partner");
const X_APP: HeaderName = HeaderName::from_static("x-medgate-app");
const X_SCOPE: HeaderName = HeaderName::from_static("x-medgate-scope");
const X_KEY: HeaderName = HeaderName::from_static("x-medgate-key");
const X_AUTHORIZATION: HeaderName = HeaderName::from_static("x-medgate-authorization");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Headers a client must not set for the upstream, by normalised name (lower case, `_` read as
/// `-`, since CGI and WSGI servers merge the two): credentials the gateway consumed, the
/// identity and forwarding headers the gateway sets itself, and rewrite and method overrides
/// that would make the upstream act on another route or method than the one checked.
const SPOOFABLE: [&str; 21] = [
    "authorization",
    "x-medgate-key",
    "x-medgate-authorization",
    "dpop",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-override-url",
];
/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The scheme and authority of the gateway's public URL, as forwarding headers.
pub(crate) fn forwarded_headers(public_url: &str) -> Vec<(HeaderName, HeaderValue)> {
    let Ok(public) = public_url.parse::<Uri>() else {
        return Vec::new();
    };
    let proto = public
        .scheme_str()
        .and_then(|s| HeaderValue::from_str(s).ok())
        .map(|value| (X_FORWARDED_PROTO, value));
    let host = public
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .map(|value| (X_FORWARDED_HOST, value));
    proto.into_iter().chain(host).collect()
}

/// Why the hop to the upstream failed (after pingora's error model: what failed, its cause,
/// and whether trying again might succeed).
#[derive(Debug)]
pub enum UpstreamError {
    /// No upstream is configured (503).
    NotConfigured,
    /// The route injects a secret the app does not have (503): an operator must set it.
    SecretUnavailable { secret: String },
    /// The upstream URI could not be built from the request (400).
    BadUri(http::Error),
    /// The connection or exchange failed (502); `pin_mismatch` when a pinned upstream
    /// presented another key.
    Exchange {
        pin_mismatch: bool,
        source: hyper_util::client::legacy::Error,
    },
    /// No response headers within `upstream_timeout` (504).
    Timeout,
    /// The upstream's side of a WebSocket tunnel could not be opened (502); the cause, for
    /// the log.
    Tunnel(String),
}

impl UpstreamError {
    /// The outcome label the metrics count it under.
    pub fn outcome(&self) -> &'static str {
        match self {
            UpstreamError::NotConfigured => "no_upstream",
            UpstreamError::SecretUnavailable { .. } => "secret_unavailable",
            UpstreamError::BadUri(_) => "bad_request",
            UpstreamError::Exchange {
                pin_mismatch: true, ..
            } => "upstream_pin_mismatch",
            UpstreamError::Exchange { .. } => "upstream_error",
            UpstreamError::Timeout => "upstream_timeout",
            UpstreamError::Tunnel(_) => "upstream_error",
        }
    }

    /// Whether the same request might succeed later without anyone changing anything: an
    /// upstream that was down or slow may recover; a missing configuration, a bad URI or a
    /// pinned key that does not match will not.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            UpstreamError::Exchange {
                pin_mismatch: false,
                ..
            } | UpstreamError::Timeout
                | UpstreamError::Tunnel(_)
        )
    }

    /// The problem answer the client gets; the cause stays in the log.
    pub fn response(&self, algs: &str) -> Response<GatewayBody> {
        let (title, status) = match self {
            UpstreamError::NotConfigured => ("No upstream configured", 503),
            UpstreamError::SecretUnavailable { .. } => ("Upstream credential not configured", 503),
            UpstreamError::BadUri(_) => {
                return local(crate::Refusal::UnsafePath.response(algs));
            }
            UpstreamError::Exchange { .. } | UpstreamError::Tunnel(_) => {
                ("Upstream unavailable", 502)
            }
            UpstreamError::Timeout => ("Upstream timed out", 504),
        };
        local(problem::response(&Problem::new(
            problem_type::UPSTREAM_UNAVAILABLE,
            title,
            status,
        )))
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::NotConfigured => f.write_str("no upstream is configured"),
            UpstreamError::SecretUnavailable { .. } => {
                f.write_str("the route injects a secret this app does not have")
            }
            UpstreamError::BadUri(error) => write!(f, "upstream URI: {error}"),
            UpstreamError::Exchange { source, .. } => write!(f, "upstream request: {source}"),
            UpstreamError::Timeout => f.write_str("the upstream did not answer in time"),
            UpstreamError::Tunnel(cause) => write!(f, "upstream WebSocket: {cause}"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::BadUri(error) => Some(error),
            UpstreamError::Exchange { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Gateway {
    /// Sends `request` upstream and answers with what comes back; a failed hop is counted,
    /// logged with its cause, and answered with a problem.
    pub(crate) async fn forward(
        &self,
        authorized: Authorized,
        request: Request<UpstreamBody>,
        client: IpAddr,
    ) -> Response<GatewayBody> {
        let installation = short(&authorized.installation_id).to_string();
        let app = authorized.app_id.clone();
        match self.exchange(authorized, request, client).await {
            Ok(response) => {
                self.counted("forwarded", None);
                response
            }
            Err(error) => {
                let outcome = error.outcome();
                match &error {
                    UpstreamError::SecretUnavailable { secret } => tracing::error!(
                        app = app.as_str(),
                        secret = secret.as_str(),
                        "the route injects a secret this app does not have (medgate admin secret set)"
                    ),
                    UpstreamError::Exchange { source, .. } => tracing::warn!(
                        error = %source,
                        installation = installation.as_str(),
                        outcome,
                        retryable = error.retryable(),
                        "upstream request failed"
                    ),
                    _ => {}
                }
                self.counted(outcome, None);
                error.response(&self.algs())
            }
        }
    }

    /// The request head as the upstream gets it: hop-by-hop and spoofable headers and the
    /// client's upstream credentials removed, the route's injected, the URI on the upstream,
    /// medgate's own headers and the forwarding headers set.
    pub(crate) fn upstream_parts(
        &self,
        authorized: &Authorized,
        mut parts: http::request::Parts,
        client: IpAddr,
    ) -> Result<(http::request::Parts, inject::Injected), UpstreamError> {
        let inner = &self.inner;
        let upstream = inner
            .params
            .upstream
            .as_ref()
            .ok_or(UpstreamError::NotConfigured)?;
        // On signed routes, the verified signature fields and the token they cover are kept
        // for the upstream (below), whatever `Connection` names. On session-MAC routes the
        // session signature goes no further: with the token from elsewhere it would let
        // whoever reads the upstream's records replay the read to another gateway.
        let signed: Vec<(HeaderName, HeaderValue)> = match authorized.proof_mode {
            ProofMode::DpopSignature => [
                (X_AUTHORIZATION, http::header::AUTHORIZATION),
                (SIGNATURE_INPUT, SIGNATURE_INPUT),
                (SIGNATURE, SIGNATURE),
                (CONTENT_DIGEST, CONTENT_DIGEST),
            ]
            .into_iter()
            .filter_map(|(to, from)| parts.headers.get(&from).map(|v| (to, v.clone())))
            .collect(),
            ProofMode::SessionMac => {
                parts.headers.remove(&SIGNATURE_INPUT);
                parts.headers.remove(&SIGNATURE);
                Vec::new()
            }
            ProofMode::Dpop => Vec::new(),
        };
        strip_hop_by_hop(&mut parts.headers);
        strip_spoofable(&mut parts.headers);
        // Credentials for the upstream that clients must not send go; the route's own
        // replace whatever the client sent in their place.
        let stripped = inner
            .params
            .strip
            .apply(&mut parts.headers, parts.uri.query());
        let query = stripped.query(parts.uri.query());
        let injected = inject::apply(
            &authorized.inject,
            &inner.secrets,
            &authorized.app_id,
            &mut parts.headers,
            query,
        )
        .map_err(|unavailable| UpstreamError::SecretUnavailable {
            secret: unavailable.secret,
        })?;
        parts.uri = upstream_uri(upstream, &authorized.path, injected.query(query))
            .map_err(UpstreamError::BadUri)?;
        if let Some(authority) = upstream
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(HOST, authority);
        }
        // What the upstream may rely on is set here, replacing anything the client sent.
        let subject = match authorized.subject {
            Subject::Installation => X_INSTALLATION,
            Subject::Credential => X_CREDENTIAL,
            Subject::Partner => X_PARTNER,
        };
        for (name, value) in [
            (subject, authorized.installation_id.as_str()),
            (X_APP, authorized.app_id.as_str()),
            (X_SCOPE, authorized.scope.as_str()),
        ] {
            // A partner belongs to no app.
            if value.is_empty() {
                continue;
            }
            if let Ok(value) = HeaderValue::from_str(value) {
                parts.headers.insert(name, value);
            }
        }
        // A verified signature travels on with the key that made it and the token it covers
        // (DPoP-bound, so useless without the installation key, and expiring within minutes),
        // for the upstream to keep with the record and re-verify later (provenance).
        if authorized.proof_mode == ProofMode::DpopSignature {
            if let Ok(value) = HeaderValue::from_str(&authorized.jkt) {
                parts.headers.insert(X_KEY, value);
            }
            for (name, value) in signed {
                parts.headers.insert(name, value);
            }
        }
        if let Ok(value) = HeaderValue::from_str(&client.to_string()) {
            parts.headers.insert(X_FORWARDED_FOR, value);
        }
        for (name, value) in &inner.forwarded {
            parts.headers.insert(name, value.clone());
        }
        Ok((parts, injected))
    }

    async fn exchange(
        &self,
        authorized: Authorized,
        request: Request<UpstreamBody>,
        client: IpAddr,
    ) -> Result<Response<GatewayBody>, UpstreamError> {
        let inner = &self.inner;
        let (parts, body) = request.into_parts();
        let (parts, injected) = self.upstream_parts(&authorized, parts, client)?;
        let started = Instant::now();
        let sent = inner.client.request(Request::from_parts(parts, body));
        let response = tokio::time::timeout(inner.params.upstream_timeout, sent)
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|source| UpstreamError::Exchange {
                // A pinned upstream presenting another key is a MitM on the hop, or a key
                // rotated without its pin: told apart from an upstream that is down.
                pin_mismatch: medgate_trust::pins::find_pin_mismatch(&source).is_some(),
                source,
            })?;
        inner.metrics.upstream(started.elapsed().as_secs_f64());
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if injected.scrub(&mut parts.headers) > 0 {
            tracing::warn!(
                app = authorized.app_id.as_str(),
                "the upstream repeated an injected query credential in a URL header; removed"
            );
        }
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

pub(crate) fn upstream_uri(
    upstream: &Uri,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, http::Error> {
    let prefix = upstream.path().trim_end_matches('/');
    let path_and_query = match query {
        Some(query) => format!("{prefix}{path}?{query}"),
        None => format!("{prefix}{path}"),
    };
    let mut builder = Uri::builder().path_and_query(path_and_query);
    if let Some(scheme) = upstream.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = upstream.authority() {
        builder = builder.authority(authority.clone());
    }
    builder.build()
}

/// Removes every header whose normalised name is in [`SPOOFABLE`] or starts with
/// `x-medgate-`.
fn strip_spoofable(headers: &mut HeaderMap) {
    // Compared in place, `_` read as `-`: nothing is allocated for a request that sends none.
    let same = |sent: &[u8], wanted: &[u8]| {
        sent.len() == wanted.len()
            && sent
                .iter()
                .zip(wanted)
                .all(|(&s, &w)| s == w || (s == b'_' && w == b'-'))
    };
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str().as_bytes();
            name.get(..10).is_some_and(|head| same(head, b"x-medgate-"))
                || SPOOFABLE.iter().any(|wanted| same(name, wanted.as_bytes()))
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uris_keep_the_prefix_and_query() {
        let upstream: Uri = "http://127.0.0.1:1337/ns/".parse().unwrap();
        assert_eq!(
            upstream_uri(&upstream, "/api/v1/entries.json", Some("count=10")).unwrap(),
            "http://127.0.0.1:1337/ns/api/v1/entries.json?count=10"
        );
    }

    #[test]
    fn headers_that_speak_for_someone_else_are_removed_by_normalised_name() {
        let mut headers = HeaderMap::new();
        for name in [
            "x-medgate-scope",
            "x_medgate_scope",
            "X_Medgate_Installation",
            "x-forwarded-for",
            "x_forwarded_for",
            "forwarded",
            "x-forwarded-host",
            "x-real-ip",
            "x-original-url",
            "x-rewrite-url",
            "x-http-method-override",
            "x_http_method_override",
            "authorization",
            "dpop",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("spoofed"),
            );
        }
        headers.insert("accept", HeaderValue::from_static("*/*"));
        headers.insert("x-request-id", HeaderValue::from_static("r-1"));
        strip_spoofable(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-request-id"]);
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("accept"));
    }
}
