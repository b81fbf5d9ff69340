//! The transport-agnostic relay core.
//!
//! Listeners hand it what they read: a message inside or outside a session goes to
//! [`Relay::post`] (`relay/post.rs`: the session state machine, dispatch, refusals and their
//! audit), a stateless 2026-07-28 request to [`Relay::stateless`] (`relay/modern.rs`). This
//! file holds the core itself: the session table (each session kept with the child it is
//! bound to, `relay/children.rs`; a legacy SSE connection's session reserved in it,
//! [`Relay::reserve`]), the policy a SIGHUP swaps, [`Relay::admit`] (the message phases of
//! `policy::phases::on_message` on one policy snapshot), session lookup, closing, idle expiry
//! and the drain at shutdown. Framing (HTTP, SSE) stays in `listener/`; id multiplexing in
//! `upstream.rs`.

pub(crate) mod cache;
pub(crate) mod children;
mod console;
mod face;
mod legacy;
mod listen;
pub(crate) mod modern;
mod post;
pub(crate) mod shared;
pub(crate) mod stateless;
mod tasks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::caller::{Caller, Transport};
use crate::config::ServeConfig;
use crate::error::Error;
use crate::jsonrpc::Frame;
use crate::policy::overload::Level;
use crate::policy::rbac::Names;
use crate::session::{Full, Inbox, Session, SessionTable};
use crate::telemetry::audit::Audit;
use crate::ticket::Ticket;
use crate::upstream::audience::Command;
use crate::upstream::supervisor::{self, Slot};
use crate::upstream::Counters;
use children::{Backend, Children};
pub(crate) use post::{Posted, Refused, Within};

/// The relay core, shared by every listener.
#[derive(Debug)]
pub(crate) struct Relay {
    cfg: Arc<ServeConfig>,
    /// Every session, with the child it is bound to (none while reserved).
    sessions: SessionTable<Option<Backend>>,
    children: Children,
    modern: modern::Modern,
    counters: Arc<Counters>,
    started: Instant,
    draining: CancellationToken,
    ready: AtomicBool,
    audit: Audit,
    /// The request policy; replaced as a whole on SIGHUP (`reload_policy`).
    policy: arc_swap::ArcSwap<crate::policy::RequestPolicy>,
    /// The legacy face of a modern-only child, once made (`relay/face.rs`).
    face: std::sync::OnceLock<Arc<crate::upstream::ServerSpec>>,
    /// The response cache (`[cache]`), when on for this server.
    cache: Option<Arc<cache::Cache>>,
}

impl Relay {
    /// Builds the core; in shared mode this starts the pool (needs a Tokio runtime).
    pub(crate) fn new(cfg: Arc<ServeConfig>, audit: Audit) -> Arc<Relay> {
        let policy = arc_swap::ArcSwap::from_pointee(cfg.policy.clone());
        let counters = Arc::new(Counters::default());
        let cache = cache::Cache::new(&cfg);
        if let Some(c) = &cache {
            // Its children's list and resource changes invalidate it.
            let _ = counters.changes.set(c.clone());
        }
        tokio::spawn(crate::upstream::expire_all(Arc::downgrade(&counters)));
        // Every record, metric and span of a named server's requests carries its name.
        let audit = audit.for_server(cfg.server_name.as_deref());
        let rules = cfg.policy.rbac.as_ref().and_then(|r| r.server_rules());
        if let (Names::Plain, Some(at)) = (names_of(&cfg), rules) {
            warn!(
                at = at.as_str(),
                "roles speak of named servers, but this relay serves one unnamed server: \
                 `servers` covers nothing here and `server:name` globs match no name"
            );
        }
        Arc::new(Relay {
            children: Children::start(&cfg, &counters),
            modern: modern::Modern::default(),
            cfg,
            sessions: SessionTable::default(),
            counters,
            started: Instant::now(),
            draining: CancellationToken::new(),
            ready: AtomicBool::new(true),
            audit,
            policy,
            face: std::sync::OnceLock::new(),
            cache,
        })
    }

    pub(crate) fn config(&self) -> &ServeConfig {
        &self.cfg
    }

    /// The request policy in force (authentication, roles, limits, network rules, CORS): a
    /// snapshot, loaded once per connection, request or message and passed through its
    /// phases, so a SIGHUP midway never judges one against two policies.
    pub(crate) fn policy(&self) -> Arc<crate::policy::RequestPolicy> {
        self.policy.load_full()
    }

    /// Puts a new policy in force for the next requests; sessions and streams stay.
    pub(crate) fn reload_policy(&self, policy: crate::policy::RequestPolicy) {
        self.policy.store(Arc::new(policy));
    }

