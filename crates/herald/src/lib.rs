//! Herald: a real-time broadcast server for Laravel, a drop-in for laravel-echo-server.
//!
//! Layers, each depending only on those below it:
//! `cli` → `server` → (`api`, `protocol`, `sources`) → `hub`; `config` and `console` serve all.

pub mod api;
pub mod auth;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod console;
pub mod debug_console;
pub mod hub;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod prefix;
pub mod presence;
pub mod protocol;
pub mod redis_client;
pub mod secret;
pub mod server;
pub mod sources;
pub mod subscription_counts;
#[cfg(test)]
mod test_support;
pub mod webhooks;
pub mod workers;
