//! The gateway profile for a Nightscout site: a complete, commented `medgate.toml` (what
//! `medgate nightscout init` writes). Every route Nightscout serves is put in a risk class (after
//! ../shared/research/next-round.md §A.2 and §A.5), each class has its own scope and proof
//! mode, and anything not listed is denied:
//!
//! | class | scope | proof | own limit | what |
//! |---|---|---|---|---|
//! | read | `nightscout:read` | `dpop` | | every `GET` of data, status and auth probes |
//! | alarm-ack | `nightscout:alarm-ack` | `dpop` | 1/s, burst 5 | `GET /api/v*/notifications/ack` (silences an alarm: a write by `GET`) |
//! | data write | `nightscout:data-write` | `dpop` | | readings, device status, food, activity; deleting one by id |
//! | bulk delete | `nightscout:bulk-delete` | `dpop+signature` | 1/s, burst 1 | any `DELETE` with a `find[...]` filter |
//! | therapy write | `nightscout:therapy-write` | `dpop+signature` | 1/s, burst 10 | treatments (insulin, carbs, temp targets) and profiles |
//! | command | `nightscout:command` | `dpop+signature` | 1/s, burst 2 | `POST /api/v2/notifications/loop` (remote bolus, carbs, overrides), v3 `settings` writes |
//! | admin | `nightscout:admin` | `dpop+signature` | 1/s, burst 5 | `/api/v2/authorization/*` (subjects, roles) |
//!
//! | tunnel | `nightscout:tunnel` | `dpop` | | `/socket.io/` (polling and WebSocket); writes and alarm acks inside it dropped unless the subject holds their class, therapy writes always; in-band credentials replaced by the site's |
//!
//! Followers and uploaders that cannot attest (`medgate admin follower|uploader create`) get
//! a credential instead of the site's secret, accepted on the read, data-write and tunnel
//! classes only (`credentials = true`), as Nightscout clients send theirs: `?token=`, the
//! `api-secret` header (raw, `token=`-prefixed or SHA-1 hex), and the token exchange
//! `GET /api/v2/authorization/request/<token>`, which the gateway answers itself with a JWT
//! for v3 clients (never forwarded: Nightscout's own would work around the gateway).
//!
//! Not routed (so denied): the web UI.
//!
//! Every route injects the site's `API_SECRET` as Nightscout's `api-secret` header (SHA-1
//! hex), from the app's operator secret `nightscout`; every credential a client sends for
//! Nightscout (`api-secret`, `?secret=`, `?token=`, `?api_secret=`) is stripped first.

/// The operator secret every route injects.
pub const SECRET_NAME: &str = "nightscout";
/// The operator secret v3 routes exchange for a Nightscout JWT: an access token of a subject
/// made in Nightscout's admin tools (v3 takes nothing else).
pub const TOKEN_SECRET_NAME: &str = "nightscout_token";

/// One route rule: a class's methods on a path, optionally only with certain query
/// parameters.
struct Rule {
    path: &'static str,
    methods: &'static [&'static str],
    query: &'static [&'static str],
}

/// A class of routes: its scope, proof mode and rules, with why.
struct Class {
    name: &'static str,
    why: &'static str,
    scope: &'static str,
    proof: &'static str,
    /// Per installation on each of the class's routes, `(per_second, burst)`, besides
    /// `gateway.rate_limit`.
    rate_limit: Option<(u32, u32)>,
    /// Whether follower and uploader credentials holding the scope are accepted.
    credentials: bool,
    /// Whether the class's routes carry the socket.io tunnel.
    tunnel: bool,
    rules: &'static [Rule],
}

