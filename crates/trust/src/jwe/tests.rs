#![allow(clippy::unwrap_used)]

use super::*;

fn b64d(text: &str) -> Vec<u8> {
    b64::decode(text, 1024).unwrap()
}

fn header(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect()
}

fn sealed_to(recipient: &EcdhSecret, plaintext: &[u8]) -> String {
    encrypt(
        Recipient::EcdhEsA256Kw(recipient.public_jwk()),
        header(&[("kid", "enc-1")]),
        plaintext,
        Randomness::from_os().unwrap(),
    )
    .unwrap()
}

fn open(token: &str, recipient: &EcdhSecret) -> Result<Decrypted, JweError> {
    decrypt(token, KeyManagement::EcdhEsA256Kw(recipient))
}

/// Rebuilds a token with its protected header replaced (the other parts kept).
fn with_header(token: &str, header_json: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", b64::encode(header_json))
}

fn header_of(token: &str) -> Map<String, Value> {
    serde_json::from_slice(&b64d(token.split('.').next().unwrap())).unwrap()
}

#[test]
fn the_concat_kdf_and_ecdh_match_rfc_7518_appendix_c() {
    // RFC 7518 Appendix C: Bob's static key, Alice's ephemeral key, apu "Alice", apv "Bob",
    // ECDH-ES direct with A128GCM (the KDF is the same; only the name and length differ).
    let bob = EcdhSecret::from_bytes(&b64d("VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw")).unwrap();
    assert_eq!(
        bob.public_jwk(),
        &PublicJwk::P256 {
            x: b64::decode_array("weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ").unwrap(),
            y: b64::decode_array("e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck").unwrap(),
        }
    );
    let alice = PublicJwk::P256 {
        x: b64::decode_array("gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0").unwrap(),
        y: b64::decode_array("SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps").unwrap(),
    };
    let mut point = [0u8; 65];
    point.copy_from_slice(&alice.public_key_bytes());
    let z = bob.shared_secret(&point).unwrap();
    assert_eq!(
        z.as_slice(),
        [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196
        ]
    );
    let key = concat_kdf_bits(z.as_slice(), "A128GCM", b"Alice", b"Bob", 128);
    assert_eq!(b64::encode(&key[..16]), "VqqN6vgjbSBcIijNcacQGg");
}

#[test]
fn a_sealed_value_opens_only_for_its_recipient() {
    let recipient = EcdhSecret::generate().unwrap();
    let token = sealed_to(&recipient, b"nightscout api secret");
    let opened = open(&token, &recipient).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"nightscout api secret");
    assert_eq!(opened.header["kid"], "enc-1");
    assert_eq!(opened.header["alg"], ALG_ECDH_ES_A256KW);
    assert_eq!(opened.header["enc"], ENC_A256GCM);

    // Two seals of one value share nothing but the header's shape.
    let again = sealed_to(&recipient, b"nightscout api secret");
    assert_ne!(token, again);

    let someone_else = EcdhSecret::generate().unwrap();
    assert_eq!(
        open(&token, &someone_else).unwrap_err(),
        JweError::KeyUnwrapFailed
    );
}

#[test]
fn a256kw_round_trips_under_the_shared_key() {
    let key = [7u8; 32];
    let token = encrypt(
        Recipient::A256Kw(&key),
        Map::new(),
        b"verdict",
        Randomness::from_os().unwrap(),
    )
    .unwrap();
    let opened = decrypt(&token, KeyManagement::A256Kw(&key)).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"verdict");
    assert_eq!(
        decrypt(&token, KeyManagement::A256Kw(&[8u8; 32])).unwrap_err(),
        JweError::KeyUnwrapFailed
    );
    // The same token presented as the other algorithm is refused before any crypto.
    let recipient = EcdhSecret::generate().unwrap();
    assert!(matches!(
        open(&token, &recipient).unwrap_err(),
        JweError::HeaderNotAllowed(_)
    ));
}

/// What a forgery's refusal must be.
type Expected = fn(&JweError) -> bool;

