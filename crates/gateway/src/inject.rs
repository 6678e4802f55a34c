//! Upstream credentials the gateway adds to a forwarded request, so that no app holds them.
//!
//! A route names them (`inject = [{ header = "api-secret", secret = "nightscout", encoding =
//! "sha1-hex" }]`); the values are the token's app's operator secrets (`medgate admin secret`),
//! sealed in the store and opened here at every refresh. Injection runs after every check
//! passed, on the request about to be forwarded: any copy the client sent (a header by its
//! normalised name, a query parameter by its decoded name) is removed first, then the value
//! is added. A route whose secret the app does not have is refused (503) rather than forwarded
//! without it. Values are never logged, and never leave this module but in the forwarded
//! request.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use medgate_proto::uri::is_unreserved;
use medgate_proto::wire::names;
use medgate_store::SecretRecord;
use medgate_store::seal::{Sealer, secret_label};
use parking_lot::RwLock;
use serde::Deserialize;
use zeroize::Zeroizing;

/// The longest query parameter name injected.
const MAX_PARAMETER_LEN: usize = 64;

/// Headers the gateway sets or that frame the message: never injected.
const RESERVED: [&str; 12] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// One injection as written in a route (`[[gateway.routes]] inject = [...]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectConfig {
    /// The header to set; exactly one of `header` and `query`.
    #[serde(default)]
    pub header: Option<String>,
    /// The query parameter to set.
    #[serde(default)]
    pub query: Option<String>,
    /// The name of the app's secret (`medgate admin secret set APP NAME`).
    pub secret: String,
    #[serde(default)]
    pub encoding: Encoding,
}

/// How the stored value becomes the sent one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// As stored.
    #[default]
    Plain,
    /// Lowercase hex of its SHA-1: what Nightscout's `api-secret` header carries.
    Sha1Hex,
    /// The stored value is a Nightscout access token; sent is `Bearer <JWT>`, the JWT the
    /// upstream's `/api/v2/authorization/request/<token>` hands out for it (what Nightscout's
    /// v3 API takes), fetched in the background and again before it expires
    /// (`crate::upstream_jwt`). Only in the `authorization` header.
    NightscoutJwt,
}

#[derive(Debug, Clone)]
enum Target {
    Header(HeaderName),
    Query(String),
}

/// A compiled injection.
#[derive(Debug, Clone)]
pub struct Injection {
    target: Target,
    secret: String,
    encoding: Encoding,
}

impl Injection {
    pub fn compile(config: &InjectConfig) -> Result<Injection, String> {
        if !names::is_secret_name(&config.secret) {
            return Err("inject: secret must be 1-64 characters of a-z 0-9 _ -".into());
        }
        if config.encoding == Encoding::NightscoutJwt
            && !config
                .header
                .as_deref()
                .is_some_and(|h| h.eq_ignore_ascii_case("authorization"))
        {
            return Err("inject: encoding nightscout-jwt goes in header \"authorization\"".into());
        }
        let target = match (&config.header, &config.query) {
            (Some(header), None) => Target::Header(
                credential_header(header).map_err(|problem| format!("inject: {problem}"))?,
            ),
            (None, Some(query)) => Target::Query(
                credential_parameter(query).map_err(|problem| format!("inject: {problem}"))?,
            ),
            _ => return Err("inject: name exactly one of header and query".into()),
        };
        Ok(Injection {
            target,
            secret: config.secret.clone(),
            encoding: config.encoding,
        })
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }
}

/// A header that may carry a credential for the upstream: a valid name the gateway does not
/// set or need itself.
fn credential_header(header: &str) -> Result<HeaderName, String> {
    let name = HeaderName::from_bytes(header.as_bytes())
        .map_err(|_| "header is not a header name".to_string())?;
    let normalised = normalised(&name);
    if RESERVED.contains(&normalised.as_str()) || normalised.starts_with("x-medgate-") {
        return Err(format!(
            "the gateway sets {normalised} itself; it cannot carry a secret"
        ));
    }
    Ok(name)
}

