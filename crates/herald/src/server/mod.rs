//! Wiring: one listener serving Socket.IO and the HTTP API, the sources, start-up lines and
//! shutdown.

mod banner;
mod probes;
mod signals;
mod timeouts;
mod tls;

use crate::api::{self, ExpressCompat};
use crate::auth::HttpAuthorizer;
use crate::config::{Config, ConfigSource, ListenProtocol, LoadedConfig};
use crate::console;
use crate::hub::Hub;
use crate::node::NodeId;
use crate::presence::{HEARTBEAT_EVERY, Presence};
use crate::protocol::pusher::{PusherApps, PusherContext};
use crate::protocol::socketio::{SessionGuard, SocketIoContext, SocketIoHttpLayer};
use crate::sources::redis::RedisSource;
use crate::workers::Workers;
use anyhow::{Context, bail};
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::RustlsConfig;
use signals::Signals;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use timeouts::{FIRST_REQUEST_TIMEOUT, HEADER_READ_TIMEOUT};

/// How long start-up waits for the first Redis attempt before saying "Server ready!".
const REDIS_FIRST_ATTEMPT_WAIT: Duration = Duration::from_secs(6);

/// Builds the HTTP application: Socket.IO under its path, the API everywhere else.
fn app(
    config: &Config,
    ctx: Arc<SocketIoContext>,
    pusher: Arc<PusherContext>,
    search_dirs: Vec<PathBuf>,
    probes: Option<Router>,
    occupancy: Option<Arc<crate::cluster::Occupancy>>,
) -> Router {
    let hub = ctx.hub.clone();
    let mut api = api::router(config, ctx.hub.clone(), ctx.presence.clone(), occupancy)
        .merge(crate::protocol::pusher::router(pusher));
    if let Some(probes) = probes {
        api = api.merge(probes);
    }
    let api = api.fallback(api::not_found).layer(from_fn_with_state(
        ExpressCompat::new(config),
        ExpressCompat::handle,
    ));
    let mut router = Router::new();
    if let Some(console) = crate::debug_console::router(
        config,
        hub.clone(),
        ctx.presence.clone(),
        ctx.shutdown.clone(),
    ) {
        router = router.merge(console);
    }
    let guard = SessionGuard {
        search_dirs,
        hub,
        max_connections: config.limits.max_connections,
        trusted_proxies: config.trusted_proxies.clone(),
        core: ctx,
    };
    router
        .fallback_service(api)
        .layer(from_fn_with_state(
            SocketIoHttpLayer::new(config.socketio.clone(), guard),
            SocketIoHttpLayer::handle,
        ))
        .layer(axum::middleware::from_fn(timeouts::limit_body_time))
}