const fn rule(path: &'static str, methods: &'static [&'static str]) -> Rule {
    Rule {
        path,
        methods,
        query: &[],
    }
}

const GET: &[&str] = &["GET", "HEAD"];
const ALL_WRITES: &[&str] = &["POST", "PUT", "PATCH", "DELETE"];

/// The classes, in the order their rules must be checked: the narrower before the broader
/// (a bulk delete before a delete by id, an alarm ack before reads).
const CLASSES: &[Class] = &[
    Class {
        name: "bulk delete",
        why: "any DELETE with a find[...] filter: `find[type]=*` empties a collection",
        scope: "nightscout:bulk-delete",
        proof: "dpop+signature",
        rate_limit: Some((1, 1)),
        credentials: false,
        tunnel: false,
        rules: &[Rule {
            path: "/api/",
            methods: &["DELETE"],
            query: &["find[*", "find.*"],
        }],
    },
    Class {
        name: "command",
        why: "remote bolus, carbs and overrides pushed to Loop; v3 settings change what a loop does",
        scope: "nightscout:command",
        proof: "dpop+signature",
        rate_limit: Some((1, 2)),
        credentials: false,
        tunnel: false,
        rules: &[
            rule("/api/v2/notifications/loop", &["POST"]),
            rule("/api/v3/settings", ALL_WRITES),
        ],
    },
    Class {
        name: "admin",
        why: "subjects, roles and permissions of the site (not the token exchange, left unrouted)",
        scope: "nightscout:admin",
        proof: "dpop+signature",
        rate_limit: Some((1, 5)),
        credentials: false,
        tunnel: false,
        rules: &[
            rule(
                "/api/v2/authorization/subjects",
                &["GET", "POST", "PUT", "DELETE"],
            ),
            rule(
                "/api/v2/authorization/roles",
                &["GET", "POST", "PUT", "DELETE"],
            ),
            rule("/api/v2/authorization/permissions", &["GET"]),
            rule("/api/v2/authorization/debug", &["GET"]),
        ],
    },
    Class {
        name: "alarm-ack",
        why: "silences an alarm, by GET: not a read",
        scope: "nightscout:alarm-ack",
        proof: "dpop",
        rate_limit: Some((1, 5)),
        credentials: false,
        tunnel: false,
        rules: &[rule("/api/v*/notifications/ack", GET)],
    },
    Class {
        name: "therapy write",
        why: "insulin, carbs, temp targets, profile switches and profiles: what dosing reads",
        scope: "nightscout:therapy-write",
        proof: "dpop+signature",
        rate_limit: Some((1, 10)),
        credentials: false,
        tunnel: false,
        rules: &[
            rule("/api/v*/treatments*", ALL_WRITES),
            rule("/api/v*/profile*", ALL_WRITES),
        ],
    },
    Class {
        name: "data write",
        why: "CGM readings, device status, food and activity; one deleted by id",
        scope: "nightscout:data-write",
        proof: "dpop",
        rate_limit: None,
        credentials: true,
        tunnel: false,
        rules: &[
            rule("/api/v*/entries*", ALL_WRITES),
            rule("/api/v*/devicestatus*", ALL_WRITES),
            rule("/api/v*/food*", ALL_WRITES),
            rule("/api/v*/activity*", ALL_WRITES),
        ],
    },
    Class {
        name: "tunnel",
        why: "socket.io, polling and WebSocket (the web UI, AndroidAPS' NSClient); writes and alarm acks inside it are dropped unless the subject holds their class, therapy writes always",
        scope: "nightscout:tunnel",
        proof: "dpop",
        rate_limit: None,
        credentials: true,
        tunnel: true,
        rules: &[rule("/socket.io/", &["GET", "POST"])],
    },
    Class {
        name: "read",
        why: "readings, treatments, status and the auth probes clients make",
        scope: "nightscout:read",
        proof: "dpop",
        rate_limit: None,
        credentials: true,
        tunnel: false,
        rules: &[
            rule("/api/v*/entries*", GET),
            rule("/api/v*/treatments*", GET),
            rule("/api/v*/devicestatus*", GET),
            rule("/api/v*/profile*", GET),
            rule("/api/v*/food*", GET),
            rule("/api/v*/activity*", GET),
            rule("/api/v3/settings", GET),
            rule("/api/v*/status*", GET),
            rule("/api/v*/verifyauth", GET),
            rule("/api/v*/experiments/test", GET),
            rule("/api/v*/adminnotifies", GET),
            rule("/api/v*/echo", GET),
            rule("/api/v*/times", GET),
            rule("/api/v*/slice", GET),
            rule("/api/v*/count", GET),
            rule("/api/v2/properties*", GET),
            rule("/api/v2/ddata", GET),
            rule("/api/v2/summary", GET),
            rule("/api/v3/version", GET),
            rule("/api/v3/lastModified", GET),
            rule("/api/versions", GET),
            rule("/pebble", GET),
        ],
    },
];

/// The classes a follower credential may hold: reading, and the socket.io tunnel (where its
/// writes and alarm acks are dropped).
pub const FOLLOWER_CLASSES: &[&str] = &["read", "tunnel"];
/// The classes an uploader credential may hold: readings and device status, and reading.
/// Therapy writes, commands, alarm acks, bulk deletes and admin need an attested installation.
pub const UPLOADER_CLASSES: &[&str] = &["read", "data-write", "tunnel"];

/// The scopes of a `follower` or `uploader` credential holding `classes`, or why not.
pub fn credential_scopes(kind: &str, classes: &[String]) -> Result<Vec<String>, String> {
    let allowed = match kind {
        "follower" => FOLLOWER_CLASSES,
        "uploader" => UPLOADER_CLASSES,
        _ => {
            return Err(format!(
                "{kind:?} is not a credential kind (follower, uploader)"
            ));
        }
    };
    if classes.is_empty() {
        return Err(format!("a {kind} needs classes: {}", allowed.join(", ")));
    }
    classes
        .iter()
        .map(|class| {
            if allowed.contains(&class.as_str()) {
                Ok(format!("nightscout:{class}"))
            } else {
                Err(format!(
                    "a {kind} may hold {} only; {class:?} needs an attested app",
                    allowed.join(", ")
                ))
            }
        })
        .collect()
}

fn quoted(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|item| format!("\"{item}\"")).collect();
    format!("[{}]", items.join(", "))
}

