//! One Engine.IO session on Herald's own connection core, in one task: HTTP long-polling (the
//! requests of the session hand their work to the task), the upgrade to a websocket, or a
//! websocket from the start; heartbeats (Engine.IO 3: the client pings; Engine.IO 4: the server
//! pings); the Socket.IO CONNECT of the default namespace; Echo's events handed to
//! [`Connection`]; and the socket's queue written out.

use super::SocketIoContext;
use super::connection::{Connection, Handshake};
use super::core_socket::CoreSocket;
use super::recovery::{Parked, Written};
use super::session::{Eio, SessionHandle};
use crate::connection::writer::{self, send, write_queued};
use crate::connection::{
    Next, Outbox, Upgrading, WebSocket, WokenOnly, next_message, poll_once, until,
};
use crate::console;
use crate::hub::{FrameText, SocketId};
use crate::metrics::{SOCKETIO, metrics};
use crate::protocol::engineio::{Framing, Kind, Packet, SocketPacket, decode, encode_texts};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Message;

/// How long an Engine.IO 4 client has to send CONNECT after the open packet.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests a polling session's task may have waiting (a poll, a post, an upgrade); a client
/// that sends more at once is broken.
const REQUESTS_WAITING: usize = 4;

/// Why a session ended: the reason laravel-echo-server logs on leave (socket.io's names).
type Ended = &'static str;

/// What an HTTP request of a polling session hands its task.
pub(super) enum ToSession {
    /// A GET: answered with the packets queued, as one payload, once there are some.
    Poll(oneshot::Sender<String>),
    /// A POST's payload: answered whether it was read.
    Post(String, oneshot::Sender<bool>),
    /// A websocket opened with the session's id: the upgrade.
    Upgrade(Box<WebSocket>),
}

/// Serves a session that opens on a websocket to its end, once `upgraded` (hyper's protocol
/// switch) yields the websocket; a session whose upgrade fails gives back its reservation.
pub(super) async fn run_websocket(
    ctx: Arc<SocketIoContext>,
    upgraded: Upgrading,
    eio: Eio,
    handshake: Box<Handshake>,
) {
    let Some(mut websocket) = upgraded.await else {
        ctx.hub.release_reservation();
        return;
    };
    let engine_id = ctx.sessions.new_engine_id(eio);
    let mut session = Session::new(ctx, eio, &engine_id, handshake);
    let open = FrameText::from(session.open_packet(&engine_id, false));
    drop(engine_id);
    // Boxed, like every rarely used step that awaits: a task's allocation is sized for the
    // largest state its future can be in, and an idle session should not carry it.
    let ended = if Box::pin(send(&mut websocket, open)).await {
        if eio == Eio::V3 {
            session.connect(None);
        }
        session.serve(&mut websocket).await
    } else {
        "transport close"
    };
    session.end(ended);
}

/// Opens a polling session: registers it, starts its task, and returns its open packet as
/// the handshake's body, and its id.
pub(super) fn open_polling(
    ctx: &Arc<SocketIoContext>,
    eio: Eio,
    handshake: Box<Handshake>,
    client: Option<IpAddr>,
    upgrades: bool,
) -> (String, String) {
    let engine_id = ctx.sessions.new_engine_id(eio);
    let (requests, inbox) = mpsc::channel(REQUESTS_WAITING);
    let handle = SessionHandle {
        requests,
        eio,
        opened_by: (eio == Eio::V3).then_some(client).flatten(),
    };
    ctx.sessions.insert(&engine_id, handle);
    let mut session = Session::new(ctx.clone(), eio, &engine_id, handshake);
    let open = session.open_packet(&engine_id, upgrades);
    let body = encode_texts([open.as_str()], framing(eio));
    let id = engine_id.clone();
    let workers = ctx.workers.clone();
    workers.spawn(async move {
        if eio == Eio::V3 {
            session.connect(None);
        }
        let ended = match session.serve_polling(inbox, &engine_id).await {
            Ok(mut websocket) => session.serve(&mut websocket).await,
            Err(ended) => ended,
        };
        session.ctx.sessions.remove(&engine_id);
        session.end(ended);
    });
    (id, body)
}

