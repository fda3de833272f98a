//! Pusher apps: the `clients` entries with a `secret`, found by the key browsers connect with.

use crate::config::{ApiClient, AppLimits, WhisperOptions};
use crate::hub::Space;
use crate::protocol::client_events::Rules;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One Pusher app.
#[derive(Debug)]
pub struct PusherApp {
    /// `appId`: the `{app_id}` of the HTTP API.
    pub id: String,
    /// The public key of `/app/{key}`.
    pub key: String,
    /// Signs subscriptions and API requests.
    pub secret: String,
    /// Whether its connections may send client events (`enableClientMessages`).
    pub client_messages: bool,
    /// How long its connections have to sign in, if they must (`enableUserAuthentication`,
    /// `userAuthenticationTimeout`).
    pub signin_within: Option<std::time::Duration>,
    /// Where its channels live: the shared space, or its own (`isolated`).
    pub space: Space,
    /// Its bounds (`maxConnections`, `maxPresenceMembersPerChannel`, …).
    pub limits: AppLimits,
    /// What its client events must keep to.
    pub(crate) client_events: Rules,
    /// Its connections open now on this node.
    pub connections: AtomicUsize,
}

impl PusherApp {
    /// Takes a connection place, unless the app holds `maxConnections` already.
    pub fn take_connection(&self) -> bool {
        let limit = self.limits.max_connections.unwrap_or(usize::MAX);
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < limit).then_some(open + 1)
            })
            .is_ok()
    }

    /// Gives a connection place back.
    pub fn release_connection(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The Pusher apps by key.
#[derive(Debug, Default, Clone)]
pub struct PusherApps {
    by_key: HashMap<String, Arc<PusherApp>>,
}

impl PusherApps {
    /// The apps among `clients` (those with a secret); `whispers` are the client event limits
    /// of apps that set none of their own.
    pub fn from_clients(clients: &[ApiClient], whispers: &WhisperOptions) -> PusherApps {
        let by_key = clients
            .iter()
            .filter_map(|client| {
                let secret = client.secret.clone()?;
                let app = PusherApp {
                    id: client.app_id.clone(),
                    key: client.key.clone(),
                    secret,
                    client_messages: client.client_messages,
                    signin_within: client.user_authentication.then_some(client.signin_timeout),
                    space: client.space(),
                    limits: client.limits,
                    client_events: Rules::for_app(&client.limits, whispers),
                    connections: AtomicUsize::new(0),
                };
                Some((app.key.clone(), Arc::new(app)))
            })
            .collect();
        PusherApps { by_key }
    }

    /// The app whose key is `key`. Keys are public (they ship to browsers), so a plain lookup
    /// is fine here; secrets are compared in constant time where they are checked.
    pub fn by_key(&self, key: &str) -> Option<&Arc<PusherApp>> {
        self.by_key.get(key)
    }
}
