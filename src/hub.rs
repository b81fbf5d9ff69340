//! Several servers behind one relay: one [`Relay`] per named server (`[servers.NAME]`), the
//! aggregate of them all on the main path, and tool subsets (`[endpoints.NAME]`).
//!
//! A single-server configuration is a hub with only its main relay, served as it always was.
//! With named servers, each gets its own relay (its own children, session mode, caps and
//! policy decisions), mounted at `/servers/NAME/`: the request's path loses the mount and goes
//! to that relay's fronts (`listener::fronts`). The main path's relay wraps the aggregate
//! (`aggregate.rs`), an in-process server started per session that opens one session on every
//! named server's relay; an endpoint is the same with a selection, mounted at
//! `/endpoints/NAME/`. Every route sits behind the one guard (Host, Origin, authentication,
//! rates): an unknown name is a 404 only for a caller the guard let in, so nothing about which
//! names exist leaks before authentication.
//!
//! SIGHUP ([`Hub::reload`]) puts the new policy on every relay, keeps the relays of unchanged
//! servers (their sessions and children stay), starts the added and changed ones, drains the
//! removed and replaced ones, and hands the new list to the aggregates. Probes and gauges
//! (`/health`, `/ready`, `/metrics`) report per server. Does not own: framing (`listener/`),
//! sessions and children (`relay/`), merging (`aggregate/`).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::admin::{self, Probe};
use crate::aggregate::{Aggregator, Member, Status};
use crate::config::servers::{
    EndpointSpec, FailureMode, NamedServer, ENDPOINTS_MOUNT, SERVERS_MOUNT,
};
use crate::config::{ChildEra, ServeConfig, SessionMode};
use crate::listener;
use crate::relay::Relay;
use crate::telemetry::audit::Audit;
use crate::telemetry::metrics;
use crate::upstream::ServerSpec;

/// The relays of one `serve`, and how requests reach them.
#[derive(Debug)]
pub(crate) struct Hub {
    /// The main path's relay: the one server, or the aggregate of the named ones.
    main: Arc<Relay>,
    audit: Audit,
    /// `[aggregate] failure_mode`: whether a server down makes the relay unready.
    failure_mode: FailureMode,
    /// The named servers, in configuration order; swapped whole on reload.
    servers: ArcSwap<Vec<Mounted>>,
    endpoints: ArcSwap<Vec<Mounted>>,
    /// What the aggregates open sessions on: the named servers' relays.
    members: watch::Sender<Arc<[Member]>>,
    /// What the main path's aggregate saw of each server (up, starting, down and why) and
    /// its name conflicts; `None` for a single server.
    status: Option<Arc<Status>>,
}

/// A per-server gauge of `/metrics`: its name, its help, how to read it off a relay.
type Gauge = (&'static str, &'static str, fn(&Relay) -> u64);

/// One named server's or endpoint's relay and its routes.
#[derive(Debug, Clone)]
struct Mounted {
    name: String,
    relay: Arc<Relay>,
    routes: Router,
    /// What makes two configurations of it the same server (reload keeps it then).
    fingerprint: String,
}

