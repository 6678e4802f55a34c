#![allow(clippy::unwrap_used)]

use super::*;

const COMPONENTS: [&str; 4] = ["@method", "@target-uri", "content-digest", "authorization"];

fn request(body: &[u8]) -> RequestMessage<'static> {
    RequestMessage {
        method: "POST",
        target_uri: "https://gw.example.org/api/v1/treatments?x=1",
        fields: vec![
            ("Authorization".into(), "DPoP abc".into()),
            (
                "content-digest".into(),
                content_digest(DigestAlg::Sha256, body),
            ),
        ],
    }
}

fn params() -> SignatureParams {
    SignatureParams::new(
        &COMPONENTS,
        1_800_000_000,
        None,
        "n-1",
        "jkt",
        "ecdsa-p256-sha256",
    )
    .unwrap()
}

#[test]
fn params_serialize_canonically_and_parse_back() {
    let params = params();
    assert_eq!(
        params.serialized(),
        r#"("@method" "@target-uri" "content-digest" "authorization");created=1800000000;nonce="n-1";keyid="jkt";alg="ecdsa-p256-sha256""#
    );
    let header = params.header_value("medgate");
    let signature = signature_header("medgate", &[1, 2, 3]);
    assert_eq!(signature, "medgate=:AQID:");
    let (parsed, bytes) = parse(&header, &signature, "medgate").unwrap();
    assert_eq!(parsed, params);
    assert_eq!(bytes, [1, 2, 3]);
    // Another label's signature is not this one.
    assert_eq!(
        parse(&header, &signature, "other").unwrap_err(),
        FieldError::NoLabel
    );
    // Whitespace a proxy may add does not change what is signed.
    let spaced = header.replace(" \"@target-uri\"", "  \"@target-uri\"");
    let (reparsed, _) = parse(&spaced, &signature, "medgate").unwrap();
    assert_eq!(reparsed.serialized(), params.serialized());
}

#[test]
fn the_base_lists_each_component_then_the_params() {
    let body = br#"{"insulin": 1.5}"#;
    let base = signature_base(&params(), &request(body)).unwrap();
    let digest = content_digest(DigestAlg::Sha256, body);
    assert_eq!(
        base,
        format!(
            "\"@method\": POST\n\"@target-uri\": https://gw.example.org/api/v1/treatments?x=1\n\"content-digest\": {digest}\n\"authorization\": DPoP abc\n\"@signature-params\": {}",
            params().serialized()
        )
    );
}

#[test]
fn derived_components_follow_rfc_9421() {
    let message = RequestMessage {
        method: "GET",
        target_uri: "HTTPS://Example.COM:443/foo?param=Value&Pet=dog",
        fields: vec![],
    };
    assert_eq!(message.derived("@authority").unwrap(), "example.com");
    assert_eq!(message.derived("@scheme").unwrap(), "https");
    assert_eq!(message.derived("@path").unwrap(), "/foo");
    assert_eq!(message.derived("@query").unwrap(), "?param=Value&Pet=dog");
    let bare = RequestMessage {
        method: "GET",
        target_uri: "http://example.com:8080",
        fields: vec![],
    };
    assert_eq!(bare.derived("@authority").unwrap(), "example.com:8080");
    assert_eq!(bare.derived("@path").unwrap(), "/");
    assert_eq!(bare.derived("@query").unwrap(), "?");
    assert_eq!(bare.derived("@status"), None);
}

#[test]
fn field_values_are_trimmed_and_joined() {
    let message = RequestMessage {
        method: "GET",
        target_uri: "https://example.com/",
        fields: vec![
            ("X-Thing".into(), "  a ".into()),
            ("x-thing".into(), "b".into()),
        ],
    };
    let params = SignatureParams::new(&["x-thing"], 1, None, "n", "k", "hmac-sha256").unwrap();
    let base = signature_base(&params, &message).unwrap();
    assert!(base.starts_with("\"x-thing\": a, b\n"), "{base}");
}

