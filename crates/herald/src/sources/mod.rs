//! Broadcast sources: they turn outside input into Hub publications and never touch sockets.

mod dispatch;
mod laravel_message;
pub mod redis;

pub use dispatch::{deliver_from_cluster, dispatch, dispatch_client_event};
pub use laravel_message::{LaravelMessage, MessageError, parse_laravel_message};
