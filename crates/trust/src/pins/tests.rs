// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use medgate_testkit::pki::{Leaf, TestCa, spki_of};

use super::*;

fn pattern(text: &str) -> HostPattern {
    HostPattern::parse(text).unwrap()
}

#[test]
fn patterns_match_as_okhttp_reads_them() {
    let cases = [
        ("api.example.com", "api.example.com", true),
        ("api.example.com", "API.Example.com.", true),
        ("api.example.com", "x.api.example.com", false),
        ("*.example.com", "api.example.com", true),
        ("*.example.com", "example.com", false),
        ("*.example.com", "a.b.example.com", false),
        ("*.example.com", "badexample.com", false),
        ("**.example.com", "example.com", true),
        ("**.example.com", "a.b.example.com", true),
        ("**.example.com", "badexample.com", false),
        ("**.example.com", ".example.com", false),
        ("127.0.0.1", "127.0.0.1", true),
        ("[::1]", "::1", true),
        // Found in review: an IPv6 pattern in a non-canonical spelling still pins the address.
        ("2001:db8:0::1", "2001:db8::1", true),
        ("[2001:DB8::0:1]", "2001:db8::1", true),
        // Found by the fuzzer: an address with a final dot, then not in canonical form.
        ("A:1:A:A:1:A:A::.", "a:1:a:a:1:a:a:0", true),
    ];
    for (text, host, expected) in cases {
        assert_eq!(pattern(text).matches(host), expected, "{text} vs {host}");
    }
}

#[test]
fn a_pattern_prints_as_it_parses() {
    for text in [
        "A:1:A:A:1:A:A::.",
        "[::1]",
        "**.Example.org.",
        "*.a.b",
        "127.0.0.1",
    ] {
        let pattern = pattern(text);
        assert_eq!(
            HostPattern::parse(&pattern.to_string()),
            Ok(pattern),
            "{text}"
        );
    }
}

