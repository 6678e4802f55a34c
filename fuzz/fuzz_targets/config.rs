//! The config file parser and route compilation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_gateway::routes::Route;
use medgate_node::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::from_toml(text, "fuzz") {
        for route in &config.gateway.routes {
            let _ = Route::compile(route);
        }
    }
});
