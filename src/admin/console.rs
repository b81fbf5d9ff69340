//! The operator's console: `/ui` on the admin listener, a few server-rendered pages (servers,
//! sessions, traffic, audit, connect) kept live over SSE from the relay's own data, and the
//! operator's actions (restart a server's children, end a session, revoke a principal's
//! sessions, reload the configuration).
//!
//! Owns: the console's routes and what they share ([`Deps`]), the read side it needs from the
//! relays ([`Console`], implemented by the hub in `hub/console.rs`, as [`Probe`](super::Probe)
//! is), the views it renders ([`ServerView`], [`SessionView`], [`Target`]) and who is at the
//! keyboard ([`Operator`]). Pages and assets are `pages/`, the live stream `events.rs`, login,
//! console sessions and CSRF `auth.rs`, actions `actions.rs`, client configurations `connect.rs`.
//! Does not own: the Host/Origin and bearer checks every admin path passes first (`admin.rs`),
//! the audit feed and traffic windows it reads (`telemetry/live.rs`), or checking user
//! passwords (the authorization server's, behind [`Operators`]).
//!
//! Off unless `--admin-listen` is set, and with `--no-console`.

pub(crate) mod actions;
pub(crate) mod auth;
pub(crate) mod connect;
pub(crate) mod events;
pub(crate) mod layout;
pub(crate) mod pages;
pub(crate) mod stream;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::telemetry::audit::Audit;
use crate::telemetry::live::Live;

/// The outcome of a configuration reload: the problems that refused it.
pub(crate) type Reloaded = Result<(), Vec<String>>;

/// Asks the program to reload its configuration as SIGHUP does (`app.rs` answers).
pub(crate) type Reloader = mpsc::Sender<oneshot::Sender<Reloaded>>;

/// What the console reads of the running relays, and the actions it takes on them.
#[async_trait::async_trait]
pub(crate) trait Console: Send + Sync + 'static {
    /// Every server (the main one first: the single server, or the aggregate), with its
    /// children.
    fn servers(&self) -> Vec<ServerView>;
    /// Every open session of every relay.
    fn sessions(&self) -> Vec<SessionView>;
    /// What a client can connect to: the main path and each named server and endpoint.
    fn targets(&self) -> Vec<Target>;
    /// Ends the session `id` (on whichever relay holds it); false when there is none.
    fn end_session(&self, id: &str) -> bool;
    /// Ends every session opened by `principal`; how many were ended.
    fn revoke(&self, principal: &str) -> usize;
    /// Restarts the children of the server `name` (`""`: the main one); how many were
    /// restarted, or why none could be.
    fn restart(&self, name: &str) -> Result<usize, String>;
    /// Pings each server's child and reports each round-trip time or failure (`/health?deep=1`).
    async fn deep_health(&self) -> Value;
}

/// Checks an operator's name and password (the authorization server's users with the
/// `admin` role, when `[oauth_server]` is on).
#[async_trait::async_trait]
pub(crate) trait Operators: Send + Sync + 'static {
    /// The operator's name when `user` and `password` are right and the user holds the admin
    /// role; `None` otherwise (wrong, disabled, locked out, not an admin).
    async fn verify(&self, user: &str, password: &str, client: &str) -> Option<String>;

    /// Whether `user` is still an operator (exists, not disabled, holds the admin role), as
    /// the current configuration has it: checked on every request of their console session.
    async fn is_operator(&self, user: &str) -> bool;
}

/// Everything the console's routes share.
#[derive(Clone)]
pub(crate) struct Deps {
    pub console: Arc<dyn Console>,
    pub live: Arc<Live>,
    /// User logins, when the authorization server has users.
    pub operators: Option<Arc<dyn Operators>>,
    /// The admin bearer token, when configured (also accepted pasted into the login form).
    pub token: Option<Arc<[u8]>>,
    /// Whether the admin listener is on a loopback address (open without a credential when
    /// none is configured).
    pub loopback: bool,
    pub reload: Option<Reloader>,
    /// The audit log the actions are recorded in (with the operator's identity).
    pub audit: Audit,
    /// The main listener's public base URL (`https://relay.example.com`), for the
    /// client configurations of the connect page.
    pub public_base: String,
    /// The console's sessions and login throttle (`auth/sessions.rs`).
    pub gate: Arc<auth::Gate>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("operators", &self.operators.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("loopback", &self.loopback)
            .field("public_base", &self.public_base)
            .finish_non_exhaustive()
    }
}