#[test]
fn malformed_patterns_are_refused() {
    for text in [
        "",
        "*.",
        "**.",
        "a.*.com",
        "*example.com",
        "exa mple.com",
        ".example.com",
        "a..b",
        "example.com..",
        "api.example.com:443",
        "*.::1",
        "ex/ample",
    ] {
        assert_eq!(HostPattern::parse(text), Err(PinError::Pattern), "{text:?}");
    }
    assert!(HostPattern::parse(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
}

#[test]
fn pins_parse_in_both_spellings_and_nothing_else() {
    let pin = Pin::of_spki(b"key");
    let text = pin.to_string();
    assert_eq!(Pin::parse(&text), Ok(pin));
    assert_eq!(Pin::parse(&format!("sha256/{text}")), Ok(pin));
    // Found by the fuzzer: a bare pin whose base64 happens to begin with `sha256/`.
    let lookalike = Pin::parse("sha256/okyq2+vjM0QQJS+wzokyq2+niorfnGqyyfNM=").unwrap();
    assert_eq!(Pin::parse(&lookalike.to_string()), Ok(lookalike));
    for bad in [
        "",
        &text[1..],
        &format!("sha1/{text}"),
        &format!("{}!", &text[..43]),
        "AAAA",
    ] {
        assert_eq!(Pin::parse(bad), Err(PinError::Pin), "{bad:?}");
    }
}

#[test]
fn a_rule_without_pins_is_refused_and_matching_rules_add_up() {
    let a = Pin::of_spki(b"a");
    let b = Pin::of_spki(b"b");
    assert_eq!(
        PinSet::new(vec![PinRule {
            pattern: pattern("x.example"),
            pins: vec![],
        }]),
        Err(PinError::NoPins("x.example".into()))
    );
    let set = PinSet::new(vec![
        PinRule {
            pattern: pattern("api.example.com"),
            pins: vec![a],
        },
        PinRule {
            pattern: pattern("**.example.com"),
            pins: vec![a, b],
        },
    ])
    .unwrap();
    assert_eq!(set.pins_for("api.example.com"), vec![a, b]);
    assert_eq!(set.pins_for("other.example.com"), vec![a, b]);
    assert!(set.pins_for("example.org").is_empty());
}

#[test]
fn a_long_spki_is_wrapped_as_der_says() {
    let content = vec![7u8; 300];
    let wrapped = der_sequence(&content);
    assert_eq!(&wrapped[..4], &[0x30, 0x82, 0x01, 0x2c]);
    assert_eq!(&wrapped[4..], &content[..]);
    assert_eq!(der_sequence(&[1, 2]), vec![0x30, 2, 1, 2]);
}

/// A CA, a server certificate for `api.example.com`, and a verifier over that CA.
struct Pki {
    ca: TestCa,
    leaf: Leaf,
}

impl Pki {
    /// `name` tells CAs apart: a chain path is found by names before signatures are checked.
    fn new(name: &str) -> Pki {
        let ca = TestCa::new(name);
        let leaf = ca.issue(&["api.example.com"]);
        Pki { ca, leaf }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(self.ca.root_der())).unwrap();
        Arc::new(roots)
    }

    fn verifier(&self, rules: &[(&str, Vec<Pin>)]) -> PinnedVerifier {
        let rules = rules
            .iter()
            .map(|(text, pins)| PinRule {
                pattern: pattern(text),
                pins: pins.clone(),
            })
            .collect();
        PinnedVerifier::new(
            self.roots(),
            PinSet::new(rules).unwrap(),
            rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn leaf_pin(&self) -> Pin {
        Pin::of_spki(&self.leaf.spki_der)
    }

    fn intermediate_pin(&self) -> Pin {
        Pin::of_spki(&spki_of(&self.leaf.intermediate_der))
    }

    fn root_pin(&self) -> Pin {
        Pin::of_spki(&spki_of(&self.ca.root_der()))
    }
}

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap(),
    )
}

fn check(
    verifier: &PinnedVerifier,
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    host: &str,
) -> Result<ServerCertVerified, rustls::Error> {
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    verifier.verify_server_cert(
        &CertificateDer::from(leaf),
        &intermediates,
        &ServerName::try_from(host.to_string()).unwrap(),
        &[],
        now(),
    )
}

fn mismatch(result: Result<ServerCertVerified, rustls::Error>) -> PinMismatch {
    let error = result.unwrap_err();
    find_pin_mismatch(&error)
        .unwrap_or_else(|| panic!("not a pin mismatch: {error:?}"))
        .clone()
}

#[test]
fn any_certificate_of_the_verified_path_satisfies_a_pin() {
    let pki = Pki::new("pins");
    let chain = [pki.leaf.intermediate_der.clone()];
    for pin in [pki.leaf_pin(), pki.intermediate_pin(), pki.root_pin()] {
        let verifier = pki.verifier(&[("api.example.com", vec![Pin::of_spki(b"backup"), pin])]);
        check(&verifier, &pki.leaf.leaf_der, &chain, "api.example.com").unwrap();
    }
    // A host no rule covers is WebPKI alone.
    let verifier = pki.verifier(&[("other.example.com", vec![Pin::of_spki(b"x")])]);
    check(&verifier, &pki.leaf.leaf_der, &chain, "api.example.com").unwrap();
}

#[test]
fn a_pinned_host_whose_path_matches_no_pin_is_refused_with_the_chains_pins() {
    let pki = Pki::new("pins");
    let verifier = pki.verifier(&[("**.example.com", vec![Pin::of_spki(b"elsewhere")])]);
    let found = mismatch(check(
        &verifier,
        &pki.leaf.leaf_der,
        std::slice::from_ref(&pki.leaf.intermediate_der),
        "api.example.com",
    ));
    assert_eq!(found.host, "api.example.com");
    assert_eq!(
        found.chain,
        vec![pki.leaf_pin(), pki.intermediate_pin(), pki.root_pin()]
    );
    let text = found.to_string();
    assert!(text.contains(&pki.leaf_pin().to_string()), "{text}");
}

#[test]
fn a_pinned_certificate_presented_beside_the_path_does_not_count() {
    // The MitM's CA is trusted; it presents its own chain plus the genuine, pinned intermediate.
    let genuine = Pki::new("genuine");
    let mitm = Pki::new("mitm");
    let verifier = mitm.verifier(&[("api.example.com", vec![genuine.intermediate_pin()])]);
    let found = mismatch(check(
        &verifier,
        &mitm.leaf.leaf_der,
        &[
            mitm.leaf.intermediate_der.clone(),
            genuine.leaf.intermediate_der.clone(),
        ],
        "api.example.com",
    ));
    assert!(!found.chain.contains(&genuine.intermediate_pin()));
}

#[test]
fn a_pin_never_stands_in_for_webpki() {
    let pki = Pki::new("pins");
    let stranger = Pki::new("stranger");
    // Pinned to the stranger's leaf, but the stranger's CA is not trusted: refused as untrusted.
    let verifier = pki.verifier(&[("api.example.com", vec![stranger.leaf_pin()])]);
    let error = check(
        &verifier,
        &stranger.leaf.leaf_der,
        std::slice::from_ref(&stranger.leaf.intermediate_der),
        "api.example.com",
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            )
        ),
        "{error:?}"
    );
    assert!(find_pin_mismatch(&error).is_none());

    // Pinned and trusted, but for another name: refused by the name check.
    let verifier = pki.verifier(&[("**.example.org", vec![pki.leaf_pin()])]);
    let error = check(
        &verifier,
        &pki.leaf.leaf_der,
        std::slice::from_ref(&pki.leaf.intermediate_der),
        "api.example.org",
    )
    .unwrap_err();
    assert!(
        matches!(error, rustls::Error::InvalidCertificate(ref e) if *e != CertificateError::UnknownIssuer && !matches!(e, CertificateError::Other(_))),
        "{error:?}"
    );

    // Without the intermediate the path cannot be built, pin or not.
    let verifier = pki.verifier(&[("api.example.com", vec![pki.leaf_pin()])]);
    assert!(check(&verifier, &pki.leaf.leaf_der, &[], "api.example.com").is_err());
}

