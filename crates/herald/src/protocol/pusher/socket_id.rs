//! Pusher socket ids: `<digits>.<digits>`, the only shape the Pusher server SDKs accept
//! (pusher-php-server checks `\A\d+\.\d+\z` before signing a subscription, and Laravel's
//! `toOthers()` passes it back as `socket_id`).

use rand::Rng;

/// A new random socket id, e.g. `1830213651.4001527781`. Two 32-bit halves: a collision
/// among a million live connections has a chance of about 1 in 10^7, and the Hub refuses a
/// second subscriber with an id already present.
pub(super) fn new_socket_id() -> String {
    let mut rng = rand::rng();
    format!("{}.{}", rng.random::<u32>(), rng.random::<u32>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_shape_the_sdks_require() {
        for _ in 0..1000 {
            let id = new_socket_id();
            let (a, b) = id.split_once('.').expect("a dot");
            assert!(
                !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()),
                "{id}"
            );
            assert!(
                !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()),
                "{id}"
            );
        }
    }
}