impl Hub {
    /// Starts the relays of `cfg` (needs a Tokio runtime): the main one, and with named
    /// servers one per server and one per endpoint.
    pub(crate) fn start(cfg: ServeConfig, audit: Audit) -> Arc<Hub> {
        let servers: Vec<Mounted> = cfg
            .servers
            .iter()
            .map(|s| mount_server(s, &cfg, &audit))
            .collect();
        let (members, _) = watch::channel(members_of(&servers));
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| mount_endpoint(&cfg, e, &members, &audit))
            .collect();
        let (main, status) = match cfg.servers.is_empty() {
            true => (Relay::new(Arc::new(cfg.clone()), audit.clone()), None),
            false => {
                let (agg, status) = aggregate_config(&cfg, &members, None);
                (Relay::new(agg, audit.clone()), Some(status))
            }
        };
        tokio::spawn(main.clone().sweep());
        Arc::new(Hub {
            main,
            audit,
            failure_mode: cfg.aggregate.failure_mode,
            servers: ArcSwap::from_pointee(servers),
            endpoints: ArcSwap::from_pointee(endpoints),
            members,
            status,
        })
    }

    /// The main path's relay.
    pub(crate) fn main(&self) -> &Arc<Relay> {
        &self.main
    }

    /// The relay of the named server `name`.
    pub(crate) fn server(&self, name: &str) -> Option<Arc<Relay>> {
        let servers = self.servers.load();
        servers
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.relay.clone())
    }

    /// Every relay: the main one first, then the named servers', then the endpoints'.
    pub(crate) fn relays(&self) -> Vec<Arc<Relay>> {
        let mut all = vec![self.main.clone()];
        all.extend(self.servers.load().iter().map(|m| m.relay.clone()));
        all.extend(self.endpoints.load().iter().map(|m| m.relay.clone()));
        all
    }

    /// The router of the main HTTP listener: the main relay's fronts and index, the probes,
    /// the named servers' and endpoints' mounts, all behind the guard.
    pub(crate) fn router(self: &Arc<Self>) -> Router {
        let main = self.main.clone();
        let mut routes = listener::with_index(listener::fronts(&main), main.config())
            .route(
                "/health",
                get(admin::health::<Hub>).with_state(self.clone()),
            )
            .route("/ready", get(admin::ready::<Hub>).with_state(self.clone()));
        for (mount, endpoints) in [(SERVERS_MOUNT, false), (ENDPOINTS_MOUNT, true)] {
            let hub = self.clone();
            let to = any(move |req: Request| async move { hub.dispatch(endpoints, req).await });
            routes = routes.route(&format!("{mount}/{{*rest}}"), to);
        }
        listener::guarded(routes, main)
    }

    /// Hands a request under `/servers/` (or `/endpoints/`) to the named relay's fronts, its
    /// path without the mount; 404 for a name that is not configured.
    async fn dispatch(&self, endpoints: bool, mut req: Request) -> Response {
        let (mount, list) = match endpoints {
            true => (ENDPOINTS_MOUNT, self.endpoints.load()),
            false => (SERVERS_MOUNT, self.servers.load()),
        };
        let path = req.uri().path();
        let Some((name, inner)) = path
            .strip_prefix(mount)
            .and_then(|p| p.strip_prefix('/'))
            .and_then(|p| p.find('/').map(|i| p.split_at(i)))
        else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let Some(mounted) = list.iter().find(|m| m.name == name) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let inner = match req.uri().query() {
            Some(q) => format!("{inner}?{q}"),
            None => inner.to_owned(),
        };
        match inner.parse::<Uri>() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
        let mut routes = mounted.routes.clone();
        match tower_service::Service::call(&mut routes, req).await {
            Ok(res) => res,
            Err(never) => match never {},
        }
    }

    /// SIGHUP: the new policy everywhere; named servers added, kept, restarted or drained;
    /// endpoints rebuilt where their selection changed. Turning a single-server relay into a
    /// multi-server one (or back), or changing `[aggregate]`, needs a restart.
    pub(crate) fn reload(&self, cfg: ServeConfig) {
        let was_multi = !self.servers.load().is_empty();
        let is_multi = !cfg.servers.is_empty();
        if was_multi != is_multi {
            warn!(signal = "SIGHUP", "adding [servers] to a single-server relay (or removing them all) needs a restart; only the policy was reloaded");
        }
        if was_multi && cfg.aggregate != self.main.config().aggregate {
            warn!(signal = "SIGHUP", "a change of [aggregate] needs a restart");
        }
        if was_multi && is_multi {
            self.reload_servers(&cfg);
            self.reload_endpoints(&cfg);
        }
        for relay in self.relays() {
            relay.reload_policy(cfg.policy.clone());
        }
    }

    /// Keeps unchanged servers, mounts added and changed ones, retires the rest.
    fn reload_servers(&self, cfg: &ServeConfig) {
        let old = self.servers.load_full();
        let mut kept = Vec::new();
        for s in &cfg.servers {
            let same = old
                .iter()
                .find(|m| m.name == s.name && m.fingerprint == fingerprint(&s.cfg));
            match same {
                Some(m) => kept.push(m.clone()),
                None => {
                    let changed = old.iter().any(|m| m.name == s.name);
                    info!(server = %s.name, "{}", if changed { "server changed: restarting it" } else { "server added" });
                    kept.push(mount_server(s, cfg, &self.audit));
                }
            }
        }
        for m in old.iter() {
            if !kept.iter().any(|k| Arc::ptr_eq(&k.relay, &m.relay)) {
                if !kept.iter().any(|k| k.name == m.name) {
                    info!(server = %m.name, "server removed: draining it");
                }
                retire(m.relay.clone());
            }
        }
        self.members.send_replace(members_of(&kept));
        self.servers.store(Arc::new(kept));
    }

    /// Rebuilds the endpoints whose selection changed; drains removed ones.
    fn reload_endpoints(&self, cfg: &ServeConfig) {
        let old = self.endpoints.load_full();
        let mut kept = Vec::new();
        for e in &cfg.endpoints {
            let print = format!("{e:?}");
            match old
                .iter()
                .find(|m| m.name == e.name && m.fingerprint == print)
            {
                Some(m) => kept.push(m.clone()),
                None => kept.push(mount_endpoint(cfg, e, &self.members, &self.audit)),
            }
        }
        for m in old.iter() {
            if !kept.iter().any(|k| Arc::ptr_eq(&k.relay, &m.relay)) {
                retire(m.relay.clone());
            }
        }
        self.endpoints.store(Arc::new(kept));
    }

    /// Shutdown, first step: every relay refuses new work.
    pub(crate) fn start_drain(&self) {
        self.relays().iter().for_each(|r| r.start_drain());
    }

    /// Shutdown, after the grace period: what is pending fails with -31010.
    pub(crate) fn fail_in_flight(&self) {
        self.relays().iter().for_each(|r| r.fail_in_flight());
    }

    /// Shutdown, last step: the aggregates' sessions end first (they hold sessions on the
    /// named servers), then every named server's children stop.
    pub(crate) async fn stop_all(&self) {
        let relays = self.relays();
        let (aggregates, servers): (Vec<_>, Vec<_>) = relays
            .iter()
            .partition(|r| matches!(r.config().child, ServerSpec::InProcess(_)));
        futures_util::future::join_all(aggregates.iter().map(|r| r.stop_all())).await;
        futures_util::future::join_all(servers.iter().map(|r| r.stop_all())).await;
    }

    pub(crate) fn audit(&self) -> &Audit {
        &self.audit
    }
}

