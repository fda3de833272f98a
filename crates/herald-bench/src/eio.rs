//! A minimal Socket.IO subscriber over an Engine.IO websocket (v3 or v4), written for load:
//! no JSON parsing on the receive path, only the two numbers the benchmark needs.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// A connected, subscribed socket.
pub(crate) struct Subscriber {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    eio: u8,
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

impl Subscriber {
    /// Connects to `base` (e.g. `ws://127.0.0.1:6001`), completes the Socket.IO handshake and
    /// subscribes to `channel`.
    pub(crate) async fn connect(base: &str, eio: u8, channel: &str) -> anyhow::Result<Subscriber> {
        Self::connect_from(base, eio, channel, None).await
    }

    /// As [`Subscriber::connect`], from a chosen local address (several loopback addresses
    /// get past the ~28k ephemeral ports of one source address).
    pub(crate) async fn connect_from(
        base: &str,
        eio: u8,
        channel: &str,
        source: Option<std::net::IpAddr>,
    ) -> anyhow::Result<Subscriber> {
        let url = format!("{base}/socket.io/?EIO={eio}&transport=websocket");
        let mut ws = match source {
            None => {
                connect_async(&url)
                    .await
                    .with_context(|| format!("connecting to {url}"))?
                    .0
            }
            Some(source) => {
                let authority = base
                    .trim_start_matches("ws://")
                    .split('/')
                    .next()
                    .unwrap_or_default();
                let address = tokio::net::lookup_host(authority)
                    .await?
                    .find(std::net::SocketAddr::is_ipv4)
                    .with_context(|| format!("{authority} has no IPv4 address"))?;
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind((source, 0).into())?;
                let tcp = socket
                    .connect(address)
                    .await
                    .with_context(|| format!("connecting to {url} from {source}"))?;
                tokio_tungstenite::client_async(url.as_str(), MaybeTlsStream::Plain(tcp))
                    .await?
                    .0
            }
        };
        let open = next_text(&mut ws).await?;
        let Some(json) = open.strip_prefix('0') else {
            bail!("expected an Engine.IO open packet, got {open:?}");
        };
        let ping_ms = serde_json::from_str::<serde_json::Value>(json)?
            .get("pingInterval")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(25_000);
        if eio == 4 {
            ws.send(Message::text("40")).await?;
        }
        // EIO4: the CONNECT acknowledgement; EIO3: the server's unsolicited "40".
        // EIO4 servers ping right away: answer it here too, or the server times us out.
        loop {
            let packet = next_text(&mut ws).await?;
            if packet == "2" {
                ws.send(Message::text("3")).await?;
            } else if packet.starts_with("40") {
                break;
            }
        }
        let subscribe = format!(
            "42[\"subscribe\",{{\"channel\":\"{channel}\",\"auth\":{{\"headers\":{{}}}}}}]"
        );
        ws.send(Message::text(subscribe)).await?;
        Ok(Subscriber {
            ws,
            eio,
            ping_interval: Duration::from_millis(ping_ms),
        })
    }

    /// Receives until `on_event` returns false or the socket closes. Answers EIO4 pings and
    /// sends EIO3 pings.
    pub(crate) async fn run(
        mut self,
        mut on_event: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<()> {
        let mut ping = tokio::time::interval(self.ping_interval);
        ping.tick().await;
        loop {
            tokio::select! {
                frame = self.ws.next() => {
                    let Some(frame) = frame else { return Ok(()) };
                    match frame? {
                        Message::Text(text) => {
                            let text = text.as_str();
                            if text == "2" {
                                self.ws.send(Message::text("3")).await?;
                            } else if text.starts_with("42") && !on_event(text) {
                                let _ = self.ws.close(None).await;
                                return Ok(());
                            }
                        }
                        Message::Close(_) => return Ok(()),
                        _ => {}
                    }
                }
                _ = ping.tick(), if self.eio == 3 => {
                    self.ws.send(Message::text("2")).await?;
                }
            }
        }
    }
}

async fn next_text(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> anyhow::Result<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Err(_) => bail!("no packet within 10 s"),
            Ok(None) => bail!("connection closed during the handshake"),
            Ok(Some(frame)) => {
                if let Message::Text(text) = frame? {
                    return Ok(text.as_str().to_owned());
                }
            }
        }
    }
}

/// Reads `"seq":N` and `"t":N` out of an event frame without parsing the JSON.
pub(crate) fn stamp(frame: &str) -> Option<Stamp> {
    Some(Stamp {
        seq: number_after(frame, "\"seq\":")?,
        sent_us: number_after(frame, "\"t\":")?,
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
    }
}
