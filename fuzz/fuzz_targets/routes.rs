//! Route rules against requests: the first line is the path pattern, the rest the request's
//! path and query. The rule also names a query parameter, as a Nightscout bulk-delete rule
//! does. For every canonical path, the gateway's DPoP `htu` (a normalised base joined to the
//! path) must be what parsing the whole URI gives.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use medgate_gateway::path::canonical_path;
use medgate_gateway::routes::{Route, RouteConfig};
use medgate_verify::dpop::{HtuBase, target_uri};

const BASE: &str = "https://API.example:443/prefix/";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, target) = text.split_once('\n').unwrap_or((text, "/"));
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let mut config = RouteConfig::new(pattern, &["DELETE"], &[]);
    config.query = vec!["find[*".into()];
    let Ok(path) = canonical_path(path) else {
        return;
    };
    if let Ok(route) = Route::compile(&config) {
        let _ = route.matches(&path, &Method::DELETE, query);
    }
    let Ok(base) = HtuBase::new(BASE) else {
        panic!("the base normalises")
    };
    assert_eq!(base.join(&path), target_uri(BASE, &path), "{path:?}");
});