/// The polling payload framing of `eio`.
pub(super) fn framing(eio: Eio) -> Framing {
    match eio {
        Eio::V3 => Framing::LengthPrefixed,
        Eio::V4 => Framing::RecordSeparated,
    }
}

struct Session {
    ctx: Arc<SocketIoContext>,
    socket: Arc<CoreSocket>,
    eio: Eio,
    /// Until CONNECT: what the connection needs of the opening request.
    handshake: Option<Box<Handshake>>,
    /// After CONNECT: Echo's side of the socket.
    connection: Option<Arc<Connection<Arc<CoreSocket>>>>,
    /// Engine.IO 4: a ping is out and its pong has not come.
    awaiting_pong: bool,
    /// With recovery: the private id the client comes back with.
    pid: Option<Box<str>>,
    /// With recovery: the publications written last.
    written: Written,
}

/// What woke a session's task.
enum Step {
    Received(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Requested(Option<ToSession>),
    Queued(Next),
    Heartbeat,
    NotConnected,
    ShuttingDown,
}

/// What a packet does to the heartbeat.
enum Beat {
    Unchanged,
    /// The client is alive: the next deadline is this far.
    Alive(Duration),
}

impl Session {
    fn new(
        ctx: Arc<SocketIoContext>,
        eio: Eio,
        engine_id: &str,
        handshake: Box<Handshake>,
    ) -> Session {
        // Socket.IO 2 clients take the engine's id as the socket's; 3+ are told the socket's own.
        let socket_id = match eio {
            Eio::V3 => SocketId::new(engine_id),
            Eio::V4 => SocketId::new(&super::session::new_id()),
        };
        let socket = Arc::new(CoreSocket {
            id: socket_id,
            outbox: Arc::new(Outbox::new(ctx.limits.max_queue_bytes)),
            offsets: eio == Eio::V4 && !ctx.options.recovery_window.is_zero(),
        });
        ctx.open.fetch_add(1, Ordering::Relaxed);
        Session {
            ctx,
            socket,
            eio,
            handshake: Some(handshake),
            connection: None,
            awaiting_pong: false,
            pid: None,
            written: Written::default(),
        }
    }

    fn open_packet(&self, engine_id: &str, upgrades: bool) -> String {
        let options = &self.ctx.options;
        let upgrades: &[&str] = if upgrades { &["websocket"] } else { &[] };
        let mut open = json!({
            "sid": engine_id,
            "upgrades": upgrades,
            "pingInterval": options.ping_interval.as_millis() as u64,
            "pingTimeout": options.ping_timeout.as_millis() as u64,
        });
        if self.eio == Eio::V4 {
            open["maxPayload"] = json!(options.max_http_buffer_size);
        }
        format!("0{open}")
    }

    /// Queues a packet the client must get (a refusal means the session is closing).
    fn queue(&self, packet: FrameText) {
        let _ = self.socket.outbox.push(packet);
    }

    /// Joins the default namespace: the connection counts from here, and the client is told.
    /// `auth` is the CONNECT's data: a client coming back names its session there.
    fn connect(&mut self, auth: Option<&str>) {
        if self.handshake.is_none() {
            return; // already connected: a second CONNECT changes nothing
        }
        if self.socket.offsets {
            let back = auth.and_then(|auth| serde_json::from_str::<ComingBack>(auth).ok());
            if let Some(back) = back
                && self.recover(&back.pid, back.offset.as_deref())
            {
                return;
            }
            self.pid = Some(Box::from(super::session::new_id().as_str()));
        }
        let Some(handshake) = self.handshake.take() else {
            return;
        };
        let subscriber: Arc<dyn crate::hub::Subscriber> = self.socket.clone();
        self.connection = Some(Connection::open(
            self.ctx.clone(),
            subscriber,
            *handshake,
            self.eio,
        ));
        self.queue(self.connect_answer());
    }