impl Probe for Hub {
    /// The main relay's document; with named servers, `servers` (each server's own document)
    /// and `endpoints` (their sessions).
    fn health(&self) -> Value {
        let mut doc = admin::relay_health(&self.main);
        let servers = self.servers.load();
        if servers.is_empty() {
            return doc;
        }
        let per_server: serde_json::Map<String, Value> = servers
            .iter()
            .map(|m| (m.name.clone(), admin::relay_health(&m.relay)))
            .collect();
        doc["servers"] = Value::Object(per_server);
        doc["endpoints"] = self
            .endpoints
            .load()
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    json!({ "sessions": m.relay.sessions_active() }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        if let Some(status) = &self.status {
            doc["aggregate"] = status.snapshot();
        }
        doc["ready"] = json!(self.ready());
        doc
    }

    /// The main relay is ready; with `failure_mode = "closed"`, every named server too.
    fn ready(&self) -> bool {
        let servers = self.servers.load();
        self.main.is_ready()
            && (self.failure_mode == FailureMode::Open
                || servers.iter().all(|m| m.relay.is_ready()))
    }

    /// Per named server: its sessions, its children and whether it is ready.
    fn more_metrics(&self) -> String {
        let servers = self.servers.load();
        if servers.is_empty() {
            return String::new();
        }
        let families: [Gauge; 3] = [
            (
                "sessions_active",
                "Sessions open on each named server (an aggregate session holds one on each).",
                |r| r.sessions_active() as u64,
            ),
            (
                "children_running",
                "Child processes of each named server.",
                |r| r.children_alive() as u64,
            ),
            (
                "ready",
                "Whether each named server is ready (1) or not (0).",
                |r| u64::from(r.is_ready()),
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in families {
            out.push_str(&format!(
                "# HELP mcp_relay_server_{name} {help}\n# TYPE mcp_relay_server_{name} gauge\n"
            ));
            for m in servers.iter() {
                out.push_str(&format!(
                    "mcp_relay_server_{name}{{server=\"{}\"}} {}\n",
                    m.name,
                    value(&m.relay)
                ));
            }
        }
        out
    }

    /// Sessions and children summed over every relay.
    fn gauges(&self) -> metrics::Snapshot {
        let mut g = self.main.gauges();
        for r in self.relays().iter().skip(1) {
            g.sessions_active += r.sessions_active() as u64;
            g.children_running += r.children_alive() as u64;
            g.dropped_lines += r.dropped_lines();
        }
        g
    }
}

/// The relay of one named server, mounted at `/servers/NAME/` with the default paths. Its
/// policy is the main one, sharing its limiters: rates and caps of principals and addresses
/// are relay-wide (tool rates are kept per server by the policy itself).
fn mount_server(server: &NamedServer, main: &ServeConfig, audit: &Audit) -> Mounted {
    let mut cfg = (*server.cfg).clone();
    cfg.policy = main.policy.clone();
    mounted_paths(&mut cfg, SERVERS_MOUNT, &server.name);
    let fingerprint = fingerprint(&server.cfg);
    let relay = Relay::new(Arc::new(cfg), audit.clone());
    tokio::spawn(relay.clone().sweep());
    Mounted {
        name: server.name.clone(),
        routes: listener::fronts(&relay).with_state(relay.clone()),
        relay,
        fingerprint,
    }
}

/// The relay of one endpoint: the aggregate with its selection.
fn mount_endpoint(
    cfg: &ServeConfig,
    endpoint: &EndpointSpec,
    members: &watch::Sender<Arc<[Member]>>,
    audit: &Audit,
) -> Mounted {
    let mut agg = (*aggregate_config(cfg, members, Some(endpoint)).0).clone();
    mounted_paths(&mut agg, ENDPOINTS_MOUNT, &endpoint.name);
    let relay = Relay::new(Arc::new(agg), audit.clone());
    tokio::spawn(relay.clone().sweep());
    Mounted {
        name: endpoint.name.clone(),
        routes: listener::fronts(&relay).with_state(relay.clone()),
        relay,
        fingerprint: format!("{endpoint:?}"),
    }
}

/// A mounted relay serves `/mcp` and `/ws` (and legacy SSE) under `MOUNT/NAME`.
fn mounted_paths(cfg: &mut ServeConfig, mount: &str, name: &str) {
    cfg.mount = format!("{mount}/{name}");
    cfg.path = "/mcp".into();
    cfg.ws_path = "/ws".into();
    cfg.servers = Vec::new();
    cfg.endpoints = Vec::new();
}

/// The configuration of an aggregate relay: the main one, with the aggregate (of every named
/// server, or of an endpoint's selection) as its per-session, legacy-era child. It keeps the
/// list of servers and endpoints (for `GET /`); its relay serves none of them itself.
fn aggregate_config(
    cfg: &ServeConfig,
    members: &watch::Sender<Arc<[Member]>>,
    subset: Option<&EndpointSpec>,
) -> (Arc<ServeConfig>, Arc<Status>) {
    let aggregator = Aggregator::new(members.subscribe(), cfg.aggregate.clone(), subset.cloned());
    let status = aggregator.status();
    let mut agg = cfg.clone();
    agg.child = ServerSpec::InProcess(Arc::new(aggregator));
    agg.session_mode = SessionMode::PerSession;
    agg.child_era = ChildEra::Legacy;
    agg.server_name = None;
    (Arc::new(agg), status)
}

/// The aggregates' view of the named servers.
fn members_of(servers: &[Mounted]) -> Arc<[Member]> {
    servers
        .iter()
        .map(|m| Member {
            name: m.name.clone(),
            relay: m.relay.clone(),
        })
        .collect()
}

/// What a server is, for reload: its child or upstream and everything that shapes its
/// sessions and children. Equal prints: the same server, kept with its sessions.
fn fingerprint(cfg: &ServeConfig) -> String {
    format!(
        "{:?}|{:?}|{:?}|{}|{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}",
        cfg.child,
        cfg.session_mode,
        cfg.child_era,
        cfg.children,
        cfg.upstream,
        cfg.max_sessions,
        cfg.max_sessions_per_principal,
        cfg.session_ttl,
        cfg.session_idle,
        cfg.buffer,
        cfg.tcp_listen,
        cfg.response_mode,
    )
}

/// Drains a relay a reload removed or replaced: new work is refused now, what is in flight
/// gets the shutdown grace, then its sessions end and its children stop.
fn retire(relay: Arc<Relay>) {
    tokio::spawn(async move {
        relay.start_drain();
        let grace = relay.config().shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        while relay.sessions_active() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        relay.fail_in_flight();
        relay.stop_all().await;
    });
}
