// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use medgate_verify::UnixTime;

use super::*;

fn config(header: Option<&str>, query: Option<&str>, secret: &str) -> InjectConfig {
    InjectConfig {
        header: header.map(str::to_string),
        query: query.map(str::to_string),
        secret: secret.into(),
        encoding: Encoding::Plain,
    }
}

fn record(app: &str, name: &str, version: i64, value: &[u8], sealer: &Sealer) -> SecretRecord {
    SecretRecord {
        app_id: app.into(),
        name: name.into(),
        version,
        sealed: sealer
            .seal(&secret_label(app, name, version), value)
            .unwrap(),
        created_at: UnixTime::from_secs(1),
        updated_at: UnixTime::from_secs(1),
    }
}

fn cache_with(records: &[(&str, &str, &[u8])]) -> SecretCache {
    let sealer = Sealer::plain();
    let cache = SecretCache::default();
    cache.update(
        records
            .iter()
            .map(|(app, name, value)| record(app, name, 1, value, &sealer))
            .collect(),
        &sealer,
    );
    cache
}

#[test]
fn injections_that_cannot_be_meant_are_refused_at_start() {
    let cases = [
        (
            config(Some("api-secret"), Some("secret"), "ns"),
            "exactly one",
        ),
        (config(None, None, "ns"), "exactly one"),
        (config(Some("api-secret"), None, "NS"), "secret must be"),
        (config(Some("api-secret"), None, ""), "secret must be"),
        (config(Some("bad header"), None, "ns"), "not a header name"),
        (config(Some("Host"), None, "ns"), "sets host itself"),
        (
            config(Some("x_forwarded_for"), None, "ns"),
            "sets x-forwarded-for",
        ),
        (
            config(Some("X-Medgate-App"), None, "ns"),
            "sets x-medgate-app",
        ),
        (config(None, Some("se cret"), "ns"), "query must be"),
        (config(None, Some(""), "ns"), "query must be"),
    ];
    for (config, expected) in cases {
        let error = Injection::compile(&config).unwrap_err();
        assert!(error.contains(expected), "{error}");
    }
    Injection::compile(&config(Some("Authorization"), None, "upstream_token")).unwrap();
}

#[test]
fn a_header_replaces_every_copy_the_client_sent() {
    let cache = cache_with(&[("app", "ns", b"the real secret")]);
    let injection = Injection::compile(&config(Some("api-secret"), None, "ns")).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("api-secret", HeaderValue::from_static("forged"));
    headers.append("api-secret", HeaderValue::from_static("forged again"));
    headers.insert("api_secret", HeaderValue::from_static("underscored"));
    headers.insert("accept", HeaderValue::from_static("application/json"));
    let injected = apply(&[injection], &cache, "app", &mut headers, Some("count=1")).unwrap();
    assert_eq!(injected.query(Some("count=1")), Some("count=1"));
    let sent: Vec<_> = headers.get_all("api-secret").iter().collect();
    assert_eq!(sent, vec!["the real secret"]);
    assert!(sent[0].is_sensitive());
    assert!(headers.get("api_secret").is_none());
    assert_eq!(headers.get("accept").unwrap(), "application/json");
}

