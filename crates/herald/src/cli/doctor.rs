//! `herald doctor`: is Redis reachable, what channels does Laravel publish on, and does
//! `keyPrefix` match them?

use super::ConfigLocation;
use crate::config;
use crate::console;
use crate::prefix::implied_prefix;
use crate::redis_client;
use clap::Args;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

/// Options of `doctor`.
#[derive(Args, Debug)]
pub(super) struct DoctorArgs {
    #[command(flatten)]
    location: ConfigLocation,
    /// How long to watch Redis pub/sub for published events.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Instead of Redis: send the auth request a subscribe to this channel would send.
    #[arg(long, value_name = "CHANNEL")]
    auth_channel: Option<String>,
    /// With --auth-channel: the browser's Cookie header (e.g. "laravel_session=…").
    #[arg(long, requires = "auth_channel")]
    cookie: Option<String>,
    /// With --auth-channel: a bearer token, sent as Authorization.
    #[arg(long, requires = "auth_channel")]
    bearer: Option<String>,
    /// With --auth-channel: another header, "Name: value" (repeatable).
    #[arg(long = "header", requires = "auth_channel")]
    headers: Vec<String>,
    /// With --auth-channel: the page's Referer (selects among several authHost).
    #[arg(long, requires = "auth_channel")]
    referer: Option<String>,
}

/// What one watch of Redis saw.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PrefixReport {
    /// Channel → number of messages seen.
    pub channels: BTreeMap<String, usize>,
}

impl PrefixReport {
    /// Messages seen, over every channel.
    fn seen(&self) -> usize {
        self.channels.values().sum()
    }
}

/// The verdict on `keyPrefix` given the channels seen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing was published while watching.
    NothingSeen,
    /// Every channel seen starts with the prefix.
    Matches,
    /// Channels seen do not start with the prefix; Laravel's looks like the one given.
    Mismatch { suggested: String },
}

impl PrefixReport {
    pub(crate) fn verdict(&self, key_prefix: &str) -> Verdict {
        if self.channels.is_empty() {
            return Verdict::NothingSeen;
        }
        let mut implied: BTreeMap<String, usize> = BTreeMap::new();
        for (channel, count) in &self.channels {
            *implied
                .entry(implied_prefix(channel).unwrap_or_default())
                .or_default() += count;
        }
        let suggested = implied
            .into_iter()
            .max_by_key(|(_, count)| *count)
            .map(|(prefix, _)| prefix)
            .unwrap_or_default();
        let all_match = self.channels.keys().all(|c| c.starts_with(key_prefix));
        // An empty keyPrefix "matches" everything, but then prefixed channels reach rooms
        // named with the prefix, which no browser ever joins.
        let prefix_missing = key_prefix.is_empty() && !suggested.is_empty();
        if all_match && !prefix_missing {
            Verdict::Matches
        } else {
            Verdict::Mismatch { suggested }
        }
    }
}

