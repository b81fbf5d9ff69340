//! `serve`: binds the listeners (HTTP with Streamable HTTP, WebSocket and legacy SSE; TCP when
//! asked), runs the relay, and shuts down in order. With `--tls-cert/--tls-key` both
//! listeners speak TLS (see [`crate::tls`]).
//!
//! Shutdown on SIGTERM/SIGINT: stop accepting and refuse new work (503), end standalone
//! streams, let in-flight requests finish within the grace period, then fail what is left
//! with -31010, stop every child (close stdin → SIGTERM → SIGKILL) and return (exit 0).
//! A replica of a fleet (`[cluster]`) first drains ([`drain_window`]): `/ready` says 503 at
//! once while its sessions keep being served, until the window ends, no session is left or a
//! second signal arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

mod console;

use crate::cluster::Cluster;
use crate::config::servers::{ENDPOINTS_MOUNT, SERVERS_MOUNT};
use crate::config::ServeConfig;
use crate::hub::Hub;
use crate::listener::tcp;
use crate::listener::{http_server, Endpoints, PlainListener};
use crate::telemetry::audit::{Audit, Tap};
use crate::telemetry::live::Live;
use crate::tls::{self, Reloadable, TlsListener};

/// A bound, not yet running relay.
pub(crate) struct Bound {
    listener: TcpListener,
    tcp: Option<TcpListener>,
    /// TCP fronts of single named servers (`tcp_listen` in `[servers.NAME]`).
    server_tcp: Vec<(String, TcpListener)>,
    /// The admin listener (`--admin-listen`), plain HTTP.
    admin: Option<TcpListener>,
    tls: Option<Arc<Reloadable>>,
    hub: Arc<Hub>,
    /// The built-in authorization server, when `[oauth_server]` is on.
    authz: Option<Arc<crate::authz::AuthServer>>,
    /// The operator console's feed, when the console is on (`app/console.rs`).
    live: Option<Arc<Live>>,
    /// Where the console asks for a reload (answered by `reload_on_hangup`).
    reloader: Option<console::Reloader>,
}

/// Binds the listeners; fails before anything runs. What can fail without the network (the
/// audit log, the certificate) is set up first, and "listening" is said once every socket is
/// bound, so a failed start never announced an address.
pub(crate) async fn bind(cfg: ServeConfig) -> anyhow::Result<Bound> {
    let live = console::wanted(&cfg).then(Live::new);
    let audit = start_audit(&cfg, live.clone())?;
    let tls = match &cfg.tls {
        Some(files) => Some({
            tls::install_provider();
            Reloadable::new(files.clone()).context("TLS setup failed")?
        }),
        None => None,
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let tcp = match cfg.tcp_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (--tcp-listen)"))?,
        ),
        None => None,
    };
    let admin = match &cfg.admin {
        Some(a) => Some(
            TcpListener::bind(a.listen)
                .await
                .with_context(|| format!("cannot listen on {} (--admin-listen)", a.listen))?,
        ),
        None => None,
    };
    let mut server_tcp = Vec::new();
    for s in &cfg.servers {
        if let Some(at) = s.cfg.tcp_listen {
            let l = TcpListener::bind(at).await.with_context(|| {
                format!("cannot listen on {at} (tcp_listen of server `{}`)", s.name)
            })?;
            server_tcp.push((s.name.clone(), l));
        }
    }
    // The authorization server's state is open (its tables made) before the relay says it
    // listens: a script waiting for that line finds every route ready.
    let oauth = cfg.oauth_server.clone();
    if let Some(c) = &cfg.cluster {
        crate::cluster::id::set_node(c.node());
    }
    let hub = Hub::start(cfg.clone(), audit.clone());
    let authz = match oauth {
        Some(o) => Some(crate::authz::AuthServer::start(o, hub.clone(), audit).await?),
        None => None,
    };
    let tcp_addr = tcp.as_ref().map(TcpListener::local_addr).transpose()?;
    let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
    log_endpoints(&cfg, addr, tls.is_some(), tcp_addr, admin_addr);
    for (name, l) in &server_tcp {
        let url = format!(
            "{}://{}",
            if tls.is_some() { "tls" } else { "tcp" },
            l.local_addr()?
        );
        info!(transport = "tcp", server = %name, url = %url, "listening");
    }
    Ok(Bound {
        listener,
        tcp,
        server_tcp,
        admin,
        tls,
        hub,
        authz,
        live,
        reloader: None,
    })
}

