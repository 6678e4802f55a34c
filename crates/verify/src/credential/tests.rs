use super::*;

const SECRET: &str = "follower-0123456789abcdef0123456789abcdef";

fn at(secs: i64) -> UnixTime {
    UnixTime::from_secs(1_800_000_000 + secs)
}

fn set_with(expires_at: Option<UnixTime>) -> CredentialSet {
    let (digest, sha1_digest) = digests(SECRET);
    CredentialSet::new([(
        Credential {
            id: "cred_0011223344556677".into(),
            app_id: "org.example.cgm".into(),
            kind: "follower".into(),
            name: "School nurse".into(),
            scopes: vec!["nightscout:read".into()],
            expires_at,
        },
        digest,
        sha1_digest,
    )])
}

#[test]
fn a_secret_is_found_raw_after_token_and_as_its_sha1_hex() {
    let set = set_with(None);
    for presented in [
        SECRET.to_string(),
        format!("token={SECRET}"),
        sha1_hex(SECRET),
    ] {
        let found = set.find(&presented, at(0)).unwrap();
        assert_eq!(found.credential().id, "cred_0011223344556677");
        assert!(found.has_scope("nightscout:read"));
        assert!(!found.has_scope("nightscout:therapy-write"));
    }
}

#[test]
fn sha1_hex_is_nightscouts() {
    // FIPS 180 test vector "abc".
    assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

#[test]
fn near_misses_are_unknown() {
    let set = set_with(None);
    let mut upper = SECRET.to_string();
    upper.make_ascii_uppercase();
    let cases = [
        ("", CredentialError::Unknown),
        (&SECRET[..SECRET.len() - 1], CredentialError::Unknown),
        (upper.as_str(), CredentialError::Unknown),
        // Nightscout's own prefix matching (`storage.findSubject`) is not medgate's.
        (
            "anything-0123456789abcdef0123456789abcdef",
            CredentialError::Unknown,
        ),
    ];
    for (presented, why) in cases {
        assert_eq!(set.find(presented, at(0)).unwrap_err(), why, "{presented}");
    }
    let long = format!("{SECRET}{}", "0".repeat(MAX_PRESENTED));
    assert_eq!(
        set.find(&long, at(0)).unwrap_err(),
        CredentialError::Unknown
    );
    assert!(CredentialSet::default().find(SECRET, at(0)).is_err());
}

#[test]
fn an_expired_credential_is_refused_from_its_expiry() {
    let set = set_with(Some(at(100)));
    assert!(set.find(SECRET, at(99)).is_ok());
    assert_eq!(
        set.find(SECRET, at(100)).unwrap_err(),
        CredentialError::Expired
    );
}

fn key(byte: u8) -> ExchangeKey {
    ExchangeKey::new(&[byte; 32])
}

#[test]
fn an_exchange_token_stands_for_its_credential_until_exp() {
    let set = set_with(None);
    let found = set.find(SECRET, at(0)).unwrap();
    let answer = key(1).mint(&found, at(0), 3600);
    assert_eq!(answer.exp - answer.iat, 3600);
    assert_eq!(
        answer.permission_groups,
        vec![vec!["nightscout:read".to_string()]]
    );
    let verified = key(1).verify(&answer.token, &set, at(3599)).unwrap();
    assert_eq!(verified.credential().id, "cred_0011223344556677");
    assert_eq!(
        key(1).verify(&answer.token, &set, at(3600)).unwrap_err(),
        CredentialError::TokenExpired
    );
    // Revoked (gone from the set): its tokens go with it.
    assert_eq!(
        key(1)
            .verify(&answer.token, &CredentialSet::default(), at(1))
            .unwrap_err(),
        CredentialError::Unknown
    );
}

#[test]
fn an_exchange_token_never_outlives_its_credential() {
    let set = set_with(Some(at(600)));
    let found = set.find(SECRET, at(0)).unwrap();
    let answer = key(1).mint(&found, at(0), 3600);
    assert_eq!(answer.exp, at(600).secs());
    assert_eq!(
        key(1).verify(&answer.token, &set, at(600)).unwrap_err(),
        CredentialError::TokenExpired
    );
}

/// Forged exchange tokens, each with the reason it must fail.
#[test]
fn forged_exchange_tokens_are_refused() {
    let set = set_with(None);
    let found = set.find(SECRET, at(0)).unwrap();
    let token = key(1).mint(&found, at(0), 3600).token;
    let parts: Vec<&str> = token.split('.').collect();
    let sign = |header: &str, payload: &str| {
        let input = format!("{header}.{payload}");
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[1; 32]),
            input.as_bytes(),
        );
        format!("{input}.{}", b64::encode(tag.as_ref()))
    };
    let payload = |json: &str| b64::encode(json.as_bytes());
    let far = at(0).secs() + 10_000_000;
    let cases: Vec<(String, CredentialError, &str)> = vec![
        (
            key(2).mint(&found, at(0), 3600).token,
            CredentialError::BadSignature,
            "another key",
        ),
        (
            format!(
                "{}.{}.{}",
                parts[0],
                payload(&format!(
                    r#"{{"sub":"cred_0011223344556677","iat":{},"exp":{far}}}"#,
                    at(0).secs()
                )),
                parts[2]
            ),
            CredentialError::BadSignature,
            "payload changed, tag kept",
        ),
        (
            format!(
                "{}.{}.",
                b64::encode(br#"{"alg":"none","typ":"JWT"}"#),
                parts[1]
            ),
            CredentialError::Malformed,
            "alg none",
        ),
        (
            sign(&b64::encode(br#"{"alg":"HS512","typ":"JWT"}"#), parts[1]),
            CredentialError::Malformed,
            "another header, even correctly signed",
        ),
        (
            sign(
                parts[0],
                &payload(&format!(
                    r#"{{"sub":"cred_0011223344556677","iat":{},"exp":{far},"scope":"admin"}}"#,
                    at(0).secs()
                )),
            ),
            CredentialError::Malformed,
            "an extra claim",
        ),
        (
            sign(
                parts[0],
                &payload(&format!(
                    r#"{{"sub":"cred_ffffffffffffffff","iat":{},"exp":{far}}}"#,
                    at(0).secs()
                )),
            ),
            CredentialError::Unknown,
            "a credential that does not exist",
        ),
        (
            sign(
                parts[0],
                &payload(&format!(
                    r#"{{"sub":"cred_0011223344556677","iat":{},"exp":{far}}}"#,
                    at(0).secs() + 3600
                )),
            ),
            CredentialError::TokenExpired,
            "issued in the future",
        ),
        (
            format!("{token}.x"),
            CredentialError::Malformed,
            "four parts",
        ),
        (
            parts[..2].join("."),
            CredentialError::Malformed,
            "two parts",
        ),
        (
            format!("{token}{}", "A".repeat(MAX_EXCHANGE_TOKEN)),
            CredentialError::Malformed,
            "too long",
        ),
        (
            SECRET.to_string(),
            CredentialError::Malformed,
            "the secret itself",
        ),
    ];
    for (forged, why, what) in cases {
        assert_eq!(
            key(1).verify(&forged, &set, at(1)).unwrap_err(),
            why,
            "{what}"
        );
    }
}
