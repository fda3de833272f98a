//! Client protocols: each turns frames into Hub calls and Hub deliveries into frames.

pub mod pusher;
pub(crate) mod rate;
pub mod socketio;
