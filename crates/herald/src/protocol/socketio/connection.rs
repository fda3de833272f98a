//! One Socket.IO connection: Echo's `subscribe` / `unsubscribe` / `client event`, channel
//! authorization, presence, and leaving everything on disconnect. The socket it emits to is
//! a small trait ([`EchoSocket`]; the core's is [`super::core_socket`]).

use super::SocketIoContext;
use super::core_socket::{event_name, socketio_args};
use super::events::{ChannelRequest, WhisperRequest, parse_channel_request, parse_whisper};
use super::session::Eio;
use crate::auth::{AuthRequest, ConnectionSlots, Refusal};
use crate::console;
use crate::hub::{
    Activity, ChannelChange, ChannelKind, Member, Publication, SocketId, Subscriber,
    is_cache_channel, validate_subscription,
};
use crate::metrics::{SOCKETIO, metrics};
use crate::presence::{JoinError, MemberLimits};
use crate::protocol::client_events::{self, ClientEvent};
use crate::protocol::rate::RateLimiter;
use crate::protocol::subscriptions::Subscriptions;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex, MutexGuard};

/// What Echo's handlers need of a socket: send it an event.
pub(super) trait EchoSocket: Clone + Send + Sync + 'static {
    /// Sends `event` with `args`, a tuple whose elements are the event's arguments. Never
    /// waits; a socket that is gone or too slow drops it.
    fn emit<T: Serialize + ?Sized>(&self, event: &str, args: &T);
}

/// What a connection keeps of the request that opened it, for its auth requests.
pub(super) struct Handshake {
    /// `Cookie`, passed on to the auth endpoint.
    pub cookie: Option<String>,
    /// `Referer`: which auth host to ask, and passed on.
    pub referer: Option<String>,
    /// `X-Forwarded-For` for auth requests: the client's real address.
    pub forwarded_for: Option<String>,
    /// `User-Agent`, shown on the debug console (kept only until CONNECT).
    pub user_agent: Option<String>,
    /// `websocket` or `polling`: how the session opened, shown on the debug console.
    pub transport: &'static str,
}

impl Handshake {
    /// Read from the opening request's headers and extensions (the peer address).
    pub(super) fn of(
        ctx: &SocketIoContext,
        extensions: &http::Extensions,
        headers: &http::HeaderMap,
    ) -> Handshake {
        let header = |name: http::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Handshake {
            cookie: header(http::header::COOKIE),
            referer: header(http::header::REFERER),
            forwarded_for: ctx
                .trusted_proxies
                .client_of(extensions, headers)
                .map(|client| client.forwarded_for),
            // Only for the debug console: not copied while none is open.
            user_agent: ctx
                .hub
                .activity()
                .is_watched()
                .then(|| header(http::header::USER_AGENT))
                .flatten(),
            transport: "websocket",
        }
    }
}

/// What one connection holds while it is open.
pub(super) struct Connection<S> {
    id: SocketId,
    ctx: Arc<SocketIoContext>,
    subscriber: Arc<dyn Subscriber>,
    /// `None` once the socket is gone, so work that finishes after the disconnect (an auth
    /// answer, a presence write) cannot leave anything behind.
    state: Mutex<Option<Subscriptions>>,
    handshake_cookie: Option<String>,
    referer: Option<String>,
    /// `X-Forwarded-For` for auth requests: the client's real address.
    forwarded_for: Option<String>,
    whispers: Mutex<RateLimiter>,
    /// This connection's share of authorization requests in flight, made at its first
    /// authorization (most connections only join public channels).
    auth_slots: std::sync::OnceLock<ConnectionSlots>,
    /// Whether it counts as connected (not while its client is away and its session kept).
    counted: std::sync::atomic::AtomicBool,
    socket: std::marker::PhantomData<fn(S)>,
}

impl<S> Drop for Connection<S> {
    /// Whatever ends the connection, its channels and count are released.
    fn drop(&mut self) {
        self.close("transport close");
    }
}

impl<S> Connection<S> {
    /// A devMode line about this connection: `<id> <message>`.
    fn log(&self, message: std::fmt::Arguments<'_>) {
        console::dev_for(self.id.as_str(), &format!("{} {message}", self.id));
    }

    fn state(&self) -> MutexGuard<'_, Option<Subscriptions>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Releases everything once: the channels, presence, and the connection's count. Later
    /// calls do nothing.
    pub(super) fn close(&self, reason: &str) {
        let Some(mut state) = self.state().take() else {
            return;
        };
        for channel in state.take_joined() {
            self.left(channel, reason);
        }
        self.uncount();
        self.ctx.hub.activity().record(|| Activity::Disconnected {
            socket: self.id.as_str().to_owned(),
            reason: reason.to_owned(),
        });
    }

