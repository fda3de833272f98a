//! The one rule for channel names, shared by every protocol and the HTTP API.

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_NAME_BYTES: usize = 200;

/// What kind of channel a name denotes; decided by an anchored prefix, never "contains".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Anyone may subscribe.
    Public,
    /// `private-…`: needs authorization.
    Private,
    /// `private-encrypted-…`: authorized like a private channel; payloads are end-to-end
    /// encrypted by the app and relayed untouched, and clients may not send events on it.
    Encrypted,
    /// `presence-…`: needs authorization and tracks members.
    Presence,
}

impl ChannelKind {
    /// The kind of `name`.
    pub fn of(name: &str) -> ChannelKind {
        if name.starts_with("presence-") {
            ChannelKind::Presence
        } else if name.starts_with("private-encrypted-") {
            ChannelKind::Encrypted
        } else if name.starts_with("private-") {
            ChannelKind::Private
        } else {
            ChannelKind::Public
        }
    }

    /// Private and presence channels need the app's permission.
    pub fn needs_authorization(self) -> bool {
        !matches!(self, ChannelKind::Public)
    }
}

/// Why a channel name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// Empty string.
    #[error("channel name is empty")]
    Empty,
    /// Over [`MAX_CHANNEL_NAME_BYTES`].
    #[error("channel name is longer than {MAX_CHANNEL_NAME_BYTES} bytes")]
    TooLong,
    /// Contains whitespace or control characters.
    #[error("channel name contains whitespace or control characters")]
    BadCharacter,
    /// Starts with `#`, which Pusher reserves for the server's own channels
    /// (`#server-to-user-<id>`): publishers may name them, clients may not subscribe.
    #[error("channel names starting with # are reserved for the server's own channels")]
    Reserved,
}

/// Checks a channel name a client or publisher sent.
pub fn validate_channel_name(name: &str) -> Result<(), ChannelNameError> {
    if name.is_empty() {
        Err(ChannelNameError::Empty)
    } else if name.len() > MAX_CHANNEL_NAME_BYTES {
        Err(ChannelNameError::TooLong)
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(ChannelNameError::BadCharacter)
    } else {
        Ok(())
    }
}

/// The channel of a signed-in user's connections (`#server-to-user-<id>`): what the SDKs'
/// `sendToUser` publishes to and the terminate API names. Reserved: clients cannot subscribe.
pub fn user_channel(user_id: &str) -> String {
    format!("#server-to-user-{user_id}")
}

/// The channel of the connections watching a user (`#watchlist-<id>`): told when that user comes
/// online or goes offline.
pub fn watchlist_channel(user_id: &str) -> String {
    format!("#watchlist-{user_id}")
}

/// The user whose channel `name` is ([`user_channel`]), if it is one.
pub fn user_of_channel(name: &str) -> Option<&str> {
    name.strip_prefix("#server-to-user-")
}

/// Checks a channel name a client asks to subscribe to: a valid name, not a reserved one.
pub fn validate_subscription(name: &str) -> Result<(), ChannelNameError> {
    validate_channel_name(name)?;
    if name.starts_with('#') {
        return Err(ChannelNameError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_use_anchored_prefixes() {
        assert_eq!(ChannelKind::of("orders"), ChannelKind::Public);
        assert_eq!(ChannelKind::of("private-orders.1"), ChannelKind::Private);
        assert_eq!(
            ChannelKind::of("private-encrypted-x"),
            ChannelKind::Encrypted
        );
        assert_eq!(ChannelKind::of("private-encryptedx"), ChannelKind::Private);
        assert!(ChannelKind::Encrypted.needs_authorization());
        assert_eq!(ChannelKind::of("presence-chat.1"), ChannelKind::Presence);
        assert_eq!(ChannelKind::of("foo-private-bar"), ChannelKind::Public);
        assert_eq!(ChannelKind::of("App.Models.User.1"), ChannelKind::Public);
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(validate_channel_name("App.Models.User.1"), Ok(()));
        assert_eq!(validate_channel_name("ünïcode-ok"), Ok(()));
        assert_eq!(validate_channel_name(""), Err(ChannelNameError::Empty));
        assert_eq!(
            validate_channel_name("a b"),
            Err(ChannelNameError::BadCharacter)
        );
        assert_eq!(
            validate_channel_name(&"x".repeat(201)),
            Err(ChannelNameError::TooLong)
        );
        assert_eq!(validate_channel_name("#server-to-user-1"), Ok(()));
        assert_eq!(
            validate_subscription("#server-to-user-1"),
            Err(ChannelNameError::Reserved)
        );
        assert_eq!(validate_subscription("a#b"), Ok(()));
    }
}