#[test]
fn a_chain_outside_its_validity_is_refused_before_its_pins_are_read() {
    let pki = Pki::new("pins");
    let verifier = pki.verifier(&[("api.example.com", vec![pki.leaf_pin()])]);
    // Test certificates are valid from 1975 on; 1970 is before that.
    let before = UnixTime::since_unix_epoch(Duration::from_secs(1_000));
    let error = verifier
        .verify_server_cert(
            &CertificateDer::from(pki.leaf.leaf_der.as_slice()),
            &[CertificateDer::from(pki.leaf.intermediate_der.as_slice())],
            &ServerName::try_from("api.example.com").unwrap(),
            &[],
            before,
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
            )
        ),
        "{error:?}"
    );
}

#[test]
fn a_mismatch_is_found_through_io_and_boxed_errors() {
    let mismatch = PinMismatch {
        host: "h".into(),
        chain: vec![],
    };
    let rustls_error = rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(
        Arc::new(mismatch.clone()),
    )));
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connect failed")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
    assert_eq!(find_pin_mismatch(&Outer(io)), Some(&mismatch));
    let unrelated = std::io::Error::other("refused");
    assert_eq!(find_pin_mismatch(&unrelated), None);
}

#[test]
fn the_pin_is_the_base64_sha256_of_the_spki() {
    // RFC 7469 appendix A's method. The expected value is what OpenSSL printed for this SPKI
    // (the P-256 generator point G): `openssl pkey -pubin -inform DER -outform DER |
    // openssl dgst -sha256 -binary | base64`.
    let hex = "3059301306072a8648ce3d020106082a8648ce3d03010703420004\
               6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296\
               4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5";
    let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
    let spki: Vec<u8> = digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect();
    assert_eq!(
        Pin::of_spki(&spki).to_string(),
        "XNJS+wzokyQ2+vjM0QQJgbie5K1rn+niorfnGqyyfNM="
    );
}

#[test]
fn managed_roots_are_the_only_roots_for_the_hosts_they_cover() {
    use crate::roots::ManagedRoots;
    // The device trusts `device` (a CA a user installed, say); the deployment manages `own`.
    let device = Pki::new("device");
    let own = Pki::new("own");
    let managed =
        ManagedRoots::parse(own.ca.root_pem().as_bytes(), &["**.example.com".into()]).unwrap();
    let verifier = device.verifier(&[]).with_managed_roots(Some(managed));
    // A chain from the device's CA for a covered host: refused, whatever the device trusts.
    let refused = check(
        &verifier,
        &device.leaf.leaf_der,
        std::slice::from_ref(&device.leaf.intermediate_der),
        "api.example.com",
    )
    .unwrap_err();
    assert!(
        matches!(
            refused,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        ),
        "{refused:?}"
    );
    // The deployment's own chain: accepted, though the device does not trust its CA.
    check(
        &verifier,
        &own.leaf.leaf_der,
        std::slice::from_ref(&own.leaf.intermediate_der),
        "api.example.com",
    )
    .unwrap();
    // A host the managed roots do not cover keeps the device's roots.
    let elsewhere = device.ca.issue(&["api.example.org"]);
    check(
        &verifier,
        &elsewhere.leaf_der,
        std::slice::from_ref(&elsewhere.intermediate_der),
        "api.example.org",
    )
    .unwrap();
    // Without managed roots, the device's chain for the covered host passes: the control.
    check(
        &device.verifier(&[]),
        &device.leaf.leaf_der,
        std::slice::from_ref(&device.leaf.intermediate_der),
        "api.example.com",
    )
    .unwrap();
}
