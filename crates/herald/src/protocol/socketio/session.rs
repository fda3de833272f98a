//! Engine.IO session ids that cannot be taken over.
//!
//! socketioxide uses the Engine.IO session id as the Socket.IO socket id, and that id is
//! public: Echo sends it to Laravel as `X-Socket-ID`, and Laravel hands it back in `socket`.
//! Whoever knows a session id can poll, post or upgrade as that session. So Herald splits the
//! two for Engine.IO 4 clients, as the Socket.IO v3+ reference server does: the id in the
//! CONNECT answer (`socket.id`) stays the public one, and the transport session id the client
//! gets in the open packet is *sealed*: the public id followed by an HMAC of it under a key
//! that never leaves the process. Requests must carry the sealed id; a bare public id is
//! refused. Engine.IO 3 clients (socket.io-client 2.x) derive `socket.id` from the session id,
//! so for them a session is bound to the client address that opened it instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

/// Length of an Engine.IO session id as socketioxide makes them.
const SID_LEN: usize = 16;

/// The parts of an Engine.IO query Herald acts on, found exactly as engineioxide finds them
/// (the first `sid=`, `EIO=` and `transport=` segments), so both agree on whether a request
/// opens a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct EngineQuery<'a> {
    /// `EIO=` (protocol revision).
    pub eio: Option<&'a str>,
    /// `transport=`.
    pub transport: Option<&'a str>,
    /// `sid=`: present on every request of an open session; absent on the one that opens it.
    pub sid: Option<&'a str>,
}

impl<'a> EngineQuery<'a> {
    /// Reads a request's query string.
    pub(super) fn parse(query: Option<&'a str>) -> EngineQuery<'a> {
        let query = query.unwrap_or("");
        let value_of = |key: &str| {
            query
                .split('&')
                .find(|segment| segment.starts_with(key))
                .and_then(|segment| segment.split('=').nth(1))
        };
        EngineQuery {
            eio: value_of("EIO="),
            transport: value_of("transport="),
            sid: query.split('&').find_map(|s| s.strip_prefix("sid=")),
        }
    }
}

/// `query` with the value of its first `sid=` segment replaced.
pub(super) fn with_sid(query: &str, sid: &str) -> String {
    let mut replaced = false;
    query
        .split('&')
        .map(|segment| match segment.strip_prefix("sid=") {
            Some(_) if !replaced => {
                replaced = true;
                format!("sid={sid}")
            }
            _ => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Seals and opens Engine.IO 4 session ids with a per-process key.
pub(super) struct SessionSeal {
    key: hmac::Key,
}

impl SessionSeal {
    /// A seal with a fresh random key: sessions do not outlive the process anyway.
    pub(super) fn new() -> anyhow::Result<SessionSeal> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("the system's random number generator failed"))?;
        Ok(SessionSeal { key })
    }

    /// The sealed id a client uses as its transport session id.
    pub(super) fn seal(&self, public_id: &str) -> String {
        let tag = hmac::sign(&self.key, public_id.as_bytes());
        format!("{public_id}{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The public id inside a sealed id, if the seal is genuine (compared in constant time).
    pub(super) fn open<'a>(&self, sealed: &'a str) -> Option<&'a str> {
        let public_id = sealed.get(..SID_LEN)?;
        let tag = URL_SAFE_NO_PAD.decode(sealed.get(SID_LEN..)?).ok()?;
        hmac::verify(&self.key, public_id.as_bytes(), &tag)
            .ok()
            .map(|()| public_id)
    }
}

/// Replaces the session id in an Engine.IO 4 open packet (`0{"sid":…}`) by its sealed form.
/// Returns `None` when the body is not such a packet.
pub(super) fn seal_open_packet(body: &[u8], seal: &SessionSeal) -> Option<Vec<u8>> {
    let json = body.strip_prefix(b"0")?;
    let mut open: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(json).ok()?;
    let sid = open.get("sid")?.as_str()?;
    let sealed = seal.seal(sid);
    open.insert("sid".to_owned(), serde_json::Value::String(sealed));
    let mut packet = b"0".to_vec();
    serde_json::to_writer(&mut packet, &open).ok()?;
    Some(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_as_engineioxide_reads_them() {
        let q = EngineQuery::parse(Some("EIO=4&transport=polling&sid"));
        assert_eq!(
            q.sid, None,
            "a bare `sid` is no sid: engineioxide opens a session"
        );
        let q = EngineQuery::parse(Some("EIO=4&transport=polling&sid=abc&sid=def"));
        assert_eq!(q.sid, Some("abc"));
        assert_eq!(q.eio, Some("4"));
        assert_eq!(q.transport, Some("polling"));
        assert_eq!(EngineQuery::parse(None), EngineQuery::default());
        assert_eq!(
            with_sid("EIO=4&sid=abc&transport=polling&sid=x", "NEW"),
            "EIO=4&sid=NEW&transport=polling&sid=x"
        );
    }

    #[test]
    fn a_sealed_id_opens_only_with_its_own_key() {
        let seal = SessionSeal::new().expect("seal");
        let sealed = seal.seal("AAAAAAAAAAAAAAHs");
        assert_eq!(seal.open(&sealed), Some("AAAAAAAAAAAAAAHs"));
        assert!(
            sealed
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(seal.open("AAAAAAAAAAAAAAHs"), None);
        let other = SessionSeal::new().expect("seal");
        assert_eq!(other.open(&sealed), None);
        let mut forged = sealed.clone();
        forged.replace_range(0..1, "B");
        assert_eq!(seal.open(&forged), None);
    }

    #[test]
    fn open_packets_get_the_sealed_id() {
        let seal = SessionSeal::new().expect("seal");
        let body = br#"0{"sid":"AAAAAAAAAAAAAAHs","upgrades":["websocket"],"pingInterval":25000}"#;
        let sealed = seal_open_packet(body, &seal).expect("sealed");
        let text = String::from_utf8(sealed).expect("utf8");
        assert!(text.starts_with(r#"0{"sid":"AAAAAAAAAAAAAAHs"#));
        assert!(text.ends_with(r#","upgrades":["websocket"],"pingInterval":25000}"#));
        let sid = text.split('"').nth(3).expect("sid");
        assert_eq!(seal.open(sid), Some("AAAAAAAAAAAAAAHs"));
        assert!(seal_open_packet(b"97:0{}", &seal).is_none());
    }

    proptest::proptest! {
        #[test]
        fn fuzz_session_ids_and_queries(sid in ".{0,80}", query in ".{0,80}") {
            let seal = SessionSeal::new().expect("seal");
            proptest::prop_assert!(seal.open(&sid).is_none() || sid.len() > SID_LEN);
            let q = EngineQuery::parse(Some(&query));
            if let Some(sid) = q.sid {
                let _ = with_sid(&query, sid);
            }
            let _ = seal_open_packet(sid.as_bytes(), &seal);
        }
    }
}