/// Runs the checks and prints what to do.
pub(super) fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let loaded = config::load(args.location.path(), args.location.explicit())?;
    console::init(crate::config::LogFormat::Text, false);
    let options = &loaded.config.redis;
    match &loaded.source {
        config::ConfigSource::File(p) => console::info(&format!("Config: {}", p.display())),
        config::ConfigSource::Embedded(p) => console::info(&format!(
            "Config: none at {} (embedded defaults)",
            p.display()
        )),
    }
    for warning in &loaded.warnings {
        console::warning(warning);
    }
    if let Some(channel) = args.auth_channel {
        let probe = super::doctor_auth::Probe {
            channel,
            cookie: args.cookie,
            bearer: args.bearer,
            headers: args.headers,
            referer: args.referer,
        };
        return super::doctor_auth::run(&loaded.config, probe);
    }
    let address = redis_client::describe(options);
    console::info(&format!(
        "Redis: {address}, keyPrefix {:?}",
        options.key_prefix
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = match runtime.block_on(watch(options, Duration::from_secs(args.seconds))) {
        Ok(report) => report,
        Err(e) => {
            console::error(&format!("✘ Redis is not reachable at {address}: {e}"));
            console::info(
                "Check databaseConfig.redis (host, port, password) or LARAVEL_ECHO_SERVER_REDIS_* and that redis-server is running.",
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    console::success(&format!("Redis answers at {address}."));
    if loaded.config.database == config::PresenceDriver::Redis {
        let deployment = loaded
            .config
            .cluster
            .as_ref()
            .map_or("herald", |cluster| &cluster.prefix);
        let shared = loaded.config.shared_redis();
        let on = if shared == options {
            "this Redis".to_owned()
        } else {
            format!("the cluster's Redis at {}", redis_client::describe(shared))
        };
        match runtime.block_on(live_nodes(shared, deployment)) {
            Ok(nodes) if nodes.is_empty() => console::info(&format!(
                "Herald nodes running on {on} ({deployment}): none"
            )),
            Ok(nodes) => console::info(&format!(
                "Herald nodes running on {on} ({deployment}): {} — {}",
                nodes.len(),
                nodes.join(", ")
            )),
            Err(e) => console::warning(&format!("Could not list the running nodes: {e}")),
        }
    }
    for (channel, count) in report.channels.iter().take(20) {
        console::info(&format!("  seen: {channel} ({count} message(s))"));
    }
    match report.verdict(&options.key_prefix) {
        Verdict::NothingSeen => {
            console::warning(&format!(
                "No message was published on Redis in {} s, so the prefix cannot be checked. Broadcast an event from Laravel while doctor runs (e.g. in `php artisan tinker`), or use --seconds 30.",
                args.seconds
            ));
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Matches => {
            console::success(&format!(
                "keyPrefix {:?} matches the channels Laravel publishes on.",
                options.key_prefix
            ));
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Mismatch { suggested } => {
            console::error(&format!(
                "✘ keyPrefix {:?} does not match: Laravel publishes with the prefix {suggested:?}.",
                options.key_prefix
            ));
            console::info(&format!(
                "Fix: set \"databaseConfig\": {{\"redis\": {{\"keyPrefix\": {suggested:?}}}}} in {} (Laravel's prefix is config('database.redis.options.prefix'), REDIS_PREFIX in .env).",
                loaded.source.path().display()
            ));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The ids of the nodes whose heartbeat is alive, as presence's node directory sees them.
async fn live_nodes(
    options: &config::RedisOptions,
    deployment: &str,
) -> anyhow::Result<Vec<String>> {
    use crate::presence::NodeDirectory;
    let store = crate::presence::RedisStore::new(options, false, deployment)?;
    let mut nodes: Vec<String> = store.all_running().await?.into_iter().collect();
    nodes.sort();
    Ok(nodes)
}

/// PSUBSCRIBEs `*` for `duration` and counts channels.
async fn watch(options: &config::RedisOptions, duration: Duration) -> anyhow::Result<PrefixReport> {
    let client = redis_client::client(options)?;
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe("*").await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let mut pubsub = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 5 s"))??;
    let mut report = PrefixReport::default();
    let mut stream = pubsub.on_message();
    console::info(&format!(
        "Watching Redis for {} s for events Laravel publishes, to check keyPrefix: broadcast one now (e.g. in `php artisan tinker`: event(new App\\Events\\YourEvent(...))).",
        duration.as_secs()
    ));
    let mut countdown = Countdown::new(duration);
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = tick.tick() => countdown.show(report.seen()),
            message = stream.next() => match message {
                Some(message) => *report.channels.entry(message.get_channel_name().to_owned()).or_default() += 1,
                None => anyhow::bail!("the connection closed while watching"),
            },
        }
    }
    countdown.finish(report.seen());
    Ok(report)
}

/// What doctor shows while it waits: on a terminal one line counting down each second,
/// elsewhere (a log, CI) a line every 5 seconds.
struct Countdown {
    ends: std::time::Instant,
    terminal: bool,
}

impl Countdown {
    fn new(duration: Duration) -> Countdown {
        use std::io::IsTerminal;
        Countdown {
            ends: std::time::Instant::now() + duration,
            terminal: std::io::stdout().is_terminal(),
        }
    }

    fn show(&mut self, seen: usize) {
        let left = self
            .ends
            .saturating_duration_since(std::time::Instant::now())
            .as_secs_f64()
            .round() as u64;
        let line = format!("  waiting for events: {left:>3} s left, {seen} message(s) seen");
        if self.terminal {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = write!(out, "\r{line}   ");
            let _ = out.flush();
        } else if left > 0 && left.is_multiple_of(5) {
            console::info(&line);
        }
    }

    fn finish(&mut self, seen: usize) {
        if self.terminal {
            println!("\r  waited: {seen} message(s) seen{:30}", "");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(channels: &[&str]) -> PrefixReport {
        PrefixReport {
            channels: channels.iter().map(|c| (c.to_string(), 1)).collect(),
        }
    }

    #[test]
    fn messages_seen_are_counted_over_channels() {
        let mut seen = report(&["a", "b"]);
        *seen.channels.entry("a".into()).or_default() += 2;
        assert_eq!(seen.seen(), 4);
    }

    #[test]
    fn verdicts() {
        let seen = report(&["laravel_database_orders", "laravel_database_private-user.1"]);
        assert_eq!(seen.verdict("laravel_database_"), Verdict::Matches);
        assert_eq!(
            seen.verdict(""),
            Verdict::Mismatch {
                suggested: "laravel_database_".into()
            }
        );
        assert_eq!(
            seen.verdict("other_"),
            Verdict::Mismatch {
                suggested: "laravel_database_".into()
            }
        );
        assert_eq!(report(&["orders"]).verdict(""), Verdict::Matches);
        assert_eq!(PrefixReport::default().verdict(""), Verdict::NothingSeen);
    }
}
