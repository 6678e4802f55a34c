//! The console on the admin listener, over real HTTP as a browser speaks it: operators added
//! with the admin token, sign-in with a password, pages from the telemetry series and the
//! store, revocation by an operator (and not by a viewer), forged and cross-site forms refused,
//! the security headers, sign-in limits. `console_browser.rs` drives the same in Chromium.

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, HeaderMap, HeaderName, HeaderValue, SET_COOKIE};
use http::{Method, StatusCode};

use crate::common::{Reply, Stack};

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds an operator through the admin API.
pub async fn add_operator(stack: &Stack, name: &str, role: &str, password: &str) {
    stack
        .admin(
            Method::POST,
            "/v1/admin/operators",
            serde_json::json!({"name": name, "role": role, "password": password}),
        )
        .await
        .assert_status(StatusCode::CREATED);
}

/// A browser's view of the console: its cookies, sent back as a browser would.
struct Browser<'a> {
    stack: &'a Stack,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(stack: &'a Stack) -> Self {
        Browser {
            stack,
            cookies: BTreeMap::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.node.admin_url())
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Reply {
        if !self.cookies.is_empty() {
            let jar = self
                .cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            headers.insert(COOKIE, HeaderValue::from_str(&jar).unwrap());
        }
        let reply = self.stack.raw(method, &self.url(path), headers, body).await;
        for set in reply.0.headers.get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        reply
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, HeaderMap::new(), Bytes::new())
            .await
    }

    /// A form posted from a page of the console (the browser adds `Origin`).
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let origin = self.stack.node.admin_url();
        self.post_from(path, fields, &origin).await
    }

    async fn post_from(&mut self, path: &str, fields: &[(&str, &str)], origin: &str) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(
            HeaderName::from_static("origin"),
            HeaderValue::from_str(origin).unwrap(),
        );
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(Method::POST, path, headers, Bytes::from(body))
            .await
    }

    /// Signs in through the form; the reply to the form's POST.
    async fn sign_in(&mut self, name: &str, password: &str) -> Reply {
        let form = self.get("/console/login").await;
        form.assert_status(StatusCode::OK);
        let token = hidden(&text(&form), "login");
        self.post(
            "/console/login",
            &[("login", &token), ("name", name), ("password", password)],
        )
        .await
    }
}

fn text(reply: &Reply) -> String {
    String::from_utf8(reply.0.body.to_vec()).unwrap()
}

/// A hidden field's value in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_string()
}

