//! A minimal subscriber, written for load: Socket.IO over an Engine.IO websocket (v3 or v4), or
//! the Pusher protocol over `/app/{key}`. No JSON parsing on the receive path, only the two
//! numbers the benchmark needs.

use crate::ws::{self, FrameHead};
use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

/// The protocol a subscriber speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wire {
    /// Socket.IO over Engine.IO 3 or 4.
    EngineIo(u8),
    /// The Pusher protocol (7) with this app key.
    Pusher(String),
}

/// A connected, subscribed socket.
pub(crate) struct Subscriber {
    stream: TcpStream,
    buffer: BytesMut,
    wire: Wire,
    ping_interval: Duration,
}

/// One event frame: the `seq` and `t` fields of its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// Publication number.
    pub(crate) seq: u64,
    /// Intended send time, microseconds since the run's start.
    pub(crate) sent_us: u64,
}

/// Connects `n` subscribers to `url`, 128 at a time, spread over the source addresses
/// 127.0.0.2–.9 (tens of thousands fit past one address's ephemeral ports); subscriber `i`
/// subscribes to `channel(i)` and comes from address `(i + shift) % 8`.
pub(crate) async fn connect_many(
    url: &str,
    wire: &Wire,
    n: usize,
    shift: usize,
    channel: impl Fn(usize) -> String,
) -> Vec<anyhow::Result<Subscriber>> {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..n)
        .map(|i| {
            let source = std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                127,
                0,
                0,
                2 + ((i + shift) % 8) as u8,
            ));
            let channels = [channel(i)];
            async move { Subscriber::connect_from(url, wire, &channels, Some(source)).await }
        })
        .buffer_unordered(128)
        .collect()
        .await
}

