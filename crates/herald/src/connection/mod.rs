//! Herald's own connection core, shared by the protocols that run on it (the Pusher protocol
//! first): the WebSocket upgrade, and a per-connection queue bounded in frames and bytes whose
//! frames are shared by every recipient of a publication.

mod outbox;
mod upgrade;

pub use outbox::{MAX_QUEUED_FRAMES, Next, Outbox, Refused};
pub use upgrade::{Accepted, WebSocket, upgrade};
