//! The rules for client events — Echo's whispers over Socket.IO, `client-…` events over the
//! Pusher protocol — the same whatever protocol the sender speaks. Each adapter renders a
//! refusal in its own wire format (`whisper_error`, `pusher:error` 4301).

use crate::config::{AppLimits, WhisperOptions};
use crate::hub::ChannelKind;
use crate::protocol::rate::RateLimiter;
use std::fmt;

/// Why a client event was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The event name does not start with `client-`.
    NotClientEvent,
    /// The event name is longer than the limit (bytes).
    NameTooLong(usize),
    /// Public channels carry no client events (anyone could send them).
    PublicChannel,
    /// Encrypted channels carry none either: their payloads are encrypted by the app's server.
    EncryptedChannel,
    /// The sender has not joined (been authorized to) the channel.
    NotSubscribed,
    /// `data` is over `whisperMaxBytes`.
    TooLarge(usize),
    /// Over `whisperRateLimit` per second.
    RateLimited(u32),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotClientEvent => f.write_str("client event names must start with client-"),
            Refusal::NameTooLong(limit) => {
                write!(f, "the event name is longer than {limit} bytes")
            }
            Refusal::PublicChannel => {
                f.write_str("whispers are only allowed on private and presence channels")
            }
            Refusal::EncryptedChannel => f.write_str(
                "client events are not allowed on encrypted channels (private-encrypted-…)",
            ),
            Refusal::NotSubscribed => {
                f.write_str("subscribe to the channel (and be authorized) before whispering")
            }
            Refusal::TooLarge(limit) => write!(f, "data is larger than {limit} bytes"),
            Refusal::RateLimited(rate) => {
                write!(f, "rate limit: at most {rate} whispers per second")
            }
        }
    }
}

/// The bounds a client event must keep: the same rules, with limits that depend on where the
/// sender connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    /// Largest `data`, in bytes of JSON.
    pub(crate) max_bytes: usize,
    /// Longest event name, in bytes.
    pub(crate) max_name_bytes: usize,
    /// Events one connection may send per second.
    pub(crate) rate_per_second: u32,
}

impl Rules {
    /// laravel-echo-server's whisper limits (`whisperMaxBytes`, `whisperRateLimit`).
    pub(crate) fn whispers(options: &WhisperOptions) -> Rules {
        Rules {
            max_bytes: options.max_bytes,
            max_name_bytes: crate::config::DEFAULT_EVENT_NAME_LENGTH,
            rate_per_second: options.rate_per_second,
        }
    }

    /// A Pusher app's limits (`maxEventPayloadInKb`, `maxEventNameLength`,
    /// `maxClientEventsPerSecond`), each falling back to the whisper limit.
    pub(crate) fn for_app(limits: &AppLimits, whispers: &WhisperOptions) -> Rules {
        Rules {
            max_bytes: limits.max_event_payload_bytes.unwrap_or(whispers.max_bytes),
            max_name_bytes: limits.event_name_length(),
            rate_per_second: limits
                .max_client_events_per_second
                .unwrap_or(whispers.rate_per_second),
        }
    }
}

/// One client event to check.
pub(crate) struct ClientEvent<'a> {
    /// Its name (`client-typing`).
    pub(crate) event: &'a str,
    /// The channel it is for.
    pub(crate) channel: &'a str,
    /// Whether the sender is subscribed to `channel`.
    pub(crate) sender_subscribed: bool,
    /// Bytes of its `data` as JSON.
    pub(crate) data_bytes: usize,
}

/// Checks `event` against the rules, taking a token from the sender's `limiter` only when
/// everything else passes.
pub(crate) fn check(
    event: &ClientEvent<'_>,
    rules: &Rules,
    limiter: &mut RateLimiter,
) -> Result<(), Refusal> {
    if !event.event.starts_with("client-") {
        return Err(Refusal::NotClientEvent);
    }
    if event.event.len() > rules.max_name_bytes {
        return Err(Refusal::NameTooLong(rules.max_name_bytes));
    }
    match ChannelKind::of(event.channel) {
        ChannelKind::Public => return Err(Refusal::PublicChannel),
        ChannelKind::Encrypted => return Err(Refusal::EncryptedChannel),
        ChannelKind::Private | ChannelKind::Presence => {}
    }
    if !event.sender_subscribed {
        return Err(Refusal::NotSubscribed);
    }
    if event.data_bytes > rules.max_bytes {
        return Err(Refusal::TooLarge(rules.max_bytes));
    }
    if !limiter.try_acquire() {
        return Err(Refusal::RateLimited(rules.rate_per_second));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(
        name: &'a str,
        channel: &'a str,
        subscribed: bool,
        bytes: usize,
    ) -> ClientEvent<'a> {
        ClientEvent {
            event: name,
            channel,
            sender_subscribed: subscribed,
            data_bytes: bytes,
        }
    }

    #[test]
    fn each_rule_in_order() {
        let options = Rules {
            max_bytes: 10,
            max_name_bytes: 12,
            rate_per_second: 2,
        };
        let mut limiter = RateLimiter::per_second(2);
        let mut check = |e: ClientEvent<'_>| check(&e, &options, &mut limiter);
        assert_eq!(
            check(event("typing", "private-a", true, 1)),
            Err(Refusal::NotClientEvent)
        );
        assert_eq!(
            check(event("client-typing", "private-a", true, 1)),
            Err(Refusal::NameTooLong(12))
        );
        assert_eq!(
            check(event("client-t", "a", true, 1)),
            Err(Refusal::PublicChannel)
        );
        assert_eq!(
            check(event("client-t", "private-encrypted-a", true, 1)),
            Err(Refusal::EncryptedChannel)
        );
        assert_eq!(
            check(event("client-t", "private-a", false, 1)),
            Err(Refusal::NotSubscribed)
        );
        assert_eq!(
            check(event("client-t", "presence-a", true, 11)),
            Err(Refusal::TooLarge(10))
        );
        assert_eq!(check(event("client-t", "presence-a", true, 10)), Ok(()));
        assert_eq!(check(event("client-t", "private-a", true, 1)), Ok(()));
        assert_eq!(
            check(event("client-t", "private-a", true, 1)),
            Err(Refusal::RateLimited(2))
        );
    }
}

#[cfg(test)]
mod rules_tests {
    use super::*;

    #[test]
    fn an_apps_limits_override_the_whisper_limits_one_by_one() {
        let whispers = WhisperOptions {
            max_bytes: 10_000,
            rate_per_second: 10,
        };
        let limits = AppLimits {
            max_client_events_per_second: Some(3),
            max_event_name_length: Some(50),
            ..AppLimits::default()
        };
        assert_eq!(
            Rules::for_app(&limits, &whispers),
            Rules {
                max_bytes: 10_000,
                max_name_bytes: 50,
                rate_per_second: 3
            }
        );
        assert_eq!(
            Rules::for_app(&AppLimits::default(), &whispers),
            Rules::whispers(&whispers)
        );
    }
}
