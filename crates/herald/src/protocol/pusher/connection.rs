//! One Pusher connection's life, in one task: say who it is, read frames, write what is
//! queued, ping when silent, and leave every channel when it ends.

use super::codes::{self, Code};
use super::frames::{self, ClientFrame, SubscribeData};
use super::signature::{auth_is_valid, subscription_text};
use super::socket_id::new_socket_id;
use super::subscriber::PusherSubscriber;
use super::users::{MAX_WATCHLIST, check_signin, watchlist_channel};
use super::{ACTIVITY_TIMEOUT, Hello, PONG_TIMEOUT, PusherApp, PusherContext};
use crate::connection::writer::{self, send, write_queued};
use crate::connection::{Next, Outbox, WebSocket, WokenOnly, next_message, poll_once, until};
use crate::console;
use crate::hub::{
    Activity, ChannelChange, ChannelKind, FrameText, Message as HubMessage, Publication, SocketId,
    Subscribed, Unsubscribed, is_cache_channel, user_channel, validate_subscription,
};
use crate::metrics::{PUSHER, metrics};
use crate::presence::{JoinError, MemberLimits};
use crate::protocol::client_events::{self, ClientEvent};
use crate::protocol::rate::RateLimiter;
use crate::protocol::subscriptions::Subscriptions;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Serves one upgraded connection to its end.
pub(super) async fn run(
    ctx: Arc<PusherContext>,
    mut websocket: WebSocket,
    key: &str,
    protocol: Option<u32>,
    hello: Option<Box<Hello>>,
) {
    let app = match admit(&ctx, key, protocol) {
        Ok(app) => app,
        // Boxed, like every rarely used large step: the task's allocation is sized for the
        // largest state its future can be in, and an idle connection should not carry it.
        Err((code, message)) => return Box::pin(refuse(websocket, code, message)).await,
    };
    ctx.hub.connection_opened();
    ctx.open.fetch_add(1, Ordering::Relaxed);
    metrics().connected.get_or_create(&PUSHER).inc();
    metrics().new_connections.get_or_create(&PUSHER).inc();
    let subscriber = Arc::new(PusherSubscriber {
        id: SocketId::new(&new_socket_id()),
        outbox: Arc::new(Outbox::new(ctx.limits.max_queue_bytes)),
    });
    if let Some(hello) = hello {
        let Hello {
            detail,
            address,
            user_agent,
        } = *hello;
        ctx.hub.activity().record(|| Activity::Connected {
            socket: subscriber.id.as_str().to_owned(),
            protocol: "pusher",
            detail,
            address,
            user_agent,
        });
    }
    let mut connection = Connection {
        client_events: RateLimiter::per_second(app.client_events.rate_per_second),
        ctx,
        app,
        subscriber,
        channels: Subscriptions::default(),
        user: None,
    };
    let established =
        frames::connection_established(connection.id().as_str(), ACTIVITY_TIMEOUT.as_secs());
    if send(&mut websocket, established).await {
        connection.serve(&mut websocket).await;
    }
    Box::pin(connection.end()).await;
}

/// The app of `key`, if the connection may open: a known key, protocol 7 or later, and room
/// under the app's `maxConnections` and `limits.maxConnections` (then a place is taken in both).
fn admit(
    ctx: &PusherContext,
    key: &str,
    protocol: Option<u32>,
) -> Result<Arc<PusherApp>, (Code, &'static str)> {
    let Some(app) = ctx.apps.by_key(key).cloned() else {
        return Err((
            codes::APP_NOT_FOUND,
            "No app has this key: use the key of a `clients` entry with a `secret` (PUSHER_APP_KEY / REVERB_APP_KEY in Laravel's .env)",
        ));
    };
    match protocol {
        None => {
            return Err((
                codes::NO_PROTOCOL,
                "No protocol version: connect with ?protocol=7",
            ));
        }
        Some(version) if version < 7 => {
            return Err((
                codes::UNSUPPORTED_PROTOCOL,
                "Unsupported protocol version: Herald speaks protocol 7",
            ));
        }
        Some(_) => {}
    }
    if !app.take_connection() {
        return Err((
            codes::OVER_CONNECTION_QUOTA,
            "Over connection quota: this app holds its maxConnections connections",
        ));
    }
    if !ctx.hub.reserve_connection(ctx.limits.max_connections) {
        app.release_connection();
        return Err((
            codes::OVER_CONNECTION_QUOTA,
            "Over connection quota: this server holds limits.maxConnections connections",
        ));
    }
    Ok(app)
}

