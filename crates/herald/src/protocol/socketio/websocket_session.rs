//! One Engine.IO session over a websocket, on Herald's own connection core: the open packet,
//! heartbeats (Engine.IO 3: the client pings; Engine.IO 4: the server pings), the Socket.IO
//! CONNECT of the default namespace, Echo's events handed to [`Connection`], and the socket's
//! queue written out — all in the connection's one task.

use super::SocketIoContext;
use super::connection::{Connection, Handshake};
use super::core_socket::CoreSocket;
use crate::connection::writer::{self, send, write_queued};
use crate::connection::{Next, Outbox, WebSocket, until};
use crate::console;
use crate::hub::SocketId;
use crate::metrics::{SOCKETIO, metrics};
use crate::protocol::engineio::{Kind, Packet, SocketPacket};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures_util::StreamExt;
use rand::RngCore;
use serde_json::{Value, json};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::Message;

/// How long an Engine.IO 4 client has to send CONNECT after the open packet.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The Engine.IO protocol revision a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Eio {
    /// socket.io-client 2.x: the client pings, the server connects it to `/` unasked.
    V3,
    /// socket.io-client 3.x/4.x: the server pings, the client asks to connect.
    V4,
}

/// A fresh random id: 16 URL-safe characters (96 random bits).
pub(super) fn new_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a session ended: the reason laravel-echo-server logs on leave (socket.io's names).
type Ended = &'static str;

/// Serves one Engine.IO session to its end, once `upgraded` (hyper's protocol switch) yields
/// its websocket; a session whose upgrade fails gives back its handshake's reservation.
pub(super) async fn run(
    ctx: Arc<SocketIoContext>,
    upgraded: crate::connection::Upgrading,
    eio: Eio,
    handshake: Box<Handshake>,
) {
    let Some(mut websocket) = upgraded.await else {
        ctx.hub.release_reservation();
        return;
    };
    let engine_id = new_id();
    // Socket.IO 2 clients take the engine's id as the socket's; 3+ are told the socket's own.
    let socket_id = match eio {
        Eio::V3 => SocketId::new(&engine_id),
        Eio::V4 => SocketId::new(&new_id()),
    };
    let socket = Arc::new(CoreSocket {
        id: socket_id,
        outbox: Arc::new(Outbox::new(ctx.limits.max_queue_bytes)),
    });
    ctx.open.fetch_add(1, Ordering::Relaxed);
    let mut session = Session {
        ctx,
        socket,
        eio,
        handshake: Some(handshake),
        connection: None,
    };
    let open = session.open_packet(&engine_id);
    drop(engine_id);
    // Boxed, like every rarely used step that awaits: a task's allocation is sized for the
    // largest state its future can be in, and an idle session should not carry it.
    let ended = if Box::pin(send(&mut websocket, open)).await {
        if eio == Eio::V3 {
            session.connect();
        }
        session.serve(&mut websocket).await
    } else {
        "transport close"
    };
    session.end(ended);
}

struct Session {
    ctx: Arc<SocketIoContext>,
    socket: Arc<CoreSocket>,
    eio: Eio,
    /// Until CONNECT: what the connection needs of the opening request.
    handshake: Option<Box<Handshake>>,
    /// After CONNECT: Echo's side of the socket.
    connection: Option<Arc<Connection<Arc<CoreSocket>>>>,
}

/// What woke the session's task.
enum Step {
    Received(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Queued(Next),
    Heartbeat,
    NotConnected,
    ShuttingDown,
}

impl Session {
    fn open_packet(&self, engine_id: &str) -> Bytes {
        let options = &self.ctx.options;
        let mut open = json!({
            "sid": engine_id,
            "upgrades": [],
            "pingInterval": options.ping_interval.as_millis() as u64,
            "pingTimeout": options.ping_timeout.as_millis() as u64,
        });
        if self.eio == Eio::V4 {
            open["maxPayload"] = json!(options.max_http_buffer_size);
        }
        Bytes::from(format!("0{open}"))
    }

    /// Joins the default namespace: the connection counts from here, and the client is told.
    fn connect(&mut self) {
        let Some(handshake) = self.handshake.take() else {
            return; // already connected: a second CONNECT changes nothing
        };
        let subscriber: Arc<dyn crate::hub::Subscriber> = self.socket.clone();
        self.connection = Some(Connection::open(self.ctx.clone(), subscriber, *handshake));
        let answer = match self.eio {
            Eio::V3 => Bytes::from_static(b"40"),
            Eio::V4 => Bytes::from(format!("40{}", json!({"sid": self.socket.id.as_str()}))),
        };
        let _ = self.socket.outbox.push(answer);
    }

    /// The heartbeat's first deadline: Engine.IO 4 pings after an interval; an Engine.IO 3
    /// client must ping within an interval and a timeout.
    fn heartbeat_after(&self) -> Duration {
        let options = &self.ctx.options;
        match self.eio {
            Eio::V3 => options.ping_interval + options.ping_timeout,
            Eio::V4 => options.ping_interval,
        }
    }

    /// Reads and writes until the client leaves, stops answering, or reads too slowly.
    async fn serve(&mut self, websocket: &mut WebSocket) -> Ended {
        let outbox = self.socket.outbox.clone();
        let heartbeat = tokio::time::sleep(self.heartbeat_after());
        tokio::pin!(heartbeat);
        let mut awaiting_pong = false;
        let mut shutdown = self.ctx.shutdown.clone();
        let stopping = shutdown.wait_for(|stopping| *stopping);
        tokio::pin!(stopping);
        // Boxed: only a session that has not yet connected carries it.
        let mut connect_by: Option<Pin<Box<Sleep>>> =
            (self.eio == Eio::V4).then(|| Box::pin(tokio::time::sleep(CONNECT_TIMEOUT)));
        loop {
            let connecting = self.connection.is_none() && connect_by.is_some();
            let step = tokio::select! {
                biased;
                _ = &mut stopping => Step::ShuttingDown,
                next = outbox.next() => Step::Queued(next),
                message = websocket.next() => Step::Received(message),
                () = &mut heartbeat => Step::Heartbeat,
                () = until(&mut connect_by), if connecting => Step::NotConnected,
            };
            match step {
                Step::Received(Some(Ok(message))) => {
                    if self.eio == Eio::V3 {
                        // Engine.IO 3 takes any packet as a sign of life.
                        heartbeat
                            .as_mut()
                            .reset(Instant::now() + self.heartbeat_after());
                    }
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Close(_) => return "transport close",
                        // Echo sends no binary attachments: a binary frame is a broken client.
                        Message::Binary(_) => return self.broken("a binary frame"),
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                    };
                    match Packet::parse(text.as_str()) {
                        Ok(Packet::Message(message)) => {
                            if let Err(ended) = self.on_message(message) {
                                return ended;
                            }
                            if self.connection.is_some() {
                                connect_by = None; // connected: the deadline's timer is freed
                            }
                        }
                        Ok(Packet::Ping(data)) if self.eio == Eio::V3 => {
                            let pong = Bytes::from(format!("3{data}"));
                            if !Box::pin(send(websocket, pong)).await {
                                return "transport close";
                            }
                        }
                        Ok(Packet::Pong(_)) if self.eio == Eio::V4 => {
                            awaiting_pong = false;
                            heartbeat
                                .as_mut()
                                .reset(Instant::now() + self.ctx.options.ping_interval);
                        }
                        Ok(Packet::Close) => return "transport close",
                        Ok(_) => {}
                        Err(e) => return self.broken(&e.to_string()),
                    }
                }
                Step::Received(_) => return "transport close",
                Step::Queued(Next::Frame(frame)) => {
                    let write = write_queued(websocket, frame, &outbox);
                    tokio::pin!(write);
                    let mut stalled = false;
                    loop {
                        tokio::select! {
                            biased;
                            written = &mut write => if written { break } else { return "transport close" },
                            // Blocked writing to a client that does not read: its queue
                            // overflowed meanwhile. Drop it now; a close frame could not
                            // reach it anyway.
                            () = outbox.overflowed() => return self.too_slow(),
                            // No timer per write (one per delivery costs throughput): the
                            // heartbeat's, then one ping timeout more, bound a stalled write.
                            () = &mut heartbeat => {
                                if stalled {
                                    return "transport close";
                                }
                                stalled = true;
                                heartbeat.as_mut().reset(Instant::now() + self.ctx.options.ping_timeout);
                            }
                        }
                    }
                    if stalled {
                        // Nothing was read meanwhile: the client's pings wait unread.
                        awaiting_pong = false;
                        heartbeat
                            .as_mut()
                            .reset(Instant::now() + self.heartbeat_after());
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
                Step::Heartbeat if self.eio == Eio::V3 || awaiting_pong => return "ping timeout",
                Step::Heartbeat => {
                    awaiting_pong = true;
                    heartbeat
                        .as_mut()
                        .reset(Instant::now() + self.ctx.options.ping_timeout);
                    if !Box::pin(send(websocket, Bytes::from_static(b"2"))).await {
                        return "transport close";
                    }
                }
            }
        }
    }

    /// One Socket.IO packet. `Err` ends the session.
    fn on_message(&mut self, text: &str) -> Result<(), Ended> {
        let packet = SocketPacket::parse(text).map_err(|e| self.broken(&e.to_string()))?;
        if packet.namespace != "/" {
            // Echo uses the default namespace only.
            if packet.kind == Kind::Connect {
                let _ = self
                    .socket
                    .outbox
                    .push(invalid_namespace(self.eio, packet.namespace));
            }
            return Ok(());
        }
        match packet.kind {
            Kind::Connect => self.connect(),
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
                    "unsubscribe" => connection.unsubscribe(&self.socket, payload),
                    "client event" => connection.whisper(&self.socket, payload),
                    _ => {}
                }
            }
            Kind::Ack | Kind::ConnectError => {}
        }
        Ok(())
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
        metrics().slow_disconnections.inc();
        tracing::warn!(socket_id = %self.socket.id, "send queue full: disconnecting slow client");
        console::dev(&format!(
            "{} disconnected: too slow to read its events",
            self.socket.id
        ));
        "transport error"
    }

    /// Leaves everything: the queue refuses, the connection releases its channels and count.
    fn end(self, ended: Ended) {
        self.socket.outbox.close();
        match &self.connection {
            Some(connection) => connection.close(ended),
            // Never connected: give back the place its handshake reserved.
            None => self.ctx.hub.release_reservation(),
        }
        self.ctx.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The refusal of a namespace other than `/`, in the client's protocol.
fn invalid_namespace(eio: Eio, namespace: &str) -> Bytes {
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
    Bytes::from(format!("44{namespace},{detail}"))
}
