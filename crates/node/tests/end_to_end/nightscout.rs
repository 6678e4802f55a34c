//! The gateway in front of a Nightscout-compatible upstream, configured by the Nightscout
//! profile (`medgate nightscout init`): reads and uploads pass with the site's API_SECRET
//! injected, therapy writes need a signature, commands and bulk deletes are refused, and no
//! credential a client sends reaches the upstream. Followers and uploaders: `followers.rs`.

use std::io::Write as _;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use medgate_node::config::Config;
use medgate_node::nightscout::profile::{SECRET_NAME, TOKEN_SECRET_NAME, profile};
use medgate_node::nightscout::upstream::{NightscoutUpstream, Seen, sha1_hex};
use medgate_sdk::client::MedgateClient;

use crate::common::{APP, Reply, Stack};

pub(crate) const API_SECRET: &str = "the-sites-own-api-secret";
/// What a client might send as a Nightscout credential: must never reach the upstream.
const FORGED: &str = "forged-client-credential";

/// A Nightscout double and a node configured with the Nightscout profile, whose app holds
/// `scopes` and the site's API_SECRET as its `nightscout` secret.
pub(crate) async fn nightscout_stack(scopes: &[&str]) -> (NightscoutUpstream, Stack) {
    let site = NightscoutUpstream::start("127.0.0.1:0".parse().unwrap(), API_SECRET)
        .await
        .unwrap();
    let stack = nightscout_stack_for(&site.url(), scopes, Some(&site.access_token())).await;
    // v3 routes need the JWT the gateway fetches for that token in the background.
    stack
        .eventually(10, || async { site.jwts_issued() > 0 })
        .await;
    (site, stack)
}

/// A node with the Nightscout profile in front of the Nightscout at `upstream`, whose
/// API_SECRET is [`API_SECRET`], and the access token v3 routes exchange for a JWT, if any.
pub(crate) async fn nightscout_stack_for(
    upstream: &str,
    scopes: &[&str],
    access_token: Option<&str>,
) -> Stack {
    let generated = Config::from_toml(&profile(upstream, None), "profile").unwrap();
    let stack = Stack::start_with_scopes(
        |config| {
            // The profile's whole [gateway] section, on this test's own address.
            config.gateway = medgate_node::config::GatewayConfig {
                listen: config.gateway.listen,
                ..generated.gateway.clone()
            };
        },
        scopes,
    )
    .await;
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/secrets"),
            serde_json::json!({
                "name": SECRET_NAME,
                "value": base64::engine::general_purpose::STANDARD.encode(API_SECRET),
            }),
        )
        .await
        .assert_status(StatusCode::CREATED);
    if let Some(token) = access_token {
        stack
            .admin(
                Method::POST,
                &format!("/v1/admin/apps/{APP}/secrets"),
                serde_json::json!({
                    "name": TOKEN_SECRET_NAME,
                    "value": base64::engine::general_purpose::STANDARD.encode(token),
                }),
            )
            .await
            .assert_status(StatusCode::CREATED);
    }
    stack
}

/// `client`'s DPoP headers for `method path_and_query`, plus every Nightscout credential a
/// client could send and spoofed forwarding headers.
async fn with_forged_credentials(client: &MedgateClient, method: &str, path: &str) -> HeaderMap {
    let mut headers = client
        .request_headers(method, path)
        .await
        .unwrap()
        .to_header_map();
    for (name, value) in [
        ("api-secret", FORGED),
        ("api_secret", FORGED),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
    ] {
        headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
    }
    headers
}

