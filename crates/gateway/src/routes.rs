//! Route rules: which paths and methods the gateway forwards, and the scopes each needs.
//!
//! A rule's `path` is a prefix made of `/`-separated segments; within a segment `*` matches any
//! run of characters other than `/`. The prefix must end at a segment boundary of the request
//! path, or the pattern must end with `/` (then something must follow). So `/api/v1/entries`
//! matches that resource and everything below it but not `/api/v1/entries.json`, while
//! `/api/v1/entries*` also matches `/api/v1/entries.json` and what is below it. A rule may also
//! name its methods, and query parameters one of which must be present (`query =
//! ["find[*"]`: a Nightscout `DELETE` with a `find[...]` filter is a bulk delete, one without
//! is not). The first rule that matches the path, the method and the query decides; a request
//! no rule matches is denied.

use std::sync::Arc;

use http::Method;
use medgate_proto::wire::names;
use medgate_service::ratelimit::{KeyedLimiter, RateLimit};
use serde::Deserialize;

use crate::inject::{InjectConfig, Injection};

/// The longest query parameter name a rule may name.
const MAX_QUERY_NAME: usize = 64;

/// A route rule as written in `medgate.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub path: String,
    /// HTTP methods; empty or `["*"]` means any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Query parameter names, `*` matching any run of characters; when given, the rule
    /// matches only requests with at least one parameter so named (names compared after
    /// percent- and `+`-decoding, as the upstream reads them).
    #[serde(default)]
    pub query: Vec<String>,
    /// Scopes the token must carry, all of them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// What a request does while the shared state (`[redis]`) cannot be reached. Unset:
    /// reads (GET, HEAD, OPTIONS) go on with this gateway's own replay cache and limits,
    /// everything else is refused with 503.
    #[serde(default)]
    pub redis_down: Option<FailMode>,
    /// Upstream credentials added to what this route forwards (the app's operator secrets).
    #[serde(default)]
    pub inject: Vec<InjectConfig>,
    /// What proves a request on this route: a DPoP proof (method and URL), or also an HTTP
    /// Message Signature over the body's `Content-Digest` (writes of readings, treatments and
    /// commands).
    #[serde(default)]
    pub proof: ProofMode,
    /// Per installation on this route, besides `gateway.rate_limit`: the riskier a route's
    /// requests (a remote bolus, a bulk delete), the fewer an installation may make.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Whether a credential for an app that cannot attest (`medgate admin follower|uploader`)
    /// holding the route's scopes is accepted here too, in place of a token and proof. Only on
    /// `proof = "dpop"` routes: a signed write needs an attested installation.
    #[serde(default)]
    pub credentials: bool,
    /// Whether partner backends' tokens (`[gateway.partners]`) are accepted here, for the
    /// route scopes their SMART scopes give. Only on `proof = "dpop"` routes without a tunnel
    /// or injected secrets (those belong to an app; a partner has none).
    #[serde(default)]
    pub partners: bool,
    /// `"socket.io"`: Nightscout's socket.io tunnel, long polling and WebSocket; client events
    /// that write or silence alarms are dropped unless the subject holds their class, and
    /// in-band credentials replaced (`crate::tunnel`, `crate::websocket`).
    #[serde(default)]
    pub tunnel: Option<Tunnel>,
}

/// A tunnel a route carries, read by the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Tunnel {
    #[serde(rename = "socket.io")]
    SocketIo,
}

/// What a route requires of each request besides the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum ProofMode {
    /// A DPoP proof: the method and URL, by the installation key.
    #[default]
    #[serde(rename = "dpop")]
    Dpop,
    /// A DPoP proof and an RFC 9421 signature by the installation key over the method, the
    /// target URI, the token and the body's RFC 9530 `Content-Digest`, the body checked
    /// against it.
    #[serde(rename = "dpop+signature")]
    DpopSignature,
    /// No DPoP proof: an RFC 9421 `hmac-sha256` signature by the token's session key (sealed
    /// to the installation at attestation) over the method, the URL and the token. Cheaper
    /// per request, and weaker: the key lives in app memory, not in the keystore. For
    /// high-rate reads, never for therapy writes.
    #[serde(rename = "session-mac")]
    SessionMac,
}

/// A route's choice when the shared state is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Go on with the local replay cache and limits only (per-replica windows).
    Open,
    /// Refuse with 503 until the shared state answers again.
    Closed,
}

