//! Client protocols: each turns frames into Hub calls and Hub deliveries into frames.

pub mod socketio;