/// A query parameter that may carry a credential: 1–64 unreserved characters.
fn credential_parameter(query: &str) -> Result<String, String> {
    if !(1..=MAX_PARAMETER_LEN).contains(&query.len()) || !query.bytes().all(is_unreserved) {
        return Err("query must be 1-64 characters of A-Z a-z 0-9 - . _ ~".into());
    }
    Ok(query.to_string())
}

/// A header name as CGI and WSGI servers read it (`_` merged with `-`).
fn normalised(name: &HeaderName) -> String {
    name.as_str().replace('_', "-")
}

/// Removes every header whose normalised name is `name`'s.
fn remove_header(headers: &mut HeaderMap, name: &HeaderName) {
    let wanted = normalised(name);
    let copies: Vec<HeaderName> = headers
        .keys()
        .filter(|sent| normalised(sent) == wanted)
        .cloned()
        .collect();
    for copy in copies {
        headers.remove(copy);
    }
}

/// The query without every parameter named in `parameters` (in any spelling, as
/// [`names_parameter`] reads them); `None` when nothing is left.
fn without_parameters(query: &str, parameters: &[String]) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            !pair.is_empty()
                && !parameters
                    .iter()
                    .any(|parameter| names_parameter(pair, parameter))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The decoded value of the first query parameter named exactly (after decoding) one of
/// `names`: where a client put a credential.
pub(crate) fn decoded_parameter<'a>(
    query: &'a str,
    names: &[String],
) -> Option<std::borrow::Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = decoded_name(name);
        names
            .iter()
            .any(|wanted| wanted.as_bytes() == name.as_slice())
            .then(|| {
                // Decoded only when there is something to decode.
                if value.contains(['%', '+']) {
                    std::borrow::Cow::Owned(
                        String::from_utf8_lossy(&decoded_name(value)).into_owned(),
                    )
                } else {
                    std::borrow::Cow::Borrowed(value)
                }
            })
    })
}

/// Credentials for the upstream that clients must not send through the gateway (`[gateway]
/// strip_headers`, `strip_query`): a Nightscout site's `api-secret` header and its `secret`,
/// `token` and `api_secret` parameters, say. Removed from every forwarded request, whatever
/// the route, before the route's own credentials are injected, so that an app's or a
/// follower's copy of the site-wide secret never reaches the upstream.
#[derive(Debug, Clone, Default)]
pub struct Strip {
    headers: Vec<HeaderName>,
    parameters: Vec<String>,
}

impl Strip {
    pub fn compile(headers: &[String], parameters: &[String]) -> Result<Strip, String> {
        Ok(Strip {
            headers: headers
                .iter()
                .map(|h| credential_header(h))
                .collect::<Result<_, _>>()
                .map_err(|problem| format!("gateway.strip_headers: {problem}"))?,
            parameters: parameters
                .iter()
                .map(|q| credential_parameter(q))
                .collect::<Result<_, _>>()
                .map_err(|problem| format!("gateway.strip_query: {problem}"))?,
        })
    }

    /// Removes the listed headers; answers the query to forward in place of `query`
    /// (`None` when unchanged or when nothing is left: see [`Stripped`]).
    pub fn apply(&self, headers: &mut HeaderMap, query: Option<&str>) -> Stripped {
        for name in &self.headers {
            remove_header(headers, name);
        }
        match query {
            Some(query) if !self.parameters.is_empty() => {
                Stripped::Query(without_parameters(query, &self.parameters))
            }
            _ => Stripped::Unchanged,
        }
    }
}

/// The query after [`Strip::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stripped {
    Unchanged,
    /// Rewritten: what is left, if anything.
    Query(Option<String>),
}

impl Stripped {
    pub fn query<'a>(&'a self, original: Option<&'a str>) -> Option<&'a str> {
        match self {
            Stripped::Unchanged => original,
            Stripped::Query(query) => query.as_deref(),
        }
    }
}

/// An opened secret's value.
type Value = Arc<Zeroizing<Vec<u8>>>;

/// The opened secrets of every app, by app and name, with the version each was opened at.
#[derive(Default)]
pub struct SecretCache {
    entries: RwLock<HashMap<(String, String), (i64, Value)>>,
    /// Upstream JWTs for `nightscout-jwt` injections, by app, secret and the secret's version
    /// they were fetched with, and when each expires.
    jwts: RwLock<HashMap<(String, String), UpstreamJwt>>,
}