/// Sends `pusher:error` with `code`, and closes with it if it is a closing code.
async fn refuse(mut websocket: WebSocket, code: Code, message: &str) {
    say_and_close(&mut websocket, code, message).await;
}

/// `pusher:error` with `code`, then the close with it if it is a closing code.
async fn say_and_close(websocket: &mut WebSocket, code: Code, message: &str) {
    let _ = send(websocket, frames::error(Some(code.code), message)).await;
    if code.closes {
        writer::close(websocket, code.code, message).await;
    }
}

/// What woke the connection's task.
enum Step {
    Received(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Queued(Next),
    Silent,
    ShuttingDown,
    NotSignedIn,
}

struct Connection {
    ctx: Arc<PusherContext>,
    app: Arc<PusherApp>,
    subscriber: Arc<PusherSubscriber>,
    /// Channels subscribed (in the Hub), by the names the client knows them by.
    channels: Subscriptions,
    client_events: RateLimiter,
    /// The user it signed in as (boxed: most connections never sign in).
    user: Option<Box<SignedIn>>,
}

/// A signed-in connection's user, and the server's own channels it joined for it.
struct SignedIn {
    id: Arc<str>,
    /// Hub keys: `#server-to-user-<id>` first, then a `#watchlist-<watched>` per watched user.
    channels: Vec<String>,
}

impl Connection {
    fn id(&self) -> &SocketId {
        &self.subscriber.id
    }

    fn queue(&self, frame: FrameText) {
        // A refusal means the connection is already closing as too slow.
        let _ = self.subscriber.outbox.push(frame);
    }