/// The file `init` writes.
pub fn profile(upstream: &str, public_url: Option<&str>) -> String {
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line("# medgate in front of a Nightscout site (written by `medgate nightscout init`).");
    line("# Every Nightscout route is in a risk class with its own scope and proof; a request no");
    line("# rule matches is denied (403). The first rule whose path, methods and query match");
    line("# decides, so narrower rules come first. Apps get the scopes of the classes they need:");
    line(
        "#   medgate admin app create <APP_ID> --scopes \"nightscout:read nightscout:data-write\"",
    );
    line("# and the site's API_SECRET is stored once, for the gateway to inject:");
    line("#   medgate admin secret set <APP_ID> nightscout --from-env <VAR>");
    line("version = 1");
    line("");
    line("[gateway]");
    line(&format!("upstream = \"{upstream}\""));
    match public_url {
        Some(url) => line(&format!("public_url = \"{url}\"")),
        None => line("# public_url = \"https://ns-gateway.example.org\""),
    }
    line("# Nightscout credentials a client sends are removed from every request: the upstream");
    line("# sees only the API_SECRET the gateway injects (as the SHA-1 hex Nightscout compares).");
    line("strip_headers = [\"api-secret\"]");
    line("strip_query = [\"secret\", \"token\", \"api_secret\"]");
    line("");
    line("# Followers and legacy uploaders that cannot attest get their own credential, never");
    line("# the site's API_SECRET (shown once; revoke it at any time):");
    line(
        "#   medgate admin follower create <APP_ID> --name \"School nurse\" --classes read --expires 30d",
    );
    line("#   medgate admin uploader create <APP_ID> --name \"xDrip+\" --classes data-write");
    line("# It is accepted on the read and data-write routes only (credentials = true), where");
    line("# Nightscout clients send theirs; the gateway answers the token exchange itself with a");
    line("# short-lived JWT for v3 clients (AndroidAPS, xDrip+ follower, Nightguard).");
    line("[gateway.credentials]");
    line("query = [\"token\"]");
    line("headers = [\"api-secret\"]");
    line("exchange_path = \"/api/v2/authorization/request/\"");
    line("exchange_lifetime = \"1h\"");
    line("");
    line("# Not routed, so denied: the web UI and its static files (a browser cannot make DPoP");
    line(
        "# proofs). In the socket.io tunnel (polling and WebSocket) the gateway reads every event:",
    );
    line(
        "# writes (dbAdd, dbUpdate, dbRemove) and alarm acks are dropped unless the subject holds",
    );
    line(
        "# their class, treatments and profiles always, and in-band credentials become the site's.",
    );
    for class in CLASSES {
        line("");
        line(&format!(
            "# ── {}: {} (scope {}, proof {})",
            class.name, class.why, class.scope, class.proof
        ));
        if class.rate_limit.is_some() {
            line("# Its rate_limit applies per installation, besides gateway.rate_limit.");
        }
        // A rule for every API version is written twice: first for v3, which takes only a
        // Nightscout JWT (from the access token stored as `nightscout_token`), then for the rest.
        let written = class.rules.iter().flat_map(|rule| {
            let v3 = rule
                .path
                .strip_prefix("/api/v*/")
                .map(|rest| (format!("/api/v3/{rest}"), true));
            let own = (rule.path.to_string(), rule.path.starts_with("/api/v3/"));
            v3.into_iter()
                .chain([own])
                .map(move |(path, jwt)| (rule, path, jwt))
        });
        for (rule, path, jwt) in written {
            line("[[gateway.routes]]");
            line(&format!("path = \"{path}\""));
            line(&format!("methods = {}", quoted(rule.methods)));
            if !rule.query.is_empty() {
                line(&format!("query = {}", quoted(rule.query)));
            }
            line(&format!("scopes = [\"{}\"]", class.scope));
            if class.proof != "dpop" {
                line(&format!("proof = \"{}\"", class.proof));
            }
            if class.credentials {
                line("credentials = true");
            }
            if class.tunnel {
                line("tunnel = \"socket.io\"");
            }
            if let Some((per_second, burst)) = class.rate_limit {
                line(&format!(
                    "rate_limit = {{ per_second = {per_second}, burst = {burst} }}"
                ));
            }
            let api_secret = format!(
                "{{ header = \"api-secret\", secret = \"{SECRET_NAME}\", encoding = \"sha1-hex\" }}"
            );
            if jwt {
                line(&format!(
                    "inject = [{api_secret}, {{ header = \"authorization\", secret = \"{TOKEN_SECRET_NAME}\", encoding = \"nightscout-jwt\" }}]"
                ));
            } else {
                line(&format!("inject = [{api_secret}]"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use http::Method;
    use medgate_gateway::routes::{self, ProofMode, Route};

    use crate::config::Config;

    use super::*;

    fn routes() -> Vec<Route> {
        let text = profile("http://127.0.0.1:1337/", None);
        let config = Config::from_toml(&text, "generated").unwrap();
        assert_eq!(config.gateway.strip_headers, ["api-secret"]);
        config
            .gateway
            .routes
            .iter()
            .map(|route| Route::compile(route).unwrap())
            .collect()
    }

    /// The scope and proof of the rule a request falls under, or `None` (denied).
    fn class_of(routes: &[Route], method: &str, target: &str) -> Option<(String, ProofMode)> {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        routes::find(routes, path, &method, query)
            .map(|route| (route.scopes().join(" "), route.proof()))
    }

    #[test]
    fn every_nightscout_route_falls_in_its_risk_class() {
        use ProofMode::{Dpop, DpopSignature as Signed};
        let routes = routes();
        let expect = [
            // Reads, by the clients that make them (research §A.3).
            ("GET", "/api/v1/entries.json?count=10&rr=1", "read", Dpop),
            ("GET", "/api/v1/entries/sgv.json?count=1600", "read", Dpop),
            (
                "GET",
                "/api/v1/treatments.json?find[carbs][$exists]=true",
                "read",
                Dpop,
            ),
            ("GET", "/api/v1/devicestatus.json", "read", Dpop),
            ("GET", "/api/v1/profile/current", "read", Dpop),
            ("GET", "/api/v1/status.json", "read", Dpop),
            ("GET", "/api/v1/verifyauth", "read", Dpop),
            ("GET", "/api/v1/experiments/test", "read", Dpop),
            ("GET", "/api/v2/properties/iob,cob", "read", Dpop),
            (
                "GET",
                "/api/v3/entries?sort$desc=date&limit=288",
                "read",
                Dpop,
            ),
            ("GET", "/api/v3/version", "read", Dpop),
            ("GET", "/api/v3/settings", "read", Dpop),
            // Alarm silence is not a read.
            (
                "GET",
                "/api/v1/notifications/ack?level=2&group=default&time=1800000",
                "alarm-ack",
                Dpop,
            ),
            // Data writes.
            ("POST", "/api/v1/entries", "data-write", Dpop),
            ("POST", "/api/v1/entries.json", "data-write", Dpop),
            ("POST", "/api/v1/devicestatus.json", "data-write", Dpop),
            ("POST", "/api/v3/entries", "data-write", Dpop),
            (
                "DELETE",
                "/api/v1/entries/6543210fedcba9876543210f",
                "data-write",
                Dpop,
            ),
            // Therapy writes need a signature over the body.
            ("POST", "/api/v1/treatments", "therapy-write", Signed),
            ("PUT", "/api/v1/treatments/", "therapy-write", Signed),
            ("POST", "/api/v2/treatments.json", "therapy-write", Signed),
            ("DELETE", "/api/v1/treatments/abc", "therapy-write", Signed),
            ("POST", "/api/v1/profile.json", "therapy-write", Signed),
            ("PATCH", "/api/v3/treatments/abc", "therapy-write", Signed),
            // Commands.
            ("POST", "/api/v2/notifications/loop", "command", Signed),
            ("PUT", "/api/v3/settings/aaps", "command", Signed),
            // Bulk deletes, however the filter is spelt.
            (
                "DELETE",
                "/api/v1/entries/?find[type]=*",
                "bulk-delete",
                Signed,
            ),
            (
                "DELETE",
                "/api/v1/treatments.json?find[id][$eq]=1",
                "bulk-delete",
                Signed,
            ),
            (
                "DELETE",
                "/api/v1/devicestatus/*?find%5Bcreated_at%5D%5B%24lte%5D=1",
                "bulk-delete",
                Signed,
            ),
            (
                "DELETE",
                "/api/v1/entries?count=1&find.type=sgv",
                "bulk-delete",
                Signed,
            ),
            // The socket.io tunnel.
            ("GET", "/socket.io/?EIO=4&transport=polling", "tunnel", Dpop),
            (
                "POST",
                "/socket.io/?EIO=3&transport=polling&sid=x",
                "tunnel",
                Dpop,
            ),
            // Admin.
            ("POST", "/api/v2/authorization/subjects", "admin", Signed),
            ("GET", "/api/v2/authorization/roles", "admin", Signed),
        ];
        for (method, target, class, proof) in expect {
            assert_eq!(
                class_of(&routes, method, target),
                Some((format!("nightscout:{class}"), proof)),
                "{method} {target}"
            );
        }
    }

    #[test]
    fn what_no_class_covers_is_denied() {
        let routes = routes();
        for (method, target) in [
            // The token exchange would hand out a credential that works around the gateway.
            (
                "GET",
                "/api/v2/authorization/request/token=follower-0123456789abcdef",
            ),
            (
                "GET",
                "/api/v2/authorization/request/follower-0123456789abcdef",
            ),
            // The UI, and what no rule names.
            ("GET", "/"),
            ("GET", "/bundle/js/bundle.app.js"),
            ("POST", "/api/v1/status"),
            ("DELETE", "/api/v2/notifications/loop"),
            ("GET", "/api/v2/notifications/loop"),
            ("POST", "/api/v1/notifications/pushovercallback"),
            ("TRACE", "/api/v1/entries"),
        ] {
            assert_eq!(class_of(&routes, method, target), None, "{method} {target}");
        }
    }

    #[test]
    fn remote_commands_have_their_own_tight_limit_and_reads_none() {
        let routes = routes();
        let find = |method: &str, path: &str| {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            routes::find(&routes, path, &method, None).unwrap()
        };
        let installation = "installation-1".to_string();
        let command = find("POST", "/api/v2/notifications/loop");
        assert!(command.check_limit(&installation).is_ok());
        assert!(command.check_limit(&installation).is_ok());
        assert!(command.check_limit(&installation).is_err());
        let read = find("GET", "/api/v1/entries.json");
        for _ in 0..50 {
            assert!(read.check_limit(&installation).is_ok());
        }
    }

    #[test]
    fn every_route_injects_the_site_secret_and_v3_routes_a_jwt_too() {
        use medgate_gateway::inject::Encoding;
        for route in routes() {
            let v3 = route.pattern().starts_with("/api/v3/");
            let injected: Vec<(&str, Encoding)> = route
                .inject()
                .iter()
                .map(|i| (i.secret(), i.encoding()))
                .collect();
            let mut expected = vec![(SECRET_NAME, Encoding::Sha1Hex)];
            if v3 {
                expected.push((TOKEN_SECRET_NAME, Encoding::NightscoutJwt));
            }
            assert_eq!(injected, expected, "{}", route.pattern());
        }
        // A v3 request falls under a v3 rule, one for another version does not.
        let routes = routes();
        let find = |path: &str| {
            routes::find(&routes, path, &Method::GET, None)
                .unwrap()
                .pattern()
                .to_string()
        };
        assert_eq!(find("/api/v3/entries"), "/api/v3/entries*");
        assert_eq!(find("/api/v1/entries.json"), "/api/v*/entries*");
    }
}
