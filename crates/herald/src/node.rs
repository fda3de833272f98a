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

    /// An id read back (from a lock file) or configured (`cluster.nodeId`): 1 to 64 letters,
    /// digits, `-` or `_` (it names Redis keys), or `None`.
    pub fn parse(text: &str) -> Option<NodeId> {
        let usable = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        usable.then(|| NodeId(Arc::from(text)))
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
        assert!(NodeId::parse("web-1").is_some());
        assert_eq!(NodeId::parse(""), None);
        assert_eq!(NodeId::parse(&"a".repeat(65)), None);
        assert_eq!(NodeId::parse("a b"), None);
        assert_eq!(NodeId::parse("../../etc/passwd"), None);
    }
}