    /// CONNECT's answer: nothing more for Engine.IO 3 (`40`); the socket id, and with recovery
    /// the session's private id, for Engine.IO 4.
    fn connect_answer(&self) -> FrameText {
        match (self.eio, &self.pid) {
            (Eio::V3, _) => FrameText::from_static("40"),
            (Eio::V4, None) => {
                FrameText::from(format!("40{}", json!({"sid": self.socket.id.as_str()})))
            }
            (Eio::V4, Some(pid)) => FrameText::from(format!(
                "40{}",
                json!({"sid": self.socket.id.as_str(), "pid": pid})
            )),
        }
    }

    /// Takes back the session parked under `pid`, if the client can be given everything it
    /// missed after `offset`: its socket (id, channels, queue) becomes this session's, and the
    /// missed publications follow the CONNECT answer, in order.
    fn recover(&mut self, pid: &str, offset: Option<&str>) -> bool {
        let Some(parked) = self.ctx.recovery.take(pid) else {
            return false;
        };
        let offset = match offset.map(str::parse::<u64>) {
            Some(Ok(offset)) => Some(offset),
            Some(Err(_)) => {
                parked.close("transport close");
                return false;
            }
            None => None,
        };
        let missed = match parked.written.after(offset) {
            Some(missed) if !parked.socket.outbox.has_overflowed() => missed,
            _ => {
                parked.close("transport close");
                return false;
            }
        };
        let Parked {
            socket,
            connection,
            written,
        } = parked;
        let mut queued = Vec::new();
        while let Some(packet) = socket.outbox.pop() {
            queued.push(packet);
        }
        self.socket.outbox.close();
        // It counts as connected again, in the place this handshake reserved.
        connection.reattach();
        self.socket = socket;
        self.connection = Some(connection);
        self.written = written;
        self.handshake = None;
        self.pid = Some(Box::from(pid));

        self.queue(self.connect_answer());
        for packet in missed.into_iter().chain(queued) {
            self.queue(packet);
        }
        console::dev_for(
            self.socket.id.as_str(),
            &format!("{} recovered its session", self.socket.id),
        );
        true
    }

    /// The heartbeat's deadline while all is well: Engine.IO 4 pings after an interval; an
    /// Engine.IO 3 client must ping within an interval and a timeout.
    fn heartbeat_after(&self) -> Duration {
        let options = &self.ctx.options;
        match self.eio {
            Eio::V3 => options.ping_interval + options.ping_timeout,
            Eio::V4 => options.ping_interval,
        }
    }

    /// The heartbeat's deadline passed: Engine.IO 4 pings (and waits a timeout for the pong)
    /// unless a ping is already out; otherwise the client is gone.
    fn heartbeat_due(&mut self) -> Result<Duration, Ended> {
        if self.eio == Eio::V3 || self.awaiting_pong {
            return Err("ping timeout");
        }
        self.awaiting_pong = true;
        self.queue(FrameText::from_static("2"));
        Ok(self.ctx.options.ping_timeout)
    }

    /// One Engine.IO packet from the client, on either transport. `Err` ends the session.
    fn on_packet(&mut self, packet: Packet<'_>) -> Result<Beat, Ended> {
        match packet {
            Packet::Message(message) => self.on_message(message)?,
            Packet::Ping(data) if self.eio == Eio::V3 => {
                self.queue(FrameText::from(format!("3{data}")));
            }
            Packet::Pong(_) if self.eio == Eio::V4 => {
                self.awaiting_pong = false;
                return Ok(Beat::Alive(self.ctx.options.ping_interval));
            }
            Packet::Close => return Err("transport close"),
            _ => {}
        }
        // Engine.IO 3 takes any packet as a sign of life.
        Ok(match self.eio {
            Eio::V3 => Beat::Alive(self.heartbeat_after()),
            Eio::V4 => Beat::Unchanged,
        })
    }