/// Who is at the keyboard, put in the request's extensions by the guard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Operator {
    /// `admin-token`, `user:NAME`, or `loopback` (no credential configured on a loopback
    /// admin listener).
    pub name: String,
    /// The CSRF token of the operator's console session (a browser with its cookie); `None`
    /// for a request that carried the bearer token itself (no browser sends one on its own).
    #[serde(skip)]
    pub csrf: Option<String>,
}

/// One server as the servers page shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServerView {
    /// Its name; `""` for the main path's server (the single server, or the aggregate).
    pub name: String,
    /// `command` | `remote` | `aggregate` | `endpoint`.
    pub kind: &'static str,
    /// The protocol era its child speaks (`2025` | `modern` | `auto`), when known.
    pub era: Option<String>,
    /// `per-session` | `shared` | `per-identity` | `stateless` ...
    pub session_mode: &'static str,
    pub ready: bool,
    /// Why it is not ready or down (the aggregate's view, a circuit open), when known.
    pub problem: Option<String>,
    pub sessions: usize,
    pub in_flight: usize,
    pub children: Vec<ChildView>,
    /// Per-session children beyond those listed in `children`.
    pub children_more: usize,
}

/// One supervised child (a slot) of a server.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChildView {
    /// Its pool (`shared`, `per-identity`, `modern`, `per-session`) and index there (for
    /// `per-session`: the child's pid, so its row keeps its key).
    pub pool: String,
    pub slot: usize,
    /// `ready` | `starting` | `backoff` | `open` | `stopped`.
    pub state: &'static str,
    pub pid: Option<u32>,
    /// Seconds since the running child started.
    pub uptime_seconds: Option<u64>,
    /// Times the child was started again after it exited.
    pub restarts: u64,
    /// Why the last child exited (exit status or signal), when one did.
    pub last_exit: Option<String>,
    /// The last lines the child wrote to stderr, oldest first.
    pub stderr: Vec<String>,
    /// When the circuit is open: seconds until the next try.
    pub retry_after_seconds: Option<u64>,
}

/// One open session as the sessions page shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SessionView {
    pub id: String,
    /// The server whose relay holds it (`""`: the main path).
    pub server: String,
    pub principal: String,
    /// `streamable_http` | `sse` | `websocket` | `tcp` | `stdio`.
    pub transport: String,
    pub client_name: String,
    pub client_version: String,
    pub protocol_version: String,
    pub age_seconds: u64,
    pub calls: u64,
    pub in_flight: usize,
    /// Seconds since its last request or answer.
    pub idle_seconds: u64,
}

/// Something a client can connect to, for the connect page.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Target {
    /// `None` for the main path; else the named server or endpoint.
    pub name: Option<String>,
    /// `server` (the single server) | `aggregate` | `named` | `endpoint`.
    pub kind: &'static str,
    /// The MCP path on the main listener (`/mcp`, `/servers/NAME/mcp`, `/endpoints/NAME/mcp`).
    pub path: String,
    /// How clients authenticate there: `none` | `api_key` | `jwt` | `oauth`.
    pub auth: &'static str,
}

/// Whether `path` is the console's (`/ui` and below).
pub(crate) fn owns(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The console's routes, all under `/ui`; every answer carries the console's security headers.
pub(crate) fn routes(deps: Deps) -> Router {
    Router::new()
        .route("/ui", get(pages::index))
        .route("/ui/servers", get(pages::servers))
        .route("/ui/sessions", get(pages::sessions))
        .route("/ui/traffic", get(pages::traffic))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/static/{file}", get(pages::asset))
        .route("/ui/connect", get(connect::page))
        .route("/ui/connect/{file}", get(connect::download))
        .route("/ui/api/{view}", get(events::snapshot))
        .route("/ui/events", get(stream::events))
        .route("/ui/login", get(auth::login_page).post(auth::login))
        .route("/ui/logout", post(auth::logout))
        .route("/ui/actions/{action}", post(actions::act))
        .layer(middleware::from_fn(auth::secure_headers))
        .with_state(deps)
}
