//! `GET /console/api/stream`: the live feed, one JSON object per line (NDJSON), read by the page
//! with `fetch` (which, unlike `EventSource`, can send the token in a header).

use super::{ConsoleState, WatcherPlace, refusal};
use crate::hub::activity::{ActivityFeed, FEED_CAPACITY, Seen};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use bytes::BytesMut;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderValue};
use std::time::Duration;
use tokio::sync::watch;

/// A line sent when nothing happened for this long, so proxies keep the response open and a
/// browser that left is noticed (the write fails).
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Largest chunk written at once: what is waiting is gathered up to this.
const CHUNK_BYTES: usize = 64 * 1024;

/// Streams the activity tap to one console until the browser leaves or the server stops.
pub(super) async fn stream(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if !state.authorized(&headers) {
        return super::unauthorized();
    }
    let Some(place) = WatcherPlace::take(&state.watching) else {
        return refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many consoles are open on this node (at most 8): close one",
        );
    };
    let hello = serde_json::json!({
        "kind": "watching",
        "capacity": FEED_CAPACITY,
        "connections": state.hub.connection_count(),
    });
    let watch = Watch {
        feed: state.hub.activity().watch(),
        shutdown: state.shutdown.clone(),
        _place: place,
        hello: Some(Bytes::from(format!("{hello}\n"))),
    };
    let body = futures_util::stream::unfold(watch, |mut watch| async move {
        let chunk = watch.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), watch))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    super::protect(headers);
    response
}

/// One console's feed, and what ends it.
struct Watch {
    feed: ActivityFeed,
    shutdown: watch::Receiver<bool>,
    _place: WatcherPlace,
    /// The first line: the feed is live.
    hello: Option<Bytes>,
}

impl Watch {
    /// The next lines to write, gathered; `None` ends the response.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(hello) = self.hello.take() {
            return Some(hello);
        }
        if *self.shutdown.borrow() {
            return None;
        }
        let first = tokio::select! {
            seen = self.feed.next() => seen,
            _ = self.shutdown.changed() => return None,
            _ = tokio::time::sleep(KEEPALIVE) => {
                return Some(Bytes::from_static(b"{\"kind\":\"keepalive\"}\n"));
            }
        };
        let mut chunk = BytesMut::new();
        if !append(&mut chunk, first) {
            return None;
        }
        while chunk.len() < CHUNK_BYTES {
            let Some(seen) = self.feed.try_next() else {
                break;
            };
            if !append(&mut chunk, seen) {
                break;
            }
        }
        Some(chunk.freeze())
    }
}

/// Adds what was seen to `chunk`; false when the feed ended.
fn append(chunk: &mut BytesMut, seen: Seen) -> bool {
    match seen {
        Seen::Line(line) => chunk.extend_from_slice(&line),
        Seen::Dropped(count) => chunk
            .extend_from_slice(format!("{{\"kind\":\"dropped\",\"count\":{count}}}\n").as_bytes()),
        Seen::End => return false,
    }
    true
}
