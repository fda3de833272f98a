//! Sending one batch to one webhook: Pusher's body and signature, retried with exponential
//! back-off for up to 5 minutes after a failure or a non-2xx answer, then given up on with a log
//! line and a metric. Each batch is a task of its own, and at most [`MAX_BATCHES`] are under way
//! (sending or waiting to retry) at once.

use super::WebhookApp;
use crate::config::WebhookTarget;
use crate::metrics::metrics;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Batches being sent or waiting to be retried; beyond, a new batch is dropped and counted.
const MAX_BATCHES: usize = 1_000;

/// Longest wait for one answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The first retry waits this long; each next one twice as long, up to [`LONGEST_WAIT`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// A batch is retried until this long after its first attempt (Pusher: 5 minutes).
const RETRY_FOR: Duration = Duration::from_secs(300);

/// Sends batches.
pub(super) struct Sender {
    client: reqwest::Client,
    under_way: Arc<Semaphore>,
}

impl Sender {
    pub(super) fn new() -> anyhow::Result<Sender> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender {
            client,
            under_way: Arc::new(Semaphore::new(MAX_BATCHES)),
        })
    }

    /// Sends `events` to webhook `target` of app `app`, in a task of its own.
    pub(super) fn send(
        &self,
        apps: Arc<[WebhookApp]>,
        app: usize,
        target: usize,
        events: Vec<Value>,
    ) {
        let Ok(place) = self.under_way.clone().try_acquire_owned() else {
            metrics().webhook_events_dropped.inc_by(events.len() as u64);
            tracing::warn!(
                events = events.len(),
                "{MAX_BATCHES} webhook batches are already being sent or retried: dropped a new one"
            );
            return;
        };
        let client = self.client.clone();
        tokio::spawn(async move {
            let _place = place;
            let app = &apps[app];
            deliver(&client, app, &app.targets[target], events).await;
        });
    }
}

/// After a failed attempt `elapsed` into a batch's delivery, having just waited `wait` (or
/// about to wait it, the first time): the wait after this one, or `None` when the next
/// attempt would come after [`RETRY_FOR`] and the batch is given up on.
fn retry_after(elapsed: Duration, wait: Duration) -> Option<Duration> {
    (elapsed + wait <= RETRY_FOR).then(|| (wait * 2).min(LONGEST_WAIT))
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis())
}

/// The configured headers, then Pusher's: `insert` replaces, so a configured header cannot
/// stand in for `X-Pusher-Key` or `X-Pusher-Signature`.
fn headers(app: &WebhookApp, target: &WebhookTarget, signature: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &target.headers {
        headers.append(name.clone(), value.clone());
    }
    let text = |value: &str| {
        http::HeaderValue::from_str(value).unwrap_or_else(|_| http::HeaderValue::from_static(""))
    };
    headers.insert("x-pusher-key", text(&app.key));
    headers.insert("x-pusher-signature", text(signature));
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    headers
}

/// The URL without credentials or query, for log lines.
fn shown(url: &url::Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

async fn deliver(
    client: &reqwest::Client,
    app: &WebhookApp,
    target: &WebhookTarget,
    events: Vec<Value>,
) {
    let count = events.len() as u64;
    let body = json!({"time_ms": now_ms(), "events": events}).to_string();
    let signature = crate::secret::hmac_sha256_hex(&app.secret, body.as_bytes());
    let started = Instant::now();
    let mut wait = FIRST_RETRY;
    loop {
        let request = client
            .post(target.url.clone())
            .headers(headers(app, target, &signature))
            .body(body.clone());
        let failure = match request.send().await {
            Ok(answer) if answer.status().is_success() => {
                metrics().webhook_events_sent.inc_by(count);
                return;
            }
            Ok(answer) => format!("HTTP {}", answer.status()),
            Err(e) => e.without_url().to_string(),
        };
        metrics().webhook_failures.inc();
        let Some(next) = retry_after(started.elapsed(), wait) else {
            metrics().webhook_events_dropped.inc_by(count);
            crate::console::error(&format!(
                "webhook {}: gave up on {count} event(s) after retrying for {} s; last answer: {failure}",
                shown(&target.url),
                RETRY_FOR.as_secs()
            ));
            return;
        };
        tracing::warn!(
            webhook = %shown(&target.url),
            "webhook failed ({failure}); retrying in {} s",
            wait.as_secs()
        );
        tokio::time::sleep(wait).await;
        wait = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The attempts' times: 0, 1, 3, 7, 15, 31, 63, 123, 183, 243 s, then given up (the next
    /// would come after 5 minutes).
    #[test]
    fn back_off_doubles_to_a_minute_and_stops_after_five_minutes() {
        let mut at = Duration::ZERO;
        let mut wait = FIRST_RETRY;
        let mut attempts = vec![0];
        while let Some(next) = retry_after(at, wait) {
            at += wait;
            attempts.push(at.as_secs());
            wait = next;
        }
        assert_eq!(attempts, vec![0, 1, 3, 7, 15, 31, 63, 123, 183, 243]);
        assert!(at + wait > RETRY_FOR);
    }
}