/// Runs the server as `node` until SIGTERM or SIGINT, then shuts down gracefully.
/// `stopped_node` is the node that last ran here, known to have stopped.
pub async fn run(
    loaded: LoadedConfig,
    node: NodeId,
    stopped_node: Option<NodeId>,
) -> anyhow::Result<()> {
    let config = &loaded.config;
    banner::print(&loaded);
    raise_open_file_limit();
    let mut signals = Signals::install()?;
    let tls = match config.protocol {
        ListenProtocol::Https => Some(tls::load(&config.tls).await?),
        ListenProtocol::Http => None,
    };
    let hub = Arc::new(Hub::new());
    let workers = Workers::start(crate::workers::count(config.workers), &hub)?;
    hub.hand_over_through(workers.clone());
    console::dev_plain(&format!(
        "Connections run on {} worker threads (\"workers\")",
        workers.len()
    ));
    // Presence first: the webhooks wait on its leave marks. The Hub's watchers are set below,
    // before anything can subscribe.
    let presence = Arc::new(Presence::for_config(config, hub.clone(), node.clone())?);
    let mut watchers: Vec<Arc<dyn crate::hub::ChannelWatcher>> = Vec::new();
    if let Some(webhooks) = crate::webhooks::Webhooks::start(
        &config.clients,
        config.cluster.is_some(),
        presence.leave_marks(),
    )? {
        watchers.push(webhooks);
    }
    let mut occupancy = None;
    if let Some(cluster) = &config.cluster {
        let bus = crate::cluster::ClusterBus::start(
            config.shared_redis(),
            &cluster.prefix,
            node.clone(),
            Arc::downgrade(&hub),
            config.limits.max_event_bytes.saturating_mul(2),
        )?;
        hub.relay_to(Arc::new(bus));
        let counts = crate::cluster::Occupancy::start(
            config.shared_redis(),
            &cluster.prefix,
            node.clone(),
            Arc::downgrade(&hub),
        )?;
        watchers.push(counts.clone());
        watchers.push(Arc::new(crate::cluster::ClusterWatchlists::new(
            Arc::downgrade(&hub),
        )));
        occupancy = Some(counts);
    }
    if let Some(counts) = crate::subscription_counts::SubscriptionCounts::start(
        &config.clients,
        &hub,
        occupancy.clone(),
    ) {
        watchers.push(counts);
    }
    hub.watch(watchers);
    let presence_upkeep = tokio::spawn(keep_presence(
        presence.clone(),
        occupancy.clone(),
        stopped_node,
    ));
    let (stop_connections, shutdown) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(SocketIoContext {
        hub: hub.clone(),
        authorizer: HttpAuthorizer::new(config)?,
        presence: presence.clone(),
        whispers: config.whispers,
        limits: config.limits,
        trusted_proxies: config.trusted_proxies.clone(),
        options: config.socketio.clone(),
        shutdown: shutdown.clone(),
        open: Default::default(),
        sessions: crate::protocol::socketio::Sessions::new()?,
        recovery: Default::default(),
        workers: workers.clone(),
    });
    let redis_source = config.subscribers.redis.then(|| {
        RedisSource::new(
            config.redis.clone(),
            hub.clone(),
            config.dev_mode && config.redis_source.warn_unmatched_prefix,
            config.limits.max_event_bytes,
            config.redis_source.keepalive,
        )
    });
    let readiness = probes::Readiness {
        redis: redis_source.as_ref().map(RedisSource::state),
        shutting_down: Arc::default(),
        metrics_token: config.metrics_token.as_deref().map(Arc::from),
    };
    let probes = probes::router(readiness.clone());
    let (main_probes, metrics_listener) = match config.metrics_port {
        None => (Some(probes), None),
        Some(port) => {
            let listener = bind(&Config {
                port,
                ..config.clone()
            })
            .await?;
            (None, Some((listener, probes)))
        }
    };
    let search_dirs = search_dirs(&loaded.source);
    let pusher = Arc::new(PusherContext {
        hub: hub.clone(),
        presence: presence.clone(),
        apps: PusherApps::from_clients(&config.clients, &config.whispers),
        limits: config.limits,
        shutdown,
        open: Default::default(),
        cluster: occupancy.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        workers: workers.clone(),
    });
    let app = app(
        config,
        ctx.clone(),
        pusher.clone(),
        search_dirs,
        main_probes,
        occupancy.clone(),
    );

    let listener = bind(config).await?.into_std()?;
    let shown_host = config
        .host
        .clone()
        .unwrap_or_else(|| "localhost".to_owned());
    let (listening, port) = listener
        .local_addr()
        .map_or((String::new(), config.port), |address| {
            (
                format!(" ({}://{address})", scheme(tls.is_some())),
                address.port(),
            )
        });
    console::success(&format!(
        "Running at {shown_host} on port {port}{listening}"
    ));
    if config.dev_mode {
        console::success("Channels are ready.");
    }
    if config.subscribers.http {
        console::success("Listening for http events...");
        if config.clients.is_empty() {
            console::warning(
                "The HTTP API is on but no client can call it: add one with `herald client:add` (Laravel's .env then needs its appId and key), or set subscribers.http to false.",
            );
        }
    }
    if config.console_token.is_some() {
        console::success(&format!(
            "Debug console at {}://{shown_host}:{port}/console (log in with console.token)",
            scheme(tls.is_some())
        ));
    }
    if let Some((listener, probes)) = metrics_listener {
        if let Ok(address) = listener.local_addr() {
            console::success(&format!(
                "Metrics, health and readiness on port {}",
                address.port()
            ));
        }
        let listener = listener.into_std()?;
        tokio::spawn(async move {
            let handle = axum_server::Handle::new();
            if let Err(e) = serve(listener, None, handle, probes).await {
                console::error(&format!("The metrics listener stopped: {e}"));
            }
        });
    }
    let redis_task = if let Some(source) = redis_source {
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(source.supervise(tx));
        let _ = tokio::time::timeout(REDIS_FIRST_ATTEMPT_WAIT, rx).await;
        Some(task)
    } else {
        None
    };
    if let Some(tls) = &tls {
        tokio::spawn(tls::watch(
            tls.clone(),
            config.tls.clone(),
            signals.hangup.clone(),
        ));
    }
    let handle = axum_server::Handle::new();
    let mut server = tokio::spawn(serve(listener, tls, handle.clone(), app));
    console::info("\nServer ready!\n");

    tokio::select! {
        _ = signals.terminated() => {}
        result = &mut server => {
            // The listener itself failed: nothing to shut down gracefully.
            result.context("the HTTP server task failed")?.context("the HTTP server stopped")?;
        }
    }
    console::info("Stopping the Herald server");
    readiness
        .shutting_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + config.shutdown_timeout;
    // 0. In a cluster, this node's channel counts stay as they are: once its heartbeat is
    //    withdrawn (3.), the other nodes sweep them and tell the vacancies.
    if let Some(occupancy) = &occupancy {
        let _ = tokio::time::timeout_at(deadline, occupancy.stop()).await;
    }
    // 1. Stop accepting; in-flight HTTP requests (publishes) finish.
    handle.graceful_shutdown(Some(config.shutdown_timeout));
    // 2. Close every connection properly, so clients reconnect elsewhere promptly: Pusher
    //    connections with 4200 (reconnect at once), Socket.IO websockets with a plain close and
    //    polls with Engine.IO's close packet (clients see "transport close").
    let _ = stop_connections.send(true);
    ctx.recovery.close_all();
    let _ = tokio::time::timeout_at(deadline, &mut server).await;
    let open = |counter: &std::sync::atomic::AtomicUsize| {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    };
    while open(&pusher.open) + open(&ctx.open) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 3. Presence: nothing of this node may linger in a shared store. A connection that did
    //    not close within the timeout is dropped from the Hub here; then every stored member
    //    of this node is a ghost.
    hub.unsubscribe_all();
    presence_upkeep.abort();
    match tokio::time::timeout_at(deadline, presence.remove_ghosts()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => console::warning(&format!("Could not remove presence members: {e}")),
        Err(_) => {
            console::warning("Shutdown timeout reached before presence members were removed.")
        }
    }
    if let Ok(Err(e)) = tokio::time::timeout_at(deadline, presence.withdraw()).await {
        console::warning(&format!("Could not withdraw this node's heartbeat: {e}"));
    }
    // The other nodes sweep this node's channel counts; the last node standing does it itself.
    if let Some(occupancy) = &occupancy
        && let Ok(Ok(running)) = tokio::time::timeout_at(deadline, presence.running_nodes()).await
        && running.is_empty()
    {
        let _ = tokio::time::timeout_at(deadline, occupancy.forget_own()).await;
    }
    if let Some(task) = redis_task {
        task.abort();
    }
    workers.stop();
    console::info("The Herald server has been stopped.");
    Ok(())
}