/// Each forgery of a genuine token, and why it must fail.
#[test]
fn forgeries_are_refused_each_for_its_reason() {
    let recipient = EcdhSecret::generate().unwrap();
    let token = sealed_to(&recipient, b"value");
    let genuine = header_of(&token);
    let parts: Vec<&str> = token.split('.').collect();
    let rejoin = |i: usize, part: &str| {
        let mut parts = parts.clone();
        parts[i] = part;
        parts.join(".")
    };
    let changed_header = |f: &dyn Fn(&mut Map<String, Value>)| {
        let mut header = genuine.clone();
        f(&mut header);
        with_header(&token, &serde_json::to_string(&header).unwrap())
    };
    let other_key = EcdhSecret::generate().unwrap();
    let off_curve = serde_json::json!({"kty": "EC", "crv": "P-256",
        "x": b64::encode([1u8; 32]), "y": b64::encode([2u8; 32])});

    let cases: Vec<(&str, String, Expected)> = vec![
        (
            "a ciphertext byte flipped fails the GCM tag",
            rejoin(3, &{
                let mut bytes = b64d(parts[3]);
                bytes[0] ^= 1;
                b64::encode(bytes)
            }),
            |e| *e == JweError::DecryptionFailed,
        ),
        (
            "a header member added changes the associated data",
            changed_header(&|h| {
                h.insert("kid".into(), "enc-2".into());
            }),
            |e| *e == JweError::DecryptionFailed,
        ),
        (
            "another ephemeral key agrees another wrapping key",
            changed_header(&|h| {
                h.insert(
                    "epk".into(),
                    serde_json::to_value(other_key.public_jwk()).unwrap(),
                );
            }),
            |e| *e == JweError::KeyUnwrapFailed,
        ),
        (
            "party info is bound into the wrapping key",
            changed_header(&|h| {
                h.insert("apu".into(), b64::encode("mallory").into());
            }),
            |e| *e == JweError::KeyUnwrapFailed,
        ),
        (
            "an ephemeral key off the curve is refused before any agreement",
            changed_header(&|h| {
                h.insert("epk".into(), off_curve.clone());
            }),
            |e| matches!(e, JweError::Malformed(_)),
        ),
        (
            "an ephemeral key with its private half is refused",
            changed_header(&|h| {
                h["epk"]["d"] = b64::encode([3u8; 32]).into();
            }),
            |e| matches!(e, JweError::Malformed(_)),
        ),
        (
            "no ephemeral key",
            changed_header(&|h| {
                h.remove("epk");
            }),
            |e| matches!(e, JweError::Malformed(_)),
        ),
        (
            "an Ed25519 ephemeral key",
            changed_header(&|h| {
                h.insert(
                    "epk".into(),
                    serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode([4u8; 32])}),
                );
            }),
            |e| matches!(e, JweError::HeaderNotAllowed(_)),
        ),
        (
            "direct key agreement (no wrap) is not on the allow-list",
            changed_header(&|h| {
                h.insert("alg".into(), "ECDH-ES".into());
            }),
            |e| matches!(e, JweError::HeaderNotAllowed(_)),
        ),
        (
            "alg none",
            changed_header(&|h| {
                h.insert("alg".into(), "none".into());
            }),
            |e| matches!(e, JweError::HeaderNotAllowed(_)),
        ),
        (
            "a weaker content encryption",
            changed_header(&|h| {
                h.insert("enc".into(), "A128GCM".into());
            }),
            |e| matches!(e, JweError::HeaderNotAllowed(_)),
        ),
        (
            "compression",
            changed_header(&|h| {
                h.insert("zip".into(), "DEF".into());
            }),
            |e| matches!(e, JweError::HeaderNotAllowed(_)),
        ),
        (
            "critical extensions",
            changed_header(&|h| {
                h.insert("crit".into(), serde_json::json!(["exp"]));
            }),
            |e| matches!(e, JweError::HeaderNotAllowed(_)),
        ),
        (
            "a header that is not an object",
            with_header(&token, "[1,2]"),
            |e| matches!(e, JweError::Malformed(_)),
        ),
        ("four parts", parts[..4].join("."), |e| {
            matches!(e, JweError::Malformed(_))
        }),
        ("six parts", format!("{token}.x"), |e| {
            matches!(e, JweError::Malformed(_))
        }),
        ("a short IV", rejoin(2, &b64::encode([0u8; 8])), |e| {
            matches!(e, JweError::Malformed(_))
        }),
        ("a short tag", rejoin(4, &b64::encode([0u8; 12])), |e| {
            matches!(e, JweError::Malformed(_))
        }),
        (
            "a wrapped key of the wrong length",
            rejoin(1, &b64::encode([0u8; 32])),
            |e| matches!(e, JweError::Malformed(_)),
        ),
        (
            "a wrapped key altered",
            rejoin(1, &b64::encode([0u8; 40])),
            |e| *e == JweError::KeyUnwrapFailed,
        ),
        (
            "padding in base64url",
            rejoin(2, &format!("{}==", parts[2])),
            |e| matches!(e, JweError::Malformed(_)),
        ),
        (
            "larger than the bound",
            format!("{token}{}", "A".repeat(MAX_JWE_LEN)),
            |e| matches!(e, JweError::TooLarge { .. }),
        ),
    ];
    for (why, forged, expected) in cases {
        let error = open(&forged, &recipient).expect_err(why);
        assert!(expected(&error), "{why}: got {error:?}");
        // No error carries the token's text.
        assert!(!error.to_string().contains(parts[3]), "{why}");
    }
    // And the genuine token still opens.
    assert!(open(&token, &recipient).is_ok());
}

#[test]
fn the_stored_scalar_gives_back_the_same_key() {
    let key = EcdhSecret::generate().unwrap();
    let again = EcdhSecret::from_bytes(&key.to_bytes()).unwrap();
    assert_eq!(key.public_jwk(), again.public_jwk());
    assert!(EcdhSecret::from_bytes(&[0u8; 32]).is_err());
    assert!(EcdhSecret::from_bytes(&[1u8; 31]).is_err());
    assert!(!format!("{key:?}").contains(&b64::encode(key.to_bytes().as_slice())));
}

/// Tokens npm `jose` sealed (crates/trust/vectors/jwe-jose.json says how): medgate opens what
/// an independent JOSE library makes, as jose opens what medgate makes (the node's interop test).
#[test]
fn tokens_sealed_by_npm_jose_open() {
    let vectors: Value = serde_json::from_str(include_str!("../../vectors/jwe-jose.json")).unwrap();
    let recipient = EcdhSecret::from_bytes(&[7u8; 32]).unwrap();
    let opened = open(vectors["ecdh_es_a256kw"].as_str().unwrap(), &recipient).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"seed");
    assert_eq!(opened.header["kid"], "seed");
    let opened = decrypt(
        vectors["a256kw"].as_str().unwrap(),
        KeyManagement::A256Kw(&[7u8; 32]),
    )
    .unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"seed");
    // And not by anyone else.
    let stranger = EcdhSecret::from_bytes(&[8u8; 32]).unwrap();
    assert_eq!(
        open(vectors["ecdh_es_a256kw"].as_str().unwrap(), &stranger).unwrap_err(),
        JweError::KeyUnwrapFailed
    );
}
