//! Choosing among `authHost` entries by the page's `Referer`, as laravel-echo-server does.

/// Picks the base URL for an auth request.
///
/// With several hosts, the handshake's `Referer` selects one: a host matches when it equals
/// the referer's `scheme://host[:port]` or `host[:port]`, or is a leading-dot suffix of its
/// hostname (`.example.com`); then the referer's own `scheme://host[:port]` is used, as the
/// original does. Without a match, the **first** host is used (laravel-echo-server used the
/// last one, by accident).
pub fn select_auth_host<'a>(
    hosts: &'a [String],
    referer: Option<&str>,
) -> std::borrow::Cow<'a, str> {
    let first = hosts
        .first()
        .map(String::as_str)
        .unwrap_or("http://localhost");
    let Some((scheme, authority)) = referer.and_then(split_referer) else {
        return first.into();
    };
    let hostname = authority.split(':').next().unwrap_or(authority);
    let origin = format!("{scheme}://{authority}");
    for host in hosts {
        let suffix_match = hostname
            .find('.')
            .is_some_and(|dot| &hostname[dot..] == host.as_str());
        if suffix_match || *host == origin || *host == authority {
            return origin.into();
        }
    }
    first.into()
}

/// `https://app.test:8080/page?x` → (`https`, `app.test:8080`).
fn split_referer(referer: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = referer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty() && matches!(scheme, "http" | "https")).then_some((scheme, authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_host_is_always_used() {
        let h = hosts(&["http://app.test"]);
        assert_eq!(select_auth_host(&h, None), "http://app.test");
        assert_eq!(
            select_auth_host(&h, Some("http://evil.test/")),
            "http://app.test"
        );
    }

    #[test]
    fn referer_selects_among_hosts() {
        let h = hosts(&["http://a.test", "https://b.test:8443", ".shop.test"]);
        assert_eq!(
            select_auth_host(&h, Some("https://b.test:8443/x")),
            "https://b.test:8443"
        );
        assert_eq!(
            select_auth_host(&h, Some("http://eu.shop.test/cart")),
            "http://eu.shop.test"
        );
        assert_eq!(
            select_auth_host(&h, Some("http://other.test/")),
            "http://a.test"
        );
        assert_eq!(select_auth_host(&h, Some("garbage")), "http://a.test");
    }

    proptest::proptest! {
        #[test]
        fn fuzz_referer(referer in ".{0,80}") {
            let h = hosts(&["http://a.test", ".b.test"]);
            let _ = select_auth_host(&h, Some(&referer));
        }
    }

    #[test]
    fn no_hosts_means_localhost() {
        assert_eq!(select_auth_host(&[], None), "http://localhost");
    }
}
