//! Channel authorization: asking the Laravel app whether a socket may join a private or
//! presence channel, and judging the answer so the browser learns why when it may not.

mod gate;
mod host;
mod http;
mod judge;

pub use gate::{AuthBounds, AuthBusy, AuthGate, AuthPermit, ConnectionSlots};
pub use host::{AuthTarget, select_auth_host};
pub use http::{AuthAnswer, AuthRequest, HttpAuthorizer};
pub use judge::{Grant, Refusal, RefusalKind, judge};
