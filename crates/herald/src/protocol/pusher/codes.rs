//! The Pusher protocol's error and close codes (../shared/spec/pusher-channels.md §1.9), as
//! data: each refusal names one, and the connection sends `pusher:error` with it and, for
//! codes below 4300, closes with it.

/// A code and what it says to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Code {
    /// The number sent in `pusher:error` and as the WebSocket close code.
    pub(super) code: u16,
    /// Whether the connection is closed with it (4000–4299) or stays open (4300–4399).
    pub(super) closes: bool,
}

const fn closing(code: u16) -> Code {
    Code { code, closes: true }
}

/// 4001: no app has this key. Clients do not reconnect unchanged.
pub(super) const APP_NOT_FOUND: Code = closing(4001);
/// 4004: the server holds as many connections as it may (`limits.maxConnections`).
pub(super) const OVER_CONNECTION_QUOTA: Code = closing(4004);
/// 4007: a protocol version older than 7.
pub(super) const UNSUPPORTED_PROTOCOL: Code = closing(4007);
/// 4008: no `protocol` query parameter.
pub(super) const NO_PROTOCOL: Code = closing(4008);
/// 4009: the connection is not (or no longer) authorized: not signed in within the time
/// `enableUserAuthentication` allows, or terminated by the app.
pub(super) const UNAUTHORIZED: Code = closing(4009);
/// 4100: the client reads too slowly; it may come back after a pause.
pub(super) const TOO_SLOW: Code = closing(4100);
/// 4200: the server is shutting down; reconnect at once (to another node).
pub(super) const RECONNECT: Code = closing(4200);
/// 4201: no answer to `pusher:ping` in time.
pub(super) const PONG_TIMEOUT: Code = closing(4201);
/// 4301: a client event was refused (rate limit, not subscribed, public channel…).
pub(super) const CLIENT_EVENT_REJECTED: Code = Code {
    code: 4301,
    closes: false,
};
/// 4302: a watchlist longer than 100 users; the first 100 are watched.
pub(super) const WATCHLIST_LIMIT: Code = Code {
    code: 4302,
    closes: false,
};
