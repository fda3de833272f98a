//! `floor`: the least a Socket.IO fan-out server can do, to show how far a real one is from the
//! limit. It speaks just enough Engine.IO (v3 and v4) for `fanout` to connect and subscribe,
//! PSUBSCRIBEs Redis, encodes each event once **as a complete websocket frame** and hands the
//! same bytes to every connection; each connection's writer sends everything queued in one
//! write. No channels, auth, presence, heartbeats or limits: not a server, a measuring stick.
//! Events also come in as `fanout --via http` posts them (`POST /apps/<id>/events`), for
//! machines without Redis.

use crate::ws;
use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use clap::Args;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Options of `floor`.
#[derive(Args, Debug, Clone)]
pub(crate) struct FloorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6002")]
    listen: String,
    /// Redis to subscribe to.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Prefix of the Redis channels (`PSUBSCRIBE <prefix>*`).
    #[arg(long, default_value = "")]
    prefix: String,
}

/// Frames queued per connection (as Herald's default).
const QUEUE: usize = 1024;

type Subscribers = Arc<RwLock<Vec<mpsc::Sender<Bytes>>>>;

/// Runs until killed.
pub(crate) async fn run(args: FloorArgs) -> anyhow::Result<()> {
    let subscribers: Subscribers = Arc::default();
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!("floor listening on {}", args.listen);
    let (fan_args, fan_subscribers) = (args.clone(), subscribers.clone());
    tokio::spawn(async move {
        if let Err(e) = fan_out(fan_args, fan_subscribers).await {
            eprintln!("floor: the Redis subscriber stopped: {e:#}");
        }
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let subscribers = subscribers.clone();
        tokio::spawn(async move {
            let _ = serve(stream, subscribers).await;
        });
    }
}

#[derive(Deserialize)]
struct Laravel<'a> {
    event: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

async fn fan_out(args: FloorArgs, subscribers: Subscribers) -> anyhow::Result<()> {
    let client = redis::Client::open(args.redis.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(format!("{}*", args.prefix)).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let channel = message
            .get_channel_name()
            .strip_prefix(args.prefix.as_str())
            .unwrap_or_default()
            .to_owned();
        let Ok(parsed) = serde_json::from_slice::<Laravel<'_>>(message.get_payload_bytes()) else {
            continue;
        };
        publish(&subscribers, &channel, &parsed.event, parsed.data)?;
    }
    Ok(())
}

/// Encodes the event once and queues the same bytes for every subscriber.
fn publish(
    subscribers: &Subscribers,
    channel: &str,
    event: &str,
    data: &RawValue,
) -> anyhow::Result<()> {
    let frame = text_frame(&format!(
        "42[{},{},{}]",
        serde_json::to_string(event)?,
        serde_json::to_string(channel)?,
        data.get()
    ));
    let subscribers = subscribers.read().unwrap_or_else(|p| p.into_inner());
    for subscriber in subscribers.iter() {
        let _ = subscriber.try_send(frame.clone());
    }
    Ok(())
}

/// What `fanout --via http` posts.
#[derive(Deserialize)]
struct Posted<'a> {
    channel: String,
    name: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Answers `POST /apps/<id>/events` requests on one kept-alive connection, the first one's head
/// already read.
async fn serve_publishes(
    mut stream: TcpStream,
    mut head: String,
    mut buffer: BytesMut,
    subscribers: Subscribers,
) -> anyhow::Result<()> {
    loop {
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())
                    .flatten()
            })
            .context("no Content-Length")?;
        while buffer.len() < length {
            if stream.read_buf(&mut buffer).await? == 0 {
                return Ok(());
            }
        }
        let body = buffer.split_to(length);
        let posted: Posted<'_> = serde_json::from_slice(&body).context("the posted event")?;
        publish(&subscribers, &posted.channel, &posted.name, posted.data)?;
        stream
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            )
            .await?;
        head = ws::read_http_head_from(&mut stream, &mut buffer).await?;
    }
}

fn text_frame(text: &str) -> Bytes {
    ws::text_frame(text, false)
}

async fn serve(mut stream: TcpStream, subscribers: Subscribers) -> anyhow::Result<()> {
    // As Herald and laravel-echo-server (Node) do: no Nagle delay on small frames.
    stream.set_nodelay(true)?;
    let (head, leftover) = ws::read_http_head(&mut stream).await?;
    if head.starts_with("POST ") {
        return serve_publishes(stream, head, leftover, subscribers).await;
    }
    let eio = handshake(&mut stream, &head).await?;
    let (reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    tx.try_send(text_frame(
        r#"0{"sid":"floor","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#,
    ))?;
    if eio == 3 {
        tx.try_send(text_frame("40"))?;
    }
    // One writer per socket: take everything queued, one write.
    let writer_task = tokio::spawn(async move {
        let mut batch = BytesMut::new();
        while let Some(frame) = rx.recv().await {
            batch.extend_from_slice(&frame);
            while let Ok(frame) = rx.try_recv() {
                batch.extend_from_slice(&frame);
            }
            if writer.write_all(&batch).await.is_err() {
                break;
            }
            batch.clear();
        }
    });
    let result = read_frames(reader, leftover, &tx, &subscribers).await;
    writer_task.abort();
    subscribers
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|s| !s.same_channel(&tx));
    result
}

/// Answers the HTTP upgrade request `head`; returns the Engine.IO version.
async fn handshake(stream: &mut TcpStream, head: &str) -> anyhow::Result<u8> {
    let key = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .context("no Sec-WebSocket-Key")?;
    let eio = if head.lines().next().unwrap_or_default().contains("EIO=3") {
        3
    } else {
        4
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(eio)
}

/// Reads masked client frames: answers pings, acknowledges CONNECT, registers the subscribe.
async fn read_frames(
    mut reader: OwnedReadHalf,
    mut buffer: BytesMut,
    tx: &mpsc::Sender<Bytes>,
    subscribers: &Subscribers,
) -> anyhow::Result<()> {
    let mut subscribed = false;
    while let Some(head) = ws::next_frame(&mut reader, &mut buffer).await? {
        if head.opcode == 8 {
            return Ok(());
        }
        let payload = &buffer[head.start..head.start + head.len];
        if head.opcode == 1 {
            if payload == b"2" {
                let _ = tx.try_send(text_frame("3"));
            } else if payload == b"40" {
                let _ = tx.try_send(text_frame(r#"40{"sid":"floor"}"#));
            } else if payload.starts_with(b"42[\"subscribe\"") && !subscribed {
                subscribed = true;
                subscribers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(tx.clone());
            }
        }
        buffer.advance(head.start + head.len);
    }
    Ok(())
}
