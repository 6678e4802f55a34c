//! What the console reads from a request before anything else: cookies, a form's fields,
//! where a form came from. Every function takes hostile input and returns, never panics
//! (fuzz target `console_input`).

use http::header::{self, HeaderMap};

/// A session cookie's value: 32 bytes in base64url.
pub fn session_value(text: &str) -> Option<[u8; 32]> {
    medgate_proto::b64::decode_array(text).ok()
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_string())
}

/// A form body's fields, in order (the body is bounded before it gets here).
pub fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Whether a POST comes from a page of this console: a browser says where a request comes from
/// (`Sec-Fetch-Site`, `Origin`); a request that says another site is refused. (A client that
/// sends neither is not a browser, and still needs the cookie and the form's token.)
pub fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(site) = header("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match (header("origin"), header("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin.split_once("://").is_some_and(|(scheme, authority)| {
                (scheme == "http" || scheme == "https") && authority == host
            })
        }
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

    #[test]
    fn only_this_origin_may_post() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(same_origin(&headers(&[("host", "127.0.0.1:9")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:9"),
            ("origin", "http://127.0.0.1:9"),
            ("sec-fetch-site", "same-origin"),
        ])));
        for refused in [
            headers(&[("host", "127.0.0.1:9"), ("origin", "http://evil.example")]),
            headers(&[("host", "127.0.0.1:9"), ("origin", "http://127.0.0.1:10")]),
            headers(&[("host", "127.0.0.1:9"), ("origin", "null")]),
            headers(&[("host", "127.0.0.1:9"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "127.0.0.1:9"), ("sec-fetch-site", "same-site")]),
            headers(&[("origin", "http://127.0.0.1:9")]),
        ] {
            assert!(!same_origin(&refused), "{refused:?}");
        }
    }
}
