//! Tolerant port parsing: `6001`, `"6001"` and `"http://x:6001/"` all mean 6001.

/// Parses a port the way laravel-echo-server does (the trailing run of digits, an optional `/`
/// after it), but refuses what the original silently mangled: 1 or more than 5 digits, or > 65535.
pub fn parse_port(raw: &str) -> Option<u16> {
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let digits_start = trimmed
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit())
        .last()
        .map(|(i, _)| i)?;
    let digits = &trimmed[digits_start..];
    if !(2..=5).contains(&digits.len()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|p| *p >= 10)
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    #[test]
    fn accepts_what_laravel_echo_server_accepts() {
        assert_eq!(parse_port("6001"), Some(6001));
        assert_eq!(parse_port(" 6001 "), Some(6001));
        assert_eq!(parse_port("http://localhost:6001/"), Some(6001));
        assert_eq!(parse_port("https://x.test:443"), Some(443));
        assert_eq!(parse_port("80"), Some(80));
    }

    proptest::proptest! {
        #[test]
        fn fuzz_port(raw in ".{0,20}") {
            if let Some(port) = parse_port(&raw) {
                proptest::prop_assert!(port >= 10);
            }
        }
    }

    #[test]
    fn refuses_what_it_would_have_mangled() {
        assert_eq!(parse_port("8"), None);
        assert_eq!(parse_port("123456"), None);
        assert_eq!(parse_port("70000"), None);
        assert_eq!(parse_port("http://x/"), None);
        assert_eq!(parse_port(""), None);
        assert_eq!(parse_port("00"), None);
    }
}
