//! `medgate demo --nightscout`: the gateway with the Nightscout profile in front of a
//! Nightscout-compatible site (`medgate_node::nightscout::upstream`), and the story a
//! Nightscout user cares about: a caregiver's follower link reads, the same link cannot post
//! carbs, a Frida-hooked uploader is refused, a signed bolus from the attested app passes and
//! an unsigned one does not, a revoked link stops, and the site never sees anyone's
//! credential but its own.

use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use medgate_node::config::Config;
use medgate_node::nightscout::profile::{SECRET_NAME, credential_scopes, profile};
use medgate_node::nightscout::upstream::{NightscoutUpstream, sha1_hex};
use medgate_proto::admin;
use medgate_sdk::client::HttpClient;

use super::{Demo, DemoArgs, Row, demo_app, describe, finish, start_registered};
use crate::Failure;
use crate::admin::AdminApi;

const APP: &str = "org.example.loop-uploader";
/// The site's own secret, which no app and no follower ever holds.
const SITE_API_SECRET: &str = "demo-nightscout-site-secret";

pub(super) async fn run(
    mut config: Config,
    measurement: String,
    args: &DemoArgs,
) -> Result<(), Failure> {
    let site =
        NightscoutUpstream::start("127.0.0.1:0".parse().context("loopback")?, SITE_API_SECRET)
            .await?;
    let generated = Config::from_toml(&profile(&site.url(), None), "the Nightscout profile")
        .map_err(|e| Failure::Usage(e.into()))?;
    // The profile's whole [gateway] section, on the demo's address.
    config.gateway = medgate_node::config::GatewayConfig {
        listen: config.gateway.listen,
        ..generated.gateway
    };
    let node = start_registered(
        config,
        demo_app(
            APP,
            &[
                "nightscout:read",
                "nightscout:data-write",
                "nightscout:therapy-write",
            ],
            &["nightscout:read"],
        ),
        &measurement,
    )
    .await?;
    let admin = AdminApi::new(node.admin_url(), node.admin_token()?);
    let _: admin::SecretVersion = admin
        .send(
            Method::POST,
            &format!("/apps/{APP}/secrets"),
            &admin::SetSecret {
                name: SECRET_NAME.into(),
                value: base64::engine::general_purpose::STANDARD.encode(SITE_API_SECRET),
            },
        )
        .await?;
    let demo = Demo {
        node,
        http: HttpClient::default(),
        measurement,
        app_id: APP,
    };
    let rows = scenarios(&demo, &admin, &site).await?;
    finish(demo, rows, &site.url(), args).await
}

/// A request to the gateway with `headers`, as a client without the SDK sends it.
async fn plain(
    demo: &Demo,
    method: Method,
    path: &str,
    headers: &[(&'static str, &str)],
    body: &'static [u8],
) -> Result<medgate_sdk::client::HttpResponse, Failure> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, HeaderValue::from_str(value)?);
    }
    if !body.is_empty() {
        map.insert("content-type", HeaderValue::from_static("application/json"));
    }
    let url = format!("{}{path}", demo.node.public_url());
    Ok(demo
        .http
        .send(method, &url, map, Bytes::from_static(body))
        .await?)
}

