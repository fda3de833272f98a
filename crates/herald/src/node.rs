//! This Herald process's identity among the processes that share a store.

use rand::RngCore;
use std::fmt;
use std::sync::Arc;

/// A running Herald process: random at each start, so entries a crashed process left behind
/// never look like a new process's own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// A fresh id (64 random bits, hex).
    pub fn random() -> NodeId {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        NodeId(Arc::from(hex::encode(bytes)))
    }

    /// An id read back (from a lock file): 16 lowercase hex digits, or `None`.
    pub fn parse(text: &str) -> Option<NodeId> {
        (text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| NodeId(Arc::from(text)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_read_back() {
        let a = NodeId::random();
        assert_ne!(a, NodeId::random());
        assert_eq!(NodeId::parse(a.as_str()), Some(a));
        assert_eq!(NodeId::parse("0123456789abcdeF"), None);
        assert_eq!(NodeId::parse("0123"), None);
        assert_eq!(NodeId::parse("../../etc/passwd"), None);
    }
}
