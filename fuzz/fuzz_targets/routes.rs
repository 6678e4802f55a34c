//! Route patterns against request paths: the first line is the pattern, the rest the path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_gateway::path::canonical_path;
use medgate_gateway::routes::{Route, RouteConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pattern, path) = text.split_once('\n').unwrap_or((text, "/"));
    if let Ok(route) = Route::compile(&RouteConfig::new(pattern, &[], &[])) {
        if let Ok(path) = canonical_path(path) {
            let _ = route.matches_path(&path);
        }
    }
});
