//! Followers and uploaders that cannot attest, in front of the Nightscout double with the
//! Nightscout profile: a credential is accepted in every place Nightscout clients put one,
//! only for its classes, is stripped before forwarding (the site sees only its own secret),
//! and stops within the gateway's refresh once revoked.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use medgate_node::nightscout::profile::credential_scopes;
use medgate_node::nightscout::upstream::{NightscoutUpstream, sha1_hex};

use crate::common::{APP, Reply, Stack};
use crate::nightscout::{assert_site_saw_only_its_own_secret, forwarded, nightscout_stack};

/// A credential made through the admin API: (id, secret).
async fn credential(stack: &Stack, kind: &str, classes: &[&str]) -> (String, String) {
    let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    let reply = stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/credentials"),
            serde_json::json!({
                "kind": kind,
                "name": "School nurse",
                "scopes": credential_scopes(kind, &classes).unwrap(),
                "expires_in_secs": 30 * 24 * 3600,
            }),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    let created = reply.json();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(
        created["share_link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/?token={secret}"))
    );
    (created["id"].as_str().unwrap().to_string(), secret)
}

async fn send(stack: &Stack, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let body = if method == Method::GET {
        Bytes::new()
    } else {
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Bytes::from_static(br#"[{"type":"sgv","sgv":120,"date":1767225600000}]"#)
    };
    stack.raw(method, &stack.gateway_url(path), map, body).await
}

/// Waits until the gateway knows the credential and the site's secret: a read passes.
async fn accepted(stack: &Stack, secret: &str) {
    stack
        .eventually(10, || async {
            send(
                stack,
                Method::GET,
                &format!("/api/v1/status.json?token={secret}"),
                &[],
            )
            .await
            .status()
                == StatusCode::OK
        })
        .await;
}

/// The site saw neither the credential nor its SHA-1, and knew who asked.
fn assert_site_never_saw(site: &NightscoutUpstream, id: &str, secret: &str) {
    assert_site_saw_only_its_own_secret(site);
    for request in forwarded(site) {
        assert!(
            !request.contains(secret),
            "{} {}",
            request.method,
            request.uri
        );
        assert!(!request.contains(&sha1_hex(secret)));
        assert_eq!(request.header("x-medgate-credential"), Some(id));
        assert_eq!(request.header("x-medgate-installation"), None);
    }
}

#[tokio::test]
async fn a_follower_link_reads_wherever_nightscout_clients_put_it_and_does_nothing_else() {
    let (site, stack) = nightscout_stack(&["nightscout:read"]).await;
    let (id, secret) = credential(&stack, "follower", &["read"]).await;
    accepted(&stack, &secret).await;
    let token_prefixed = format!("token={secret}");
    let sha1 = sha1_hex(&secret);
    // The share link's query, the api-secret header raw (nightscout-cli, Nightguard's v1
    // fallback), `token=`-prefixed (py-nightscout) and as SHA-1 hex (clients that hash what
    // the user typed), each with a spoofed client address.
    let spoof = ("x-forwarded-for", "203.0.113.7");
    for (path, headers) in [
        (
            format!("/api/v1/entries.json?count=10&token={secret}"),
            vec![spoof],
        ),
        (
            "/api/v1/entries/sgv.json".to_string(),
            vec![("api-secret", secret.as_str()), spoof],
        ),
        (
            "/api/v1/treatments.json".to_string(),
            vec![("API-SECRET", token_prefixed.as_str()), spoof],
        ),
        (
            "/api/v1/devicestatus.json".to_string(),
            vec![("api-secret", sha1.as_str()), spoof],
        ),
    ] {
        send(&stack, Method::GET, &path, &headers)
            .await
            .assert_status(StatusCode::OK);
    }
    // v3 clients exchange the token for the gateway's own JWT (Nightguard puts `token=` in
    // the path), then send it as a Bearer token.
    for exchange in [
        format!("/api/v2/authorization/request/token={secret}"),
        format!("/api/v2/authorization/request/{secret}"),
    ] {
        let reply = send(&stack, Method::GET, &exchange, &[]).await;
        reply.assert_status(StatusCode::OK);
        let answer = reply.json();
        assert_eq!(answer["sub"], id.as_str());
        assert!(answer["exp"].as_i64().unwrap() > answer["iat"].as_i64().unwrap());
        let bearer = format!("Bearer {}", answer["token"].as_str().unwrap());
        send(
            &stack,
            Method::GET,
            "/api/v3/entries?sort$desc=date&limit=288",
            &[("authorization", &bearer)],
        )
        .await
        .assert_status(StatusCode::OK);
    }
    // The exchange is a GET of one secret: another method, or no secret, gets nothing, and
    // nothing of it is forwarded.
    let exchange = format!("/api/v2/authorization/request/{secret}");
    send(&stack, Method::POST, &exchange, &[])
        .await
        .assert_status(StatusCode::FORBIDDEN);
    for empty in [
        "/api/v2/authorization/request/",
        "/api/v2/authorization/request/token=",
    ] {
        send(&stack, Method::GET, empty, &[])
            .await
            .assert_status(StatusCode::FORBIDDEN);
    }
    let reached = forwarded(&site).len();
    // Every class but read is denied to a follower, whatever it sends.
    let denied = [
        (Method::POST, "/api/v1/entries.json"),
        (Method::POST, "/api/v1/treatments"),
        (Method::PUT, "/api/v1/profile.json"),
        (Method::POST, "/api/v2/notifications/loop"),
        (Method::POST, "/api/v3/settings"),
        (Method::DELETE, "/api/v1/entries?find%5Btype%5D=sgv"),
        (Method::GET, "/api/v2/authorization/subjects"),
    ];
    for (method, path) in denied.iter().cloned() {
        send(&stack, method, path, &[("api-secret", &secret)])
            .await
            .assert_status(StatusCode::FORBIDDEN);
    }
    send(
        &stack,
        Method::GET,
        &format!("/api/v1/notifications/ack?level=2&group=default&time=1800000&token={secret}"),
        &[],
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    // A near miss, and a forged exchange token, get nothing.
    send(
        &stack,
        Method::GET,
        "/api/v1/entries.json",
        &[("api-secret", &secret[..secret.len() - 1])],
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
    send(
        &stack,
        Method::GET,
        "/api/v3/entries",
        &[(
            "authorization",
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        )],
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(
        forwarded(&site).len(),
        reached,
        "a denied request reached the site"
    );
    assert!(site.loop_notifications().is_empty());
    assert!(site.documents("entries").is_empty());
    assert_site_never_saw(&site, &id, &secret);
}

#[tokio::test]
async fn a_revoked_follower_is_refused_within_the_refresh_and_its_jwt_with_it() {
    let (site, stack) = nightscout_stack(&["nightscout:read"]).await;
    let (id, secret) = credential(&stack, "follower", &["read"]).await;
    accepted(&stack, &secret).await;
    let reply = send(
        &stack,
        Method::GET,
        &format!("/api/v2/authorization/request/{secret}"),
        &[],
    )
    .await;
    let bearer = format!("Bearer {}", reply.json()["token"].as_str().unwrap());
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/credentials/{id}/revoke"),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    let took = stack
        .eventually(5, || async {
            send(
                &stack,
                Method::GET,
                &format!("/api/v1/entries.json?token={secret}"),
                &[],
            )
            .await
            .status()
                == StatusCode::UNAUTHORIZED
        })
        .await;
    assert!(took.as_secs() < 5);
    send(
        &stack,
        Method::GET,
        "/api/v3/entries",
        &[("authorization", &bearer)],
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
    send(
        &stack,
        Method::GET,
        &format!("/api/v2/authorization/request/{secret}"),
        &[],
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
    // Listed as revoked; revoking again is a conflict.
    let listed = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/apps/{APP}/credentials"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(listed.json()[0]["state"], "revoked");
    assert!(listed.json()[0].get("secret").is_none());
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/credentials/{id}/revoke"),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::CONFLICT);
    assert_site_never_saw(&site, &id, &secret);
}

#[tokio::test]
async fn an_uploader_posts_readings_but_never_treatments() {
    let (site, stack) = nightscout_stack(&["nightscout:read"]).await;
    let (id, secret) = credential(&stack, "uploader", &["read", "data-write"]).await;
    accepted(&stack, &secret).await;
    // nightscout-cli's push: the raw credential in API-SECRET.
    send(
        &stack,
        Method::POST,
        "/api/v1/entries",
        &[("API-SECRET", &secret)],
    )
    .await
    .assert_status(StatusCode::OK);
    assert_eq!(site.documents("entries").len(), 1);
    // tconnectsync's bolus: a therapy write, with its plaintext `api_secret` query too.
    let bolus = format!("/api/v1/treatments?api_secret={secret}");
    send(
        &stack,
        Method::POST,
        &bolus,
        &[("api-secret", &sha1_hex(&secret))],
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    assert!(site.documents("treatments").is_empty());
    assert_site_never_saw(&site, &id, &secret);
    // The store never holds the secret: the admin listing has no trace of it.
    let listed = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/apps/{APP}/credentials"),
            serde_json::Value::Null,
        )
        .await;
    assert!(!String::from_utf8_lossy(&listed.0.body).contains(&secret));
    assert_eq!(
        listed.json()[0]["scopes"],
        serde_json::json!(["nightscout:read", "nightscout:data-write"])
    );
}

#[tokio::test]
async fn credentials_for_therapy_commands_or_admin_cannot_be_made() {
    for (kind, class) in [
        ("follower", "data-write"),
        ("follower", "therapy-write"),
        ("uploader", "therapy-write"),
        ("uploader", "command"),
        ("uploader", "alarm-ack"),
        ("uploader", "admin"),
        ("uploader", "bulk-delete"),
    ] {
        assert!(
            credential_scopes(kind, &[class.to_string()]).is_err(),
            "{kind} {class}"
        );
    }
    // And the gateway holds the line whatever the admin API was told: a credential with the
    // therapy scope is still refused on a therapy route (it takes no credentials).
    let (site, stack) = nightscout_stack(&["nightscout:read"]).await;
    let reply = stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/credentials"),
            serde_json::json!({
                "kind": "uploader",
                "name": "misconfigured",
                "scopes": ["nightscout:read", "nightscout:therapy-write", "nightscout:command"],
                "expires_in_secs": null,
            }),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    let secret = reply.json()["secret"].as_str().unwrap().to_string();
    accepted(&stack, &secret).await;
    for path in ["/api/v1/treatments", "/api/v2/notifications/loop"] {
        send(&stack, Method::POST, path, &[("api-secret", &secret)])
            .await
            .assert_status(StatusCode::FORBIDDEN);
    }
    assert!(site.documents("treatments").is_empty());
    assert!(site.loop_notifications().is_empty());
}

/// Four Nightscout clients from PyPI (`$MEDGATE_NIGHTSCOUT_PYTHON`'s venv): see
/// interop/nightscout/clients.py.
#[tokio::test]
async fn nightscout_clients_from_pypi_read_with_a_follower_link_upload_with_an_uploader_and_no_bolus_passes()
 {
    let Some(python) = medgate_testkit::tool(
        "MEDGATE_NIGHTSCOUT_PYTHON",
        "scripts/venv nightscout interop/nightscout/requirements.txt",
    ) else {
        return;
    };
    let (site, stack) = nightscout_stack(&["nightscout:read"]).await;
    let (follower_id, follower) = credential(&stack, "follower", &["read"]).await;
    let (uploader_id, uploader) = credential(&stack, "uploader", &["read", "data-write"]).await;
    accepted(&stack, &follower).await;
    accepted(&stack, &uploader).await;
    // An xDrip+-style reading for the followers to read.
    let reading = serde_json::json!([{"device": "xDrip-DexcomG6", "date": 1767225600000u64,
        "dateString": "2026-01-01T00:00:00.000Z", "sgv": 131, "delta": 8.0,
        "direction": "FortyFiveUp", "type": "sgv"}]);
    let mut headers = HeaderMap::new();
    headers.insert("api-secret", HeaderValue::from_str(&uploader).unwrap());
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    stack
        .raw(
            Method::POST,
            &stack.gateway_url("/api/v1/entries"),
            headers,
            Bytes::from(reading.to_string()),
        )
        .await
        .assert_status(StatusCode::OK);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../interop/nightscout/clients.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .env("MEDGATE_GATEWAY", stack.gateway_url(""))
        .env("MEDGATE_FOLLOWER", &follower)
        .env("MEDGATE_UPLOADER", &uploader)
        .output()
        .await
        .expect("python runs");
    let checks = crate::common::json_lines(&output);
    assert_eq!(checks.len(), 9, "the script stopped early");
    for check in &checks {
        assert_eq!(check["ok"], true, "{check}");
    }
    // The reading went in and came out again through the gateway; the site never saw a
    // client's credential, and knew which credential each request came with.
    let mut sgvs: Vec<i64> = site
        .documents("entries")
        .iter()
        .map(|e| e["sgv"].as_i64().unwrap())
        .collect();
    sgvs.sort();
    assert_eq!(sgvs, [131, 155], "nightscout-cli deleted what it pushed");
    assert!(
        site.documents("treatments").is_empty(),
        "a bolus got through"
    );
    assert_site_saw_only_its_own_secret(&site);
    for request in forwarded(&site) {
        for secret in [&follower, &uploader] {
            assert!(!request.contains(secret) && !request.contains(&sha1_hex(secret)));
        }
        let by = request.header("x-medgate-credential").unwrap();
        assert!(by == follower_id || by == uploader_id);
        if request.method != "GET" {
            assert_eq!(by, uploader_id, "{} {}", request.method, request.uri);
        }
    }
}

/// What a Nightscout client sends over socket.io long polling (Engine.IO 4): the in-band
/// authorization (with the client's own credential), a reading, a bolus, and an alarm
/// silence.
const SOCKET_PACKETS: [&str; 4] = [
    r#"42["authorize",{"client":"web","secret":"a-clients-secret","history":48}]"#,
    r#"42["dbAdd",{"collection":"entries","data":{"type":"sgv","sgv":99,"date":1767225600000}}]"#,
    r#"42["dbAdd",{"collection":"treatments","data":{"eventType":"Correction Bolus","insulin":5}}]"#,
    r#"42/alarm,["ack",2,"default",900000]"#,
];

/// The in-band authorization as the site gets it: with its own secret, as the gateway
/// injects it, in place of the client's.
fn authorized_in_band() -> String {
    format!(
        r#"42["authorize",{{"client":"web","history":48,"secret":"{}"}}]"#,
        sha1_hex(crate::nightscout::API_SECRET)
    )
}

#[tokio::test]
async fn socket_io_writes_and_alarm_acks_reach_the_site_only_for_a_subject_holding_their_class() {
    let (site, stack) = nightscout_stack(&[
        "nightscout:read",
        "nightscout:tunnel",
        "nightscout:alarm-ack",
    ])
    .await;
    let (_, follower) = credential(&stack, "follower", &["read", "tunnel"]).await;
    let (_, uploader) = credential(&stack, "uploader", &["read", "data-write", "tunnel"]).await;
    accepted(&stack, &follower).await;
    accepted(&stack, &uploader).await;
    let body = SOCKET_PACKETS.join("\x1e");
    let poll = |secret: &str| format!("/socket.io/?EIO=4&transport=polling&sid=s1&token={secret}");
    let post = |path: String| {
        let (stack, body) = (&stack, body.clone());
        async move {
            let mut headers = HeaderMap::new();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain;charset=UTF-8"),
            );
            stack
                .raw(
                    Method::POST,
                    &stack.gateway_url(&path),
                    headers,
                    Bytes::from(body),
                )
                .await
        }
    };
    let delivered = |site: &NightscoutUpstream| {
        let last = site
            .seen()
            .into_iter()
            .rfind(|r| r.method == "POST" && r.uri.starts_with("/socket.io/"))
            .unwrap();
        assert!(!last.uri.contains("token="), "{}", last.uri);
        String::from_utf8(last.body.to_vec()).unwrap()
    };
    // A follower: its in-band authorization only.
    post(poll(&follower)).await.assert_status(StatusCode::OK);
    assert_eq!(delivered(&site), authorized_in_band());
    // An uploader holds data-write: the reading too, never the bolus or the ack.
    post(poll(&uploader)).await.assert_status(StatusCode::OK);
    assert_eq!(
        delivered(&site),
        [authorized_in_band().as_str(), SOCKET_PACKETS[1]].join("\x1e")
    );
    // An attested installation holding alarm-ack: the ack too; the bolus still not (a therapy
    // write needs a signed request, which the tunnel cannot carry).
    let client = stack.client();
    client.attest().await.unwrap();
    let reply = Reply(
        client
            .send(
                Method::POST,
                "/socket.io/?EIO=4&transport=polling&sid=s2",
                Bytes::from(body.clone()),
            )
            .await
            .unwrap(),
    );
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        delivered(&site),
        [authorized_in_band().as_str(), SOCKET_PACKETS[3]].join("\x1e")
    );
    // The server's side of polling passes; a body the gateway cannot read is refused whole.
    send(&stack, Method::GET, &poll(&follower), &[])
        .await
        .assert_status(StatusCode::OK);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    stack
        .raw(
            Method::POST,
            &stack.gateway_url(&format!(
                "/socket.io/?EIO=3&transport=polling&token={follower}"
            )),
            headers,
            Bytes::from_static(b"99:42[\"dbAdd\"]"),
        )
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    // JSONP polling (`j=`) reads its body as a form the gateway does not: refused.
    post(format!("{}&j=0", poll(&follower)))
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    // A follower without the tunnel class gets no tunnel at all.
    let (_, reader) = credential(&stack, "follower", &["read"]).await;
    accepted(&stack, &reader).await;
    post(poll(&reader))
        .await
        .assert_status(StatusCode::FORBIDDEN);
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket to the gateway at `path`, or the status the handshake was refused with.
async fn websocket(stack: &Stack, path: &str) -> Result<Socket, StatusCode> {
    websocket_with(stack, path, HeaderMap::new()).await
}

/// As [`websocket`], with `headers` (a token and proof, say) on the handshake.
async fn websocket_with(
    stack: &Stack,
    path: &str,
    headers: HeaderMap,
) -> Result<Socket, StatusCode> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = stack.gateway_url(path).replacen("http://", "ws://", 1);
    let address = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().extend(headers);
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    match tokio_tungstenite::client_async(request, tcp).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status()),
        Err(other) => panic!("{other}"),
    }
}

/// The close code the gateway ends `socket` with, waiting at most eight seconds (`None`: it
/// ended without a close frame).
async fn close_code(socket: &mut Socket, what: &str) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(std::time::Duration::from_secs(8), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"))
}

#[tokio::test]
async fn socket_io_over_websocket_is_read_message_by_message_and_closed_on_revocation() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let (site, stack) = nightscout_stack(&["nightscout:read"]).await;
    let (_, follower) = credential(&stack, "follower", &["read", "tunnel"]).await;
    let (uploader_id, uploader) =
        credential(&stack, "uploader", &["read", "data-write", "tunnel"]).await;
    accepted(&stack, &follower).await;
    accepted(&stack, &uploader).await;
    let path = |secret: &str| format!("/socket.io/?EIO=4&transport=websocket&token={secret}");
    // The uploader's socket: the reading goes through, the bolus and the ack do not.
    let mut socket = websocket(&stack, &path(&uploader)).await.unwrap();
    for packet in SOCKET_PACKETS {
        socket.send(Message::text(packet)).await.unwrap();
    }
    socket.send(Message::binary(vec![4u8, 1, 2])).await.unwrap();
    let expected = vec![authorized_in_band(), SOCKET_PACKETS[1].to_string()];
    stack
        .eventually(5, || async { site.socket_messages() == expected })
        .await;
    socket.close(None).await.unwrap();
    // The upstream's handshake carried the site's secret, never the client's credential.
    let handshake = site
        .seen()
        .into_iter()
        .find(|r| r.uri.starts_with("/socket.io/") && r.uri.contains("transport=websocket"))
        .unwrap();
    assert!(handshake.authorized);
    assert!(!handshake.contains(&uploader) && !handshake.contains(&sha1_hex(&uploader)));
    assert_eq!(
        handshake.header("x-medgate-credential"),
        Some(uploader_id.as_str())
    );

    // A follower's socket is closed within the refresh once its link is revoked.
    let (follower_id, follower) = credential(&stack, "follower", &["read", "tunnel"]).await;
    accepted(&stack, &follower).await;
    let mut socket = websocket(&stack, &path(&follower)).await.unwrap();
    socket.send(Message::text(SOCKET_PACKETS[3])).await.unwrap();
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/credentials/{follower_id}/revoke"),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        close_code(&mut socket, "the socket stayed open after revocation").await,
        Some(1008)
    );
    assert_eq!(
        site.socket_messages(),
        expected,
        "the follower's ack went nowhere"
    );

    // Without the tunnel class, or with a malformed handshake, no socket.
    let (_, reader) = credential(&stack, "follower", &["read"]).await;
    accepted(&stack, &reader).await;
    assert_eq!(
        websocket(&stack, &path(&reader)).await.unwrap_err(),
        StatusCode::FORBIDDEN
    );
    let mut bad = HeaderMap::new();
    for (name, value) in [
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-version", "8"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ] {
        bad.insert(name, HeaderValue::from_static(value));
    }
    stack
        .raw(
            Method::GET,
            &stack.gateway_url(&path(&uploader)),
            bad,
            Bytes::new(),
        )
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    // An upstream that is gone: the tunnel is not opened (502).
    drop(site);
    assert_eq!(
        websocket(&stack, &path(&uploader)).await.unwrap_err(),
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn a_tunnel_lives_no_longer_than_its_token_and_a_subject_holds_few() {
    let (_site, stack) = nightscout_stack(&["nightscout:read", "nightscout:tunnel"]).await;
    // An attested installation's socket, with its token and proof.
    let client = stack.client();
    client.attest().await.unwrap();
    let path = "/socket.io/?EIO=4&transport=websocket";
    let headers = client
        .request_headers("GET", path)
        .await
        .unwrap()
        .to_header_map();
    let mut socket = websocket_with(&stack, path, headers).await.unwrap();
    // Past the token's expiry (the gateway's clock), the tunnel is closed.
    stack.clock.advance(3600);
    assert_eq!(
        close_code(&mut socket, "the tunnel outlived its token").await,
        Some(1008)
    );

    // One credential holds at most four tunnels at once.
    let (_, follower) = credential(&stack, "follower", &["read", "tunnel"]).await;
    accepted(&stack, &follower).await;
    let path = format!("/socket.io/?EIO=4&transport=websocket&token={follower}");
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(websocket(&stack, &path).await.unwrap());
    }
    assert_eq!(
        websocket(&stack, &path).await.unwrap_err(),
        StatusCode::TOO_MANY_REQUESTS
    );
    drop(open);
}