impl RouteConfig {
    pub fn new(path: &str, methods: &[&str], scopes: &[&str]) -> Self {
        RouteConfig {
            path: path.into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            query: Vec::new(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            redis_down: None,
            inject: Vec::new(),
            proof: ProofMode::Dpop,
            rate_limit: None,
            credentials: false,
            partners: false,
            tunnel: None,
        }
    }
}

/// Why a route rule was refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {path:?}: {problem}")]
pub struct RouteError {
    pub path: String,
    pub problem: String,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Route {
    pattern: String,
    segments: Vec<String>,
    open_ended: bool,
    methods: Option<Vec<Method>>,
    query: Vec<String>,
    scopes: Vec<String>,
    redis_down: Option<FailMode>,
    inject: Arc<[Injection]>,
    proof: ProofMode,
    credentials: bool,
    partners: bool,
    tunnel: Option<Tunnel>,
    /// This route's own limit per installation, if it has one.
    limiter: Option<Arc<KeyedLimiter<String>>>,
}

impl Route {
    pub fn compile(config: &RouteConfig) -> Result<Route, RouteError> {
        let error = |problem: &str| RouteError {
            path: config.path.clone(),
            problem: problem.into(),
        };
        let Some(rest) = config.path.strip_prefix('/') else {
            return Err(error("must start with /"));
        };
        let mut segments: Vec<String> = rest.split('/').map(str::to_string).collect();
        let open_ended = segments.last().is_some_and(String::is_empty);
        if open_ended {
            segments.pop();
        }
        if segments
            .iter()
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(error("must not contain empty, . or .. segments"));
        }
        let methods = if config.methods.is_empty() || config.methods.iter().any(|m| m == "*") {
            None
        } else {
            let parsed = config
                .methods
                .iter()
                .map(|m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|_| error("invalid method"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(parsed)
        };
        // A session MAC covers no body: such a route is for reads only.
        if config.proof == ProofMode::SessionMac
            && methods
                .as_ref()
                .is_none_or(|methods| methods.iter().any(|m| !m.is_safe()))
        {
            return Err(error(
                "proof = \"session-mac\" is for reads: list its methods (GET, HEAD, OPTIONS)",
            ));
        }
        if config.query.iter().any(|name| {
            name.is_empty()
                || name.len() > MAX_QUERY_NAME
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'&' && b != b'=')
        }) {
            return Err(error(&format!(
                "query names must be 1 to {MAX_QUERY_NAME} visible characters, without & or ="
            )));
        }
        if config.credentials && config.proof != ProofMode::Dpop {
            return Err(error(
                "credentials = true only on proof = \"dpop\" routes: a signed request needs an attested installation",
            ));
        }
        if config.tunnel.is_some() && config.proof != ProofMode::Dpop {
            return Err(error(
                "a tunnel route takes proof = \"dpop\": its events are checked one by one",
            ));
        }
        if config.partners
            && (config.proof != ProofMode::Dpop
                || config.tunnel.is_some()
                || !config.inject.is_empty()
                || config.scopes.is_empty())
        {
            return Err(error(
                "partners = true needs scopes, proof = \"dpop\", no tunnel and no inject: a partner is admitted for the route scopes its SMART scopes give, and holds no app's secrets",
            ));
        }
        if config.credentials && config.scopes.is_empty() {
            return Err(error(
                "credentials = true needs scopes: a credential is accepted for the scopes it holds",
            ));
        }
        if let Some(bad) = config.scopes.iter().find(|s| !names::is_scope(s)) {
            return Err(error(&format!("invalid scope {bad:?}")));
        }
        let inject = config
            .inject
            .iter()
            .map(Injection::compile)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| error(&problem))?;
        Ok(Route {
            pattern: config.path.clone(),
            segments,
            open_ended,
            methods,
            query: config.query.clone(),
            scopes: config.scopes.clone(),
            redis_down: config.redis_down,
            inject: inject.into(),
            proof: config.proof,
            credentials: config.credentials,
            partners: config.partners,
            tunnel: config.tunnel,
            limiter: config
                .rate_limit
                .map(|limit| Arc::new(KeyedLimiter::new(limit))),
        })
    }

    pub fn proof(&self) -> ProofMode {
        self.proof
    }

