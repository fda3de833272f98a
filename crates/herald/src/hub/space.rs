//! Channel spaces. Every protocol and app shares one space by default (Herald serves one
//! application); an app with `"isolated": true` gets a space of its own, where its channels
//! are not those of the same name elsewhere.
//!
//! A channel of an isolated space is kept in the Hub (and the presence store) under a key that
//! starts with a control character and the app id. No client, publisher or Redis message can
//! name such a key: channel names with control characters are refused everywhere
//! ([`super::validate_channel_name`]). The Hub itself needs no notion of spaces.

use std::borrow::Cow;
use std::sync::Arc;

/// Starts and ends the app id in an isolated space's keys.
const MARK: char = '\u{1}';

/// The space a connection or an API request lives in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Space {
    /// `None` for the shared space; else the keys' prefix, `MARK app_id MARK`.
    prefix: Option<Arc<str>>,
}

impl Space {
    /// The space every protocol and non-isolated app shares.
    pub fn shared() -> Space {
        Space::default()
    }

    /// The space of the isolated app `app_id`.
    pub fn isolated(app_id: &str) -> Space {
        Space {
            prefix: Some(Arc::from(format!("{MARK}{app_id}{MARK}"))),
        }
    }

    /// The Hub key of channel `name` in this space (the name itself in the shared space).
    pub fn key<'a>(&self, name: &'a str) -> Cow<'a, str> {
        match &self.prefix {
            None => Cow::Borrowed(name),
            Some(prefix) => Cow::Owned(format!("{prefix}{name}")),
        }
    }

    /// The channel name of `key`, if `key` lies in this space.
    pub fn name_of<'a>(&self, key: &'a str) -> Option<&'a str> {
        match &self.prefix {
            None => (!key.starts_with(MARK)).then_some(key),
            Some(prefix) => key.strip_prefix(&**prefix),
        }
    }
}

/// The isolated app whose space holds `key`, if any.
pub fn app_of(key: &str) -> Option<&str> {
    key.strip_prefix(MARK)
        .and_then(|rest| rest.split_once(MARK))
        .map(|(app, _)| app)
}

/// The name clients know a channel by, from its Hub key in any space.
pub fn visible_name(key: &str) -> &str {
    key.strip_prefix(MARK)
        .and_then(|rest| rest.split_once(MARK))
        .map_or(key, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_keep_their_channels_apart() {
        let shared = Space::shared();
        let a = Space::isolated("1");
        let b = Space::isolated("12");
        assert_eq!(shared.key("orders"), "orders");
        assert_ne!(a.key("orders"), shared.key("orders"));
        assert_ne!(a.key("orders"), b.key("orders"));
        let key = a.key("orders");
        assert_eq!(a.name_of(&key), Some("orders"));
        assert_eq!(b.name_of(&key), None);
        assert_eq!(shared.name_of(&key), None);
        assert_eq!(shared.name_of("orders"), Some("orders"));
        assert_eq!(a.name_of("orders"), None);
        assert_eq!(visible_name(&key), "orders");
        assert_eq!(visible_name("orders"), "orders");
    }

    #[test]
    fn no_valid_channel_name_reaches_an_isolated_space() {
        let key = Space::isolated("1").key("orders");
        assert!(super::super::validate_channel_name(&key).is_err());
    }
}