    /// Reads and writes until the client leaves, stops answering, or reads too slowly.
    async fn serve(&mut self, websocket: &mut WebSocket) {
        let outbox = self.subscriber.outbox.clone();
        // One timer and one shutdown watch for the connection's life, moved rather than made
        // anew per frame: a timer registered and dropped per delivery cost a third of the
        // Pusher path's throughput (docs/performance.md).
        let silence = tokio::time::sleep(ACTIVITY_TIMEOUT);
        tokio::pin!(silence);
        let mut shutdown = self.ctx.shutdown.clone();
        let stopping = shutdown.wait_for(|stopping| *stopping);
        tokio::pin!(stopping);
        let mut pinged = false;
        // Only for apps that require signing in: boxed, so other connections carry 8 bytes.
        let mut sign_in_by = self
            .app
            .signin_within
            .map(|within| Box::pin(tokio::time::sleep(within)));
        let reads = WokenOnly::new();
        // The shutdown and the silence timer, polled only once one of them woke the task: not
        // at every delivery (docs/performance.md, "Instructions per delivery").
        let others = WokenOnly::new();
        // A ping came: tungstenite answers it, and its pong must go out before our frames.
        let mut owes_pong = false;
        loop {
            let waiting_for_signin = self.user.is_none() && sign_in_by.is_some();
            let step = tokio::select! {
                biased;
                step = std::future::poll_fn(|cx| others.poll(cx, |cx| {
                    if stopping.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Step::ShuttingDown);
                    }
                    silence.as_mut().poll(cx).map(|()| Step::Silent)
                })) => step,
                next = outbox.next() => Step::Queued(next),
                message = next_message(websocket, &reads) => Step::Received(message),
                () = until(&mut sign_in_by), if waiting_for_signin => Step::NotSignedIn,
            };
            match step {
                Step::Received(Some(Ok(message))) => {
                    silence.as_mut().reset(Instant::now() + ACTIVITY_TIMEOUT);
                    pinged = false;
                    metrics().ws_messages_received.get_or_create(&PUSHER).inc();
                    match message {
                        // Boxed: subscribing (signatures, presence) needs a large future
                        // for a moment; inline, every idle connection's task would carry
                        // room for it.
                        Message::Text(text) => Box::pin(self.on_text(text.as_str())).await,
                        Message::Binary(_) => self.queue(frames::error(
                            None,
                            "Binary frames are not supported: send JSON text",
                        )),
                        Message::Close(_) => return,
                        Message::Ping(_) => owes_pong = true,
                        Message::Pong(_) | Message::Frame(_) => {}
                    }
                }
                Step::Received(_) => return,
                Step::Queued(Next::Frame(frame)) => {
                    let write = write_queued(
                        websocket,
                        frame,
                        &outbox,
                        std::mem::take(&mut owes_pong),
                        |_| {},
                    );
                    tokio::pin!(write);
                    match poll_once(write.as_mut()).await {
                        Poll::Ready(true) => continue,
                        Poll::Ready(false) => return,
                        Poll::Pending => {}
                    }
                    let mut stalled = false;
                    loop {
                        tokio::select! {
                            biased;
                            written = &mut write => if written { break } else { return },
                            // Blocked writing to a client that does not read: its queue
                            // overflowed meanwhile. Drop it now; a close frame could not
                            // reach it anyway.
                            () = outbox.overflowed() => return self.too_slow(),
                            // Silent for the whole activity timeout and not reading either:
                            // one more pong timeout for the write to go through.
                            () = &mut silence => {
                                if stalled {
                                    return;
                                }
                                stalled = true;
                                silence.as_mut().reset(Instant::now() + PONG_TIMEOUT);
                            }
                        }
                    }
                    // The silence timer was polled here with the task's own waker.
                    others.rearm();
                }
                Step::Queued(Next::Terminated) => {
                    let reason = "Terminated: the app closed this user's connections";
                    return Box::pin(say_and_close(websocket, codes::UNAUTHORIZED, reason)).await;
                }
                Step::NotSignedIn => {
                    let reason =
                        "Connection not authorized within timeout: sign in (pusher:signin) first";
                    return Box::pin(say_and_close(websocket, codes::UNAUTHORIZED, reason)).await;
                }
                Step::Queued(Next::TooSlow) => {
                    self.too_slow();
                    let reason = "Too slow: events were queued faster than they were read";
                    return Box::pin(say_and_close(websocket, codes::TOO_SLOW, reason)).await;
                }
                Step::ShuttingDown => {
                    let reason = "Server shutting down: reconnect";
                    return Box::pin(say_and_close(websocket, codes::RECONNECT, reason)).await;
                }
                Step::Silent if pinged => {
                    let reason = "Pong reply not received in time";
                    return Box::pin(say_and_close(websocket, codes::PONG_TIMEOUT, reason)).await;
                }
                Step::Silent => {
                    pinged = true;
                    silence.as_mut().reset(Instant::now() + PONG_TIMEOUT);
                    if !send(websocket, frames::ping()).await {
                        return;
                    }
                }
            }
        }
    }

    /// Counts and logs a client closed for reading too slowly.
    fn too_slow(&self) {
        metrics().slow_disconnections.inc();
        tracing::warn!(socket_id = %self.id(), "send queue full: disconnecting slow client");
        console::dev(&format!(
            "{} disconnected: too slow to read its events",
            self.id()
        ));
    }

    async fn on_text(&mut self, text: &str) {
        let frame: ClientFrame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(e) => {
                return self.queue(frames::error(
                    None,
                    &format!("Invalid message: expected {{\"event\": …, \"data\": …}} JSON ({e})"),
                ));
            }
        };
        match frame.event.as_str() {
            "pusher:ping" => self.queue(frames::pong()),
            "pusher:pong" => {}
            "pusher:subscribe" => match subscribe_data(&frame) {
                Some(data) => self.subscribe(data).await,
                None => self.queue(frames::error(
                    None,
                    "pusher:subscribe needs data {\"channel\": …, \"auth\"?: …, \"channel_data\"?: …}",
                )),
            },
            "pusher:unsubscribe" => {
                if let Some(data) = subscribe_data(&frame) {
                    self.unsubscribe(&data.channel).await;
                }
            }
            "pusher:signin" => Box::pin(self.sign_in(frame)).await,
            event if event.starts_with("client-") => self.client_event(frame),
            _ => self.queue(frames::error(
                None,
                "Unknown event: the client may send pusher:subscribe, pusher:unsubscribe, pusher:signin, pusher:ping, pusher:pong and client-… events",
            )),
        }
    }

    async fn subscribe(&mut self, data: SubscribeData) {
        let channel = data.channel;
        // pusher-js subscribes to its user's channel after signing in: it is joined already.
        if self
            .user
            .as_ref()
            .is_some_and(|user| channel == user_channel(&user.id))
        {
            return self.queue(frames::subscription_succeeded(&channel, &json!({})));
        }
        if let Err(e) = validate_subscription(&channel) {
            return self.queue(frames::subscription_error(
                &channel,
                "InvalidChannel",
                400,
                &e.to_string(),
            ));
        }
        let longest = self.app.limits.channel_name_length();
        if channel.len() > longest {
            let reason = format!(
                "channel name is longer than {longest} bytes (the app's maxChannelNameLength)"
            );
            return self.queue(frames::subscription_error(
                &channel,
                "InvalidChannel",
                400,
                &reason,
            ));
        }
        let kind = ChannelKind::of(&channel);
        if self.channels.is_joined(&channel) && kind != ChannelKind::Presence {
            return self.queue(frames::subscription_succeeded(&channel, &json!({})));
        }
        let limit = self.ctx.limits.max_channels_per_connection;
        if let Err(reason) = self.channels.room_for(&channel, limit) {
            return self.queue(frames::subscription_error(
                &channel,
                "LimitReached",
                429,
                &reason,
            ));
        }
        if kind.needs_authorization() {
            let channel_data = data
                .channel_data
                .as_deref()
                .filter(|_| kind == ChannelKind::Presence);
            let text = subscription_text(self.id().as_str(), &channel, channel_data);
            let signed = data
                .auth
                .as_deref()
                .is_some_and(|auth| auth_is_valid(&self.app.key, &self.app.secret, &text, auth));
            self.ctx.hub.activity().record(|| Activity::Authorization {
                socket: self.id().as_str().to_owned(),
                channel: channel.clone(),
                granted: signed,
                reason: (!signed).then(|| "invalid signature".to_owned()),
            });
            if !signed {
                console::dev_warning(&format!(
                    "{} could not be authenticated to {channel}",
                    self.id()
                ));
                let reason = "Invalid signature: the auth field must be <app key>:<HMAC-SHA256 of socket_id:channel[:channel_data]>, as your app's /broadcasting/auth returns with the app's secret";
                return self.queue(frames::subscription_error(
                    &channel,
                    "AuthError",
                    401,
                    reason,
                ));
            }
        }
        let key = self.app.space.key(&channel).into_owned();
        self.ctx.hub.subscribe(&key, self.subscriber.clone());
        self.channels.join(&channel);
        if kind != ChannelKind::Presence {
            console::dev(&format!("{} joined channel: {channel}", self.id()));
            self.queue(frames::subscription_succeeded(&channel, &json!({})));
            return self.send_cached(&key, &channel);
        }
        let channel_data = data
            .channel_data
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .unwrap_or(Value::Null);
        match self
            .ctx
            .presence
            .join_announced(&key, self.id(), &channel_data, self.member_limits())
            .await
        {
            Ok(joined) => {
                let mut hash = Map::new();
                let mut ids = Vec::new();
                for member in &joined.members {
                    let id = member.user_key();
                    hash.insert(id.clone(), member.user_info.clone().unwrap_or(Value::Null));
                    ids.push(Value::String(id));
                }
                let count = ids.len();
                let presence = json!({"presence": {"ids": ids, "hash": hash, "count": count}});
                self.queue(frames::subscription_succeeded(&channel, &presence));
                self.channels
                    .set_member(&channel, Arc::from(joined.member.user_key()));
                self.send_cached(&key, &channel);
                console::dev(&format!("{} joined channel: {channel}", self.id()));
            }
            Err(e) => {
                let (kind, status, reason) = match e {
                    JoinError::NoUserId => (
                        "PresenceError",
                        400,
                        "channel_data needs a user_id".to_owned(),
                    ),
                    JoinError::Store(e) => (
                        "PresenceError",
                        503,
                        format!("presence is unavailable: {e}"),
                    ),
                    JoinError::Full(_) => (
                        "LimitReached",
                        429,
                        format!("{e} (the app's maxPresenceMembersPerChannel)"),
                    ),
                    JoinError::MemberTooLarge(_) => (
                        "LimitReached",
                        413,
                        format!("{e} (the app's maxPresenceMemberSizeInKb)"),
                    ),
                };
                self.ctx.hub.unsubscribe(&key, self.id());
                self.channels.leave(&channel);
                self.queue(frames::subscription_error(&channel, kind, status, &reason));
            }
        }
    }

    /// `pusher:signin`: checks the app's signature, joins the user's channel and the watched
    /// users' ones, and tells the watchers of this user if it just came online.
    async fn sign_in(&mut self, frame: ClientFrame) {
        let signin = match check_signin(
            frame.data.as_deref(),
            self.id().as_str(),
            &self.app.key,
            &self.app.secret,
        ) {
            Ok(signin) => signin,
            Err(e) => {
                console::dev_warning(&format!("{} could not sign in: {e}", self.id()));
                let message = format!("Sign-in refused: {e}");
                return self.queue(frames::error(Some(codes::UNAUTHORIZED.code), &message));
            }
        };
        if let Some(user) = &self.user {
            if *user.id != *signin.id {
                let message = "Sign-in refused: this connection is signed in as another user";
                return self.queue(frames::error(Some(codes::UNAUTHORIZED.code), message));
            }
            return self.queue(frames::signin_success(&signin.user_data));
        }
        let space = &self.app.space;
        let user_key = space.key(&user_channel(&signin.id)).into_owned();
        // In a cluster, watchers are told by `cluster::ClusterWatchlists` for every node.
        if self.ctx.hub.subscribe(&user_key, self.subscriber.clone()) == Subscribed::First
            && self.ctx.cluster.is_none()
        {
            self.tell_watchers(&signin.id, true);
        }
        let mut channels = vec![user_key];
        let mut online = Vec::new();
        for watched in &signin.watchlist {
            let key = space.key(&watchlist_channel(watched)).into_owned();
            self.ctx.hub.subscribe(&key, self.subscriber.clone());
            channels.push(key);
            if self.is_online(&space.key(&user_channel(watched))).await {
                online.push(watched.as_str());
            }
        }
        self.queue(frames::signin_success(&signin.user_data));
        if !online.is_empty() {
            self.queue(frames::watchlist_events(true, &online));
        }
        if signin.watchlist_cut {
            let message =
                format!("Watchlist limit exceeded: the first {MAX_WATCHLIST} user ids are watched");
            self.queue(frames::error(Some(codes::WATCHLIST_LIMIT.code), &message));
        }
        console::dev(&format!("{} signed in as user {}", self.id(), signin.id));
        self.user = Some(Box::new(SignedIn {
            id: Arc::from(signin.id),
            channels,
        }));
    }

    /// Whether a user has a signed-in connection: on this node, or in a cluster on any node
    /// (one Redis read; unknown counts as offline).
    async fn is_online(&self, user_key: &str) -> bool {
        match &self.ctx.cluster {
            Some(cluster) => cluster.count(user_key).await.is_ok_and(|count| count > 0),
            None => self.ctx.hub.subscription_count(user_key) > 0,
        }
    }

    /// Publishes that `user_id` came online or went offline to the connections watching it.
    fn tell_watchers(&self, user_id: &str, online: bool) {
        let channel = self.app.space.key(&watchlist_channel(user_id)).into_owned();
        let message = HubMessage::Watchlist {
            user_id: Arc::from(user_id),
            online,
        };
        self.ctx
            .hub
            .publish(&Publication::with(&channel, message, None));
    }

    /// Leaves the user's channels; the user's last connection tells its watchers it is gone.
    fn sign_out(&mut self) {
        let Some(user) = self.user.take() else {
            return;
        };
        for (i, key) in user.channels.iter().enumerate() {
            let left = self.ctx.hub.unsubscribe(key, self.id());
            if i == 0 && left == Unsubscribed::Last && self.ctx.cluster.is_none() {
                self.tell_watchers(&user.id, false);
            }
        }
    }

    /// Right after subscribing to a cache channel: its last event, or `pusher:cache_miss`
    /// (and the `cache_miss` webhook).
    fn send_cached(&self, key: &str, channel: &str) {
        if !is_cache_channel(channel) {
            return;
        }
        match self.ctx.hub.cached(key) {
            Some((last, _)) => {
                if let Some(frame) = frames::publication(&last) {
                    self.queue(frame);
                }
            }
            None => {
                self.queue(frames::cache_miss(channel));
                self.ctx.hub.observe(ChannelChange::CacheMiss(key));
            }
        }
    }

    fn member_limits(&self) -> MemberLimits {
        MemberLimits {
            max_members: self.app.limits.max_presence_members_per_channel,
            max_user_info_bytes: self.app.limits.max_presence_member_bytes,
        }
    }

    async fn unsubscribe(&mut self, channel: &str) {
        if !self.channels.leave(channel) {
            return;
        }
        let key = self.app.space.key(channel);
        self.ctx.hub.unsubscribe(&key, self.id());
        if ChannelKind::of(channel) == ChannelKind::Presence {
            self.ctx.presence.leave_announced(&key, self.id()).await;
        }
        console::dev(&format!("{} left channel: {channel}", self.id()));
    }

    /// A client event goes to the channel's other subscribers, of both protocols.
    fn client_event(&mut self, frame: ClientFrame) {
        let reject = |reason: &dyn std::fmt::Display| {
            frames::error(
                Some(codes::CLIENT_EVENT_REJECTED.code),
                &format!("Client event rejected: {reason}"),
            )
        };
        if !self.app.client_messages {
            return self.queue(reject(
                &"client events are disabled for this app (enableClientMessages)",
            ));
        }
        let Some(channel) = frame.channel.as_deref() else {
            return self.queue(reject(&"no channel"));
        };
        let data = frame.data.unwrap_or_else(|| {
            serde_json::value::RawValue::from_string("{}".to_owned()).unwrap_or_default()
        });
        let event = ClientEvent {
            event: &frame.event,
            channel,
            sender_subscribed: self.channels.is_joined(channel),
            data_bytes: data.get().len(),
        };
        if let Err(refusal) =
            client_events::check(&event, &self.app.client_events, &mut self.client_events)
        {
            return self.queue(reject(&refusal));
        }
        let key = self.app.space.key(channel);
        let publication = Publication::new(&key, &frame.event, data, Some(self.id().clone()))
            .from_member(self.channels.member_of(channel));
        crate::sources::dispatch_client_event(
            &self.ctx.hub,
            &publication,
            crate::hub::EventSource::ClientEvent,
        );
    }

    /// Leaves every channel and gives the connection's place back.
    async fn end(mut self) {
        self.subscriber.outbox.close();
        self.sign_out();
        for channel in self.channels.take_joined() {
            let key = self.app.space.key(&channel);
            self.ctx.hub.unsubscribe(&key, self.id());
            if ChannelKind::of(&channel) == ChannelKind::Presence {
                self.ctx.presence.leave_announced(&key, self.id()).await;
            }
        }
        self.ctx.hub.connection_closed();
        self.ctx.hub.activity().record(|| Activity::Disconnected {
            socket: self.id().as_str().to_owned(),
            reason: "closed".to_owned(),
        });
        self.app.release_connection();
        self.ctx.open.fetch_sub(1, Ordering::Relaxed);
        metrics().connected.get_or_create(&PUSHER).dec();
        metrics().new_disconnections.get_or_create(&PUSHER).inc();
    }
}

fn subscribe_data(frame: &ClientFrame) -> Option<SubscribeData> {
    serde_json::from_str(frame.data.as_ref()?.get()).ok()
}
