//! Routes with `proof = "dpop+signature"`: a write must carry an HTTP Message Signature (RFC
//! 9421) by the installation key over its method, URL, token and `Content-Digest`, and a body
//! that matches the digest. The SDK signs; the gateway checks and forwards the signature with
//! the key's thumbprint for the upstream to keep.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use medgate_gateway::routes::{ProofMode, RouteConfig};
use medgate_proto::wire::problem_type;
use medgate_sdk::client::MedgateClient;
use medgate_verify::httpsig::{StoredRequest, verify_stored};

use crate::common::{Reply, Stack};

const PATH: &str = "/echo/treatments";
const BODY: &[u8] = br#"[{"eventType": "Correction Bolus", "insulin": 1.5}]"#;

async fn signing_stack(max_signed_body: usize) -> Stack {
    Stack::start_with(|config| {
        let mut route = RouteConfig::new("/echo/treatments", &["POST"], &["entries:write"]);
        route.proof = ProofMode::DpopSignature;
        config.gateway.routes.insert(0, route);
        config.gateway.max_signed_body = max_signed_body;
    })
    .await
}

/// A signed POST of `signed_body`, sent with `sent_body` and the headers `edit` leaves.
async fn post(
    stack: &Stack,
    client: &MedgateClient,
    signed_body: &[u8],
    sent_body: &[u8],
    edit: impl FnOnce(&mut http::HeaderMap),
) -> Reply {
    let mut headers = client
        .headers_for("POST", PATH, Some(signed_body))
        .await
        .unwrap()
        .to_header_map();
    edit(&mut headers);
    stack
        .raw(
            Method::POST,
            &stack.gateway_url(PATH),
            headers,
            Bytes::copy_from_slice(sent_body),
        )
        .await
}

#[tokio::test]
async fn a_signed_write_reaches_the_upstream_with_its_signature_and_key() {
    let stack = signing_stack(1024 * 1024).await;
    let client = stack.client();
    client.attest().await.unwrap();
    let reply = client
        .send_signed(Method::POST, PATH, Bytes::from_static(BODY))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(seen["body_bytes"], BODY.len());
    let headers = &seen["headers"];
    assert_eq!(
        headers["x-medgate-key"],
        client.installation_id().as_str(),
        "{seen}"
    );
    for name in ["signature-input", "signature", "content-digest"] {
        assert!(headers[name].is_string(), "{name}: {seen}");
    }
    assert!(
        headers["signature-input"]
            .as_str()
            .unwrap()
            .starts_with(r#"medgate=("@method" "@target-uri" "content-digest" "authorization")"#)
    );
    // A client naming the signature fields in `Connection` does not take them from the
    // upstream's record.
    let reply = post(&stack, &client, BODY, BODY, |headers| {
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("signature, signature-input, content-digest"),
        );
    })
    .await;
    reply.assert_status(StatusCode::OK);
    for name in ["signature-input", "signature", "content-digest"] {
        assert!(reply.json()["headers"][name].is_string(), "{name}");
    }
    // A route without the signature requirement forwards no X-Medgate-Key, whatever the
    // client sent as one.
    let mut forged = client
        .request_headers("GET", "/echo")
        .await
        .unwrap()
        .to_header_map();
    forged.insert(
        HeaderName::from_static("x-medgate-key"),
        HeaderValue::from_static("someone-else"),
    );
    let plain = stack
        .raw(
            Method::GET,
            &stack.gateway_url("/echo"),
            forged,
            Bytes::new(),
        )
        .await;
    plain.assert_status(StatusCode::OK);
    assert!(plain.json()["headers"].get("x-medgate-key").is_none());
}

