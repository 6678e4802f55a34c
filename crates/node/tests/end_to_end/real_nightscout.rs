//! medgate with the Nightscout profile in front of the real Nightscout (npm's only release,
//! 0.12.8) on SecantusDB, a MongoDB-wire-compatible server from PyPI. Runs when the test
//! command has installed both and set `MEDGATE_REAL_NIGHTSCOUT` (the `interop/nightscout-real`
//! folder) and `MEDGATE_SECANTUSD` (its server); skips with one line otherwise. Nightscout is started with `AUTH_DEFAULT_ROLES=denied`, so that nothing is read
//! or written without the site's secret: what passes proves the gateway injected it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use medgate_node::nightscout::profile::credential_scopes;
use medgate_node::nightscout::upstream::sha1_hex;
use medgate_sdk::client::HttpClient;
use tokio::process::{Child, Command};

use crate::common::{APP, Reply};
use crate::nightscout::API_SECRET;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process this test started, ended (by its own handle) when dropped.
fn spawn(command: &mut Command, log: &std::path::Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    command
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Polls `url` until it answers `want` (a process starting up), for at most a minute.
async fn answers(http: &HttpClient, url: &str, headers: &HeaderMap, want: StatusCode) {
    let started = Instant::now();
    loop {
        let status = http
            .send(Method::GET, url, headers.clone(), Bytes::new())
            .await
            .map(|r| r.status);
        if status.as_ref().is_ok_and(|s| *s == want) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url} did not answer {want} within a minute: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_nightscout_behind_medgate_takes_only_what_the_profile_lets_through() {
    let (Some(dir), Some(secantusd)) = (
        std::env::var_os("MEDGATE_REAL_NIGHTSCOUT").map(PathBuf::from),
        std::env::var_os("MEDGATE_SECANTUSD").map(PathBuf::from),
    ) else {
        eprintln!("skipped: the real Nightscout runs with scripts/real-nightscout");
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let (db_port, ns_port) = (free_port(), free_port());
    let mut database = spawn(
        Command::new(&secantusd).args([
            "--host",
            "127.0.0.1",
            "--port",
            &db_port.to_string(),
            "--storage-path",
            ":memory:",
        ]),
        &logs.path().join("secantus.log"),
    );
    let mut nightscout = spawn(
        Command::new("node")
            .current_dir(dir.join("node_modules/nightscout"))
            .arg("-r")
            .arg(dir.join("node-version.cjs"))
            .arg("server.js")
            .env("MONGODB_URI", format!("mongodb://127.0.0.1:{db_port}/ns"))
            .env("API_SECRET", API_SECRET)
            .env("PORT", ns_port.to_string())
            .env("HOSTNAME", "127.0.0.1")
            .env("INSECURE_USE_HTTP", "true")
            .env("ENABLE", "careportal")
            .env("AUTH_DEFAULT_ROLES", "denied"),
        &logs.path().join("nightscout.log"),
    );
    let site = format!("http://127.0.0.1:{ns_port}");
    let http = HttpClient::default();
    let mut own = HeaderMap::new();
    own.insert(
        "api-secret",
        HeaderValue::from_str(&sha1_hex(API_SECRET)).unwrap(),
    );
    let entries = format!("{site}/api/v1/entries.json");
    let own_headers = own.clone();
    answers(&http, &entries, &own, StatusCode::OK).await;
    // The control: the site itself refuses a read without its secret.
    answers(&http, &entries, &HeaderMap::new(), StatusCode::UNAUTHORIZED).await;

    // 0.12.8 has no v3: no access token to exchange.
    let stack = crate::nightscout::nightscout_stack_for(
        &site,
        &[
            "nightscout:read",
            "nightscout:data-write",
            "nightscout:therapy-write",
        ],
        None,
    )
    .await;
    let made = |kind: &'static str, classes: &'static [&'static str]| {
        let stack = &stack;
        async move {
            let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
            let reply = stack
                .admin(
                    Method::POST,
                    &format!("/v1/admin/apps/{APP}/credentials"),
                    serde_json::json!({"kind": kind, "name": kind,
                        "scopes": credential_scopes(kind, &classes).unwrap(), "expires_in_secs": 3600}),
                )
                .await;
            reply.assert_status(StatusCode::CREATED);
            reply.json()["secret"].as_str().unwrap().to_string()
        }
    };
    let uploader = made("uploader", &["read", "data-write", "tunnel"]).await;
    let follower = made("follower", &["read", "tunnel"]).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let reading = serde_json::json!([{"type": "sgv", "sgv": 137, "direction": "Flat",
        "device": "medgate-real-nightscout-test", "date": now_ms as u64}]);
    let post = |secret: String, path: &'static str, body: String| {
        let stack = &stack;
        async move {
            let mut headers = HeaderMap::new();
            headers.insert("api-secret", HeaderValue::from_str(&secret).unwrap());
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            stack
                .raw(
                    Method::POST,
                    &stack.gateway_url(path),
                    headers,
                    Bytes::from(body),
                )
                .await
        }
    };
    // The uploader's credential writes (the gateway loads the credential and the site's
    // secret in the background: wait for it).
    stack
        .eventually(10, || async {
            post(
                uploader.clone(),
                "/api/v1/entries.json",
                reading.to_string(),
            )
            .await
            .status()
                == StatusCode::OK
        })
        .await;
    // The follower's link reads it back through the gateway.
    let read = stack
        .raw(
            Method::GET,
            &stack.gateway_url(&format!("/api/v1/entries.json?count=5&token={follower}")),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await;
    read.assert_status(StatusCode::OK);
    assert!(
        read.json()
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["sgv"] == 137 && e["device"] == "medgate-real-nightscout-test"),
        "{}",
        read.json()
    );
    // The follower cannot write; its credential alone gets nothing from the site.
    post(
        follower.clone(),
        "/api/v1/entries.json",
        reading.to_string(),
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    let mut theirs = HeaderMap::new();
    theirs.insert(
        "api-secret",
        HeaderValue::from_str(&sha1_hex(&follower)).unwrap(),
    );
    let direct = http
        .send(Method::GET, &entries, theirs, Bytes::new())
        .await
        .unwrap();
    assert_eq!(direct.status, StatusCode::UNAUTHORIZED);

    // A bolus: the attested app's signed write is stored by Nightscout, an unsigned one never
    // reaches it.
    let client = stack.client();
    client.attest().await.unwrap();
    let bolus = Bytes::from(
        serde_json::json!({"eventType": "Correction Bolus", "insulin": 0.5,
            "enteredBy": "medgate-real-nightscout-test"})
        .to_string(),
    );
    let unsigned = Reply(
        client
            .send(Method::POST, "/api/v1/treatments", bolus.clone())
            .await
            .unwrap(),
    );
    unsigned.assert_signature_refused("needs an HTTP Message Signature");
    let signed = Reply(
        client
            .send_signed(Method::POST, "/api/v1/treatments", bolus)
            .await
            .unwrap(),
    );
    signed.assert_status(StatusCode::OK);
    let stored = http
        .send(
            Method::GET,
            &format!("{site}/api/v1/treatments.json?count=10"),
            own.clone(),
            Bytes::new(),
        )
        .await
        .unwrap();
    let treatments: serde_json::Value = serde_json::from_slice(&stored.body).unwrap();
    let boluses: Vec<_> = treatments
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["enteredBy"] == "medgate-real-nightscout-test")
        .collect();
    assert_eq!(boluses.len(), 1, "{treatments}");
    assert_eq!(boluses[0]["insulin"], 0.5);

    // socket.io-client 2.1.1 (Nightscout's own) through the tunnel, over polling and WebSocket:
    // the in-band authorize gets read access (the site's secret replaced the client's), data
    // arrives, and a follower's in-band write and alarm ack never reach the site.
    let nightscout_log = &logs.path().join("nightscout.log");
    // Nightscout sends a socket its data on `authorize` only once it has processed some (a
    // client that comes earlier waits for the next change): wait for that.
    stack
        .eventually(60, || async {
            std::fs::read_to_string(nightscout_log)
                .unwrap_or_default()
                .contains("running websocket.update")
        })
        .await;
    let socket = |credential: &str, transport: &str, marker: &str, writes: &str| {
        let mut command = Command::new("node");
        command.arg(dir.join("socket-client.cjs")).args([
            &stack.gateway_url(""),
            credential,
            transport,
            marker,
            writes,
        ]);
        async move {
            let output = command.output().await.unwrap();
            let events = crate::common::json_lines(&output);
            if !output.status.success() {
                let log = std::fs::read_to_string(nightscout_log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                panic!(
                    "{events:?}\nNightscout's log, last lines first:\n{}",
                    tail.join("\n")
                );
            }
            events
        }
    };
    let event = |events: &[serde_json::Value], name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {events:?}"))
    };
    for transport in ["polling", "websocket"] {
        let events = socket(&follower, transport, "medgate-follower-socket", "no").await;
        assert_eq!(event(&events, "connect")["transport"], transport);
        assert_eq!(event(&events, "authorized")["authorization"]["read"], true);
        event(&events, "dataUpdate");
        assert_eq!(event(&events, "pong")["result"], "pong");
        assert!(
            events.iter().all(|e| e["event"] != "dbAdd_answered"),
            "{events:?}"
        );
    }
    let events = socket(&uploader, "websocket", "medgate-uploader-socket", "yes").await;
    assert_eq!(event(&events, "dbAdd_answered")["stored"], 1);
    let by = |marker: &'static str| {
        let (http, own, entries) = (&http, own_headers.clone(), &entries);
        async move {
            let stored = http
                .send(
                    Method::GET,
                    &format!("{entries}?count=100&find[device]={marker}"),
                    own,
                    Bytes::new(),
                )
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&stored.body)
                .unwrap()
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(by("medgate-uploader-socket").await, 1);
    assert_eq!(by("medgate-follower-socket").await, 0);
    let _ = own_headers;
    // Ended and reaped here (on a failure, when dropped).
    for process in [&mut nightscout, &mut database] {
        process.kill().await.unwrap();
    }
}