fn assert_redirect(reply: &Reply, to: &str) {
    reply.assert_status(StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location").as_deref(), Some(to));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_reads_the_overview_and_revokes_what_a_viewer_cannot() {
    let stack = Stack::start().await;
    add_operator(&stack, "alice", "operator", "correct horse battery").await;
    add_operator(&stack, "vic", "viewer", "staple of the viewer").await;
    // Listed without a password or its hash.
    let listed = stack
        .admin(Method::GET, "/v1/admin/operators", serde_json::Value::Null)
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains("argon2"), "{listed}");
    assert!(!listed.to_string().contains("correct horse"), "{listed}");

    // A minute of genuine and hostile clients, stored in the telemetry series.
    let (start, genuine) = stack.mixed_minute().await;
    stack.stored_minute(start).await;
    let id = genuine.installation_id().as_str().to_string();

    let mut alice = Browser::new(&stack);
    // Not signed in: every page sends to the sign-in form.
    assert_redirect(&alice.get("/console").await, "/console/login");
    assert_redirect(
        &alice.get(&format!("/console/installations/{id}")).await,
        "/console/login",
    );
    // The sign-in form: the security headers, and its own cookie, locked down.
    let form = alice.get("/console/login").await;
    assert_eq!(form.header("content-security-policy").as_deref(), Some(CSP));
    assert_eq!(form.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(
        form.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        form.header("referrer-policy").as_deref(),
        Some("same-origin")
    );
    assert_eq!(form.header("cache-control").as_deref(), Some("no-store"));
    let set = form.header("set-cookie").unwrap();
    for attribute in [
        "__Host-medgate-login=",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!text(&form).contains("<script>"), "no inline script");

    // A wrong password, an unknown name: the same answer, no session.
    for (name, password) in [
        ("alice", "not the password"),
        ("mallory", "correct horse battery"),
    ] {
        let refused = alice.sign_in(name, password).await;
        refused.assert_status(StatusCode::UNAUTHORIZED);
        assert!(text(&refused).contains("The name or the password is wrong."));
        assert!(!alice.cookies.contains_key("__Host-medgate-session"));
    }
    // A sign-in form posted without its cookie's token (from another site's page) is refused.
    let forged = alice
        .post(
            "/console/login",
            &[
                ("login", "forged"),
                ("name", "alice"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    forged.assert_status(StatusCode::FORBIDDEN);

    assert_redirect(
        &alice.sign_in("alice", "correct horse battery").await,
        "/console",
    );
    let session = alice.cookies.get("__Host-medgate-session").unwrap().clone();
    assert_eq!(session.len(), 43, "32 random bytes");

    // The overview: the workload's counts, charted and tabled.
    let overview = alice.get("/console?range=1h").await;
    overview.assert_status(StatusCode::OK);
    assert_eq!(
        overview.header("content-security-policy").as_deref(),
        Some(CSP)
    );
    let page = text(&overview);
    assert!(page.contains("<svg"), "{page}");
    assert!(page.contains(r#"<rect class="s-allow""#), "{page}");
    assert!(page.contains(r#"<rect class="s-reject""#), "{page}");
    assert!(
        page.contains("<td>hook_detected</td><td>sdk</td><td>reject</td>"),
        "{page}"
    );
    assert!(page.contains("alice · operator"), "{page}");
    // The genuine and the rooted (limited) client are in use; the hooked one was refused.
    assert!(
        page.contains("<strong>2</strong> installations in use"),
        "{page}"
    );
    alice
        .get("/console?range=2y")
        .await
        .assert_status(StatusCode::BAD_REQUEST);

    // Filter by last decision: the hooked client was refused and left no row (a refused key
    // never granted); the rooted one was limited.
    let limited = text(
        &alice
            .get("/console/installations?app=org.example.cgm&decision=allow_limited&platform=sdk&integrity=self_reported&version=1.2.3")
            .await,
    );
    assert_eq!(
        limited
            .matches("<tr><td><a href=\"/console/installations/")
            .count(),
        1,
        "{limited}"
    );
    assert!(!limited.contains(&id), "{limited}");
    alice
        .get("/console/installations?decision=maybe")
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    // Find the installation, open it.
    let found = text(&alice.get(&format!("/console/installations?q={id}")).await);
    assert!(
        found.contains(&format!("/console/installations/{id}")),
        "{found}"
    );
    let detail = alice.get(&format!("/console/installations/{id}")).await;
    let detail = text(&detail);
    assert!(detail.contains("Revoke installation"), "{detail}");
    let csrf = hidden(&detail, "csrf");
    let revoke = format!("/console/installations/{id}/revoke");

    // Forged revocations: no token, a wrong one, another site's page.
    alice
        .post(&revoke, &[])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    alice
        .post(&revoke, &[("csrf", "AAAA")])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    alice
        .post_from(&revoke, &[("csrf", &csrf)], "https://evil.example")
        .await
        .assert_status(StatusCode::FORBIDDEN);
    // A browser that says the form came from another site (Sec-Fetch-Site) is refused too.
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        HeaderName::from_static("sec-fetch-site"),
        HeaderValue::from_static("cross-site"),
    );
    alice
        .send(
            Method::POST,
            &revoke,
            headers,
            Bytes::from(format!("csrf={csrf}")),
        )
        .await
        .assert_status(StatusCode::FORBIDDEN);
    // A viewer's own session and token do not let them revoke either.
    let mut vic = Browser::new(&stack);
    assert_redirect(
        &vic.sign_in("vic", "staple of the viewer").await,
        "/console",
    );
    let vic_detail = text(&vic.get(&format!("/console/installations/{id}")).await);
    assert!(!vic_detail.contains("Revoke installation"), "{vic_detail}");
    let vic_csrf = hidden(&vic_detail, "csrf");
    assert_ne!(vic_csrf, csrf, "a token belongs to its session");
    vic.post(&revoke, &[("csrf", &vic_csrf)])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    // Nothing so far revoked it.
    assert_eq!(genuine.get("/echo").await.unwrap().status, StatusCode::OK);

    assert_redirect(
        &alice.post(&revoke, &[("csrf", &csrf)]).await,
        &format!("/console/installations/{id}"),
    );
    stack
        .eventually(5, || async {
            genuine.get("/echo").await.unwrap().status == StatusCode::UNAUTHORIZED
        })
        .await;
    // Audited as alice's, her sign-in too.
    let audit = stack
        .admin(
            Method::GET,
            "/v1/admin/audit?limit=1000",
            serde_json::Value::Null,
        )
        .await
        .json();
    let entries = audit.as_array().unwrap();
    let by = |kind: &str| -> Vec<(String, String)> {
        entries
            .iter()
            .filter(|entry| entry["kind"] == kind)
            .map(|entry| {
                (
                    entry["actor"].as_str().unwrap().to_string(),
                    entry["subject"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        by("admin.installation.revoke"),
        [("operator:alice".to_string(), id.clone())]
    );
    assert_eq!(
        by("console.sign_in"),
        [
            ("operator:alice".to_string(), "alice".to_string()),
            ("operator:vic".to_string(), "vic".to_string())
        ]
    );
    assert!(
        !audit.to_string().contains(&session),
        "no session value in the audit log"
    );

    // Text an admin gave (a follower credential's name) is shown as text, never as markup.
    stack
        .admin(
            Method::POST,
            "/v1/admin/apps/org.example.cgm/credentials",
            serde_json::json!({"kind": "follower", "name": "<script>alert(1)</script>", "scopes": ["entries:read"]}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    let escaped = text(&alice.get("/console/audit?kind=admin.credential").await);
    assert!(
        escaped.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{escaped}"
    );
    assert!(!escaped.contains("<script>alert"), "{escaped}");
    // The audit log in the console: alice's entries by filter, the signed checkpoint, the
    // chain verified against it.
    let log = text(&alice.get("/console/audit?actor=operator:alice").await);
    assert!(
        log.contains("<td>admin.installation.revoke</td><td>operator:alice</td>"),
        "{log}"
    );
    assert!(
        log.contains("<td>console.sign_in</td><td>operator:alice</td>"),
        "{log}"
    );
    assert!(!log.contains("<td>operator:vic</td>"), "{log}");
    assert!(log.contains("Latest signed checkpoint"), "{log}");
    assert!(
        !log.contains("None published yet."),
        "the node signs one at start: {log}"
    );
    let only_sign_ins = text(&alice.get("/console/audit?kind=console.").await);
    assert!(
        only_sign_ins.contains("<td>operator:vic</td>"),
        "{only_sign_ins}"
    );
    assert!(
        !only_sign_ins.contains("admin.installation.revoke"),
        "{only_sign_ins}"
    );
    let verified = text(&alice.get("/console/audit/verify").await);
    assert!(verified.contains("The chain verifies."), "{verified}");

    // Signing out ends the session: the old cookie no longer works.
    let sign_out_csrf = hidden(&text(&alice.get("/console").await), "csrf");
    assert_redirect(
        &alice
            .post("/console/logout", &[("csrf", &sign_out_csrf)])
            .await,
        "/console/login",
    );
    let mut replayed = Browser::new(&stack);
    replayed
        .cookies
        .insert("__Host-medgate-session".into(), session);
    assert_redirect(&replayed.get("/console").await, "/console/login");
    // Removing an operator ends their sessions at once.
    stack
        .admin(
            Method::DELETE,
            "/v1/admin/operators/vic",
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    assert_redirect(&vic.get("/console").await, "/console/login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_limited_per_name() {
    let stack = Stack::start().await;
    add_operator(&stack, "alice", "admin", "correct horse battery").await;
    add_operator(&stack, "bob", "viewer", "battery horse correct").await;
    let mut browser = Browser::new(&stack);
    for _ in 0..5 {
        browser
            .sign_in("alice", "a guess at it")
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    // The sixth attempt is not even checked, right password or not.
    let limited = browser.sign_in("alice", "correct horse battery").await;
    limited.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    assert!(!browser.cookies.contains_key("__Host-medgate-session"));
    // Another name, from the same address, still signs in.
    assert_redirect(
        &browser.sign_in("bob", "battery horse correct").await,
        "/console",
    );
    // Operators' names and passwords are checked before anything is stored.
    for (body, why) in [
        (
            serde_json::json!({"name": "Alice", "role": "viewer", "password": "long enough pass"}),
            "name",
        ),
        (
            serde_json::json!({"name": "carol", "role": "viewer", "password": "short"}),
            "password",
        ),
        (
            serde_json::json!({"name": "carol", "role": "root", "password": "long enough pass"}),
            "role",
        ),
    ] {
        let reply = stack.admin(Method::POST, "/v1/admin/operators", body).await;
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{why}");
    }
    stack
        .admin(
            Method::POST,
            "/v1/admin/operators",
            serde_json::json!({"name": "bob", "role": "admin", "password": "long enough pass"}),
        )
        .await
        .assert_status(StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_revokes_a_release_knowing_who_is_still_on_it() {
    let stack = Stack::start().await;
    add_operator(&stack, "alice", "operator", "correct horse battery").await;
    add_operator(&stack, "vic", "viewer", "staple of the viewer").await;
    let on_it = stack.client();
    on_it.attest().await.unwrap();
    assert_eq!(on_it.get("/echo").await.unwrap().status, StatusCode::OK);

    let mut alice = Browser::new(&stack);
    assert_redirect(
        &alice.sign_in("alice", "correct horse battery").await,
        "/console",
    );
    let apps = text(&alice.get("/console/apps").await);
    assert!(
        apps.contains(r#"<a href="/console/apps/org.example.cgm">"#),
        "{apps}"
    );
    let app = text(&alice.get("/console/apps/org.example.cgm").await);
    // Version 1.2.3: one build, one installation on it, not revoked.
    assert!(
        app.contains(r#"<td>1.2.3</td><td>1</td>"#) && app.contains(r#"<td class="n">1</td>"#),
        "{app}"
    );
    assert!(app.contains("Revoke 1.2.3"), "{app}");
    let csrf = hidden(&app, "csrf");
    let revoke = "/console/apps/org.example.cgm/releases/1.2.3/revoke";

    // A viewer sees the count but no button, and is refused with their own token.
    let mut vic = Browser::new(&stack);
    assert_redirect(
        &vic.sign_in("vic", "staple of the viewer").await,
        "/console",
    );
    let seen = text(&vic.get("/console/apps/org.example.cgm").await);
    assert!(!seen.contains("Revoke 1.2.3"), "{seen}");
    let vic_csrf = hidden(&seen, "csrf");
    vic.post(revoke, &[("csrf", &vic_csrf)])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    alice
        .post(revoke, &[])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    assert_eq!(on_it.get("/echo").await.unwrap().status, StatusCode::OK);

    assert_redirect(
        &alice.post(revoke, &[("csrf", &csrf)]).await,
        "/console/apps/org.example.cgm",
    );
    let after = text(&alice.get("/console/apps/org.example.cgm").await);
    assert!(!after.contains("Revoke 1.2.3"), "{after}");
    stack
        .eventually(5, || async {
            on_it.get("/echo").await.unwrap().status == StatusCode::UNAUTHORIZED
        })
        .await;
    // An unknown release is not found; the audit entry is alice's.
    alice
        .post(
            "/console/apps/org.example.cgm/releases/9.9.9/revoke",
            &[("csrf", &csrf)],
        )
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let log = text(&alice.get("/console/audit?kind=admin.release.revoke").await);
    assert!(
        log.contains("<td>admin.release.revoke</td><td>operator:alice</td>"),
        "{log}"
    );

    // Versions in the field: 1.2.3 took every installation granted since it was registered,
    // and the installation on it is still on a revoked release.
    let versions = text(&vic.get("/console/versions").await);
    assert!(
        versions.contains("<td>org.example.cgm</td><td>1.2.3</td>"),
        "{versions}"
    );
    assert!(
        versions.contains("Still on a revoked release"),
        "{versions}"
    );
    assert!(
        versions.contains(&format!(
            "/console/installations/{}",
            on_it.installation_id().as_str()
        )),
        "{versions}"
    );

    // Keys, pins and secrets: names, versions and states, never a value.
    let value = "the-upstream-api-key-0123456789";
    stack
        .admin(
            Method::POST,
            "/v1/admin/apps/org.example.cgm/secrets",
            serde_json::json!({"name": "nightscout", "value": base64::engine::general_purpose::STANDARD.encode(value)}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    let created = stack
        .admin(
            Method::POST,
            "/v1/admin/apps/org.example.cgm/credentials",
            serde_json::json!({"kind": "follower", "name": "School nurse", "scopes": ["entries:read"]}),
        )
        .await
        .json();
    let follower_secret = created["secret"].as_str().unwrap().to_string();
    let kid = stack
        .admin(Method::GET, "/v1/admin/keys", serde_json::Value::Null)
        .await
        .json()[0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let keys = text(&vic.get("/console/keys").await);
    for shown in [
        kid.as_str(),
        r#"<td>nightscout</td><td class="n">1</td>"#,
        "School nurse",
        "not published",
    ] {
        assert!(keys.contains(shown), "{shown}: {keys}");
    }
    assert!(
        !keys.contains(value) && !keys.contains(&follower_secret),
        "{keys}"
    );
}