#[tokio::test]
async fn every_forgery_of_a_signed_write_is_refused_for_its_reason() {
    let stack = signing_stack(4096).await;
    let client = stack.client();
    client.attest().await.unwrap();

    // The body changed after signing (a proxy raised the dose).
    let changed = br#"[{"eventType": "Correction Bolus", "insulin": 15}]"#;
    let reply = post(&stack, &client, BODY, changed, |_| {}).await;
    reply.assert_signature_refused("not the one its Content-Digest names");
    // The digest rewritten to match the changed body: the signature no longer verifies.
    let reply = post(&stack, &client, BODY, changed, |headers| {
        headers.insert(
            HeaderName::from_static("content-digest"),
            HeaderValue::from_str(&medgate_proto::httpsig::content_digest(
                medgate_proto::httpsig::DigestAlg::Sha256,
                changed,
            ))
            .unwrap(),
        );
    })
    .await;
    reply.assert_signature_refused("does not verify");
    // No signature at all on a route that needs one (DPoP alone is not enough).
    let reply = post(&stack, &client, BODY, BODY, |headers| {
        headers.remove("signature");
        headers.remove("signature-input");
    })
    .await;
    reply.assert_signature_refused("needs an HTTP Message Signature");
    // A signature without a DPoP token on a route that needs both.
    let reply = post(&stack, &client, BODY, BODY, |headers| {
        headers.remove("dpop");
    })
    .await;
    reply.assert_dpop_error("invalid_dpop_proof");
    // The same signed request twice: its DPoP proof (and nonce) are spent.
    let headers = client
        .headers_for("POST", PATH, Some(BODY))
        .await
        .unwrap()
        .to_header_map();
    let url = stack.gateway_url(PATH);
    let send =
        |headers: http::HeaderMap| stack.raw(Method::POST, &url, headers, Bytes::from_static(BODY));
    send(headers.clone()).await.assert_status(StatusCode::OK);
    send(headers.clone())
        .await
        .assert_dpop_error("invalid_dpop_proof");
    // The same signature (its nonce) with a fresh proof: the nonce is spent too.
    let reply = post(&stack, &client, BODY, BODY, |fresh| {
        for name in ["signature", "signature-input", "content-digest"] {
            fresh.insert(
                HeaderName::from_static(name),
                headers.get(name).unwrap().clone(),
            );
        }
    })
    .await;
    reply.assert_signature_refused("nonce was already used");
    // Signed by another installation's key, presented with this one's token and proof.
    let other = stack.client();
    other.attest().await.unwrap();
    let theirs = other
        .headers_for("POST", PATH, Some(BODY))
        .await
        .unwrap()
        .to_header_map();
    let reply = post(&stack, &client, BODY, BODY, |headers| {
        for name in ["signature", "signature-input"] {
            headers.insert(
                HeaderName::from_static(name),
                theirs.get(name).unwrap().clone(),
            );
        }
    })
    .await;
    reply.assert_signature_refused("keyid");
    // A body over the route's limit: 413, declared or not.
    let large = vec![b'1'; 5000];
    let reply = post(&stack, &client, &large, &large, |_| {}).await;
    reply.assert_problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        problem_type::PAYLOAD_TOO_LARGE,
    );
    // A Content-Digest of an algorithm the gateway does not take.
    let reply = post(&stack, &client, BODY, BODY, |headers| {
        headers.insert(
            HeaderName::from_static("content-digest"),
            HeaderValue::from_static("md5=:CY9rzUYh03PK3k6DJie09g==:"),
        );
    })
    .await;
    reply.assert_signature_refused("must name sha-256 or sha-512");
    // A body that stops short of its Content-Length: refused whole (400).
    let headers = client
        .headers_for("POST", PATH, Some(BODY))
        .await
        .unwrap()
        .to_header_map();
    let address = stack
        .gateway_url("")
        .trim_start_matches("http://")
        .to_string();
    let mut raw = format!(
        "POST {PATH} HTTP/1.1\r\nhost: {address}\r\ncontent-length: {}\r\n",
        BODY.len() + 10
    );
    for (name, value) in &headers {
        raw.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    raw.push_str("\r\n");
    let answer = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream.write_all(raw.as_bytes()).await.unwrap();
        stream.write_all(BODY).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Request body incomplete"), "{answer}");
    // And the genuine write still goes through.
    post(&stack, &client, BODY, BODY, |_| {})
        .await
        .assert_status(StatusCode::OK);
}

/// pyauth's `http-message-signatures` (PyPI), for `$MEDGATE_HTTPSIG_PYTHON`.
fn httpsig_python() -> Option<std::path::PathBuf> {
    medgate_testkit::tool(
        "MEDGATE_HTTPSIG_PYTHON",
        "scripts/venv httpsig interop/httpsig/requirements.txt",
    )
}

fn interop_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../interop/httpsig")
        .join(name)
}