/// Waits until the site's secret is in the gateway's cache (it is loaded in the background):
/// a read passes. Returns how many requests the site has seen by then.
async fn secret_loaded(site: &NightscoutUpstream, stack: &Stack, client: &MedgateClient) -> usize {
    stack
        .eventually(10, || async {
            client
                .send(Method::GET, "/api/v1/status.json", Bytes::new())
                .await
                .unwrap()
                .status
                == StatusCode::OK
        })
        .await;
    forwarded(site).len()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// What the site received from clients through the gateway: everything but the gateway's own
/// exchanges of the access token for a JWT.
pub(crate) fn forwarded(site: &NightscoutUpstream) -> Vec<Seen> {
    site.seen()
        .into_iter()
        .filter(|r| !r.uri.starts_with("/api/v2/authorization/request/"))
        .collect()
}

/// Every request the site received carried its own secret (as the SHA-1 hex Nightscout
/// compares) and nothing of what clients sent as credentials.
pub(crate) fn assert_site_saw_only_its_own_secret(site: &NightscoutUpstream) {
    let seen = forwarded(site);
    assert!(!seen.is_empty());
    for request in seen {
        assert!(request.authorized, "{} {}", request.method, request.uri);
        assert_eq!(
            request.header("api-secret"),
            Some(sha1_hex(API_SECRET).as_str())
        );
        assert!(
            !request.contains(FORGED),
            "{} {}",
            request.method,
            request.uri
        );
        assert!(!request.contains(API_SECRET), "the raw secret travelled");
        assert_eq!(request.header("x-forwarded-for"), Some("127.0.0.1"));
        assert_eq!(request.header("x-forwarded-proto"), Some("http"));
    }
}

#[tokio::test]
async fn an_uploader_posts_gzipped_readings_and_reads_them_with_the_sites_secret_injected() {
    let (site, stack) = nightscout_stack(&["nightscout:read", "nightscout:data-write"]).await;
    let client = stack.client();
    client.attest().await.unwrap();
    secret_loaded(&site, &stack, &client).await;

    // An xDrip+-style upload: one array, gzip-coded, with every credential a client may send
    // in every place Nightscout reads one.
    let readings = serde_json::json!([
        {"device": "xDrip-DexcomG6", "date": 1767225600000u64, "dateString": "2026-01-01T00:00:00.000Z",
         "sgv": 123, "delta": 1.5, "direction": "Flat", "type": "sgv", "noise": 1},
        {"device": "xDrip-DexcomG6", "date": 1767225900000u64, "dateString": "2026-01-01T00:05:00.000Z",
         "sgv": 131, "delta": 8.0, "direction": "FortyFiveUp", "type": "sgv", "noise": 1},
    ]);
    let coded = gzip(readings.to_string().as_bytes());
    let path = format!("/api/v1/entries.json?secret={FORGED}&token={FORGED}&api_secret={FORGED}");
    let mut headers = with_forged_credentials(&client, "POST", &path).await;
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // AndroidAPS sends `Date` in epoch milliseconds, not an HTTP-date.
    headers.insert(
        http::header::DATE,
        HeaderValue::from_static("1767225900123"),
    );
    let reply = stack
        .raw(
            Method::POST,
            &stack.gateway_url(&path),
            headers,
            Bytes::from(coded.clone()),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json().as_array().unwrap().len(), 2);
    assert_eq!(site.documents("entries").len(), 2);
    // The coded bytes arrived unchanged; the query kept nothing but what was not a credential.
    let upload = site
        .seen()
        .into_iter()
        .find(|r| r.method == "POST" && r.authorized)
        .unwrap();
    assert_eq!(upload.body, coded);
    assert_eq!(upload.header("content-encoding"), Some("gzip"));
    assert_eq!(upload.header("date"), Some("1767225900123"));
    assert_eq!(upload.uri, "/api/v1/entries.json");

    // A follower's read of the newest reading, as Nightscout clients ask for it.
    let reply = Reply(
        client
            .send(
                Method::GET,
                "/api/v1/entries/sgv.json?count=1",
                Bytes::new(),
            )
            .await
            .unwrap(),
    );
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json()[0]["sgv"], 131);
    assert_site_saw_only_its_own_secret(&site);
}

#[tokio::test]
async fn therapy_writes_need_a_signature_and_commands_bulk_deletes_and_token_exchange_are_refused()
{
    let (site, stack) = nightscout_stack(&[
        "nightscout:read",
        "nightscout:data-write",
        "nightscout:therapy-write",
    ])
    .await;
    let client = stack.client();
    client.attest().await.unwrap();
    let bolus = Bytes::from_static(
        br#"{"eventType":"Correction Bolus","insulin":1.5,"created_at":"2026-01-01T00:00:00Z","enteredBy":"medgate-test"}"#,
    );
    let before = secret_loaded(&site, &stack, &client).await;
    // Signed: the bolus reaches the site.
    let reply = Reply(
        client
            .send_signed(Method::POST, "/api/v1/treatments", bolus.clone())
            .await
            .unwrap(),
    );
    reply.assert_status(StatusCode::OK);
    let treatments = site.documents("treatments");
    assert_eq!(treatments.len(), 1);
    assert_eq!(treatments[0]["insulin"], 1.5);
    // The upstream received the proof of origin with it.
    let write = forwarded(&site).pop().unwrap();
    assert_eq!(write.method, "POST");
    assert_eq!(
        write.header("x-medgate-key"),
        Some(client.installation_id().as_str())
    );
    assert!(write.header("signature").is_some());

    // The same write with only a DPoP proof: refused, the site never sees it.
    let unsigned = Reply(
        client
            .send(Method::POST, "/api/v1/treatments", bolus.clone())
            .await
            .unwrap(),
    );
    unsigned.assert_signature_refused("needs an HTTP Message Signature");

    // Classes this app was not granted.
    let command = Bytes::from_static(
        br#"{"eventType":"Remote Bolus Entry","remoteBolus":"2.0","otp":"123456"}"#,
    );
    let reply = Reply(
        client
            .send_signed(Method::POST, "/api/v2/notifications/loop", command)
            .await
            .unwrap(),
    );
    reply.assert_status(StatusCode::FORBIDDEN);
    let reply = Reply(
        client
            .send_signed(
                Method::DELETE,
                "/api/v1/entries?find%5Btype%5D=sgv",
                Bytes::new(),
            )
            .await
            .unwrap(),
    );
    reply.assert_status(StatusCode::FORBIDDEN);
    // The socket.io tunnel, without its class.
    let reply = Reply(
        client
            .send(
                Method::GET,
                "/socket.io/?EIO=4&transport=polling",
                Bytes::new(),
            )
            .await
            .unwrap(),
    );
    reply.assert_status(StatusCode::FORBIDDEN);
    // The token exchange is the gateway's own: a secret it does not know gets nothing.
    let reply = Reply(
        client
            .send(
                Method::GET,
                "/api/v2/authorization/request/token=follower-0123456789abcdef",
                Bytes::new(),
            )
            .await
            .unwrap(),
    );
    reply.assert_status(StatusCode::UNAUTHORIZED);
    assert!(site.loop_notifications().is_empty());
    assert_eq!(
        forwarded(&site).len(),
        before + 1,
        "only the signed bolus reached the site"
    );
    assert_site_saw_only_its_own_secret(&site);
}

