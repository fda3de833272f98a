//! Several Herald nodes as one (`"cluster": {"driver": "redis"}`): what one node publishes —
//! HTTP API events, client events and whispers, presence changes, terminations, counts and
//! watchlist changes — reaches the clients of every node over a Redis pub/sub bus. Events from Laravel's Redis broadcaster are
//! not relayed (every node PSUBSCRIBEs to them already), so each subscriber gets each event
//! once. Presence lives in the shared Redis store (`presence/`).

mod bus;
mod occupancy;
mod watchlists;
mod wire;

pub use bus::ClusterBus;
pub use occupancy::Occupancy;
pub use watchlists::ClusterWatchlists;