#[test]
fn sha1_hex_is_what_nightscout_compares() {
    // FIPS 180 example: SHA-1("abc").
    let cache = cache_with(&[("app", "ns", b"abc")]);
    let mut injection = config(Some("api-secret"), None, "ns");
    injection.encoding = Encoding::Sha1Hex;
    let mut headers = HeaderMap::new();
    apply(
        &[Injection::compile(&injection).unwrap()],
        &cache,
        "app",
        &mut headers,
        None,
    )
    .unwrap();
    assert_eq!(
        headers.get("api-secret").unwrap(),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
}

#[test]
fn a_query_parameter_replaces_the_clients_under_any_spelling() {
    let cache = cache_with(&[("app", "ns", b"s&cret=1 /")]);
    let injection = Injection::compile(&config(None, Some("secret"), "ns")).unwrap();
    let mut headers = HeaderMap::new();
    // Found in review: `;` parts, `[]` suffixes and Unicode case variants (U+017F, the long
    // s, is S to a case-insensitive lookup) survived the first version.
    let injected = apply(
        std::slice::from_ref(&injection),
        &cache,
        "app",
        &mut headers,
        Some("secret=forged&count=10&SECRET=x&secr%65t=y&a=1;secret=z&secret[]=w&%C5%BFecret=v&secretive=kept"),
    )
    .unwrap();
    assert_eq!(
        injected.query(None),
        Some("count=10&secretive=kept&secret=s%26cret%3D1%20%2F")
    );
    let injected = apply(&[injection], &cache, "app", &mut headers, None).unwrap();
    assert_eq!(injected.query(None), Some("secret=s%26cret%3D1%20%2F"));

    // A redirect that repeats the query would hand the secret to the app: it is removed.
    let mut response = HeaderMap::new();
    response.insert(
        http::header::LOCATION,
        HeaderValue::from_static("/next?secret=s%26cret%3D1%20%2F"),
    );
    response.insert(
        http::header::LINK,
        HeaderValue::from_static("</other>; rel=next"),
    );
    assert_eq!(injected.scrub(&mut response), 1);
    assert!(response.get(http::header::LOCATION).is_none());
    assert!(response.get(http::header::LINK).is_some());
}

#[test]
fn a_missing_or_unsendable_secret_changes_nothing() {
    let cache = cache_with(&[("app", "ns", b"ok"), ("app", "binary", b"line\nbreak")]);
    let header = Injection::compile(&config(Some("api-secret"), None, "ns")).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("api-secret", HeaderValue::from_static("client's"));
    // Another app's secret of the same name is not this app's.
    let missing = apply(
        std::slice::from_ref(&header),
        &cache,
        "other-app",
        &mut headers,
        None,
    )
    .unwrap_err();
    assert_eq!(missing.secret, "ns");
    let unsendable = Injection::compile(&config(Some("x-key"), None, "binary")).unwrap();
    assert!(apply(&[header, unsendable], &cache, "app", &mut headers, None).is_err());
    assert_eq!(headers.get("api-secret").unwrap(), "client's");
    assert!(headers.get("x-key").is_none());
}

#[test]
fn the_cache_reopens_changed_versions_and_leaves_out_what_does_not_open() {
    let master = Sealer::from_master_key("3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=").unwrap();
    let cache = SecretCache::default();
    cache.update(vec![record("app", "ns", 1, b"one", &master)], &master);
    assert_eq!(cache.get("app", "ns").unwrap().as_slice(), b"one");
    cache.update(vec![record("app", "ns", 2, b"two", &master)], &master);
    assert_eq!(cache.get("app", "ns").unwrap().as_slice(), b"two");
    // A value sealed for another version (a row edited in the database) does not open.
    let mut moved = record("app", "ns", 2, b"three", &master);
    moved.version = 3;
    cache.update(vec![moved], &master);
    assert!(cache.get("app", "ns").is_none());
    // A deleted secret is gone at the next update.
    cache.update(vec![record("app", "ns", 4, b"four", &master)], &master);
    cache.update(vec![], &master);
    assert!(cache.get("app", "ns").is_none());
}

#[test]
fn stripped_credentials_go_under_any_spelling_and_the_rest_stays() {
    let strip = Strip::compile(
        &["api-secret".into()],
        &["secret".into(), "token".into(), "api_secret".into()],
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("api-secret", "sha1-of-site-secret"),
        ("api_secret", "underscored"),
        ("accept", "application/json"),
    ] {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
    }
    let query =
        "count=10&secret=s1&TOKEN=t1&%74oken=t2&api_secret=a1&token[x]=t3&find[type]=sgv;secret=s2";
    let stripped = strip.apply(&mut headers, Some(query));
    let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    assert_eq!(names, ["accept"]);
    assert_eq!(stripped.query(Some(query)), Some("count=10"));
    // Nothing left: no query at all.
    let mut none = HeaderMap::new();
    let stripped = strip.apply(&mut none, Some("token=abc"));
    assert_eq!(stripped.query(Some("token=abc")), None);
    // No query, or nothing to strip: unchanged.
    assert_eq!(strip.apply(&mut none, None), Stripped::Unchanged);
    let nothing = Strip::default();
    assert_eq!(
        nothing
            .apply(&mut none, Some("secret=x"))
            .query(Some("secret=x")),
        Some("secret=x")
    );
}

#[test]
fn what_cannot_be_stripped_is_refused_at_start() {
    assert!(
        Strip::compile(&["host".into()], &[])
            .unwrap_err()
            .contains("strip_headers")
    );
    assert!(
        Strip::compile(&["x-medgate-app".into()], &[])
            .unwrap_err()
            .contains("strip_headers")
    );
    assert!(
        Strip::compile(&[], &["a b".into()])
            .unwrap_err()
            .contains("strip_query")
    );
}

#[test]
fn a_nightscout_jwt_goes_only_in_authorization_and_only_once_fetched_for_the_current_version() {
    let mut jwt = config(Some("api-secret"), None, "nightscout_token");
    jwt.encoding = Encoding::NightscoutJwt;
    assert!(Injection::compile(&jwt).is_err());
    jwt.header = None;
    jwt.query = Some("token".into());
    assert!(Injection::compile(&jwt).is_err());
    jwt.query = None;
    jwt.header = Some("Authorization".into());
    let injection = Injection::compile(&jwt).unwrap();
    let cache = cache_with(&[("app", "nightscout_token", b"medgate-0011223344556677")]);
    let send = |cache: &SecretCache| {
        let mut headers = HeaderMap::new();
        apply(
            std::slice::from_ref(&injection),
            cache,
            "app",
            &mut headers,
            None,
        )
        .map(|_| {
            headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
    };
    // Not fetched yet: unavailable, never the access token itself.
    assert!(send(&cache).is_err());
    let fetched = |version| UpstreamJwt {
        version,
        bearer: Arc::new(Zeroizing::new("Bearer ns.1.ab".into())),
        expires_at: 1,
    };
    cache.set_jwt("app", "nightscout_token", fetched(1));
    assert_eq!(send(&cache).unwrap(), "Bearer ns.1.ab");
    // Fetched for another version of the token (it was rotated): unavailable until renewed.
    cache.set_jwt("app", "nightscout_token", fetched(2));
    assert!(send(&cache).is_err());
}
