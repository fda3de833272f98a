//! `floor`: the least a Socket.IO fan-out server can do, to show how far a real one is from the
//! limit. It speaks just enough Engine.IO (v3 and v4) for `fanout` to connect and subscribe,
//! PSUBSCRIBEs Redis, encodes each event once and hands the same bytes to every connection.
//! No channels, auth, presence, heartbeats or limits: not a server, a measuring stick.

use anyhow::Context;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

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

type Subscribers = Arc<Mutex<Vec<mpsc::Sender<Message>>>>;

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
        tokio::spawn(serve(stream, subscribers.clone()));
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
        // Encoded once; every connection gets a clone of the same bytes.
        let frame = Message::Text(Utf8Bytes::from(format!(
            "42[{},{},{}]",
            serde_json::to_string(&parsed.event)?,
            serde_json::to_string(&channel)?,
            parsed.data.get()
        )));
        let targets = subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for target in targets {
            let _ = target.try_send(frame.clone());
        }
    }
    Ok(())
}

// The handshake callback's error type is tungstenite's `ErrorResponse`, which is large.
#[allow(clippy::result_large_err)]
async fn serve(stream: TcpStream, subscribers: Subscribers) -> anyhow::Result<()> {
    let mut eio = 4;
    let callback = |request: &Request, response: Response| {
        if request.uri().query().unwrap_or_default().contains("EIO=3") {
            eio = 3;
        }
        Ok(response)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, callback).await?;
    let (mut sink, mut source) = ws.split();
    sink.send(Message::text(
        r#"0{"sid":"floor","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#,
    ))
    .await?;
    if eio == 3 {
        sink.send(Message::text("40")).await?;
    }
    let (tx, mut rx) = mpsc::channel::<Message>(1024);
    // One writer per socket: take what is queued, write it all, flush once.
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            if sink.feed(message).await.is_err() {
                break;
            }
            while let Ok(message) = rx.try_recv() {
                if sink.feed(message).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
    });
    let mut subscribed = false;
    while let Some(Ok(Message::Text(text))) = source.next().await {
        let text = text.as_str();
        if text == "40" {
            let _ = tx.send(Message::text(r#"40{"sid":"floor"}"#)).await;
        } else if text == "2" {
            let _ = tx.send(Message::text("3")).await;
        } else if text.starts_with("42[\"subscribe\"") && !subscribed {
            subscribed = true;
            subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(tx.clone());
        }
    }
    writer.abort();
    subscribers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|s| !s.same_channel(&tx));
    Ok(())
}