/// How often every stored presence channel (and, in a cluster, every channel count) is swept
/// for what nodes that stopped without cleaning up (a crash) left: between sweeps presence
/// entries are dropped whenever their channel is used, and a node that dies is noticed sooner
/// (below).
const PRESENCE_SWEEP_EVERY: Duration = Duration::from_secs(300);

/// This node's upkeep in the shared store, until aborted: its heartbeat every
/// [`HEARTBEAT_EVERY`]; the members and channel counts of a node that died removed by the
/// nodes that notice; this node's own written back if the store lost them (Redis restarted
/// empty, or this node was out of reach long enough to be taken for dead); sweeps at start,
/// after withdrawing the node that ran here before, and every [`PRESENCE_SWEEP_EVERY`]. In
/// the background: it only drops what belongs to sockets not connected here and to nodes not
/// running, so it is safe beside joins, and a slow or absent store must not delay start-up.
async fn keep_presence(
    presence: Arc<Presence>,
    occupancy: Option<Arc<crate::cluster::Occupancy>>,
    stopped_node: Option<NodeId>,
) {
    if let Some(stopped) = &stopped_node {
        // Its heartbeat may not have lapsed yet: withdraw it, so the first heartbeat drops its
        // entries.
        if let Err(e) = presence.withdraw_node(stopped).await {
            tracing::warn!(error = %e, "could not withdraw the previous run's heartbeat");
        }
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut sweep = tokio::time::interval(PRESENCE_SWEEP_EVERY);
    let mut first_sweep = true;
    let mut beaten = false;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let beat = match presence.heartbeat().await {
                    Ok(beat) => beat,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew this node's presence heartbeat");
                        continue;
                    }
                };
                if beat.missing && beaten {
                    // The store lost this node. The nodes it names as lapsed lapsed the same way
                    // (a Redis that was away) and are likely running: leave them be.
                    console::warning(if beat.swept {
                        "This node was out of reach of Redis for more than 10 s and the other nodes took it for dead: writing its presence members (announced again) and channel counts back."
                    } else {
                        "Redis had lost this node's data (it restarted empty): writing its presence members and channel counts back."
                    });
                    match presence.reassert(beat.swept).await {
                        Ok(n) => tracing::info!(members = n, "presence members written back"),
                        Err(e) => tracing::warn!(error = %e, "could not write presence members back"),
                    }
                    if let Some(occupancy) = &occupancy {
                        occupancy.rewrite();
                    }
                    continue;
                }
                beaten = true;
                if beat.lapsed.is_empty() {
                    continue;
                }
                // Nodes that stopped or died leave members and counts nobody else removes: this
                // heartbeat alone heard of them, so this node removes them now and tells the
                // channels' members (within 15 s of a death, docs/scaling.md).
                let previous_run = stopped_node
                    .as_ref()
                    .is_some_and(|stopped| beat.lapsed.iter().any(|node| node == stopped.as_str()));
                match presence.remove_ghosts().await {
                    Ok(n) if n > 0 && previous_run => console::info(&format!(
                        "Removed presence members left by a previous run from {n} channel(s)."
                    )),
                    Ok(n) => tracing::info!(nodes = ?beat.lapsed, channels = n, "removed the presence members of nodes that stopped"),
                    Err(e) => tracing::warn!(error = %e, "could not remove the members of nodes that stopped"),
                }
                if let Some(occupancy) = &occupancy {
                    match presence.running_nodes().await {
                        Ok(running) => occupancy.sweep(running),
                        Err(e) => tracing::warn!(error = %e, "could not list the running nodes"),
                    }
                }
            }
            _ = sweep.tick() => {
                if let Some(occupancy) = &occupancy
                    && let Ok(running) = presence.running_nodes().await
                {
                    occupancy.sweep(running);
                }
                match presence.remove_ghosts().await {
                    Ok(0) => {}
                    Ok(n) if first_sweep => console::info(&format!(
                        "Removed presence members left by a previous run from {n} channel(s)."
                    )),
                    Ok(n) => tracing::info!(channels = n, "removed presence members of stopped nodes"),
                    Err(e) if first_sweep => console::warning(&format!(
                        "Could not clean presence members left by a previous run ({e}); they are ignored, and dropped as their channels are used."
                    )),
                    Err(e) => tracing::warn!(error = %e, "could not sweep presence channels"),
                }
                first_sweep = false;
            }
        }
    }
}