    /// One Socket.IO packet. `Err` ends the session.
    fn on_message(&mut self, text: &str) -> Result<(), Ended> {
        let packet = SocketPacket::parse(text).map_err(|e| self.broken(&e.to_string()))?;
        if packet.namespace != "/" {
            // Echo uses the default namespace only.
            if packet.kind == Kind::Connect {
                self.queue(invalid_namespace(self.eio, packet.namespace));
            }
            return Ok(());
        }
        match packet.kind {
            Kind::Connect => self.connect(packet.data),
            Kind::Disconnect => return Err("client namespace disconnect"),
            Kind::Event => {
                let Some(connection) = &self.connection else {
                    return Ok(()); // not connected to the namespace: dropped, as socket.io does
                };
                let event = packet.event().map_err(|e| self.broken(&e.to_string()))?;
                metrics()
                    .ws_messages_received
                    .get_or_create(&SOCKETIO)
                    .inc();
                let payload = event
                    .args
                    .first()
                    .and_then(|arg| serde_json::from_str::<Value>(arg).ok())
                    .unwrap_or(Value::Null);
                match event.name.as_str() {
                    "subscribe" => connection.subscribe(&self.socket, payload),
                    "unsubscribe" => connection.unsubscribe(payload),
                    "client event" => connection.whisper(&self.socket, payload),
                    _ => {}
                }
            }
            Kind::Ack | Kind::ConnectError => {}
        }
        Ok(())
    }

    /// Serves HTTP long-polling until the session ends (`Err`) or upgrades to a websocket.
    async fn serve_polling(
        &mut self,
        mut requests: mpsc::Receiver<ToSession>,
        engine_id: &str,
    ) -> Result<WebSocket, Ended> {
        let heartbeat = tokio::time::sleep(self.heartbeat_after());
        tokio::pin!(heartbeat);
        let mut shutdown = self.ctx.shutdown.clone();
        let stopping = shutdown.wait_for(|stopping| *stopping);
        tokio::pin!(stopping);
        let mut connect_by: Option<Pin<Box<Sleep>>> =
            (self.eio == Eio::V4).then(|| Box::pin(tokio::time::sleep(CONNECT_TIMEOUT)));
        // The GET waiting for packets, if one is.
        let mut poll: Option<oneshot::Sender<String>> = None;
        let ended = loop {
            let connecting = self.connection.is_none() && connect_by.is_some();
            let step = tokio::select! {
                biased;
                _ = &mut stopping => Step::ShuttingDown,
                request = requests.recv() => Step::Requested(request),
                // The socket's queue, read afresh each time: a recovered session's is another.
                next = self.socket.outbox.next(), if poll.is_some() => Step::Queued(next),
                () = &mut heartbeat => Step::Heartbeat,
                () = until(&mut connect_by), if connecting => Step::NotConnected,
            };
            match step {
                Step::Requested(Some(ToSession::Poll(answer))) => {
                    if poll.as_ref().is_some_and(|waiting| !waiting.is_closed()) {
                        break self.broken("two polls at once");
                    }
                    match self.socket.outbox.pop() {
                        Some(first) => {
                            let _ = answer.send(self.payload(first));
                        }
                        None => poll = Some(answer),
                    }
                }
                Step::Requested(Some(ToSession::Post(body, answer))) => {
                    let read = self.on_post(&body);
                    let _ = answer.send(read.is_ok());
                    match read {
                        Ok(Beat::Alive(after)) => heartbeat.as_mut().reset(Instant::now() + after),
                        Ok(Beat::Unchanged) => {}
                        Err(ended) => break ended,
                    }
                    if self.connection.is_some() {
                        connect_by = None;
                    }
                }
                Step::Requested(Some(ToSession::Upgrade(websocket))) => {
                    if let Some(websocket) =
                        Box::pin(self.upgrade(*websocket, &mut requests, &mut poll)).await
                    {
                        // From here on the websocket is the transport: requests naming the
                        // session are refused, and nothing is left waiting for a poll.
                        self.ctx.sessions.remove(engine_id);
                        return Ok(websocket);
                    }
                }
                Step::Requested(None) => break "transport close",
                Step::Queued(Next::Frame(first)) => {
                    if let Some(answer) = poll.take() {
                        let _ = answer.send(self.payload(first));
                    }
                }
                Step::Queued(Next::TooSlow) => break self.too_slow(),
                Step::Queued(Next::Terminated) => break "server namespace disconnect",
                Step::Heartbeat => match self.heartbeat_due() {
                    Ok(after) => heartbeat.as_mut().reset(Instant::now() + after),
                    Err(ended) => break ended,
                },
                Step::NotConnected => break "transport close",
                Step::ShuttingDown => break "server shutting down",
                Step::Received(_) => {}
            }
        };
        // A poll still waiting learns that the session closed.
        if let Some(answer) = poll {
            let _ = answer.send(encode_texts(["1"], framing(self.eio)));
        }
        Err(ended)
    }

