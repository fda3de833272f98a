//! The Engine.IO sessions of this process, found by the id their HTTP requests carry, and
//! session ids that cannot be taken over.
//!
//! A socket id is public: Echo sends it to Laravel as `X-Socket-ID`, and Laravel hands it back
//! in `socket`. Whoever knows a session id can poll, post or upgrade as that session. So for
//! Engine.IO 4 clients the two differ, as in the Socket.IO v3+ reference server: the id in the
//! CONNECT answer (`socket.id`) is the public one, and the transport session id the client
//! gets in the open packet is another random id, *sealed*: followed by an HMAC of it under a
//! key that never leaves the process, so an id this process never handed out is told apart
//! from one of a session that ended (another node's, behind a load balancer without sticky
//! sessions). Engine.IO 3 clients (socket.io-client 2.x) derive `socket.id` from the session
//! id, so for them a session is bound to the client address that opened it instead.

use super::engine_session::ToSession;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use ring::hmac;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// Length of the random ids Herald makes.
const SID_LEN: usize = 16;

/// A fresh random id: 16 URL-safe characters (96 random bits).
pub(super) fn new_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The Engine.IO protocol revision a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Eio {
    /// socket.io-client 2.x: the client pings, the server connects it to `/` unasked, and
    /// polling payloads are length-prefixed.
    V3,
    /// socket.io-client 3.x/4.x: the server pings, the client asks to connect, and polling
    /// payloads are separated by `\x1e`.
    V4,
}

/// What the HTTP requests of an open polling session need to reach it.
#[derive(Clone)]
pub(super) struct SessionHandle {
    /// The session's task.
    pub requests: mpsc::Sender<ToSession>,
    /// Its protocol revision: a request must speak the same.
    pub eio: Eio,
    /// Engine.IO 3: the address that opened it, the only one it answers.
    pub opened_by: Option<IpAddr>,
}

/// The polling sessions open on this process, by transport session id.
pub struct Sessions {
    table: Mutex<HashMap<Box<str>, SessionHandle>>,
    seal: SessionSeal,
}

impl Sessions {
    /// No session yet, and a fresh sealing key.
    pub fn new() -> anyhow::Result<Sessions> {
        Ok(Sessions {
            table: Mutex::default(),
            seal: SessionSeal::new()?,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, SessionHandle>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new transport session id: sealed for Engine.IO 4; for Engine.IO 3 it is the socket id.
    pub(super) fn new_engine_id(&self, eio: Eio) -> String {
        match eio {
            Eio::V3 => new_id(),
            Eio::V4 => self.seal.seal(&new_id()),
        }
    }

    /// Makes the session reachable by its id.
    pub(super) fn insert(&self, id: &str, handle: SessionHandle) {
        self.table().insert(Box::from(id), handle);
    }

    /// The session `id` names, if it is open.
    pub(super) fn get(&self, id: &str) -> Option<SessionHandle> {
        self.table().get(id).cloned()
    }

    /// Forgets a session that ended or left polling.
    pub(super) fn remove(&self, id: &str) {
        self.table().remove(id);
    }

    /// Whether an Engine.IO 4 session id could be one this process handed out (its seal opens).
    pub(super) fn sealed_here(&self, id: &str) -> bool {
        self.seal.open(id).is_some()
    }
}

/// The parts of an Engine.IO query Herald acts on: the first `sid=`, `EIO=` and `transport=`
/// segments, as engine.io reads them.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_as_engine_io_reads_them() {
        let q = EngineQuery::parse(Some("EIO=4&transport=polling&sid"));
        assert_eq!(
            q.sid, None,
            "a bare `sid` is no sid: the request opens a session"
        );
        let q = EngineQuery::parse(Some("EIO=4&transport=polling&sid=abc&sid=def"));
        assert_eq!(q.sid, Some("abc"));
        assert_eq!(q.eio, Some("4"));
        assert_eq!(q.transport, Some("polling"));
        assert_eq!(EngineQuery::parse(None), EngineQuery::default());
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

    proptest::proptest! {
        #[test]
        fn fuzz_session_ids_and_queries(sid in ".{0,80}", query in ".{0,80}") {
            let seal = SessionSeal::new().expect("seal");
            proptest::prop_assert!(seal.open(&sid).is_none() || sid.len() > SID_LEN);
            let _ = EngineQuery::parse(Some(&query));
        }
    }
}