/// A JWT the upstream handed out for an app's access token.
#[derive(Clone)]
pub struct UpstreamJwt {
    /// The version of the secret it was fetched for: a rotated secret needs a new one.
    pub version: i64,
    pub bearer: Arc<Zeroizing<String>>,
    pub expires_at: i64,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretCache({} secrets)", self.entries.read().len())
    }
}

impl SecretCache {
    /// Replaces the cache with `records` (every app's secrets, as stored), opening only those
    /// whose version changed. A secret that cannot be opened (another master key) is left
    /// out, and logged by app and name.
    pub fn update(&self, records: Vec<SecretRecord>, sealer: &Sealer) {
        let old = self.entries.read();
        let mut next = HashMap::with_capacity(records.len());
        for record in records {
            let key = (record.app_id, record.name);
            if let Some((version, value)) = old.get(&key).filter(|(v, _)| *v == record.version) {
                next.insert(key, (*version, Arc::clone(value)));
                continue;
            }
            let label = secret_label(&key.0, &key.1, record.version);
            match sealer.open(&label, &record.sealed) {
                Ok(value) => {
                    next.insert(key, (record.version, Arc::new(value)));
                }
                Err(error) => tracing::error!(
                    app = key.0.as_str(),
                    secret = key.1.as_str(),
                    %error,
                    "secret cannot be opened; routes injecting it answer 503"
                ),
            }
        }
        drop(old);
        *self.entries.write() = next;
    }

    fn get(&self, app_id: &str, name: &str) -> Option<Value> {
        self.entries
            .read()
            .get(&(app_id.to_string(), name.to_string()))
            .map(|(_, value)| Arc::clone(value))
    }

    /// Every app that has a secret called `name`, with its version and value.
    pub(crate) fn named(&self, name: &str) -> Vec<(String, i64, Value)> {
        self.entries
            .read()
            .iter()
            .filter(|((_, secret), _)| secret == name)
            .map(|((app, _), (version, value))| (app.clone(), *version, Arc::clone(value)))
            .collect()
    }

    /// The JWT kept for an app's secret, if it was fetched for the secret's current version.
    pub(crate) fn jwt(&self, app_id: &str, name: &str) -> Option<UpstreamJwt> {
        let version = self
            .entries
            .read()
            .get(&(app_id.to_string(), name.to_string()))
            .map(|(version, _)| *version)?;
        self.jwts
            .read()
            .get(&(app_id.to_string(), name.to_string()))
            .filter(|jwt| jwt.version == version)
            .cloned()
    }

    pub(crate) fn set_jwt(&self, app_id: &str, name: &str, jwt: UpstreamJwt) {
        self.jwts
            .write()
            .insert((app_id.to_string(), name.to_string()), jwt);
    }
}

/// Why a request could not be given its credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The secret's name (operator-chosen, never a value).
    pub secret: String,
}

fn encoded(value: &[u8], encoding: Encoding) -> Zeroizing<Vec<u8>> {
    match encoding {
        // Not from the stored value: `apply` sends the upstream's JWT.
        Encoding::Plain | Encoding::NightscoutJwt => Zeroizing::new(value.to_vec()),
        Encoding::Sha1Hex => {
            Zeroizing::new(medgate_verify::credential::sha1_hex(value).into_bytes())
        }
    }
}

/// Percent-decodes a query parameter's name (lossy: a bad escape stays as written).
fn decoded_name(name: &str) -> Vec<u8> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