#[tokio::test]
async fn writes_signed_by_pyauths_library_pass_the_gateway_and_a_changed_body_does_not() {
    let Some(python) = httpsig_python() else {
        return;
    };
    let stack = signing_stack(1024 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("installation.jwk");
    let key = medgate_sdk::key::InstallationKey::load_or_create(&key_file).unwrap();
    let keyid = key.thumbprint().as_str().to_string();
    let client = crate::common::client_for(
        &stack.node,
        &stack.clock,
        key,
        crate::common::VERSION,
        crate::common::MEASUREMENT,
    );
    client.attest().await.unwrap();
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, BODY).unwrap();
    let changed_file = dir.path().join("changed.json");
    std::fs::write(
        &changed_file,
        br#"[{"eventType": "Correction Bolus", "insulin": 15}]"#,
    )
    .unwrap();
    let send = |tampered: Option<&std::path::Path>| {
        let (python, key_file, keyid, body_file) = (
            python.clone(),
            key_file.clone(),
            keyid.clone(),
            body_file.clone(),
        );
        let client = &client;
        let url = stack.gateway_url(PATH);
        let tampered = tampered.map(std::path::Path::to_path_buf);
        async move {
            // Authorization and DPoP from medgate's SDK; the signature from the library.
            let headers = client.request_headers("POST", PATH).await.unwrap();
            let mut command = tokio::process::Command::new(python);
            command
                .arg(interop_file("httpsig_interop.py"))
                .arg("sign-and-send")
                .arg(&url)
                .arg(&key_file)
                .arg(&keyid)
                .arg(headers.authorization.expose())
                .arg(&headers.dpop)
                .arg(&body_file);
            if let Some(tampered) = tampered {
                command.arg(tampered);
            }
            let output = command.output().await.unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
        }
    };
    let sent = send(None).await;
    assert_eq!(sent["status"], 200, "{sent}");
    let seen: serde_json::Value = serde_json::from_str(sent["body"].as_str().unwrap()).unwrap();
    assert_eq!(seen["headers"]["x-medgate-key"], keyid.as_str());
    assert_eq!(seen["body_bytes"], BODY.len());
    // The library's signature over one body, sent with another: refused at the digest.
    let tampered = send(Some(&changed_file)).await;
    assert_eq!(tampered["status"], 401, "{tampered}");
    assert!(
        tampered["body"]
            .as_str()
            .unwrap()
            .contains("Content-Digest"),
        "{tampered}"
    );
}

#[tokio::test]
async fn signatures_medgates_sdk_makes_verify_in_npm_http_message_signatures() {
    let interop = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    if !interop
        .join("node_modules/http-message-signatures")
        .is_dir()
    {
        assert!(
            std::env::var_os("MEDGATE_CI").is_none(),
            "interop/node_modules is missing; the test command installs it with `npm ci --prefix interop`"
        );
        eprintln!("skipped: needs `npm ci --prefix interop` (and Node.js)");
        return;
    }
    let key = medgate_sdk::key::InstallationKey::generate().unwrap();
    let url = "https://gw.example.org/api/v1/treatments?dry=1";
    let authorization = "DPoP eyJ.token.sig";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signed =
        medgate_sdk::proof::signature_headers(&key, "POST", url, authorization, BODY, now).unwrap();
    let input = serde_json::json!({
        "method": "POST",
        "url": url,
        "keyid": key.thumbprint().as_str(),
        "jwk": serde_json::to_value(key.public_jwk()).unwrap(),
        "headers": {
            "authorization": authorization,
            "content-digest": signed.content_digest,
            "signature-input": signed.signature_input,
            "signature": signed.signature,
        },
    });
    let mut child = tokio::process::Command::new("node")
        .arg(interop_file("verify.mjs"))
        .current_dir(&interop)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["verified"], true, "{result}");
    assert_ne!(result["tampered_verified"], true, "{result}");
}

