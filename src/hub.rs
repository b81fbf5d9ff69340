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
//! SIGHUP ([`Hub::reload`], `hub/reload.rs`) puts the new policy on every relay, keeps the
//! relays of unchanged servers (their sessions and children stay), starts the added and
//! changed ones, drains the removed and replaced ones, and hands the new list to the
//! aggregates. Probes and gauges (`/health`, `/ready`, `/metrics`) report per server
//! (`hub/probes.rs`). Does not own: framing (`listener/`), sessions and children (`relay/`),
//! merging (`aggregate/`).

mod console;
mod probes;
mod reload;

use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tokio::sync::watch;

use crate::admin;
use crate::aggregate::{Aggregator, Member, Status};
use crate::config::servers::{
    EndpointSpec, FailureMode, NamedServer, ENDPOINTS_MOUNT, SERVERS_MOUNT,
};
use crate::config::{ChildEra, ServeConfig, SessionMode};
use crate::listener;
use crate::relay::Relay;
use crate::telemetry::audit::Audit;
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
    /// Relays a reload removed or replaced, until they have stopped (a shutdown stops them).
    retiring: Arc<Mutex<Vec<Arc<Relay>>>>,
}

/// One named server's or endpoint's relay and its routes.
#[derive(Debug, Clone)]
struct Mounted {
    name: String,
    relay: Arc<Relay>,
    routes: Router,
    /// What makes two configurations of it the same server (reload keeps it then).
    fingerprint: u64,
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
            retiring: Arc::default(),
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

    /// The mounts of the named servers and endpoints (`/servers/NAME`, `/endpoints/NAME`).
    pub(crate) fn mounts(&self) -> Vec<String> {
        let servers = self.servers.load();
        let endpoints = self.endpoints.load();
        servers
            .iter()
            .map(|m| format!("{SERVERS_MOUNT}/{}", m.name))
            .chain(
                endpoints
                    .iter()
                    .map(|m| format!("{ENDPOINTS_MOUNT}/{}", m.name)),
            )
            .collect()
    }

    /// The router of the main HTTP listener: the main relay's fronts and index, the probes,
    /// the named servers' and endpoints' mounts, and the authorization server's routes
    /// (`authz`, when on: its metadata and everything under `/oauth/`), all behind the guard.
    pub(crate) fn router(self: &Arc<Self>, authz: Option<Router>) -> Router {
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
        if let Some(authz) = authz {
            for path in [
                "/.well-known/oauth-authorization-server",
                "/.well-known/openid-configuration",
                "/oauth/{*rest}",
            ] {
                routes = routes.route_service(path, authz.clone());
            }
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

    /// Shutdown, first step: every relay refuses new work.
    pub(crate) fn start_drain(&self) {
        self.relays().iter().for_each(|r| r.start_drain());
    }

    /// Every relay a shutdown stops: [`Hub::relays`] and those a reload is retiring.
    fn all_relays(&self) -> Vec<Arc<Relay>> {
        let mut all = self.relays();
        all.extend(lock(&self.retiring).iter().cloned());
        all
    }

    /// Shutdown, after the grace period: what is pending fails with -31010.
    pub(crate) fn fail_in_flight(&self) {
        self.all_relays().iter().for_each(|r| r.fail_in_flight());
    }

    /// Shutdown, last step: the aggregates' sessions end first (they hold sessions on the
    /// named servers), then every named server's children stop.
    pub(crate) async fn stop_all(&self) {
        let relays = self.all_relays();
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

/// The relay of one named server, mounted at `/servers/NAME/` with the default paths. Its
/// policy is the main one, sharing its limiters: rates and caps of principals and addresses
/// are relay-wide (tool rates are kept per server by the policy itself).
fn mount_server(server: &NamedServer, main: &ServeConfig, audit: &Audit) -> Mounted {
    let mut cfg = (*server.cfg).clone();
    cfg.policy = main.policy.clone();
    mounted_paths(&mut cfg, SERVERS_MOUNT, &server.name);
    let fingerprint = reload::fingerprint(&server.cfg);
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
        fingerprint: reload::endpoint_print(endpoint),
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
    // The aggregate speaks the legacy era; 2026-07-28 clients are served through it by the
    // relay's translation, on one instance per caller (`relay/legacy.rs`).
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

/// The list behind a mutex, even if a holder panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