/// Raises the soft open-file limit to the hard one: every client holds a file descriptor, and
/// the usual soft default (1,024) would refuse connections long before memory runs out.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 4096 => console::warning(&format!(
            "The open file limit is {limit}: Herald can hold fewer than {limit} clients. Raise it (systemd: LimitNOFILE=, shell: ulimit -n)."
        )),
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => console::warning(&format!(
            "Could not raise the open file limit ({e}); Herald holds at most as many clients as `ulimit -n` allows."
        )),
    }
}

/// Serves `app` on `listener`, over TLS when `tls` is set.
async fn serve(
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    handle: axum_server::Handle<SocketAddr>,
    app: Router,
) -> std::io::Result<()> {
    // The peer address travels with each request: auth requests tell Laravel who the client
    // is, and Engine.IO 3 sessions answer only the client that opened them.
    let make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        None => {
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(timeouts::Http1Only(NoDelayAcceptor::new()))
                .first_request_timeout(FIRST_REQUEST_TIMEOUT)
                .handle(handle);
            limit_header_time(&mut server);
            server.serve(make_service).await
        }
        Some(config) => {
            let mut server = axum_server::from_tcp_rustls(listener, config)?
                .map(|acceptor| {
                    timeouts::Http1Only(
                        acceptor
                            .handshake_timeout(HEADER_READ_TIMEOUT)
                            .acceptor(tls::TlsOnly),
                    )
                })
                .first_request_timeout(FIRST_REQUEST_TIMEOUT)
                .handle(handle);
            limit_header_time(&mut server);
            server.serve(make_service).await
        }
    }
}