fn percent_encoded(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &byte in value {
        if is_unreserved(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Applies `injections` for `app_id` to a request about to be forwarded: its headers, and the
/// query it will carry ([`Injected::query`]). Nothing is changed when a secret is missing or
/// unusable.
pub fn apply(
    injections: &[Injection],
    secrets: &SecretCache,
    app_id: &str,
    headers: &mut HeaderMap,
    query: Option<&str>,
) -> Result<Injected, Unavailable> {
    let unavailable = |injection: &Injection| Unavailable {
        secret: injection.secret.clone(),
    };
    // Every value first, so a missing one changes nothing.
    let mut values = Vec::with_capacity(injections.len());
    for injection in injections {
        let value = match injection.encoding {
            Encoding::NightscoutJwt => {
                let jwt = secrets
                    .jwt(app_id, &injection.secret)
                    .ok_or_else(|| unavailable(injection))?;
                Zeroizing::new(jwt.bearer.as_bytes().to_vec())
            }
            encoding => {
                let stored = secrets
                    .get(app_id, &injection.secret)
                    .ok_or_else(|| unavailable(injection))?;
                encoded(&stored, encoding)
            }
        };
        if let Target::Header(_) = injection.target {
            let mut header = HeaderValue::from_bytes(&value).map_err(|_| unavailable(injection))?;
            header.set_sensitive(true);
            values.push((injection, Some(header), value));
        } else {
            values.push((injection, None, value));
        }
    }
    let mut injected = Injected::default();
    for (injection, header, value) in values {
        match (&injection.target, header) {
            (Target::Header(name), Some(header)) => {
                remove_header(headers, name);
                headers.insert(name.clone(), header);
            }
            (Target::Query(parameter), _) => {
                let kept = without_parameters(
                    injected.query(query).unwrap_or(""),
                    std::slice::from_ref(parameter),
                );
                let encoded = percent_encoded(&value);
                injected.rewritten_query = Some(match kept {
                    Some(kept) => format!("{kept}&{parameter}={encoded}"),
                    None => format!("{parameter}={encoded}"),
                });
                injected
                    .query_values
                    .push(Zeroizing::new(String::from_utf8_lossy(&value).into_owned()));
                injected.query_values.push(Zeroizing::new(encoded));
            }
            (Target::Header(_), None) => return Err(unavailable(injection)),
        }
    }
    Ok(injected)
}

/// Whether a query segment (split on `&`) carries `parameter` in any spelling an upstream
/// may read as it: in a `;`-separated part (Bottle, Rack), with a `[…]` suffix (Express's
/// `qs`), percent-encoded, or in another case, Unicode's included (`ſecret` is `SECRET` to a
/// case-insensitive lookup).
fn names_parameter(segment: &str, parameter: &str) -> bool {
    let wanted = (parameter.to_lowercase(), parameter.to_uppercase());
    segment.split(';').any(|part| {
        let name = part.split('=').next().unwrap_or("");
        let decoded = String::from_utf8_lossy(&decoded_name(name)).into_owned();
        let base = decoded.split('[').next().unwrap_or("");
        base.to_lowercase() == wanted.0 || base.to_uppercase() == wanted.1
    })
}

/// What an injection put in the request: the query it rewrote (none for a route without a
/// query injection: nothing is copied on the request path), and the values it put there (raw
/// and encoded), which must not come back to the app in the response's headers.
#[derive(Default)]
pub struct Injected {
    rewritten_query: Option<String>,
    query_values: Vec<Zeroizing<String>>,
}

impl std::fmt::Debug for Injected {
    /// Never the values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Injected({} query values)", self.query_values.len())
    }
}

/// Response headers that commonly repeat the request's URL.
const URL_HEADERS: [http::header::HeaderName; 4] = [
    http::header::LOCATION,
    http::header::CONTENT_LOCATION,
    http::header::LINK,
    http::header::REFRESH,
];

impl Injected {
    /// The query to forward: the rewritten one, or else the request's `original`.
    pub fn query<'a>(&'a self, original: Option<&'a str>) -> Option<&'a str> {
        self.rewritten_query.as_deref().or(original)
    }

    /// Removes from an upstream response's headers every URL-bearing header that repeats an
    /// injected query value; returns how many went.
    pub fn scrub(&self, headers: &mut HeaderMap) -> usize {
        if self.query_values.is_empty() {
            return 0;
        }
        let mut removed = 0;
        for name in URL_HEADERS {
            let leaks = headers.get_all(&name).iter().any(|value| {
                let text = String::from_utf8_lossy(value.as_bytes());
                self.query_values
                    .iter()
                    .any(|secret| !secret.is_empty() && text.contains(secret.as_str()))
            });
            if leaks {
                headers.remove(&name);
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests;
