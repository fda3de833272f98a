//! How `fanout` publishes: through Redis as Laravel's `redis` broadcaster does, or through the
//! server's HTTP API (`POST /apps/<appId>/events`) as an app without Redis would.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::time::Duration;

/// Which path publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Via {
    /// `PUBLISH <prefix><channel> {"event","data","socket"}`.
    Redis,
    /// `POST <api-url>/apps/<app-id>/events?auth_key=<key>`.
    Http,
}

/// Options of the publisher.
#[derive(Args, Debug, Clone)]
pub(crate) struct PublishArgs {
    /// Publish through Redis or through the server's HTTP API.
    #[arg(long, value_enum, default_value_t = Via::Redis)]
    pub(crate) via: Via,
    /// Redis to publish through.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// The server's keyPrefix (prepended to the channel when publishing to Redis).
    #[arg(long, default_value = "")]
    prefix: String,
    /// The server's HTTP base URL, for `--via http` (default: --url with http://).
    #[arg(long)]
    api_url: Option<String>,
    /// API client `appId`, for `--via http`.
    #[arg(long, default_value = "bench")]
    app_id: String,
    /// API client `key`, for `--via http`.
    #[arg(long, default_value = "bench-key")]
    key: String,
}

/// A connected publisher.
pub(crate) enum Publisher {
    /// Through Redis.
    Redis {
        /// The connection.
        connection: redis::aio::MultiplexedConnection,
        /// Prepended to channel names.
        prefix: String,
    },
    /// Through the HTTP API.
    Http {
        /// Keeps connections alive between publishes.
        client: reqwest::Client,
        /// Full URL of the events endpoint, with the key.
        endpoint: String,
    },
}

impl Publisher {
    /// Connects; `ws_url` is the server's websocket base, from which the API URL is derived.
    pub(crate) async fn connect(args: &PublishArgs, ws_url: &str) -> anyhow::Result<Publisher> {
        match args.via {
            Via::Redis => {
                let client = redis::Client::open(args.redis.as_str()).context("the --redis URL")?;
                let connection = client
                    .get_multiplexed_async_connection()
                    .await
                    .context("connecting to Redis")?;
                Ok(Publisher::Redis {
                    connection,
                    prefix: args.prefix.clone(),
                })
            }
            Via::Http => {
                let base = match &args.api_url {
                    Some(url) => url.clone(),
                    None => ws_url.replacen("ws", "http", 1),
                };
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?;
                Ok(Publisher::Http {
                    client,
                    endpoint: format!(
                        "{}/apps/{}/events?auth_key={}",
                        base.trim_end_matches('/'),
                        args.app_id,
                        args.key
                    ),
                })
            }
        }
    }

    /// Publishes `event` with `data` (JSON text) to `channel`.
    pub(crate) async fn publish(
        &mut self,
        channel: &str,
        event: &str,
        data: &str,
    ) -> anyhow::Result<()> {
        let event = serde_json::to_string(event)?;
        match self {
            Publisher::Redis { connection, prefix } => {
                let message = format!("{{\"event\":{event},\"data\":{data},\"socket\":null}}");
                let _: () = redis::cmd("PUBLISH")
                    .arg(format!("{prefix}{channel}"))
                    .arg(message)
                    .query_async(connection)
                    .await?;
            }
            Publisher::Http { client, endpoint } => {
                let body = format!(
                    "{{\"channel\":{},\"name\":{event},\"data\":{data}}}",
                    serde_json::to_string(channel)?
                );
                let response = client
                    .post(endpoint.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .context("publishing through the HTTP API")?;
                if !response.status().is_success() {
                    bail!(
                        "the HTTP API answered {}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    );
                }
            }
        }
        Ok(())
    }
}