    /// The client is gone, its session kept for it to come back: it no longer counts as
    /// connected (`/status`, `herald_connected`, `limits.maxConnections`).
    pub(super) fn detach(&self) {
        self.uncount();
        self.ctx.hub.activity().record(|| Activity::Disconnected {
            socket: self.id.as_str().to_owned(),
            reason: "client lost; its session is kept for it to come back".to_owned(),
        });
    }

    /// The client came back to its kept session: it counts again, taking over the place its
    /// new handshake reserved.
    pub(super) fn reattach(&self) {
        if !self
            .counted
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.ctx.hub.connection_opened();
            metrics().connected.get_or_create(&SOCKETIO).inc();
            self.ctx.hub.activity().record(|| Activity::Connected {
                socket: self.id.as_str().to_owned(),
                protocol: "socket.io",
                detail: "Engine.IO 4, session recovered".to_owned(),
                address: self.forwarded_for.clone().unwrap_or_default(),
                user_agent: String::new(),
            });
        }
    }

    fn uncount(&self) {
        if self
            .counted
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.ctx.hub.connection_closed();
            metrics().connected.get_or_create(&SOCKETIO).dec();
            metrics().new_disconnections.get_or_create(&SOCKETIO).inc();
        }
    }

    /// A client lost with its session kept for it to come back: its presence channels are
    /// left now (the others see the member go, as on any disconnect: a member that may never
    /// come back is not shown for minutes); its other channels are kept.
    pub(super) fn leave_presence_channels(&self, reason: &str) {
        let left = {
            let mut state = self.state();
            let Some(state) = state.as_mut() else { return };
            state.take_joined_if(|channel| ChannelKind::of(channel) == ChannelKind::Presence)
        };
        for channel in left {
            self.left(channel, reason);
        }
    }

    /// After the channel is gone from `state`: out of the Hub, then out of presence.
    fn left(&self, channel: String, reason: &str) {
        self.ctx.hub.unsubscribe(&channel, &self.id);
        self.log(format_args!("left channel: {channel} ({reason})"));
        if ChannelKind::of(&channel) == ChannelKind::Presence {
            // A connection dropped outside the runtime (never, in Herald) cannot reach the
            // store; its entry is pruned as a member not connected here.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(leave_presence(self.ctx.clone(), channel, self.id.clone()));
            }
        }
    }
}

impl<S: EchoSocket> Connection<S> {
    /// Counts a new connection, known to the Hub as `subscriber`.
    pub(super) fn open(
        ctx: Arc<SocketIoContext>,
        subscriber: Arc<dyn Subscriber>,
        handshake: Handshake,
        eio: Eio,
    ) -> Arc<Connection<S>> {
        ctx.hub.activity().record(|| Activity::Connected {
            socket: subscriber.socket_id().as_str().to_owned(),
            protocol: "socket.io",
            detail: format!(
                "Engine.IO {}, {}",
                match eio {
                    Eio::V3 => 3,
                    Eio::V4 => 4,
                },
                handshake.transport
            ),
            address: handshake.forwarded_for.clone().unwrap_or_default(),
            user_agent: crate::hub::activity::shown_user_agent(
                handshake.user_agent.as_deref().unwrap_or_default(),
            ),
        });
        ctx.hub.connection_opened();
        metrics().connected.get_or_create(&SOCKETIO).inc();
        metrics().new_connections.get_or_create(&SOCKETIO).inc();
        Arc::new(Connection {
            id: subscriber.socket_id().clone(),
            subscriber,
            handshake_cookie: handshake.cookie,
            referer: handshake.referer,
            forwarded_for: handshake.forwarded_for,
            whispers: Mutex::new(RateLimiter::per_second(ctx.whispers.rate_per_second)),
            auth_slots: std::sync::OnceLock::new(),
            ctx,
            state: Mutex::new(Some(Subscriptions::default())),
            counted: std::sync::atomic::AtomicBool::new(true),
            socket: std::marker::PhantomData,
        })
    }

    /// Echo's `unsubscribe`.
    pub(super) fn unsubscribe(&self, payload: Value) {
        match parse_channel_request(payload) {
            Ok(request) => self.leave(&request.channel, "unsubscribed"),
            Err(e) => self.log(format_args!("sent an unusable unsubscribe: {e}")),
        }
    }