/// Polls `path` with the follower's link until `done` holds or five seconds pass.
async fn poll(
    demo: &Demo,
    path: &str,
    done: impl Fn(StatusCode) -> bool,
) -> Result<(medgate_sdk::client::HttpResponse, Duration), Failure> {
    let started = Instant::now();
    loop {
        let reply = plain(demo, Method::GET, path, &[], b"").await?;
        if done(reply.status) || started.elapsed() > Duration::from_secs(5) {
            return Ok((reply, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const CARBS: &[u8] = br#"{"eventType":"Carb Correction","carbs":30,"enteredBy":"caregiver"}"#;
const BOLUS: &[u8] =
    br#"{"eventType":"Correction Bolus","insulin":1.5,"enteredBy":"org.example.loop-uploader"}"#;

async fn scenarios(
    demo: &Demo,
    admin: &AdminApi,
    site: &NightscoutUpstream,
) -> Result<Vec<Row>, Failure> {
    let mut rows = Vec::new();

    // The attested uploader posts a reading; the site's own secret is injected.
    let uploader = demo.genuine()?;
    uploader.attest().await?;
    let reading = Bytes::from_static(
        br#"[{"type":"sgv","sgv":142,"direction":"Flat","date":1767225600000,"dateString":"2026-01-01T00:00:00.000Z"}]"#,
    );
    let started = Instant::now();
    let posted = loop {
        // The gateway loads the site's secret in the background: until then, 503.
        let reply = uploader
            .send(Method::POST, "/api/v1/entries", reading.clone())
            .await?;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE
            || started.elapsed() > Duration::from_secs(5)
        {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    rows.push(Row {
        scenario: "attested uploader posts a reading",
        expected: "200",
        observed: format!(
            "{} ({} reading stored)",
            posted.status.as_u16(),
            site.documents("entries").len()
        ),
        as_expected: posted.status == StatusCode::OK && site.documents("entries").len() == 1,
    });

    // A caregiver's follower link: made once, read-only.
    let scopes = credential_scopes("follower", &["read".to_string()])
        .map_err(|e| Failure::Usage(anyhow::anyhow!(e)))?;
    let follower = admin::CreateCredential {
        kind: admin::CredentialKind::Follower,
        name: "Grandma".into(),
        scopes,
        expires_in_secs: Some(30 * 24 * 3600),
    };
    let created: admin::CredentialCreated = admin
        .send(Method::POST, &format!("/apps/{APP}/credentials"), &follower)
        .await?;
    let secret = created.secret;
    let id = created.credential.id;
    let read_path = format!("/api/v1/entries.json?count=1&token={secret}");
    let (read, _) = poll(demo, &read_path, |status| status == StatusCode::OK).await?;
    let sgv = serde_json::from_slice::<serde_json::Value>(&read.body)
        .ok()
        .and_then(|v| v[0]["sgv"].as_i64());
    rows.push(Row {
        scenario: "caregiver's follower link reads",
        expected: "200",
        observed: format!(
            "{} (sgv {})",
            read.status.as_u16(),
            sgv.map_or("-".into(), |v| v.to_string())
        ),
        as_expected: read.status == StatusCode::OK && sgv == Some(142),
    });

    // The same link tries to post carbs.
    let carbs = plain(
        demo,
        Method::POST,
        "/api/v1/treatments",
        &[("api-secret", &secret)],
        CARBS,
    )
    .await?;
    rows.push(Row {
        scenario: "the link posts carbs",
        expected: "403",
        observed: describe(&carbs),
        as_expected: carbs.status == StatusCode::FORBIDDEN,
    });

    rows.push(super::hooked_app_attests(demo, "Frida-hooked uploader attests").await?);

    // A bolus: signed by the attested app's key over the body, and not signed.
    let unsigned = uploader
        .send(
            Method::POST,
            "/api/v1/treatments",
            Bytes::from_static(BOLUS),
        )
        .await?;
    let signed = uploader
        .send_signed(
            Method::POST,
            "/api/v1/treatments",
            Bytes::from_static(BOLUS),
        )
        .await?;
    let boluses = site.documents("treatments").len();
    rows.push(Row {
        scenario: "bolus without a signature",
        expected: "401",
        observed: describe(&unsigned),
        as_expected: unsigned.status == StatusCode::UNAUTHORIZED,
    });
    rows.push(Row {
        scenario: "signed bolus from the attested app",
        expected: "200, stored once",
        observed: format!(
            "{} ({boluses} treatment stored, with its signature)",
            signed.status.as_u16()
        ),
        as_expected: signed.status == StatusCode::OK && boluses == 1,
    });

    // The link is revoked.
    let _: admin::CredentialRevoked = admin
        .call(Method::POST, &format!("/credentials/{id}/revoke"))
        .await?;
    let (stopped, took) = poll(demo, &read_path, |status| status != StatusCode::OK).await?;
    rows.push(Row {
        scenario: "revoked follower link",
        expected: "401 within 5 s",
        observed: format!("{} after {:.1} s", describe(&stopped), took.as_secs_f64()),
        as_expected: stopped.status == StatusCode::UNAUTHORIZED,
    });

    // What the site saw: its own secret on every request, nobody else's.
    let own = sha1_hex(SITE_API_SECRET);
    let seen = site.seen();
    let clean = seen.iter().all(|r| {
        r.header("api-secret") == Some(own.as_str())
            && !r.contains(&secret)
            && !r.contains(&sha1_hex(&secret))
    });
    rows.push(Row {
        scenario: "what the site saw",
        expected: "only its own secret",
        observed: format!(
            "{} requests, each with sha1(API_SECRET) and no client credential: {clean}",
            seen.len()
        ),
        as_expected: clean && !seen.is_empty(),
    });
    Ok(rows)
}