    /// The tunnel this route carries, if any.
    pub fn tunnel(&self) -> Option<Tunnel> {
        self.tunnel
    }

    /// Step 6's scope check: refused with the scopes the route needs that the subject does not
    /// hold.
    pub(crate) fn require_scopes(
        &self,
        holds: impl Fn(&str) -> bool,
    ) -> Result<(), medgate_service::resource::Refusal> {
        let missing: Vec<String> = self
            .scopes
            .iter()
            .filter(|scope| !holds(scope))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(medgate_service::resource::Refusal::InsufficientScope(
                missing,
            ))
        }
    }

    /// Whether partner backends' tokens are accepted here.
    pub fn accepts_partners(&self) -> bool {
        self.partners
    }

    /// Whether credentials of apps that cannot attest are accepted here.
    pub fn accepts_credentials(&self) -> bool {
        self.credentials
    }

    /// Whether `installation` is within this route's own limit (always, for a route without
    /// one); otherwise how long until it is.
    pub fn check_limit(&self, installation: &String) -> Result<(), std::time::Duration> {
        self.limiter
            .as_ref()
            .map_or(Ok(()), |limiter| limiter.check(installation))
    }

    /// Forgets installations this route's limiter has not seen lately.
    pub fn retain_recent(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The credentials added to what this route forwards.
    pub fn inject(&self) -> &Arc<[Injection]> {
        &self.inject
    }

    /// The route's [`FailMode`] for `method`: as configured, or open for safe methods only.
    pub fn redis_down(&self, method: &Method) -> FailMode {
        self.redis_down.unwrap_or(if method.is_safe() {
            FailMode::Open
        } else {
            FailMode::Closed
        })
    }

    pub fn allows_method(&self, method: &Method) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.contains(method))
    }

    /// Whether a request with this (already safety-checked) path, method and raw query
    /// falls under this rule.
    pub fn matches(&self, path: &str, method: &Method, query: Option<&str>) -> bool {
        self.matches_path(path) && self.allows_method(method) && self.matches_query(query)
    }

    /// Whether the query has a parameter the rule names (always, for a rule that names none).
    /// Every parameter is read: one hidden behind many others must not skip the rule. The
    /// gateway bounds the query ([`crate::path::MAX_QUERY`]) before any rule reads it.
    fn matches_query(&self, query: Option<&str>) -> bool {
        if self.query.is_empty() {
            return true;
        }
        let Some(query) = query else {
            return false;
        };
        url::form_urlencoded::parse(query.as_bytes()).any(|(name, _)| {
            self.query
                .iter()
                .any(|pattern| glob(pattern.as_bytes(), name.as_bytes()))
        })
    }

    /// Whether the (already safety-checked) request path falls under this rule.
    pub fn matches_path(&self, path: &str) -> bool {
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        for pattern in &self.segments {
            match parts.next() {
                Some(segment) if glob(pattern.as_bytes(), segment.as_bytes()) => {}
                _ => return false,
            }
        }
        // An open-ended pattern (`/api/`) needs something below it; otherwise the prefix
        // already ends at a segment boundary.
        !self.open_ended || parts.next().is_some()
    }
}

