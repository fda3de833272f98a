//! Comparing secrets (API keys, tokens) in constant time.

use ring::hmac;
use subtle::ConstantTimeEq;

/// `hex(HMAC-SHA256(secret, message))`: how Pusher signs subscriptions, API requests and
/// webhook bodies.
pub fn hmac_sha256_hex(secret: &str, message: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, message).as_ref())
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_identical() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"ab"));
    }
}