/// One line per endpoint served, the Streamable HTTP URL first (scripts wait for it).
fn log_endpoints(
    cfg: &ServeConfig,
    addr: SocketAddr,
    tls: bool,
    tcp: Option<SocketAddr>,
    admin: Option<SocketAddr>,
) {
    let (http, ws, tcp_scheme) = match tls {
        true => ("https", "wss", "tls"),
        false => ("http", "ws", "tcp"),
    };
    let at = |path: &str| format!("{http}://{addr}{path}");
    let served = Endpoints::of(cfg);
    info!(transport = "streamable_http", url = %at(&served.mcp), "listening");
    info!(transport = "websocket", url = %format!("{ws}://{addr}{}", served.websocket), "listening");
    if let Some(sse) = served.sse {
        let message = served.sse_message.map(at).unwrap_or_default();
        info!(transport = "sse", url = %at(sse), message_url = %message, "listening");
    }
    if let Some(t) = tcp {
        info!(transport = "tcp", url = %format!("{tcp_scheme}://{t}"), "listening");
    }
    for (mount, names) in [
        (SERVERS_MOUNT, &served.servers),
        (ENDPOINTS_MOUNT, &served.subsets),
    ] {
        for name in names {
            let url = at(&format!("{mount}/{name}/mcp"));
            info!(transport = "streamable_http", mount, name = %name, url = %url, "serving");
        }
    }
    match admin {
        Some(a) => info!(
            transport = "admin",
            url = %format!("http://{a}/metrics"),
            health = %format!("http://{a}/health"),
            ready = %format!("http://{a}/ready"),
            "listening"
        ),
        // Without an admin listener the probes are on the main one.
        None => {
            info!(transport = "probes", url = %at("/health"), ready = %at("/ready"), "listening")
        }
    }
    if served.index {
        info!(url = %at("/"), "endpoint index");
    }
}