/// `*` matches any run of bytes (segments contain no `/`). Linear-time two-pointer match.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The first rule that matches the request's path, method and query, if any.
pub fn find<'r>(
    routes: &'r [Route],
    path: &str,
    method: &Method,
    query: Option<&str>,
) -> Option<&'r Route> {
    routes
        .iter()
        .find(|route| route.matches(path, method, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        Route::compile(&RouteConfig {
            path: path.into(),
            methods: vec![],
            query: vec![],
            scopes: vec![],
            redis_down: None,
            inject: vec![],
            proof: ProofMode::Dpop,
            rate_limit: None,
            credentials: false,
            partners: false,
            tunnel: None,
        })
        .unwrap()
    }

    #[test]
    fn reads_fail_open_and_writes_closed_unless_the_route_says() {
        let default = route("/api/");
        assert_eq!(default.redis_down(&Method::GET), FailMode::Open);
        assert_eq!(default.redis_down(&Method::HEAD), FailMode::Open);
        assert_eq!(default.redis_down(&Method::POST), FailMode::Closed);
        assert_eq!(default.redis_down(&Method::DELETE), FailMode::Closed);
        let strict: RouteConfig =
            toml::from_str("path = \"/api/v1/treatments\"\nredis_down = \"closed\"").unwrap();
        let strict = Route::compile(&strict).unwrap();
        assert_eq!(strict.redis_down(&Method::GET), FailMode::Closed);
        let lenient: RouteConfig =
            toml::from_str("path = \"/api/v1/entries\"\nredis_down = \"open\"").unwrap();
        assert_eq!(
            Route::compile(&lenient).unwrap().redis_down(&Method::POST),
            FailMode::Open
        );
        assert!(toml::from_str::<RouteConfig>("path = \"/\"\nredis_down = \"maybe\"").is_err());
    }

    #[test]
    fn prefixes_end_at_segment_boundaries() {
        let entries = route("/api/v1/entries");
        assert!(entries.matches_path("/api/v1/entries"));
        assert!(entries.matches_path("/api/v1/entries/"));
        assert!(entries.matches_path("/api/v1/entries/sgv.json"));
        assert!(!entries.matches_path("/api/v1/entriesX"));
        assert!(!entries.matches_path("/api/v1"));
        assert!(!entries.matches_path("/api/v2/entries"));
    }

    #[test]
    fn stars_stay_within_a_segment() {
        let json = route("/api/v1/entries*");
        assert!(json.matches_path("/api/v1/entries.json"));
        assert!(json.matches_path("/api/v1/entries/current.json"));
        let any_version = route("/api/*/status");
        assert!(any_version.matches_path("/api/v1/status"));
        assert!(!any_version.matches_path("/api/v1/x/status"));
        let middle = route("/a*b*c");
        assert!(middle.matches_path("/abc"));
        assert!(middle.matches_path("/aXXbYYc"));
        assert!(!middle.matches_path("/aXXbYY"));
    }

    #[test]
    fn open_ended_patterns_need_something_below() {
        let below = route("/api/");
        assert!(below.matches_path("/api/x"));
        assert!(!below.matches_path("/api"));
        assert!(route("/").matches_path("/anything"));
    }

    #[test]
    fn methods_and_scopes_are_validated() {
        let get = Route::compile(&RouteConfig {
            path: "/a".into(),
            methods: vec!["get".into()],
            query: vec![],
            scopes: vec!["read".into()],
            redis_down: None,
            inject: vec![],
            proof: ProofMode::Dpop,
            rate_limit: None,
            credentials: false,
            partners: false,
            tunnel: None,
        })
        .unwrap();
        assert!(get.allows_method(&Method::GET));
        assert!(!get.allows_method(&Method::POST));
        assert!(route("/a").allows_method(&Method::DELETE));
        let bad = |path: &str, scopes: Vec<String>| {
            Route::compile(&RouteConfig {
                path: path.into(),
                methods: vec![],
                query: vec![],
                scopes,
                redis_down: None,
                inject: vec![],
                proof: ProofMode::Dpop,
                rate_limit: None,
                credentials: false,
                partners: false,
                tunnel: None,
            })
            .unwrap_err()
        };
        assert!(bad("api", vec![]).problem.contains("start with /"));
        assert!(bad("/a/../b", vec![]).problem.contains(".."));
        assert!(
            bad("/a", vec!["two words".into()])
                .problem
                .contains("invalid scope")
        );
        let injecting: RouteConfig = toml::from_str(
            "path = \"/api/\"\ninject = [{ header = \"api-secret\", secret = \"ns\", encoding = \"sha1-hex\" }]",
        )
        .unwrap();
        assert_eq!(Route::compile(&injecting).unwrap().inject().len(), 1);
        let wrong: RouteConfig =
            toml::from_str("path = \"/api/\"\ninject = [{ header = \"host\", secret = \"ns\" }]")
                .unwrap();
        assert!(Route::compile(&wrong).unwrap_err().problem.contains("host"));
        assert!(
            toml::from_str::<RouteConfig>(
                "path = \"/\"\ninject = [{ header = \"a\", secret = \"b\", encoding = \"rot13\" }]"
            )
            .is_err()
        );
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let routes = vec![route("/api/v1/entries"), route("/api/")];
        let get = |path| find(&routes, path, &Method::GET, None).map(Route::pattern);
        assert_eq!(get("/api/v1/entries/x"), Some("/api/v1/entries"));
        assert_eq!(get("/api/v1/treatments"), Some("/api/"));
        assert_eq!(get("/admin"), None);
    }

    fn rule(toml_text: &str) -> Route {
        Route::compile(&toml::from_str(toml_text).unwrap()).unwrap()
    }

    #[test]
    fn one_path_can_have_a_rule_per_method() {
        let routes = vec![
            rule("path = \"/api/v1/entries\"\nmethods = [\"GET\"]\nscopes = [\"read\"]"),
            rule("path = \"/api/v1/entries\"\nmethods = [\"POST\"]\nscopes = [\"write\"]"),
        ];
        let scopes = |method| {
            find(&routes, "/api/v1/entries", &method, None).map(|route| route.scopes().to_vec())
        };
        assert_eq!(scopes(Method::GET), Some(vec!["read".to_string()]));
        assert_eq!(scopes(Method::POST), Some(vec!["write".to_string()]));
        assert_eq!(scopes(Method::DELETE), None);
    }

    #[test]
    fn a_rule_can_require_a_query_parameter_by_its_decoded_name() {
        let routes = vec![
            rule(
                "path = \"/api/v1/entries\"\nmethods = [\"DELETE\"]\nquery = [\"find[*\"]\nscopes = [\"bulk\"]",
            ),
            rule("path = \"/api/v1/entries\"\nmethods = [\"DELETE\"]\nscopes = [\"delete\"]"),
        ];
        let scope = |query| {
            find(&routes, "/api/v1/entries/x", &Method::DELETE, query)
                .map(|route| route.scopes()[0].as_str())
        };
        assert_eq!(scope(None), Some("delete"));
        assert_eq!(scope(Some("count=1")), Some("delete"));
        assert_eq!(scope(Some("find[type]=sgv")), Some("bulk"));
        assert_eq!(scope(Some("count=1&find[_id][$eq]=x")), Some("bulk"));
        // However the name is spelt on the wire, as the upstream decodes it.
        assert_eq!(scope(Some("%66ind%5Btype%5D=*")), Some("bulk"));
        assert_eq!(scope(Some("find%5Bdate%5D%5B%24lte%5D=1")), Some("bulk"));
        // Names are case-sensitive, as Nightscout's query parser is: `FIND[...]` filters nothing.
        assert_eq!(scope(Some("FIND[type]=sgv")), Some("delete"));
        // A value that looks like a filter is not one.
        assert_eq!(scope(Some("q=find[type]")), Some("delete"));
        // Hidden behind many other parameters, it is still found.
        let hidden = format!("{}find[type]=sgv", "a=1&".repeat(500));
        assert_eq!(scope(Some(&hidden)), Some("bulk"));
    }

    #[test]
    fn a_route_limits_each_installation_on_its_own() {
        let command = rule(
            "path = \"/api/v2/notifications/loop\"\nrate_limit = { per_second = 1, burst = 2 }",
        );
        let (alice, bob) = ("alice".to_string(), "bob".to_string());
        assert!(command.check_limit(&alice).is_ok());
        assert!(command.check_limit(&alice).is_ok());
        let wait = command.check_limit(&alice).unwrap_err();
        assert!(wait > std::time::Duration::ZERO);
        // Another installation has its own bucket; a route without a limit has none.
        assert!(command.check_limit(&bob).is_ok());
        let open = route("/api/");
        for _ in 0..100 {
            assert!(open.check_limit(&alice).is_ok());
        }
    }

    #[test]
    fn query_names_are_validated() {
        for bad in ["\"\"", "\"a=b\"", "\"a&b\"", "\"a b\""] {
            let config: RouteConfig =
                toml::from_str(&format!("path = \"/a\"\nquery = [{bad}]")).unwrap();
            let error = Route::compile(&config).unwrap_err();
            assert!(error.problem.contains("query names"), "{bad}");
        }
    }

    #[test]
    fn a_session_mac_route_is_for_safe_methods_only() {
        let compile = |methods: &[&str]| {
            let mut config = RouteConfig::new("/api/v1/entries", methods, &["entries:read"]);
            config.proof = ProofMode::SessionMac;
            Route::compile(&config)
        };
        assert!(compile(&["GET", "HEAD"]).is_ok());
        for methods in [&[][..], &["GET", "POST"][..], &["*"][..]] {
            let error = compile(methods).unwrap_err();
            assert!(error.problem.contains("for reads"), "{methods:?}");
        }
    }
}
