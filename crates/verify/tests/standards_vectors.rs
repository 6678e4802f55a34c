//! The RFC examples in ../shared/vectors/standards, verified by the core at their own instants.

use medgate_proto::{Alg, PublicJwk};
use medgate_testkit::{vector_json, vectors_dir};
use medgate_verify::UnixTime;
use medgate_verify::dpop::{ProofError, ProofPolicy, RequestTarget, target_uri, verify_proof};
use medgate_verify::jws;
use medgate_verify::token::access_token_hash;

#[test]
fn rfc9449_dpop_examples_verify_at_their_instants() {
    let Some(dir) = vectors_dir() else { return };
    let vectors = vector_json(&dir, "standards/rfc9449-dpop/vectors.json");
    let proofs = vectors["proofs"].as_array().expect("proofs");
    assert_eq!(proofs.len(), 3);
    for proof in proofs {
        let payload = &proof["payload"];
        let uri = target_uri(payload["htu"].as_str().unwrap(), "").unwrap();
        let target = RequestTarget {
            method: payload["htm"].as_str().unwrap(),
            uri: &uri,
        };
        let now = UnixTime::from_secs(payload["iat"].as_i64().unwrap());
        let jwt = proof["jwt"].as_str().unwrap();
        let verified = verify_proof(jwt, target, &ProofPolicy::default(), now).unwrap();
        assert_eq!(
            verified.jkt().as_str(),
            vectors["expected_jkt"].as_str().unwrap()
        );
        assert_eq!(verified.jti(), payload["jti"].as_str().unwrap());
        if let Some(check) = proof.get("ath_check") {
            let token = check["access_token"].as_str().unwrap();
            assert_eq!(verified.ath(), Some(access_token_hash(token).as_str()));
            assert_eq!(verified.ath(), check["computed_ath"].as_str());
        }
        // Today the 2019 proofs are long stale.
        let today = UnixTime::from_secs(1_795_000_000);
        assert_eq!(
            verify_proof(jwt, target, &ProofPolicy::default(), today).unwrap_err(),
            ProofError::Stale
        );
    }
    // The example access token's cnf.jkt names the same key.
    let token = &vectors["access_token_jwt_with_cnf"];
    assert_eq!(token["payload"]["cnf"]["jkt"], vectors["expected_jkt"]);
    let parsed = jws::parse(token["jwt"].as_str().unwrap(), 8192, &[Alg::Es256]).unwrap();
    assert_eq!(parsed.header().kid.as_deref(), Some("BeALkb"));
}

#[test]
fn rfc7515_es256_and_rfc8037_ed25519_examples_verify() {
    let Some(dir) = vectors_dir() else { return };
    for (file, alg) in [
        ("standards/rfc7515-es256-jws/vectors.json", Alg::Es256),
        ("standards/rfc8037-ed25519-jws/vectors.json", Alg::EdDsa),
    ] {
        let vectors = vector_json(&dir, file);
        let key: PublicJwk = serde_json::from_value(vectors["public_jwk"].clone()).unwrap();
        let compact = vectors["jws_compact"].as_str().unwrap();
        let parsed = jws::parse(compact, 8192, &[alg]).unwrap();
        parsed.verify(&key).unwrap();
        assert_eq!(
            parsed.payload(),
            vectors["payload_utf8"].as_str().unwrap().as_bytes()
        );
        if let Some(thumbprint) = vectors.get("jwk_thumbprint_sha256") {
            assert_eq!(key.thumbprint().as_str(), thumbprint.as_str().unwrap());
        }
        // The private JWK is refused wherever a public key is expected.
        let private =
            serde_json::from_value::<PublicJwk>(vectors["private_jwk"].clone()).unwrap_err();
        assert!(private.to_string().contains("private key material"));
    }
}

#[test]
fn ed25519_proofs_verify_under_both_jose_names() {
    // RFC 8037 A.1's key signs a DPoP proof; RFC 9864 clients label it `Ed25519`, older ones
    // `EdDSA`. Both name the same algorithm.
    let Some(dir) = vectors_dir() else { return };
    let vectors = vector_json(&dir, "standards/rfc8037-ed25519-jws/vectors.json");
    let seed =
        medgate_proto::b64::decode(vectors["private_jwk"]["d"].as_str().unwrap(), 64).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let jwk: PublicJwk = serde_json::from_value(vectors["public_jwk"].clone()).unwrap();
    let uri = target_uri("https://api.example", "/v1/entries").unwrap();
    let target = RequestTarget {
        method: "GET",
        uri: &uri,
    };
    for alg in ["EdDSA", "Ed25519"] {
        let header = serde_json::json!({"alg": alg, "typ": "dpop+jwt", "jwk": jwk});
        let claims = serde_json::json!({"jti": "j", "htm": "GET", "htu": uri, "iat": 1000});
        let input = format!(
            "{}.{}",
            medgate_proto::b64::encode(header.to_string()),
            medgate_proto::b64::encode(claims.to_string())
        );
        let proof = format!(
            "{input}.{}",
            medgate_proto::b64::encode(pair.sign(input.as_bytes()))
        );
        // A gateway configured for EdDSA proofs accepts it (the default, like discovery, is
        // ES256 only).
        let with_eddsa = ProofPolicy {
            algs: vec![Alg::Es256, Alg::EdDsa, Alg::Ed25519],
            ..ProofPolicy::default()
        };
        let verified =
            verify_proof(&proof, target, &with_eddsa, UnixTime::from_secs(1000)).unwrap();
        assert_eq!(
            verified.jkt().as_str(),
            vectors["jwk_thumbprint_sha256"].as_str().unwrap()
        );
        // A gateway that only accepts ES256 refuses it.
        let es256_only = ProofPolicy {
            algs: vec![Alg::Es256],
            ..ProofPolicy::default()
        };
        assert_eq!(
            verify_proof(&proof, target, &es256_only, UnixTime::from_secs(1000)).unwrap_err(),
            ProofError::Jws(jws::JwsError::AlgorithmNotAllowed)
        );
    }
}