    /// `first` and every packet queued behind it, as one polling payload.
    fn payload(&mut self, first: FrameText) -> String {
        let mut packets = vec![first];
        while let Some(next) = self.socket.outbox.pop() {
            packets.push(next);
        }
        if self.socket.offsets {
            for packet in &packets {
                self.written.record(packet);
            }
        }
        encode_texts(packets.iter().map(FrameText::as_str), framing(self.eio))
    }

    /// A POST's payload, packet by packet.
    fn on_post(&mut self, body: &str) -> Result<Beat, Ended> {
        let packets = decode(body, framing(self.eio)).map_err(|e| self.broken(&e.to_string()))?;
        let mut beat = Beat::Unchanged;
        for packet in packets {
            if let Beat::Alive(after) = self.on_packet(packet)? {
                beat = Beat::Alive(after);
            }
        }
        Ok(beat)
    }

    /// The polling → websocket upgrade: `2probe` answered `3probe`, the poll waiting (or the
    /// next) answered with a noop so the client's polling pauses, then `5` on the websocket.
    /// `None` if the client did not finish it within `socketio.upgradeTimeout`: polling goes on.
    async fn upgrade(
        &mut self,
        mut websocket: WebSocket,
        requests: &mut mpsc::Receiver<ToSession>,
        poll: &mut Option<oneshot::Sender<String>>,
    ) -> Option<WebSocket> {
        let framing = framing(self.eio);
        let noop = move || encode_texts(["6"], framing);
        let deadline = tokio::time::sleep(self.ctx.options.upgrade_timeout);
        tokio::pin!(deadline);
        let mut probed = false;
        loop {
            let step = tokio::select! {
                message = websocket.next() => Step::Received(message),
                request = requests.recv() => Step::Requested(request),
                () = &mut deadline => return None,
            };
            match step {
                Step::Received(Some(Ok(Message::Text(text)))) => {
                    match Packet::parse(text.as_str()) {
                        Ok(Packet::Ping("probe")) if !probed => {
                            probed = true;
                            if !send(&mut websocket, FrameText::from_static("3probe")).await {
                                return None;
                            }
                            if let Some(answer) = poll.take() {
                                let _ = answer.send(noop());
                            }
                        }
                        Ok(Packet::Upgrade) if probed => return Some(websocket),
                        _ => return None,
                    }
                }
                Step::Received(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Step::Received(_) => return None,
                Step::Requested(Some(ToSession::Poll(answer))) => {
                    if probed {
                        let _ = answer.send(noop());
                    } else {
                        *poll = Some(answer);
                    }
                }
                Step::Requested(Some(ToSession::Post(body, answer))) => {
                    let read = self.on_post(&body);
                    let _ = answer.send(read.is_ok());
                    if read.is_err() {
                        return None;
                    }
                }
                Step::Requested(_) => return None,
                _ => {}
            }
        }
    }

    /// Reads and writes a websocket until the client leaves, stops answering, or reads too
    /// slowly.
    async fn serve(&mut self, websocket: &mut WebSocket) -> Ended {
        let heartbeat = tokio::time::sleep(self.heartbeat_after());
        tokio::pin!(heartbeat);
        let mut shutdown = self.ctx.shutdown.clone();
        let stopping = shutdown.wait_for(|stopping| *stopping);
        tokio::pin!(stopping);
        // Boxed: only a session that has not yet connected carries it.
        let mut connect_by: Option<Pin<Box<Sleep>>> = (self.connection.is_none()
            && self.eio == Eio::V4)
            .then(|| Box::pin(tokio::time::sleep(CONNECT_TIMEOUT)));
        let reads = WokenOnly::new();
        // The shutdown and the heartbeat, polled only once one of them woke the task: not at
        // every delivery (docs/performance.md, "Instructions per delivery").
        let others = WokenOnly::new();
        // A ping came (or, before this loop, may have come during an upgrade): tungstenite
        // answers it, and its pong must go out before our frames.
        let mut owes_pong = true;
        loop {
            let connecting = self.connection.is_none() && connect_by.is_some();
            let step = tokio::select! {
                biased;
                step = std::future::poll_fn(|cx| others.poll(cx, |cx| {
                    if stopping.as_mut().poll(cx).is_ready() {
                        return std::task::Poll::Ready(Step::ShuttingDown);
                    }
                    heartbeat.as_mut().poll(cx).map(|()| Step::Heartbeat)
                })) => step,
                // The socket's queue, read afresh each time: a recovered session's is another.
                next = self.socket.outbox.next() => Step::Queued(next),
                message = next_message(websocket, &reads) => Step::Received(message),
                () = until(&mut connect_by), if connecting => Step::NotConnected,
            };
            match step {
                Step::Received(Some(Ok(message))) => {
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Close(_) => return "transport close",
                        // Echo sends no binary attachments: a binary frame is a broken client.
                        Message::Binary(_) => return self.broken("a binary frame"),
                        Message::Ping(_) => {
                            owes_pong = true;
                            continue;
                        }
                        Message::Pong(_) | Message::Frame(_) => continue,
                    };
                    let packet = match Packet::parse(text.as_str()) {
                        Ok(packet) => packet,
                        Err(e) => return self.broken(&e.to_string()),
                    };
                    match self.on_packet(packet) {
                        Ok(Beat::Alive(after)) => heartbeat.as_mut().reset(Instant::now() + after),
                        Ok(Beat::Unchanged) => {}
                        Err(ended) => return ended,
                    }
                    if self.connection.is_some() {
                        connect_by = None; // connected: the deadline's timer is freed
                    }
                }
                Step::Received(_) => return "transport close",
                Step::Queued(Next::Frame(frame)) => {
                    let ping_timeout = self.ctx.options.ping_timeout;
                    let after_stall = self.heartbeat_after();
                    let Session {
                        socket, written, ..
                    } = self;
                    let offsets = socket.offsets;
                    let owes = std::mem::take(&mut owes_pong);
                    let write = write_queued(websocket, frame, &socket.outbox, owes, |packet| {
                        if offsets {
                            written.record(packet);
                        }
                    });
                    tokio::pin!(write);
                    match poll_once(write.as_mut()).await {
                        std::task::Poll::Ready(true) => continue,
                        std::task::Poll::Ready(false) => return "transport close",
                        std::task::Poll::Pending => {}
                    }
                    let mut stalled = false;
                    loop {
                        tokio::select! {
                            biased;
                            written = &mut write => if written { break } else { return "transport close" },
                            // Blocked writing to a client that does not read: its queue
                            // overflowed meanwhile. Drop it now; a close frame could not
                            // reach it anyway.
                            () = socket.outbox.overflowed() => return too_slow(&socket.id),
                            // No timer per write (one per delivery costs throughput): the
                            // heartbeat's, then one ping timeout more, bound a stalled write.
                            () = &mut heartbeat => {
                                if stalled {
                                    return "transport close";
                                }
                                stalled = true;
                                heartbeat.as_mut().reset(Instant::now() + ping_timeout);
                            }
                        }
                    }
                    // The heartbeat was polled here with the task's own waker.
                    others.rearm();
                    if stalled {
                        // Nothing was read meanwhile: the client's pings wait unread.
                        self.awaiting_pong = false;
                        heartbeat.as_mut().reset(Instant::now() + after_stall);
                    }
                }
                Step::Queued(Next::TooSlow) => {
                    let ended = self.too_slow();
                    Box::pin(writer::close(
                        websocket,
                        1008,
                        "too slow to read its events",
                    ))
                    .await;
                    return ended;
                }
                // Socket.IO has no app-requested termination.
                Step::Queued(Next::Terminated) => return "server namespace disconnect",
                Step::ShuttingDown => {
                    // A plain close: clients reconnect (to the next Herald) as after any drop.
                    Box::pin(writer::close(websocket, 1001, "server shutting down")).await;
                    return "server shutting down";
                }
                Step::NotConnected => return "transport close",
                Step::Heartbeat => match self.heartbeat_due() {
                    Ok(after) => heartbeat.as_mut().reset(Instant::now() + after),
                    Err(ended) => return ended,
                },
                Step::Requested(_) => {}
            }
        }
    }

