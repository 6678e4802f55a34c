//! Forwarding headers (`Forwarded`, `X-Forwarded-For`) behind a trusted proxy: never panics,
//! bounded work, and the client is the peer, a trusted hop or an address the headers list.
#![no_main]

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use medgate_service::client_ip::{TrustedProxies, forwarded_hops};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (forwarded, xff) = text.split_once('\n').unwrap_or((text, ""));
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(forwarded) {
        headers.insert("forwarded", value);
    }
    if let Ok(value) = HeaderValue::from_str(xff) {
        headers.insert("x-forwarded-for", value);
    }
    let trusted = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).expect("fixed CIDRs");
    let peer: IpAddr = "127.0.0.1".parse().expect("an address");
    let hops = forwarded_hops(&headers);
    assert!(hops.len() <= medgate_service::client_ip::MAX_HOPS);
    let client = trusted.client(peer, &headers);
    assert!(client == peer || hops.contains(&Some(client)) || hops.iter().flatten().any(|h| {
        match h { IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4) == Some(client), _ => false }
    }));
    // An untrusted peer is always the client.
    let stranger: IpAddr = "198.51.100.1".parse().expect("an address");
    assert_eq!(trusted.client(stranger, &headers), stranger);
});
