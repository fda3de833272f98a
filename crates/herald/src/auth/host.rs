//! Choosing among `authHost` entries by the page's `Referer`, as laravel-echo-server does, but
//! on a parsed URL: the referer is client text, and only its scheme, host and port may reach
//! the auth URL.

use url::{Host, Url};

/// Where an auth request goes, and whether that base is an `authHost` entry verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthTarget {
    /// `scheme://host[:port]`, without a trailing slash.
    pub base: String,
    /// `true` when `base` is a configured entry; `false` when a referer chose it through a
    /// leading-dot entry (`.shop.test`), so nobody configured that exact host: its answers'
    /// bodies are never shown to a client.
    pub configured: bool,
}

/// Picks the base URL for an auth request.
///
/// With several hosts, the handshake's `Referer` selects one: a host matches when it equals
/// the referer's `scheme://host[:port]` or `host[:port]`, or is a leading-dot suffix of its
/// hostname (`.example.com`); then the referer's own `scheme://host[:port]` is used, rebuilt
/// from the parsed URL, as the original does. A referer that is not a plain `http`/`https`
/// URL (user-info, backslashes, another scheme, no host) selects nothing. Without a match, the
/// **first** host is used (laravel-echo-server used the last one, by accident).
pub fn select_auth_host(hosts: &[String], referer: Option<&str>) -> AuthTarget {
    let first = AuthTarget {
        base: hosts
            .first()
            .map_or("http://localhost", String::as_str)
            .trim_end_matches('/')
            .to_owned(),
        configured: true,
    };
    let Some(referer) = referer.and_then(ParsedReferer::parse) else {
        return first;
    };
    for host in hosts {
        let host = host.trim_end_matches('/');
        if host.eq_ignore_ascii_case(&referer.origin)
            || host.eq_ignore_ascii_case(&referer.authority)
        {
            return AuthTarget {
                base: referer.origin,
                configured: true,
            };
        }
        if referer.in_domain(host) {
            return AuthTarget {
                base: referer.origin,
                configured: false,
            };
        }
    }
    first
}

/// The parts of a referer that may select an auth host.
struct ParsedReferer {
    /// `scheme://host[:port]`, the port only when not the scheme's default.
    origin: String,
    /// `host[:port]`.
    authority: String,
    /// The domain name (lowercase); `None` for an IP address.
    domain: Option<String>,
}

impl ParsedReferer {
    fn parse(referer: &str) -> Option<ParsedReferer> {
        // WHATWG parsers read `\` as `/` in http(s) URLs, and clients differ on it: a referer
        // with one is not one a browser sends, so it selects nothing.
        if referer.contains('\\') || referer.chars().any(char::is_control) {
            return None;
        }
        let url = Url::parse(referer).ok()?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let (host, domain) = match url.host()? {
            Host::Domain(domain) => (domain.to_owned(), Some(domain.to_owned())),
            Host::Ipv4(ip) => (ip.to_string(), None),
            Host::Ipv6(ip) => (format!("[{ip}]"), None),
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        Some(ParsedReferer {
            origin: format!("{}://{authority}", url.scheme()),
            authority,
            domain,
        })
    }

    /// laravel-echo-server's leading-dot rule: the hostname from its first dot on equals the
    /// entry (`eu.shop.test` is in `.shop.test`).
    fn in_domain(&self, entry: &str) -> bool {
        let Some(domain) = &self.domain else {
            return false;
        };
        entry.starts_with('.')
            && domain
                .find('.')
                .is_some_and(|dot| domain[dot..].eq_ignore_ascii_case(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn base(hosts: &[String], referer: &str) -> String {
        select_auth_host(hosts, Some(referer)).base
    }

    #[test]
    fn one_host_is_always_used() {
        let h = hosts(&["http://app.test"]);
        assert_eq!(select_auth_host(&h, None).base, "http://app.test");
        assert_eq!(base(&h, "http://evil.test/"), "http://app.test");
    }

    #[test]
    fn referer_selects_among_hosts() {
        let h = hosts(&["http://a.test", "https://b.test:8443", ".shop.test"]);
        assert_eq!(base(&h, "https://b.test:8443/x"), "https://b.test:8443");
        let chosen = select_auth_host(&h, Some("http://eu.shop.test/cart"));
        assert_eq!(chosen.base, "http://eu.shop.test");
        assert!(!chosen.configured);
        assert_eq!(
            base(&h, "http://EU.Shop.test:8080/"),
            "http://eu.shop.test:8080"
        );
        assert_eq!(base(&h, "http://other.test/"), "http://a.test");
        assert_eq!(base(&h, "garbage"), "http://a.test");
        assert!(select_auth_host(&h, Some("https://b.test:8443/")).configured);
    }

    #[test]
    fn spoofed_referers_never_choose_another_host() {
        let h = hosts(&["http://app.test", ".shop.test"]);
        for referer in [
            // user-info: a naive split takes `a.shop.test` as the host, HTTP sends to 127.0.0.1
            "http://a.shop.test:x@127.0.0.1:18300/",
            "http://a.shop.test@127.0.0.1:18300/",
            // backslashes: WHATWG reads them as `/`, other parsers do not
            "http://127.0.0.1:18300\\@a.shop.test/",
            "http://a.shop.test\\@127.0.0.1:18300/",
            // other schemes
            "file://a.shop.test/etc/passwd",
            "ftp://a.shop.test/",
            "javascript://a.shop.test/%0aalert(1)",
            // control characters
            "http://a.shop.test\r\n/",
        ] {
            assert_eq!(base(&h, referer), "http://app.test", "{referer}");
        }
    }

    #[test]
    fn the_rebuilt_base_has_no_path_query_or_userinfo() {
        let h = hosts(&["http://app.test", ".shop.test"]);
        assert_eq!(
            base(&h, "https://x.shop.test:443/a/b?c=d#e"),
            "https://x.shop.test"
        );
        let h = hosts(&["http://app.test", "http://[::1]:8000"]);
        assert_eq!(base(&h, "http://[::1]:8000/page"), "http://[::1]:8000");
    }

    proptest::proptest! {
        #[test]
        fn fuzz_referer(referer in ".{0,80}") {
            let h = hosts(&["http://a.test", ".b.test"]);
            let chosen = select_auth_host(&h, Some(&referer));
            // Whatever the referer, the base parses back to a URL with nothing but scheme,
            // host and port, and its host is configured or inside a configured domain.
            let url = Url::parse(&chosen.base).expect("a base always parses");
            proptest::prop_assert!(url.username().is_empty() && url.password().is_none());
            proptest::prop_assert_eq!(url.path(), "/");
            let host = url.host_str().unwrap_or_default().to_owned();
            proptest::prop_assert!(host == "a.test" || host.ends_with(".b.test"), "{}", host);
        }
    }

    #[test]
    fn no_hosts_means_localhost() {
        assert_eq!(select_auth_host(&[], None).base, "http://localhost");
    }
}
