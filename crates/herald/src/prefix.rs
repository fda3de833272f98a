//! Guessing Laravel's Redis prefix from a published channel name.

/// The prefix Laravel most likely put in front of `channel`, if it looks prefixed at all.
///
/// `laravel_database_private-orders.1` → `laravel_database_`; `my-app-database-news` →
/// `my-app-database-`; `orders` → `None`.
pub fn implied_prefix(channel: &str) -> Option<String> {
    for marker in ["private-", "presence-"] {
        if let Some(at) = channel.find(marker).filter(|at| *at > 0) {
            return Some(channel[..at].to_owned());
        }
    }
    for marker in ["_database_", "-database-"] {
        if let Some(at) = channel.find(marker) {
            return Some(channel[..at + marker.len()].to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::implied_prefix;

    proptest::proptest! {
        #[test]
        fn fuzz_implied_prefix(channel in ".{0,60}") {
            if let Some(prefix) = implied_prefix(&channel) {
                proptest::prop_assert!(channel.starts_with(&prefix));
            }
        }
    }

    #[test]
    fn finds_laravel_prefixes() {
        assert_eq!(
            implied_prefix("laravel_database_private-orders.1").as_deref(),
            Some("laravel_database_")
        );
        assert_eq!(
            implied_prefix("my_app_database_orders").as_deref(),
            Some("my_app_database_")
        );
        assert_eq!(
            implied_prefix("shop-database-presence-chat").as_deref(),
            Some("shop-database-")
        );
        assert_eq!(implied_prefix("orders"), None);
        assert_eq!(implied_prefix("private-orders"), None);
    }
}
