//! Who the client is, as an address: the TCP peer, or — only when the peer is one of
//! the configured trusted proxies (`--trusted-proxies`) — the address the proxies
//! forwarded. Used by the order rate limits and the status page's visitor count.
//!
//! Forwarded addresses come from `Forwarded: for=…` (RFC 7239) or, when that header is
//! absent, `X-Forwarded-For`. Walking the hops from the right, the first address that
//! is not itself a trusted proxy is the client: a client can prepend anything it likes,
//! but cannot forge what the proxies appended. An unparsable hop stops the walk at the
//! last address known to be good.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|n| n.contains(&ip))
}

/// One `for=` value of a `Forwarded` element: `192.0.2.1`, `"[2001:db8::1]:443"`,
/// `192.0.2.1:80`, or an obfuscated/unknown identifier (not an address: `None`).
fn forwarded_for(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse::<IpAddr>()
        .ok()
        .or_else(|| v.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The forwarded hops, leftmost (the original client) first. `None` marks a hop that is
/// not an address.
fn hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().map_err(|_| ()))
            .collect::<Vec<_>>()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .into_iter()
            .flat_map(|v| match v {
                Ok(v) => v
                    .split(',')
                    .map(|element| {
                        element
                            .split(';')
                            .filter_map(|pair| pair.split_once('='))
                            .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                            .and_then(|(_, v)| forwarded_for(v))
                    })
                    .collect::<Vec<_>>(),
                Err(()) => vec![None],
            })
            .collect();
    }
    values("x-forwarded-for")
        .into_iter()
        .flat_map(|v| match v {
            Ok(v) => v
                .split(',')
                .map(|h| h.trim().parse::<IpAddr>().ok())
                .collect::<Vec<_>>(),
            Err(()) => vec![None],
        })
        .collect()
}

/// The client's address (see the module documentation).
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return canonical(peer);
    }
    let mut client = peer;
    for hop in hops(headers).into_iter().rev() {
        let Some(ip) = hop else {
            break;
        };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    canonical(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers("x-forwarded-for", &["203.0.113.7, 10.1.1.1"]);
        // From a trusted proxy: the rightmost untrusted hop.
        assert_eq!(client_ip(&h, ip("10.2.2.2"), &trusted), ip("203.0.113.7"));
        // From anyone else: the header is ignored.
        assert_eq!(
            client_ip(&h, ip("198.51.100.1"), &trusted),
            ip("198.51.100.1")
        );
        // A spoofed left part does not help: the rightmost untrusted hop wins.
        let h = headers("x-forwarded-for", &["1.1.1.1", "203.0.113.7"]);
        assert_eq!(client_ip(&h, ip("10.2.2.2"), &trusted), ip("203.0.113.7"));
        // No trusted proxies configured: never believed.
        assert_eq!(client_ip(&h, ip("10.2.2.2"), &[]), ip("10.2.2.2"));
        // Garbage stops the walk at the last good address.
        let h = headers("x-forwarded-for", &["203.0.113.7, bogus, 10.1.1.1"]);
        assert_eq!(client_ip(&h, ip("10.2.2.2"), &trusted), ip("10.1.1.1"));
    }

    #[test]
    fn rfc7239_forwarded_is_understood_and_preferred() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = headers(
            "forwarded",
            &["for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\""],
        );
        assert_eq!(
            client_ip(&h, ip("10.2.2.2"), &trusted),
            ip("2001:db8:cafe::17")
        );
        let mut h = headers("forwarded", &["For=\"198.51.100.17:80\""]);
        h.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert_eq!(client_ip(&h, ip("10.2.2.2"), &trusted), ip("198.51.100.17"));
        // An obfuscated identifier is not an address: the proxy is the client.
        let h = headers("forwarded", &["for=_hidden"]);
        assert_eq!(client_ip(&h, ip("10.2.2.2"), &trusted), ip("10.2.2.2"));
        // Untrusted peer: ignored.
        let h = headers("forwarded", &["for=192.0.2.60"]);
        assert_eq!(client_ip(&h, ip("192.0.2.1"), &trusted), ip("192.0.2.1"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let trusted: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        let h = headers("x-forwarded-for", &["203.0.113.7"]);
        assert_eq!(
            client_ip(&h, ip("::ffff:127.0.0.1"), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(client_ip(&h, ip("::ffff:192.0.2.1"), &[]), ip("192.0.2.1"));
    }
}
