//! The Socket.IO wire, for Socket.IO on Herald's own connection core (issue 14): Engine.IO
//! packets (`packet.rs`), long-polling payloads in Engine.IO 3's and 4's framings
//! (`payload.rs`) and Socket.IO packets (`socket_packet.rs`). Text only, borrowed, and every
//! reader refuses bad input with an error (property-tested), never a panic. The sessions that
//! use them are `protocol::socketio`'s.

mod packet;
mod payload;
mod socket_packet;

pub use packet::{Packet, PacketError};
pub use payload::{Framing, PayloadError, decode, encode, encode_texts, utf16_len};
pub use socket_packet::{Event, Kind, SocketPacket, SocketPacketError};