#[tokio::test]
async fn remote_commands_are_limited_per_installation_by_their_class() {
    let (site, stack) = nightscout_stack(&["nightscout:read", "nightscout:command"]).await;
    let client = stack.client();
    client.attest().await.unwrap();
    secret_loaded(&site, &stack, &client).await;
    let command = Bytes::from_static(
        br#"{"eventType":"Temporary Override","reason":"Exercise","duration":"60","notes":""}"#,
    );
    let send = || async {
        Reply(
            client
                .send_signed(Method::POST, "/api/v2/notifications/loop", command.clone())
                .await
                .unwrap(),
        )
    };
    // The command class allows one a second, in bursts of two, per installation: of six sent
    // at once, some wait (all six passing would take four seconds between them). The first
    // two always pass.
    let mut passed = 0;
    let mut limited = 0;
    for i in 0..6 {
        let reply = send().await;
        if reply.status() == StatusCode::OK {
            passed += 1;
        } else {
            assert!(i >= 2, "the burst is two");
            reply.assert_rate_limited();
            limited += 1;
        }
    }
    assert!(limited > 0, "six commands passed at once");
    assert_eq!(site.loop_notifications().len(), passed);
    // Reads are not held back by it.
    let read = client
        .send(Method::GET, "/api/v1/entries.json", Bytes::new())
        .await
        .unwrap();
    assert_eq!(read.status, StatusCode::OK);
}

/// v3 takes only a Nightscout JWT: the gateway exchanges the stored access token for one in
/// the background, injects it on v3 routes, fetches a new one before it expires and when the
/// token is rotated, and without a token v3 routes answer 503 while v1 goes on.
#[tokio::test]
async fn v3_routes_carry_the_jwt_the_gateway_gets_for_the_sites_access_token() {
    let (site, stack) = nightscout_stack(&["nightscout:read"]).await;
    let client = stack.client();
    client.attest().await.unwrap();
    let v3 = || async {
        Reply(
            client
                .send(Method::GET, "/api/v3/entries?limit=1", Bytes::new())
                .await
                .unwrap(),
        )
    };
    v3().await.assert_status(StatusCode::OK);
    let reached = forwarded(&site).pop().unwrap();
    let bearer = reached.header("authorization").unwrap().to_string();
    assert!(bearer.starts_with("Bearer ns."), "{bearer}");
    // One exchange serves every request until it nears expiry.
    v3().await.assert_status(StatusCode::OK);
    assert_eq!(site.jwts_issued(), 1);
    // Fifty minutes on, ten are left: a new one is fetched.
    stack.clock.advance(50 * 60);
    stack
        .eventually(10, || async { site.jwts_issued() == 2 })
        .await;
    // The client never sees it.
    let reply = v3().await;
    reply.assert_status(StatusCode::OK);
    assert!(!String::from_utf8_lossy(&reply.0.body).contains("ns."));
    assert!(
        reply
            .0
            .headers
            .iter()
            .all(|(_, v)| !v.as_bytes().starts_with(b"Bearer"))
    );

    // Without an access token (a stack that has none): v3 is 503, v1 is served.
    let (site, stack) = {
        let site = NightscoutUpstream::start("127.0.0.1:0".parse().unwrap(), API_SECRET)
            .await
            .unwrap();
        let stack = nightscout_stack_for(&site.url(), &["nightscout:read"], None).await;
        (site, stack)
    };
    let client = stack.client();
    client.attest().await.unwrap();
    secret_loaded(&site, &stack, &client).await;
    let reply = Reply(
        client
            .send(Method::GET, "/api/v3/entries", Bytes::new())
            .await
            .unwrap(),
    );
    reply.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(site.jwts_issued(), 0);
}