impl Bound {
    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves until `shutdown` is cancelled, then drains and stops every child. `hurry`
    /// (a second signal) cuts a fleet replica's drain window short.
    pub(crate) async fn run(
        self,
        shutdown: CancellationToken,
        hurry: CancellationToken,
    ) -> anyhow::Result<()> {
        let hub = self.hub;
        let relay = hub.main().clone();
        let stop_accepting = CancellationToken::new();
        let clients = match &relay.config().mtls {
            Some(m) => Some(tls::client::verifier(m).context("mTLS setup failed")?),
            None => None,
        };
        let acceptors = match &self.tls {
            Some(cert) => {
                tokio::spawn(cert.clone().watch(stop_accepting.clone()));
                Some((
                    tls::acceptor_with_clients(cert.clone(), true, clients.clone())?,
                    tls::acceptor_with_clients(cert.clone(), false, clients)?,
                ))
            }
            None => None,
        };
        let max = relay.config().max_connections;
        let tcp_acceptor = || acceptors.as_ref().map(|a| a.1.clone());
        if let Some(l) = self.tcp {
            let main = relay.clone();
            let current = move || Some(main.clone());
            let stop = stop_accepting.clone();
            tokio::spawn(tcp::serve(current, max, l, tcp_acceptor(), stop));
        }
        for (name, l) in self.server_tcp {
            let hub = hub.clone();
            let current = move || hub.server(&name);
            let stop = stop_accepting.clone();
            tokio::spawn(tcp::serve(current, max, l, tcp_acceptor(), stop));
        }
        let mut router = hub.router(self.authz.as_ref().map(|a| a.router()));
        // The admin listener serves the probes (and `/metrics`), stopped after everything else
        // so probes see the drain; the main router no longer answers them.
        let admin_stop = CancellationToken::new();
        if let (Some(listener), Some(cfg)) = (self.admin, &relay.config().admin) {
            router = router.layer(axum::middleware::from_fn(crate::admin::hide_probes));
            let bound = self.listener.local_addr()?;
            let deps = self.live.clone().map(|live| {
                let reload = self.reloader.clone();
                console::deps(&hub, self.authz.as_ref(), cfg, live, reload, bound)
            });
            let admin = crate::admin::router(hub.clone(), cfg, deps);
            console::serve_admin(listener, admin, admin_stop.clone());
        }
        if crate::telemetry::otel::enabled() {
            router = router.layer(axum::middleware::from_fn(crate::telemetry::otel::propagate));
        }
        let stopped = stop_accepting.clone();
        let mut server = match acceptors {
            Some((http, _)) => {
                let listener = TlsListener::new(self.listener, http, stop_accepting.clone());
                tokio::spawn(http_server::serve(listener, router, max, stopped))
            }
            None => {
                let listener = PlainListener(self.listener);
                tokio::spawn(http_server::serve(listener, router, max, stopped))
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => {}
            res = &mut server => {
                res.context("server task failed")?;
            }
        }
        if let (Some(cluster), true) = (relay.config().cluster.as_deref(), shutdown.is_cancelled())
        {
            drain_window(&hub, cluster, &hurry).await;
        }
        drain(&hub, &mut server, &stop_accepting).await;
        admin_stop.cancel();
        info!("stopped");
        Ok(())
    }
}

/// A fleet replica's drain before the shutdown: `/ready` says 503 from now on (the load
/// balancer stops sending new sessions here), while everything else is served as before:
/// existing sessions, directly or forwarded by peers, and a new session that still arrives.
/// Ends when `drain_window` is over, when no session is left, or on `hurry`.
async fn drain_window(hub: &Hub, cluster: &Cluster, hurry: &CancellationToken) {
    let window = cluster.config().drain_window;
    cluster.start_draining();
    let sessions = || -> usize { hub.relays().iter().map(|r| r.sessions_active()).sum() };
    info!(
        sessions = sessions(),
        window_ms = window.as_millis() as u64,
        "draining"
    );
    let started = tokio::time::Instant::now();
    let deadline = started + window;
    let reason = loop {
        if sessions() == 0 {
            break "no_sessions";
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break "window_ended",
            () = hurry.cancelled() => break "signal",
            // How often the session count is looked at.
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    };
    info!(
        sessions = sessions(),
        reason,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "drain window over"
    );
}

/// Stops accepting, gives in-flight work `--shutdown-grace` (then fails it and gives the
/// server 2 s more), stops every child and flushes the audit log.
async fn drain<T>(
    hub: &Hub,
    server: &mut tokio::task::JoinHandle<T>,
    stop_accepting: &CancellationToken,
) {
    info!("shutting down");
    hub.start_drain();
    if let Some(cluster) = hub.main().config().cluster.as_deref() {
        cluster.forwarder().end_streams();
    }
    stop_accepting.cancel();
    let grace = hub.main().config().shutdown_grace;
    if tokio::time::timeout(grace, &mut *server).await.is_err() {
        hub.fail_in_flight();
        if tokio::time::timeout(Duration::from_secs(2), &mut *server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
    hub.stop_all().await;
    hub.audit().flush().await;
}

/// `mcp-relay serve`: runs until SIGTERM or SIGINT.
pub(crate) async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    crate::os::limits::size_open_files();
    let traces = crate::telemetry::otel::start(cfg.otel.as_ref()).context("trace export")?;
    let mut bound = bind(cfg).await?;
    let (reloader, reloads) = tokio::sync::mpsc::channel(4);
    bound.reloader = Some(reloader);
    let shutdown = CancellationToken::new();
    let hurry = CancellationToken::new();
    let (trigger, second) = (shutdown.clone(), hurry.clone());
    tokio::spawn(async move {
        wait_for_signal().await;
        trigger.cancel();
        // A second signal skips the rest of a fleet replica's drain window.
        wait_for_signal().await;
        second.cancel();
    });
    tokio::spawn(reload_on_hangup(
        bound.hub().clone(),
        bound.authz.clone(),
        reloads,
        shutdown.clone(),
    ));
    let ran = bound.run(shutdown, hurry).await;
    if let Some(t) = traces {
        t.shutdown().await; // After the drain: the last requests' spans are exported too.
    }
    ran
}

/// SIGHUP (Unix only: `os/signals.rs`): the configuration is read and validated again (the same
/// command line, the same `--config` file); its policy (credentials, roles, limits, network rules,
/// CORS) replaces the old one for the next requests. Sessions, streams and children stay; named
/// servers are added, kept, restarted or drained (`Hub::reload`). A configuration with problems
/// is refused with each problem logged, and the old one stays.
async fn reload_on_hangup(
    hub: Arc<Hub>,
    authz: Option<Arc<crate::authz::AuthServer>>,
    mut asked: tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<console::Reloaded>>,
    stop: CancellationToken,
) {
    let mut hup = crate::os::signals::Hangup::new();
    loop {
        let answer = tokio::select! {
            () = hup.recv() => None,
            Some(answer) = asked.recv() => Some(answer),
            () = stop.cancelled() => return,
        };
        let done = reload(&hub, authz.as_ref());
        if let Some(answer) = answer {
            let _ = answer.send(done);
        }
    }
}

/// Reads, validates and applies the configuration again (SIGHUP, or the console's reload);
/// the problems that refused it.
fn reload(hub: &Hub, authz: Option<&Arc<crate::authz::AuthServer>>) -> console::Reloaded {
    let argv = std::env::args_os().collect();
    let mut cfg = match crate::config::load(argv, &crate::secret::process_env) {
        Ok(cfg) => cfg,
        Err(errors) => {
            for e in &errors {
                warn!(signal = "SIGHUP", error = %e, "configuration refused; the old policy stays");
            }
            return Err(errors);
        }
    };
    // The running `[cluster]` stays (its node name, store connection, breaker and leases),
    // for the named servers too; the new limits are shared through its store.
    let running = hub.main().config().cluster.clone();
    match crate::cluster::Cluster::carry_over(running, cfg.cluster.take()) {
        Ok(kept) => {
            let store = kept.as_ref().and_then(|c| c.store().cloned());
            cfg.policy.limits.share(store);
            cfg.use_cluster(kept);
        }
        Err(why) => {
            warn!(signal = "SIGHUP", "{why}; the old configuration stays");
            return Err(vec![format!("{why}; the old configuration stays")]);
        }
    }
    let authz_ok = match (authz, &cfg.oauth_server) {
        (Some(a), new) => a.reload(new.clone()),
        (None, new) => new.is_none(),
    };
    if !authz_ok {
        let why = "turning [oauth_server] on or off, or changing its issuer or storage, needs a restart; the old configuration stays";
        warn!(signal = "SIGHUP", "{why}");
        return Err(vec![why.to_owned()]);
    }
    hub.reload(cfg);
    info!(signal = "SIGHUP", "policy reloaded");
    Ok(())
}

/// `mcp-relay stdio`: one session on the relay's own stdin/stdout, until stdin ends or a
/// signal arrives; then the child is stopped in order.
pub(crate) async fn stdio(cfg: ServeConfig) -> anyhow::Result<()> {
    let audit = start_audit(&cfg, None)?;
    let hub = Hub::start(cfg, audit);
    let relay = hub.main().clone();
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        trigger.cancel();
    });
    crate::listener::stdio::run(relay.clone(), stop).await;
    hub.start_drain();
    hub.stop_all().await;
    // The session closed at stdin EOF left the table before `stop_all`: let its child (or
    // remote session's DELETE) finish its stop sequence too.
    let budget = relay.config().shutdown_grace;
    relay.wait_children(budget).await;
    relay.audit().flush().await;
    Ok(())
}

/// Opens the audit log when one is configured (a failure to open it is a startup error).
/// Records also go to the console's feed when it is on (`live`).
fn start_audit(cfg: &ServeConfig, live: Option<Arc<Live>>) -> anyhow::Result<Audit> {
    match (&cfg.audit, live) {
        (Some(a), live) => {
            Audit::start(a, live.map(|l| l as Arc<dyn Tap>)).context("cannot open the audit log")
        }
        (None, Some(live)) => Ok(Audit::live_only(live)),
        (None, None) => Ok(Audit::disabled()),
    }
}

/// SIGTERM or SIGINT; Ctrl-C where there are no signals (`os/signals.rs`).
async fn wait_for_signal() {
    let signal = crate::os::signals::shutdown().await;
    info!(signal, "signal received");
}

/// What `main` runs: a future on a fresh runtime.
pub(crate) type Job = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>;

/// Validated flags (exit 64 with every problem on a usage error) → `job` on a fresh runtime;
/// 0 after a clean run, 1 on a runtime failure.
pub(crate) fn run(
    checked: Result<ServeConfig, Vec<String>>,
    job: impl FnOnce(ServeConfig) -> Job,
) -> std::process::ExitCode {
    use std::process::ExitCode;
    let cfg = match checked {
        Ok(cfg) => cfg,
        Err(errors) => {
            for e in errors {
                eprintln!("mcp-relay: {e}");
            }
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-relay: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
