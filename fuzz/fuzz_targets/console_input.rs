//! What the console reads from a request before a session is looked up: the `Cookie` header
//! (the session's value, 32 bytes of base64url or nothing), a form's fields, and whether a form
//! came from this origin (`Origin`, `Host`, `Sec-Fetch-Site`). Never panics; a session value is
//! exactly 32 bytes; a foreign origin is never taken for this one.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use medgate_server::console_input::{cookie, form_fields, same_origin, session_value};

fuzz_target!(|data: &[u8]| {
    let _ = form_fields(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(4, '\n');
    let (jar, origin, host, site) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let mut headers = HeaderMap::new();
    for (name, value) in [("cookie", jar), ("origin", origin), ("host", host), ("sec-fetch-site", site)] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    if let Some(value) = cookie(&headers, "__Host-medgate-session") {
        if let Some(raw) = session_value(&value) {
            assert_eq!(raw.len(), 32);
        }
    }
    if same_origin(&headers) {
        // Allowed only when the browser said nothing, or said this origin.
        let said_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        assert!(matches!(said_site, None | Some("same-origin") | Some("none")));
        if let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) {
            let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert!(origin == format!("http://{host}") || origin == format!("https://{host}"));
        }
    }
});
