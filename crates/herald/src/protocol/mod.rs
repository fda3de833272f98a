//! Client protocols: each turns frames into Hub calls and Hub deliveries into frames. The rules
//! every protocol shares live here, outside any one protocol's module.

pub(crate) mod client_events;
pub mod engineio;
pub mod pusher;
pub(crate) mod rate;
pub mod socketio;
pub(crate) mod subscriptions;