    /// A client that sent what no Socket.IO client sends: closed.
    fn broken(&self, what: &str) -> Ended {
        console::dev_for(
            self.socket.id.as_str(),
            &format!("{} sent {what}: closing its connection", self.socket.id),
        );
        "transport error"
    }

    /// Counts and logs a client closed for reading too slowly.
    fn too_slow(&self) -> Ended {
        too_slow(&self.socket.id)
    }

    /// Leaves everything: the queue refuses, the connection releases its channels and count.
    /// With recovery, a session its client merely lost is parked instead, for it to come back.
    fn end(self, ended: Ended) {
        self.ctx.open.fetch_sub(1, Ordering::Relaxed);
        let lost = matches!(ended, "transport close" | "ping timeout");
        let stopping = *self.ctx.shutdown.borrow();
        if let (Some(pid), Some(connection)) = (&self.pid, &self.connection)
            && lost
            && !stopping
            && !self.socket.outbox.has_overflowed()
        {
            connection.leave_presence_channels(ended);
            self.socket.outbox.unwatch();
            let parked = Parked {
                socket: self.socket.clone(),
                connection: connection.clone(),
                written: self.written,
            };
            let window = self.ctx.options.recovery_window;
            let most = self.ctx.limits.max_connections;
            match self.ctx.recovery.park(pid, parked, window, most) {
                Ok(()) => return,
                Err(refused) => return refused.close(ended),
            }
        }
        self.socket.outbox.close();
        match &self.connection {
            Some(connection) => connection.close(ended),
            // Never connected: give back the place its handshake reserved.
            None => self.ctx.hub.release_reservation(),
        }
    }
}

/// Counts and logs socket `id` closed for reading too slowly.
fn too_slow(id: &SocketId) -> Ended {
    metrics().slow_disconnections.inc();
    tracing::warn!(socket_id = %id, "send queue full: disconnecting slow client");
    console::dev(&format!("{id} disconnected: too slow to read its events"));
    "transport error"
}

/// What a client coming back puts in its CONNECT: its session's private id and the offset of
/// the last publication it got.
#[derive(serde::Deserialize)]
struct ComingBack {
    pid: String,
    #[serde(default)]
    offset: Option<String>,
}

/// The refusal of a namespace other than `/`, in the client's protocol.
fn invalid_namespace(eio: Eio, namespace: &str) -> FrameText {
    let detail = match eio {
        Eio::V3 => json!("Invalid namespace"),
        Eio::V4 => json!({"message": "Invalid namespace"}),
    };
    // The namespace as the client wrote it, if it is plain; it is echoed back, never logged.
    let namespace: String = namespace
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ',')
        .take(128)
        .collect();
    FrameText::from(format!("44{namespace},{detail}"))
}
