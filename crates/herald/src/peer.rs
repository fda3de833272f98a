//! Who is at the other end of a connection: the TCP peer, or, when that peer is a proxy the
//! operator listed in `trustedProxies`, the client its `X-Forwarded-For` names.
//!
//! A client's own `X-Forwarded-For` is a claim anyone can make: it is believed only from a
//! trusted peer, and only its well-formed addresses are ever repeated.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

/// The proxies whose `X-Forwarded-For` Herald believes (`trustedProxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    ranges: Arc<[IpNet]>,
}

/// A client as Herald sees it, resolved once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress {
    /// The client's address: the peer's, or the one a trusted proxy forwarded for.
    pub ip: IpAddr,
    /// The `X-Forwarded-For` value to send upstream: the peer, after a trusted proxy's
    /// well-formed chain.
    pub forwarded_for: String,
}

/// `"10.0.0.1"` or `"10.0.0.0/8"` (IPv4 or IPv6).
pub fn parse_range(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

impl TrustedProxies {
    /// Trusts the given ranges.
    pub fn new(ranges: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies {
            ranges: ranges.into(),
        }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ranges.iter().any(|range| range.contains(&ip))
    }

    /// The client of a request (or of the handshake a connection kept), from the peer address
    /// the server recorded (axum's `ConnectInfo`); `None` when there is none (in-process tests).
    pub fn client_of(
        &self,
        extensions: &http::Extensions,
        headers: &HeaderMap,
    ) -> Option<ClientAddress> {
        let peer = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?;
        Some(self.client(peer.0.ip(), headers))
    }

    /// Resolves the client behind `peer`. From a trusted peer, the client is the rightmost
    /// `X-Forwarded-For` address that is not itself a trusted proxy.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddress {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return ClientAddress {
                ip: peer,
                forwarded_for: peer.to_string(),
            };
        }
        let chain: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
            .collect();
        let ip = chain
            .iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(chain.first())
            .copied()
            .unwrap_or(peer);
        let mut forwarded_for: Vec<String> = chain.iter().map(IpAddr::to_string).collect();
        forwarded_for.push(peer.to_string());
        ClientAddress {
            ip,
            forwarded_for: forwarded_for.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::new(vec![]);
        let client = proxies.client(ip("203.0.113.9"), &xff("10.0.0.1"));
        assert_eq!(client.ip, ip("203.0.113.9"));
        assert_eq!(client.forwarded_for, "203.0.113.9");
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let proxies = TrustedProxies::new(vec![parse_range("127.0.0.1").expect("range")]);
        let client = proxies.client(ip("127.0.0.1"), &xff("198.51.100.7, 127.0.0.1"));
        assert_eq!(client.ip, ip("198.51.100.7"));
        assert_eq!(client.forwarded_for, "198.51.100.7, 127.0.0.1, 127.0.0.1");
        // Garbage in the chain is never repeated.
        let client = proxies.client(ip("127.0.0.1"), &xff("evil<script>, 198.51.100.7"));
        assert_eq!(client.forwarded_for, "198.51.100.7, 127.0.0.1");
        // No header: the proxy itself.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &HeaderMap::new()).ip,
            ip("127.0.0.1")
        );
    }

    #[test]
    fn ranges_and_mapped_addresses() {
        let proxies = TrustedProxies::new(vec![parse_range("10.0.0.0/8").expect("range")]);
        assert!(proxies.trusts(ip("10.1.2.3")));
        assert!(proxies.trusts(ip("::ffff:10.1.2.3")));
        assert!(!proxies.trusts(ip("11.0.0.1")));
        assert!(parse_range("not an ip").is_none());
        assert!(parse_range("::1").is_some());
    }

    proptest::proptest! {
        #[test]
        fn fuzz_forwarded_for(value in "[ -~]{0,80}") {
            let proxies = TrustedProxies::new(vec![parse_range("127.0.0.0/8").expect("range")]);
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert("x-forwarded-for", value);
            }
            let client = proxies.client(ip("127.0.0.1"), &headers);
            // Only addresses are repeated upstream.
            for entry in client.forwarded_for.split(", ") {
                proptest::prop_assert!(entry.parse::<IpAddr>().is_ok());
            }
        }
    }
}
