//! Who the client is when medgate sits behind a reverse proxy.
//!
//! Behind the TLS proxy the README recommends, every connection comes from the proxy: keyed by
//! the TCP peer, all clients would share one rate limit, and one client could spend it for
//! everyone. So a listener may name the proxies it trusts (`trusted_proxies`, CIDRs). Only when
//! the peer is one of them are `Forwarded` (RFC 7239) and `X-Forwarded-For` read:
//!
//! 1. The peer is not a trusted proxy: it is the client, whatever the headers say.
//! 2. Otherwise the hops the headers list (`Forwarded` if present, else `X-Forwarded-For`; at
//!    most [`MAX_HOPS`]) are walked from the nearest (right-most) outwards, skipping trusted
//!    proxies; the first address that is not one is the client.
//! 3. A hop that is not an address (`unknown`, an obfuscated name, garbage) ends the walk: the
//!    client is then the last trusted hop, never something the client wrote.
//!
//! Rate limits and connection counts key IPv6 clients by their /64 ([`client_key`]).

use std::net::IpAddr;

use http::HeaderMap;

/// The most hops read from the forwarding headers.
pub const MAX_HOPS: usize = 32;

/// A CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/len` or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length outside 0-{max}"))?,
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.network), ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The key rate limits and connection counts are kept under: the IPv4 address (also when
/// mapped into IPv6), or the /64 an IPv6 address is in (one subscriber's allocation).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// The proxies whose forwarding headers a listener believes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn parse<S: AsRef<str>>(blocks: &[S]) -> Result<TrustedProxies, String> {
        blocks
            .iter()
            .map(|block| Cidr::parse(block.as_ref()))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    pub fn none() -> TrustedProxies {
        TrustedProxies(Vec::new())
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// Steps 1–3: the client's address.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // Step 1.
        if !self.trusts(peer) {
            return canonical(peer);
        }
        // Step 2.
        let hops = forwarded_hops(headers);
        let mut client = canonical(peer);
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) if self.trusts(*ip) => client = canonical(*ip),
                Some(ip) => return canonical(*ip),
                // Step 3.
                None => return client,
            }
        }
        client
    }
}

/// The nearest [`MAX_HOPS`] hops the forwarding headers list, farthest first; `None` for one
/// that is not an address. (The nearest are kept: a client can prepend as many as it likes.)
pub fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &'static str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
    };
    let mut hops = std::collections::VecDeque::with_capacity(MAX_HOPS);
    let mut keep = |hop: Option<IpAddr>| {
        if hops.len() == MAX_HOPS {
            hops.pop_front();
        }
        hops.push_back(hop);
    };
    if headers.contains_key("forwarded") {
        values("forwarded").for_each(|element| keep(forwarded_for(element)));
    } else {
        values("x-forwarded-for").for_each(|entry| keep(node(entry)));
    }
    hops.into()
}

/// The `for=` of one RFC 7239 forwarded-element, as an address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| node(value.trim().trim_matches('"')))?
    })
}

/// An RFC 7239 node (or an X-Forwarded-For entry): an IPv4 address with an optional port, or an
/// IPv6 address, bracketed when it carries a port.
fn node(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (address, _) = rest.split_once(']')?;
        return address.parse().ok();
    }
    let (address, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn cidr_blocks_parse_and_match() {
        let block = Cidr::parse("10.1.0.0/16").expect("cidr");
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")));
        assert!(
            Cidr::parse("2001:db8::/32")
                .expect("v6")
                .contains(ip("2001:db8:5::1"))
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
        assert!(
            Cidr::parse("127.0.0.1")
                .expect("host")
                .contains(ip("127.0.0.1"))
        );
        for bad in ["10.0.0.0/33", "::/129", "proxy.internal", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_count_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::parse(&["127.0.0.1/32", "10.0.0.0/8"]).expect("cidrs");
        let spoof = headers(&[("x-forwarded-for", "203.0.113.9")]);
        // An untrusted peer is the client, whatever it claims.
        assert_eq!(
            trusted.client(ip("198.51.100.7"), &spoof),
            ip("198.51.100.7")
        );
        // Behind the proxy, the nearest untrusted hop.
        assert_eq!(trusted.client(ip("127.0.0.1"), &spoof), ip("203.0.113.9"));
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.5")]);
        assert_eq!(trusted.client(ip("127.0.0.1"), &chain), ip("203.0.113.9"));
        // No headers: the proxy itself.
        assert_eq!(
            trusted.client(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        // Nobody trusted: headers are never read.
        assert_eq!(
            TrustedProxies::none().client(ip("127.0.0.1"), &spoof),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn rfc_7239_forwarded_wins_and_garbage_ends_the_walk() {
        let trusted = TrustedProxies::parse(&["127.0.0.1"]).expect("cidr");
        let forwarded = headers(&[
            (
                "forwarded",
                r#"for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711""#,
            ),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        assert_eq!(
            trusted.client(ip("127.0.0.1"), &forwarded),
            ip("2001:db8:cafe::17")
        );
        let ported = headers(&[("forwarded", r#"for="198.51.100.17:8080""#)]);
        assert_eq!(
            trusted.client(ip("127.0.0.1"), &ported),
            ip("198.51.100.17")
        );
        for garbage in [
            "for=unknown",
            "for=_hidden",
            "by=1.2.3.4",
            "for=\"[::1\"",
            "for=999.1.1.1",
        ] {
            let map = headers(&[("forwarded", garbage)]);
            assert_eq!(
                trusted.client(ip("127.0.0.1"), &map),
                ip("127.0.0.1"),
                "{garbage}"
            );
        }
    }

    #[test]
    fn at_most_max_hops_are_kept_and_they_are_the_nearest() {
        let trusted = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).expect("cidrs");
        // A client prepends thousands of fake hops; the proxy appends the real address.
        let mut many = std::iter::repeat_n("6.6.6.6", 10_000).collect::<Vec<_>>();
        many.push("203.0.113.9");
        let mut map = HeaderMap::new();
        map.insert(
            "x-forwarded-for",
            HeaderValue::from_str(&many.join(",")).expect("value"),
        );
        assert_eq!(forwarded_hops(&map).len(), MAX_HOPS);
        assert_eq!(trusted.client(ip("127.0.0.1"), &map), ip("203.0.113.9"));
    }
}