/// The URL scheme clients use on the main port.
fn scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}

/// Gives clients `HEADER_READ_TIMEOUT` to send each request's headers (against slowloris).
fn limit_header_time<Acceptor>(server: &mut axum_server::Server<SocketAddr, Acceptor>) {
    server
        .http_builder()
        .http1()
        .header_read_timeout(HEADER_READ_TIMEOUT);
}

/// Binds before saying "Running at", and turns bind errors into advice.
async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
    let host = config.host.as_deref().unwrap_or("0.0.0.0");
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, config.port))
        .await
        .with_context(|| format!("cannot resolve host {host:?}: set \"host\" to an IP address of this machine, or null to listen on all interfaces"))?
        .collect();
    let mut last_error = None;
    for address in addresses {
        match TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some((address, e)),
        }
    }
    match last_error {
        Some((address, e)) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {address}: the port is already in use. Stop the other server (herald stop, or find it with `ss -ltnp 'sport = :{}'`) or choose another \"port\"",
            config.port
        ),
        Some((address, e)) if e.kind() == std::io::ErrorKind::AddrNotAvailable => bail!(
            "cannot listen on {address}: that address is not on this machine. Set \"host\" to one of its IP addresses, or null to listen on all interfaces"
        ),
        Some((address, e)) => bail!("cannot listen on {address}: {e}"),
        None => bail!("host {host:?} resolved to no address"),
    }
}

/// Where `node_modules/socket.io-client` may be: the working directory and the config's.
fn search_dirs(source: &ConfigSource) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd);
    }
    if let Some(dir) = source.path().parent()
        && !dirs.iter().any(|d| d == dir)
    {
        dirs.push(dir.to_owned());
    }
    dirs
}