    /// `per-session`, `shared` or `per-identity`.
    pub(crate) fn session_mode_name(&self) -> &'static str {
        match self.cfg.session_mode {
            crate::config::SessionMode::PerSession => "per-session",
            crate::config::SessionMode::Shared => "shared",
            crate::config::SessionMode::PerIdentity => "per-identity",
        }
    }

    pub(crate) fn sessions_active(&self) -> usize {
        self.sessions.count()
    }

    /// Requests of every session not answered yet (a retired server drains them).
    pub(crate) fn requests_in_flight(&self) -> usize {
        self.sessions.all().iter().map(|(s, _)| s.in_flight()).sum()
    }

    /// Child stdout lines dropped as invalid, over every child so far.
    pub(crate) fn dropped_lines(&self) -> u64 {
        self.counters.dropped_lines.load(Ordering::Relaxed)
    }

    pub(crate) fn children_alive(&self) -> usize {
        self.counters.children.load(Ordering::Relaxed)
    }

    /// Spare children ready for new sessions (`--spare-children`).
    pub(crate) fn spares_ready(&self) -> usize {
        self.children.spares_ready()
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// False after a spawn failed, until one succeeds again; false while a shared child's
    /// circuit is open, and while overload shedding refuses new work.
    pub(crate) fn is_ready(&self) -> bool {
        let circuits_closed = self
            .children
            .slots()
            .iter()
            .all(|s| !matches!(s.state(), supervisor::State::Open(_)));
        let shedding = self.policy().limits.overload().level() == Level::Shed;
        self.ready.load(Ordering::Relaxed) && circuits_closed && !self.is_draining() && !shedding
    }

    /// The supervised slots of the configured server (shared pool or per-identity children;
    /// none per session), for `/health`.
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        self.children.slots()
    }

    /// The slots of the stateless 2026-07-28 pool, once started.
    pub(crate) fn modern_slots(&self) -> Vec<Arc<Slot>> {
        self.modern.slots()
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Cancelled when shutdown starts: standalone streams end, new work is refused.
    pub(crate) fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    /// Who serves stateless 2026-07-28 requests (`relay/modern.rs`); `ModernToLegacy` when
    /// modern clients must fall back to legacy sessions.
    pub(crate) async fn modern_served(&self) -> Result<modern::Served, Error> {
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        self.modern.served(&self.cfg, &self.counters).await
    }

    /// Sessions per authenticated principal; a `--identity-header` name is not an
    /// authentication, so without one only the global cap applies (SECURITY.md §2).
    fn per_principal_cap(&self) -> usize {
        if self.policy().auth.is_enabled() {
            self.cfg.max_sessions_per_principal
        } else {
            usize::MAX
        }
    }

    /// A live session by id, only for the principal that opened it; unknown, ended and other
    /// principals' sessions are the same 404 (SECURITY.md A6: a session is not auth).
    /// A session reserved by a legacy SSE connection is reached only through that front.
    pub(crate) fn session(&self, id: &str, caller: &Caller) -> Result<Arc<Session>, Error> {
        let legacy = caller.transport == Transport::Sse;
        self.sessions
            .get(id)
            .filter(|s| s.identity() == caller.owner())
            .filter(|s| s.inbox().is_some() == legacy)
            .ok_or(Error::UnknownSession)
    }

    /// Reserves a session for a connection that will send its `initialize` later (legacy
    /// SSE), under the same caps as any session; `inbox` reaches the connection's driver.
    pub(crate) fn reserve(&self, caller: &Caller, inbox: Inbox) -> Result<Arc<Session>, Error> {
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        let owner = caller.owner().map(str::to_owned);
        let session = Session::reserved(owner, self.cfg.buffer, inbox);
        let per_owner = self.per_principal_cap();
        self.sessions
            .insert(session.clone(), None, self.cfg.max_sessions, per_owner)
            .map_err(|full| match full {
                Full::Global => Error::SessionCap,
                Full::Principal => Error::PrincipalSessionCap,
            })?;
        Ok(session)
    }

    /// Whose tool, prompt and resource names this relay decides: a named server's (its
    /// `server_name`), none (the aggregate, whose child is in-process: each named server's
    /// relay decides), or the one child's (a single-server relay).
    pub(crate) fn names(&self) -> Names<'_> {
        names_of(&self.cfg)
    }

    /// The message phases for one request (`policy::phases::on_message`: RBAC, message
    /// rates, overload, the concurrency slot), against the policy loaded once for it, and its
    /// ticket (audit record, list filter). A refusal comes back with its rule, to be answered
    /// in place of the request (an unknown name, or -31004) and recorded.
    pub(crate) async fn admit(
        &self,
        caller: &Caller,
        session: Option<&str>,
        frame: &Frame,
        modern: bool,
    ) -> Result<Ticket, (Error, String)> {
        self.policy()
            .on_message(&self.audit, caller, self.names(), session, frame, modern)
            .await
    }

    /// Records a refusal of a request (or of an HTTP request with no frame yet).
    pub(crate) fn record_refusal(
        &self,
        caller: &Caller,
        session: Option<&str>,
        frame: Option<&Frame>,
        e: &Error,
    ) {
        Ticket::refused(&self.audit, caller, session, frame, e, None);
    }

    /// The audit log (disabled unless configured).
    pub(crate) fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Ends a session: pending requests get an error; its own child is stopped, a shared
    /// child is told what the session's departure changes. A session no longer in the table
    /// was closed already.
    pub(crate) fn close(&self, session: &Arc<Session>) {
        if let Some((session, backend)) = self.sessions.remove(session.id()) {
            self.release(&session, backend.as_ref());
        }
    }

    /// What [`Relay::close`] does once the session is out of the table.
    fn release(&self, session: &Arc<Session>, backend: Option<&Backend>) {
        let Some(backend) = backend else {
            // Reserved, never opened: nothing was bound.
            session.end();
            return;
        };
        match backend {
            Backend::Own(up) => {
                up.fail_pending(Some(session), &Error::SessionEnded);
                session.end();
                up.stop();
            }
            Backend::Shared(slot) => {
                let commands = slot.audience().leave(session.id());
                if let Some(up) = slot.current() {
                    up.fail_pending(Some(session), &Error::SessionEnded);
                    up.forget_session(session);
                    for c in commands {
                        match c {
                            Command::Unsubscribe(uri) => {
                                let params = serde_json::json!({ "uri": uri }).to_string();
                                let _ = up.call("resources/unsubscribe", &params);
                            }
                            Command::SetLevel(level) => supervisor::set_level(&up, level),
                        }
                    }
                }
                session.end();
            }
        }
    }

    /// Expires idle and ended sessions until shutdown.
    pub(crate) async fn sweep(self: Arc<Self>) {
        let ttl = self.cfg.session_ttl;
        let idle = self.cfg.session_idle;
        let every = (idle.min(ttl) / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.draining.cancelled() => return,
            }
            for (s, backend, why) in self.sessions.take_expired(idle, ttl) {
                if why != crate::session::Expiry::Ended {
                    // Its own child (per-session mode) stops with it.
                    let child = match &backend {
                        Some(Backend::Own(up)) => Some(up.pid()),
                        _ => None,
                    };
                    info!(
                        session = s.id().as_str(),
                        reason = why.as_str(),
                        child,
                        "idle session expired"
                    );
                }
                self.release(&s, backend.as_ref());
            }
            self.children.sweep(ttl);
            self.modern.sweep();
        }
    }

    /// Starts draining: new work is refused, standalone streams end.
    pub(crate) fn start_drain(&self) {
        self.draining.cancel();
    }

    /// Answers what is still pending with -31010.
    pub(crate) fn fail_in_flight(&self) {
        for (s, backend) in self.sessions.all() {
            if let Some(up) = backend.and_then(|b| b.current()) {
                up.fail_pending(Some(&s), &Error::ShuttingDown);
            }
        }
        for slot in self.modern.slots() {
            if let Some(up) = slot.current() {
                up.fail_pending(None, &Error::ShuttingDown);
            }
        }
    }

    /// Waits (at most `limit`) until no child is left, including those of sessions closed
    /// before shutdown (their stop sequence may still be running).
    pub(crate) async fn wait_children(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.children_alive() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends every session and waits until every child is reaped.
    pub(crate) async fn stop_all(&self) {
        let sessions = self.sessions.drain();
        for (s, backend) in &sessions {
            self.release(s, backend.as_ref());
        }
        let waits = sessions.iter().filter_map(|(_, backend)| match backend {
            Some(Backend::Own(up)) => Some(up.clone()),
            _ => None,
        });
        let own = futures_util::future::join_all(waits.map(|up| async move { up.wait().await }));
        let modern = async {
            let slots = self.modern.slots();
            for s in &slots {
                s.stop();
            }
            futures_util::future::join_all(slots.iter().map(|s| s.wait())).await;
        };
        tokio::join!(own, self.children.stop_all(), modern);
    }
}

/// Whose names a relay with this configuration decides ([`Relay::names`]).
fn names_of(cfg: &ServeConfig) -> Names<'_> {
    match (&cfg.server_name, &cfg.child) {
        (Some(name), _) => Names::Server(name),
        (None, crate::upstream::ServerSpec::InProcess(_)) => Names::Delegated,
        (None, _) => Names::Plain,
    }
}