#[test]
fn what_medgate_does_not_read_is_refused() {
    let signature = signature_header("medgate", &[0; 64]);
    let cases = [
        (
            r#"medgate=("content-type";sf);created=1"#,
            FieldError::UnsupportedComponent,
        ),
        (
            r#"medgate=("@query-param";name="Pet")"#,
            FieldError::UnsupportedComponent,
        ),
        (
            r#"medgate=("@request-target")"#,
            FieldError::UnsupportedComponent,
        ),
        (
            r#"medgate=("Content-Type")"#,
            FieldError::UnsupportedComponent,
        ),
        (
            r#"medgate=("@method" "@method")"#,
            FieldError::DuplicateComponent,
        ),
        (
            r#"medgate=("@method");created="now""#,
            FieldError::BadParameter,
        ),
        (r#"medgate=("@method");unknown=1"#, FieldError::BadParameter),
        ("medgate=:AAAA:", FieldError::Malformed("Signature-Input")),
        (
            "not a dictionary (",
            FieldError::Malformed("Signature-Input"),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse(input, &signature, "medgate").unwrap_err(),
            expected,
            "{input}"
        );
    }
    let long = format!(
        r#"medgate=("@method");nonce="{}""#,
        "a".repeat(MAX_PARAM_LEN + 1)
    );
    assert_eq!(
        parse(&long, &signature, "medgate").unwrap_err(),
        FieldError::BadParameter
    );
    let huge = "a".repeat(MAX_FIELD_LEN + 1);
    assert!(matches!(
        parse(&huge, &signature, "medgate").unwrap_err(),
        FieldError::TooLong(_)
    ));
    let input = params().header_value("medgate");
    for bad in [
        "medgate=:not base64:",
        "medgate=(1 2)",
        "medgate=:AQID:;x=1",
    ] {
        assert_eq!(
            parse(&input, bad, "medgate").unwrap_err(),
            FieldError::Malformed("Signature"),
            "{bad}"
        );
    }
}

#[test]
fn a_component_the_message_lacks_or_that_breaks_a_line_is_refused() {
    let params = SignatureParams::new(&["x-missing"], 1, None, "n", "k", "hmac-sha256").unwrap();
    assert_eq!(
        signature_base(&params, &request(b"")).unwrap_err(),
        FieldError::MissingComponent
    );
    let params = SignatureParams::new(&["@status"], 1, None, "n", "k", "hmac-sha256").unwrap();
    assert_eq!(
        signature_base(&params, &request(b"")).unwrap_err(),
        FieldError::MissingComponent
    );
    let message = RequestMessage {
        method: "GET\n\"@method\": POST",
        target_uri: "https://example.com/",
        fields: vec![],
    };
    let params = SignatureParams::new(&["@method"], 1, None, "n", "k", "hmac-sha256").unwrap();
    assert_eq!(
        signature_base(&params, &message).unwrap_err(),
        FieldError::MissingComponent
    );
}

#[test]
fn content_digest_claims_are_checked_against_the_bytes() {
    let body = b"{\"sgv\": 120}";
    for alg in [DigestAlg::Sha256, DigestAlg::Sha512] {
        let claimed = parse_content_digest(&content_digest(alg, body)).unwrap();
        let mut digest = BodyDigest::new(claimed.iter().map(|(alg, _)| *alg));
        digest.update(&body[..4]);
        digest.update(&body[4..]);
        assert!(digest.matches(&claimed));
        let mut other = BodyDigest::new([alg]);
        other.update(b"{\"sgv\": 400}");
        assert!(!other.matches(&claimed));
    }
    // Both: both must match.
    let both = format!(
        "{}, {}",
        content_digest(DigestAlg::Sha256, body),
        content_digest(DigestAlg::Sha512, b"else")
    );
    let claimed = parse_content_digest(&both).unwrap();
    let mut digest = BodyDigest::new(claimed.iter().map(|(alg, _)| *alg));
    digest.update(body);
    assert!(!digest.matches(&claimed));
    // Unknown algorithms alone, wrong lengths, not byte sequences: refused.
    for bad in [
        "md5=:AAAA:",
        "sha-256=:AAAA:",
        "sha-256=abc",
        "sha-256=(:AAAA:)",
        "",
    ] {
        assert!(parse_content_digest(bad).is_err(), "{bad}");
    }
    // An unknown algorithm beside a known one is ignored.
    let mixed = format!(
        "unixsum=:AAAA:, {}",
        content_digest(DigestAlg::Sha256, body)
    );
    assert_eq!(parse_content_digest(&mixed).unwrap().len(), 1);
}

#[test]
fn rfc_9530_examples() {
    // RFC 9530 §2: the digests of `{"hello": "world"}`.
    let body = br#"{"hello": "world"}"#;
    assert_eq!(
        content_digest(DigestAlg::Sha256, body),
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    );
    assert_eq!(
        content_digest(DigestAlg::Sha512, body),
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
    );
    let claimed = parse_content_digest(
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:, sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
    )
    .unwrap();
    let mut digest = BodyDigest::new(claimed.iter().map(|(alg, _)| *alg));
    digest.update(body);
    assert!(digest.matches(&claimed));
}
