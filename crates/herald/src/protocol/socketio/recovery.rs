//! Connection state recovery (socket.io-client ≥ 4.6): a dropped Engine.IO 4 session is kept
//! for `socketio.connectionStateRecovery.maxDisconnectionDuration` under a private session id
//! (`pid`, told only to its client in the CONNECT answer). Its socket stays in the Hub meanwhile,
//! so its bounded queue collects what it misses; a client that comes back with the `pid` and
//! the offset of the last event it got takes the same socket back — same id, same channels —
//! and is sent, in order and once, what it had not received. A stranger naming an unknown `pid`
//! gets a fresh session, as does a client whose queue overflowed or whose last event is older
//! than what was kept.
//!
//! Offsets: every publication sent to a recovering-capable socket carries one as its last
//! argument (`42["event","channel",data,"<offset>"]`), numbered once per publication, in the
//! order this process encodes them. A session remembers the offsets of the last
//! [`WRITTEN_KEPT`] publications it wrote, because the ones written just before a drop may
//! never have arrived.

use super::connection::Connection;
use super::core_socket::CoreSocket;
use crate::hub::FrameText;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Publications a session remembers having written (for the ones lost in a drop).
pub(super) const WRITTEN_KEPT: usize = 16;

/// The next publication's offset. Once per publication (the first recipient's encoding), never
/// per recipient.
static NEXT_OFFSET: AtomicU64 = AtomicU64::new(1);

/// A fresh offset for a publication.
pub(super) fn next_offset() -> u64 {
    NEXT_OFFSET.fetch_add(1, Ordering::Relaxed)
}

/// The offset a publication packet carries, read back from its text (`…,"<offset>"]`).
pub(super) fn offset_of(packet: &str) -> Option<u64> {
    // The digits from the end, by hand: a pattern search is set up afresh for each packet, and
    // this runs for every publication written.
    let body = packet.strip_suffix("\"]")?.as_bytes();
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let start = body.len() - digits;
    if digits == 0 || !body[..start].ends_with(b",\"") {
        return None;
    }
    body[start..].iter().try_fold(0u64, |offset, digit| {
        offset.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The publications a session wrote last, by offset, and the newest it had to forget.
#[derive(Default)]
pub(super) struct Written {
    kept: VecDeque<(u64, FrameText)>,
    forgotten: u64,
}

impl Written {
    /// Remembers `packet` if it is a publication (carries an offset).
    pub(super) fn record(&mut self, packet: &FrameText) {
        let Some(offset) = offset_of(packet) else {
            return;
        };
        if self.kept.len() == WRITTEN_KEPT
            && let Some((oldest, _)) = self.kept.pop_front()
        {
            self.forgotten = oldest;
        }
        self.kept.push_back((offset, packet.clone()));
    }

    /// What a client that last got `offset` (none: no publication yet) missed of what was
    /// written, oldest first; `None` if some of it was already forgotten.
    pub(super) fn after(&self, offset: Option<u64>) -> Option<Vec<FrameText>> {
        let last = offset.unwrap_or(0);
        if last < self.forgotten {
            return None;
        }
        Some(
            self.kept
                .iter()
                .filter(|(o, _)| *o > last)
                .map(|(_, packet)| packet.clone())
                .collect(),
        )
    }
}

/// A dropped session, waiting for its client.
pub(super) struct Parked {
    /// The socket, still in the Hub: its queue holds what arrived since the drop.
    pub socket: Arc<CoreSocket>,
    /// Echo's side: its channels and presence.
    pub connection: Arc<Connection<Arc<CoreSocket>>>,
    /// What was written before the drop.
    pub written: Written,
}

/// The dropped sessions of this process, by `pid`.
#[derive(Default)]
pub struct Recovery {
    parked: Mutex<HashMap<Box<str>, Parked>>,
}

impl Recovery {
    fn parked(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `session` for `window`; after it, unless taken back, it is closed for good. With
    /// `most` sessions kept already, it is handed back (to be closed now): kept sessions hold
    /// memory, and a flood of connections dropped on purpose must not grow it without bound.
    pub(super) fn park(
        self: &Arc<Self>,
        pid: &str,
        session: Parked,
        window: Duration,
        most: usize,
    ) -> Result<(), Parked> {
        {
            let mut parked = self.parked();
            if parked.len() >= most {
                return Err(session);
            }
            session.connection.detach();
            parked.insert(Box::from(pid), session);
        }
        let recovery = Arc::downgrade(self);
        let pid: Box<str> = Box::from(pid);
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            if let Some(recovery) = recovery.upgrade()
                && let Some(expired) = recovery.take(&pid)
            {
                expired.close("transport close");
            }
        });
        Ok(())
    }

    /// The session parked under `pid`, taken out.
    pub(super) fn take(&self, pid: &str) -> Option<Parked> {
        self.parked().remove(pid)
    }

    /// Closes every parked session (the server stops).
    pub fn close_all(&self) {
        let parked: Vec<Parked> = self.parked().drain().map(|(_, p)| p).collect();
        for session in parked {
            session.close("server shutting down");
        }
    }
}

impl Parked {
    /// Ends the session: out of the Hub, presence and the count.
    pub(super) fn close(self, reason: &str) {
        self.socket.outbox.close();
        self.connection.close(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(offset: u64) -> FrameText {
        FrameText::from(format!(r#"42["E","c",{{}},"{offset}"]"#))
    }

    #[test]
    fn offsets_read_back_and_unicasts_carry_none() {
        assert_eq!(offset_of(r#"42["E","c",{"a":1},"17"]"#), Some(17));
        assert_eq!(offset_of(r#"42["subscription_error","c",403,{}]"#), None);
        assert_eq!(offset_of("40"), None);
        assert_eq!(offset_of(r#"42["E","c","x17"]"#), None);
        assert_eq!(offset_of(r#"42["E","c","17""]"#), None);
        assert_eq!(offset_of(r#"42["E","c",{},"0017"]"#), Some(17));
    }

    #[test]
    fn what_was_missed_is_what_came_after_the_last_offset() {
        let mut written = Written::default();
        for offset in [3, 5, 9] {
            written.record(&packet(offset));
        }
        written.record(&FrameText::from(r#"42["presence:subscribed","c",[]]"#));
        let after = |o| {
            written
                .after(o)
                .map(|v| v.iter().filter_map(|p| offset_of(p)).collect::<Vec<_>>())
        };
        assert_eq!(after(Some(5)), Some(vec![9]));
        assert_eq!(after(Some(9)), Some(vec![]));
        assert_eq!(after(None), Some(vec![3, 5, 9]));
    }

    #[test]
    fn a_client_behind_what_was_kept_cannot_recover() {
        let mut written = Written::default();
        for offset in 1..=(WRITTEN_KEPT as u64 + 10) {
            written.record(&packet(offset));
        }
        assert!(written.after(Some(5)).is_none());
        assert!(written.after(None).is_none());
        assert_eq!(
            written
                .after(Some(WRITTEN_KEPT as u64 + 6))
                .map(|v| v.len()),
            Some(4)
        );
    }
}