    /// Echo's `subscribe`.
    pub(super) fn subscribe(self: &Arc<Self>, socket: &S, payload: Value) {
        let request = match parse_channel_request(payload) {
            Ok(request) => request,
            Err(e) => {
                self.log(format_args!("sent an unusable subscribe: {e}"));
                return;
            }
        };
        if let Err(e) = validate_subscription(&request.channel) {
            let reason = format!("invalid channel name: {e}");
            self.log(format_args!(
                "could not join {:?}: {reason}",
                request.channel
            ));
            refuse(socket, &request.channel, 400, &reason);
            return;
        }
        if let Some(reason) = self.over_channel_limit(&request.channel) {
            self.log(format_args!("could not join {}: {reason}", request.channel));
            refuse(socket, &request.channel, 429, &reason);
            return;
        }
        if !ChannelKind::of(&request.channel).needs_authorization() {
            if self.join(&request.channel, None) {
                self.log(format_args!("joined channel: {}", request.channel));
                self.send_cached(socket, &request.channel);
            }
            return;
        }
        let ticket = {
            let mut state = self.state();
            let Some(state) = state.as_mut() else { return };
            state.ticket(&request.channel)
        };
        let connection = self.clone();
        let socket = socket.clone();
        tokio::spawn(async move { connection.authorize(socket, request, ticket).await });
    }

    /// `limits.maxChannelsPerConnection`, counting channels joined and being authorized.
    fn over_channel_limit(&self, channel: &str) -> Option<String> {
        let state = self.state();
        let limit = self.ctx.limits.max_channels_per_connection;
        state.as_ref()?.room_for(channel, limit).err()
    }

    /// Joins `channel` in the Hub unless the socket is gone, or `ticket` is no longer the
    /// latest request for it. Returns whether it joined.
    fn join(&self, channel: &str, ticket: Option<u64>) -> bool {
        let mut state = self.state();
        let Some(state) = state.as_mut() else {
            return false;
        };
        if let Some(ticket) = ticket
            && !state.settle(channel, ticket)
        {
            return false;
        }
        self.ctx.hub.subscribe(channel, self.subscriber.clone());
        state.join(channel);
        true
    }

    async fn authorize(self: Arc<Self>, socket: S, request: ChannelRequest, ticket: u64) {
        let channel = request.channel.clone();
        let referer = self.referer.as_deref();
        let url = self.ctx.authorizer.url_for(referer);
        console::dev_error(&format!(
            "[{}] - Preparing authentication request to: {}",
            console::now_iso(),
            self.ctx.authorizer.target_for(referer).base
        ));
        console::dev_for(
            self.id.as_str(),
            &format!("Sending auth request to: {url}\n"),
        );
        let auth_request = AuthRequest {
            channel: channel.clone(),
            socket_id: self.id.to_string(),
            client_headers: request.auth_headers,
            handshake_cookie: self.handshake_cookie.clone(),
            referer: self.referer.clone(),
            forwarded_for: self.forwarded_for.clone(),
        };
        let slots = self
            .auth_slots
            .get_or_init(|| self.ctx.authorizer.connection_slots());
        let _permit = match self.ctx.authorizer.admit(slots).await {
            Ok(permit) => permit,
            Err(refusal) => return self.refused(&socket, &channel, ticket, refusal, &url),
        };
        // The wait for a slot may have outlived the wish: do not ask the app for nothing.
        if !self.is_pending(&channel, ticket) {
            self.log(format_args!(
                "no longer wants {channel}; authorization not requested"
            ));
            return;
        }
        let grant = match self.ctx.authorizer.authorize(&auth_request).await {
            Ok(grant) => grant,
            Err(refusal) => return self.refused(&socket, &channel, ticket, refusal, &url),
        };
        if !self.join(&channel, Some(ticket)) {
            self.log(format_args!(
                "no longer wants {channel}; authorization dropped"
            ));
            return;
        }
        self.ctx.hub.activity().record(|| Activity::Authorization {
            socket: self.id.as_str().to_owned(),
            channel: channel.clone(),
            granted: true,
            reason: None,
        });
        self.log(format_args!("authenticated for: {channel}"));
        self.log(format_args!("joined channel: {channel}"));
        self.send_cached(&socket, &channel);
        if ChannelKind::of(&channel) == ChannelKind::Presence {
            self.join_presence(&socket, &channel, grant.channel_data)
                .await;
        }
    }

    fn refused(&self, socket: &S, channel: &str, ticket: u64, refusal: Refusal, url: &str) {
        {
            let mut state = self.state();
            let Some(state) = state.as_mut() else { return };
            if !state.settle(channel, ticket) {
                return;
            }
        }
        self.ctx.hub.activity().record(|| Activity::Authorization {
            socket: self.id.as_str().to_owned(),
            channel: channel.to_owned(),
            granted: false,
            reason: Some(refusal.reason.clone()),
        });
        // A socket authorized earlier and refused now loses the channel.
        self.leave(channel, "authorization refused");
        console::dev_warning(&format!(
            "{} could not be authenticated to {channel}",
            self.id
        ));
        console::dev_error(&format!("{} (POST {url})", refusal.reason));
        refuse(socket, channel, refusal.status, &refusal.reason);
    }