impl Subscriber {
    /// Connects to `base` (e.g. `ws://127.0.0.1:6001`) from `source` if given (several
    /// loopback addresses get past the ~28k ephemeral ports of one source address), completes
    /// the Socket.IO handshake and subscribes to each of `channels`.
    pub(crate) async fn connect_from(
        base: &str,
        wire: &Wire,
        channels: &[String],
        source: Option<std::net::IpAddr>,
    ) -> anyhow::Result<Subscriber> {
        let Some(authority) = base
            .strip_prefix("ws://")
            .map(|rest| rest.split('/').next().unwrap_or_default())
        else {
            bail!("{base}: only ws:// URLs are supported");
        };
        let address = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .find(std::net::SocketAddr::is_ipv4)
            .with_context(|| format!("{authority} has no IPv4 address"))?;
        let socket = tokio::net::TcpSocket::new_v4()?;
        if let Some(source) = source {
            socket.bind((source, 0).into())?;
        }
        let mut stream = socket
            .connect(address)
            .await
            .with_context(|| format!("connecting to {base}"))?;
        stream.set_nodelay(true)?;
        let eio = match wire {
            Wire::EngineIo(eio) => *eio,
            Wire::Pusher(key) => {
                let path = format!("/app/{key}?protocol=7&client=herald-bench");
                let buffer = ws::client_handshake(&mut stream, authority, &path).await?;
                let mut subscriber = Subscriber {
                    stream,
                    buffer,
                    wire: wire.clone(),
                    ping_interval: Duration::from_secs(120),
                };
                let established = subscriber.next_text_in(Duration::from_secs(10)).await?;
                if !established.contains("pusher:connection_established") {
                    bail!("expected pusher:connection_established, got {established:?}");
                }
                for channel in channels {
                    let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}});
                    subscriber.send(&subscribe.to_string()).await?;
                }
                return Ok(subscriber);
            }
        };
        let path = format!("/socket.io/?EIO={eio}&transport=websocket");
        let buffer = ws::client_handshake(&mut stream, authority, &path).await?;
        let mut subscriber = Subscriber {
            stream,
            buffer,
            wire: wire.clone(),
            ping_interval: Duration::from_secs(25),
        };
        let open = subscriber.next_text_in(Duration::from_secs(10)).await?;
        let Some(json) = open.strip_prefix('0') else {
            bail!("expected an Engine.IO open packet, got {open:?}");
        };
        let ping_ms = serde_json::from_str::<serde_json::Value>(json)?
            .get("pingInterval")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(25_000);
        subscriber.ping_interval = Duration::from_millis(ping_ms);
        if eio == 4 {
            subscriber.send("40").await?;
        }
        // EIO4: the CONNECT acknowledgement; EIO3: the server's unsolicited "40".
        // EIO4 servers ping right away: answer it here too, or the server times us out.
        loop {
            let packet = subscriber.next_text_in(Duration::from_secs(10)).await?;
            if packet == "2" {
                subscriber.send("3").await?;
            } else if packet.starts_with("40") {
                break;
            }
        }
        for channel in channels {
            let subscribe = format!(
                "42[\"subscribe\",{{\"channel\":\"{channel}\",\"auth\":{{\"headers\":{{}}}}}}]"
            );
            subscriber.send(&subscribe).await?;
        }
        Ok(subscriber)
    }

    async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.stream.write_all(&ws::text_frame(text, true)).await?;
        Ok(())
    }

    /// The next text frame, as an owned string (handshake only).
    async fn next_text_in(&mut self, timeout: Duration) -> anyhow::Result<String> {
        loop {
            let head = match tokio::time::timeout(
                timeout,
                ws::next_frame(&mut self.stream, &mut self.buffer),
            )
            .await
            {
                Err(_) => bail!("no packet within {timeout:?}"),
                Ok(frame) => frame?.context("connection closed during the handshake")?,
            };
            let FrameHead { opcode, start, len } = head;
            let text = String::from_utf8_lossy(&self.buffer[start..start + len]).into_owned();
            self.buffer.advance(start + len);
            match opcode {
                1 => return Ok(text),
                8 => bail!("the server closed the connection during the handshake"),
                _ => {}
            }
        }
    }

    /// Receives until `on_event` returns false, the socket closes or `stop` turns true.
    /// Answers EIO4 pings and sends EIO3 pings. `on_event` gets each `42…` frame's text.
    pub(crate) async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut on_event: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<()> {
        let mut ping = tokio::time::interval(self.ping_interval);
        ping.tick().await;
        loop {
            tokio::select! {
                frame = ws::next_frame(&mut self.stream, &mut self.buffer) => {
                    let Some(FrameHead { opcode, start, len }) = frame? else { return Ok(()) };
                    let end = start + len;
                    match opcode {
                        8 => return Ok(()),
                        1 => {
                            let payload = &self.buffer[start..end];
                            if payload == b"2" {
                                self.buffer.advance(end);
                                self.send("3").await?;
                                continue;
                            }
                            if payload.starts_with(PUSHER_PING) {
                                self.buffer.advance(end);
                                self.send(r#"{"event":"pusher:pong","data":{}}"#).await?;
                                continue;
                            }
                            let event = match self.wire {
                                Wire::EngineIo(_) => payload.starts_with(b"42"),
                                // Channel events; not pusher:… or pusher_internal:… frames.
                                Wire::Pusher(_) => !payload.starts_with(b"{\"event\":\"pusher"),
                            };
                            if event {
                                let text = std::str::from_utf8(payload).unwrap_or_default();
                                if !on_event(text) {
                                    return Ok(());
                                }
                            }
                        }
                        _ => {}
                    }
                    self.buffer.advance(end);
                }
                _ = ping.tick(), if self.wire == Wire::EngineIo(3) => {
                    self.send("2").await?;
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// How a Pusher server's ping starts.
const PUSHER_PING: &[u8] = br#"{"event":"pusher:ping""#;

/// Reads `"seq":N` and `"t":N` out of an event frame without parsing the JSON (in Pusher
/// frames the data is a JSON string, so the quotes come escaped).
pub(crate) fn stamp(frame: &str) -> Option<Stamp> {
    let field = |name: &str| {
        number_after(frame, &format!("\"{name}\":"))
            .or_else(|| number_after(frame, &format!("\\\"{name}\\\":")))
    };
    Some(Stamp {
        seq: field("seq")?,
        sent_us: field("t")?,
    })
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: &str = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_read_from_frames() {
        let frame = r#"42["Bench","bench",{"seq":42,"t":1234567,"pad":"xx"}]"#;
        assert_eq!(
            stamp(frame),
            Some(Stamp {
                seq: 42,
                sent_us: 1234567
            })
        );
        assert_eq!(stamp(r#"42["Other","bench",{}]"#), None);
        let pusher = r#"{"event":"Bench","channel":"bench","data":"{\"seq\":7,\"t\":99}"}"#;
        assert_eq!(
            stamp(pusher),
            Some(Stamp {
                seq: 7,
                sent_us: 99
            })
        );
    }
}