/// What an upstream keeps of a signed write: the request as the gateway forwarded it.
fn stored_request(stack: &Stack, seen: &serde_json::Value, body: &[u8]) -> StoredRequest {
    use base64::Engine as _;
    let headers = seen["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_string()))
        .collect();
    StoredRequest {
        method: "POST".into(),
        target_uri: stack.gateway_url(PATH),
        headers,
        body_base64: base64::engine::general_purpose::STANDARD.encode(body),
    }
}

#[tokio::test]
async fn an_upstream_can_prove_later_which_installation_made_a_write() {
    let stack = signing_stack(1024 * 1024).await;
    let patient = stack.client();
    patient.attest().await.unwrap();
    let reply = patient
        .send_signed(Method::POST, PATH, Bytes::from_static(BODY))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    // The token the signature covers came along, for the record (and no Authorization).
    assert!(seen["headers"].get("authorization").is_none());
    assert!(
        seen["headers"]["x-medgate-authorization"]
            .as_str()
            .unwrap()
            .starts_with("DPoP ")
    );
    let stored = stored_request(&stack, &seen, BODY);

    // A caregiver's app, whose policy lets it look installations' keys up.
    const CAREGIVER: &str = "org.example.caregiver";
    stack
        .admin(
            Method::POST,
            "/v1/admin/apps",
            serde_json::json!({"app_id": CAREGIVER, "scopes": [medgate_server::provenance::PROVENANCE_SCOPE], "sdk_evidence": "allow"}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{CAREGIVER}/releases"),
            serde_json::json!({"version": crate::common::VERSION, "sdk_binary_sha256": crate::common::MEASUREMENT}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    let mut config = stack.client().config().clone();
    config.app.app_id = CAREGIVER.into();
    let clock = std::sync::Arc::clone(&stack.clock);
    let caregiver = MedgateClient::new(
        config,
        medgate_sdk::key::InstallationKey::generate().unwrap(),
    )
    .with_clock(std::sync::Arc::new(move || {
        medgate_service::Clock::now(&*clock).secs()
    }));
    caregiver.attest().await.unwrap();
    let url = format!(
        "{}/v1/installations/{}/jwk",
        stack.node.server_url(),
        patient.installation_id().as_str()
    );
    let answer = stack
        .raw(
            Method::GET,
            &url,
            stack.server_get_headers(&caregiver, &url).await,
            Bytes::new(),
        )
        .await;
    answer.assert_status(StatusCode::OK);
    let jwk: medgate_proto::PublicJwk =
        serde_json::from_value(answer.json()["jwk"].clone()).unwrap();
    assert_eq!(jwk.thumbprint(), patient.installation_id());
    // The patient's own token lacks the scope.
    let refused = stack
        .raw(
            Method::GET,
            &url,
            stack.server_get_headers(&patient, &url).await,
            Bytes::new(),
        )
        .await;
    refused.assert_problem(StatusCode::FORBIDDEN, problem_type::INSUFFICIENT_SCOPE);

    // The stored write verifies with that key; changed in any part, it does not.
    let report = verify_stored(&stored, &jwk);
    assert!(report.verified, "{report:?}");
    assert_eq!(report.installation_id, patient.installation_id().as_str());
    let mut changed = stored.clone();
    changed.body_base64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(br#"[{"insulin": 15}]"#)
    };
    assert!(!verify_stored(&changed, &jwk).verified);
    let mut moved = stored.clone();
    moved.target_uri = stack.gateway_url("/echo/other");
    assert!(!verify_stored(&moved, &jwk).verified);
    let mut doubled = stored.clone();
    doubled
        .headers
        .insert("Content-Digest".into(), "sha-256=:AAAA:".into());
    let report = verify_stored(&doubled, &jwk);
    assert!(
        report.failures.iter().any(|f| f.contains("twice")),
        "{report:?}"
    );
    let someone_else = medgate_sdk::key::InstallationKey::generate().unwrap();
    let report = verify_stored(&stored, someone_else.public_jwk());
    assert!(!report.verified);
    assert!(
        report.failures.iter().any(|f| f.contains("X-Medgate-Key")),
        "{report:?}"
    );
}

/// A gzip member holding `data` in one stored (uncompressed) deflate block: real gzip, without
/// a compression library.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let crc = data.iter().fold(!0u32, |crc, &byte| {
        (0..8).fold(crc ^ u32::from(byte), |crc, _| {
            if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            }
        })
    }) ^ !0u32;
    let len = u16::try_from(data.len()).unwrap();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out
}

#[tokio::test]
async fn the_digest_is_over_the_coded_bytes_as_sent() {
    let stack = signing_stack(1024 * 1024).await;
    let client = stack.client();
    client.attest().await.unwrap();
    let coded = gzip_stored(BODY);
    let gzip = |headers: &mut http::HeaderMap| {
        headers.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_static("gzip"),
        );
    };
    // Signed over the gzip bytes it sends: accepted, and the upstream gets them as they are.
    let reply = post(&stack, &client, &coded, &coded, gzip).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json()["body_bytes"], coded.len());
    // Signed over the decoded body, sent gzip-coded: the digest is not of what was sent.
    let reply = post(&stack, &client, BODY, &coded, gzip).await;
    reply.assert_signature_refused("not the one its Content-Digest names");
}