    async fn join_presence(&self, socket: &S, channel: &str, channel_data: Option<Value>) {
        let presence = &self.ctx.presence;
        let data = channel_data.unwrap_or(Value::Null);
        match presence
            .join_announced(channel, &self.id, &data, MemberLimits::default())
            .await
        {
            Ok(joined) => {
                let members: Vec<Member> = joined.members.iter().map(|m| m.public()).collect();
                socket.emit("presence:subscribed", &(channel, members));
                // The socket may have gone while the store was written: undo, so nobody
                // keeps seeing a member that is not there.
                let user_id = Arc::from(joined.member.user_key());
                if !self.set_member(channel, user_id) {
                    leave_presence(self.ctx.clone(), channel.to_owned(), self.id.clone()).await;
                }
            }
            Err(JoinError::NoUserId) => {
                console::dev_error(
                    "Unable to join channel. Member data for presence channel missing",
                );
            }
            Err(e) => {
                let reason = match e {
                    JoinError::Store(e) => format!("presence is unavailable: {e}"),
                    other => other.to_string(),
                };
                console::error(&format!("{} could not join {channel}: {reason}", self.id));
                self.leave(channel, "presence unavailable");
                refuse(socket, channel, 0, &reason);
            }
        }
    }

    /// Whether `ticket` is still the latest request for `channel` of a connected socket.
    fn is_pending(&self, channel: &str, ticket: u64) -> bool {
        self.state()
            .as_ref()
            .is_some_and(|s| s.is_pending(channel, ticket))
    }

    /// Right after joining a cache channel: its last event (Socket.IO has no cache-miss
    /// event; the `cache_miss` webhook still fires).
    fn send_cached(&self, socket: &S, channel: &str) {
        if !is_cache_channel(channel) {
            return;
        }
        match self.ctx.hub.cached(channel) {
            Some((last, _)) => {
                if let Some(event) = event_name(&last) {
                    socket.emit(event, &socketio_args(&last));
                }
            }
            None => self.ctx.hub.observe(ChannelChange::CacheMiss(channel)),
        }
    }

    /// Records the user this connection is in presence `channel` as; false if it is no
    /// longer joined (or the socket is gone).
    fn set_member(&self, channel: &str, user_id: Arc<str>) -> bool {
        self.state()
            .as_mut()
            .is_some_and(|s| s.set_member(channel, user_id))
    }

    /// The user id of this connection's member in `channel`, if it is a presence member there.
    fn member_of(&self, channel: &str) -> Option<Arc<str>> {
        self.state().as_ref()?.member_of(channel)
    }

    fn leave(&self, channel: &str, reason: &str) {
        let was_joined = {
            let mut state = self.state();
            let Some(state) = state.as_mut() else { return };
            state.leave(channel)
        };
        if was_joined {
            self.left(channel.to_owned(), reason);
        }
    }

    /// Echo's `client event` (a whisper).
    pub(super) fn whisper(&self, socket: &S, payload: Value) {
        let request = match parse_whisper(payload) {
            Ok(request) => request,
            Err(e) => {
                self.log(format_args!("sent an unusable client event: {e}"));
                return;
            }
        };
        if let Err(reason) = self.check_whisper(&request) {
            self.log(format_args!(
                "whisper {} on {} refused: {reason}",
                request.event, request.channel
            ));
            let detail = json!({"event": request.event, "reason": reason.to_string()});
            socket.emit("whisper_error", &(&request.channel, detail));
            return;
        }
        let publication = Publication::new(
            &request.channel,
            &request.event,
            request.data,
            Some(self.id.clone()),
        )
        .from_member(self.member_of(&request.channel));
        crate::sources::dispatch_client_event(
            &self.ctx.hub,
            &publication,
            crate::hub::EventSource::Whisper,
        );
    }

    fn check_whisper(&self, request: &WhisperRequest) -> Result<(), client_events::Refusal> {
        let event = ClientEvent {
            event: &request.event,
            channel: &request.channel,
            sender_subscribed: self.ctx.hub.is_subscribed(&request.channel, &self.id),
            data_bytes: request.data.get().len(),
        };
        let mut limiter = self.whispers.lock().unwrap_or_else(|p| p.into_inner());
        let rules = client_events::Rules::whispers(&self.ctx.whispers);
        client_events::check(&event, &rules, &mut limiter)
    }
}

/// Removes a socket from a presence channel and tells the others if its user is gone.
async fn leave_presence(ctx: Arc<SocketIoContext>, channel: String, socket_id: SocketId) {
    ctx.presence.leave_announced(&channel, &socket_id).await;
}

/// `subscription_error(channel, status, {status, reason})`: laravel-echo-server's two
/// arguments, plus a third that says why (existing listeners ignore it).
fn refuse(socket: &impl EchoSocket, channel: &str, status: u16, reason: &str) {
    let detail = json!({ "status": status, "reason": reason });
    socket.emit("subscription_error", &(channel, status, detail));
}
