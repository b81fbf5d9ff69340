//! The transport-agnostic relay core.
//!
//! Listeners hand it parsed frames; it opens sessions (binding them to a child by
//! `--session-mode`, see `relay/children.rs`), applies the per-message phases in order
//! (STYLE.md §7: frame checks were done by `jsonrpc`; then era rules, the shared-child rules
//! of `relay/shared.rs`, in-flight caps, dispatch with ids rewritten), and hands back the
//! [`Stream`] the answers will arrive on. It also expires idle sessions and drains everything
//! at shutdown. Framing (HTTP, SSE) stays in `listener/`; id multiplexing in `upstream.rs`.

pub mod children;
pub mod modern;
pub mod shared;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::caller::Caller;
use crate::config::ServeConfig;
use crate::error::Error;
use crate::jsonrpc::{Frame, Kind};
use crate::policy::overload::Level;
use crate::session::stream::Stream;
use crate::session::{Backend, Full, Hello, Session, SessionTable};
use crate::telemetry::audit::Audit;
use crate::ticket::Ticket;
use crate::upstream::audience::Command;
use crate::upstream::supervisor::{self, Slot};
use crate::upstream::Counters;
use children::Children;
use shared::Handled;

/// What a POST produced.
#[derive(Debug)]
pub enum Posted {
    /// Only notifications and responses: 202.
    Accepted,
    /// Requests: their answers arrive on this stream.
    Stream(Arc<Stream>),
}

/// The relay core, shared by every listener.
#[derive(Debug)]
pub struct Relay {
    cfg: Arc<ServeConfig>,
    sessions: SessionTable,
    children: Children,
    modern: modern::Modern,
    counters: Arc<Counters>,
    started: Instant,
    draining: CancellationToken,
    ready: AtomicBool,
    audit: Audit,
    /// The request policy; replaced as a whole on SIGHUP (`reload_policy`).
    policy: arc_swap::ArcSwap<crate::policy::RequestPolicy>,
}

impl Relay {
    /// Builds the core; in shared mode this starts the pool (needs a Tokio runtime).
    pub fn new(cfg: Arc<ServeConfig>, audit: Audit) -> Arc<Relay> {
        let policy = arc_swap::ArcSwap::from_pointee(cfg.policy.clone());
        let counters = Arc::new(Counters::default());
        tokio::spawn(crate::upstream::expire_all(counters.clone()));
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
        })
    }

    pub fn config(&self) -> &ServeConfig {
        &self.cfg
    }

    /// The request policy in force (authentication, roles, limits, network rules, CORS): a
    /// snapshot, loaded once per connection, request or message and passed through its
    /// phases, so a SIGHUP midway never judges one against two policies.
    pub fn policy(&self) -> Arc<crate::policy::RequestPolicy> {
        self.policy.load_full()
    }

    /// Puts a new policy in force for the next requests; sessions and streams stay.
    pub fn reload_policy(&self, policy: crate::policy::RequestPolicy) {
        self.policy.store(Arc::new(policy));
    }

    /// `per-session`, `shared` or `per-identity`.
    pub fn session_mode_name(&self) -> &'static str {
        match self.cfg.session_mode {
            crate::config::SessionMode::PerSession => "per-session",
            crate::config::SessionMode::Shared => "shared",
            crate::config::SessionMode::PerIdentity => "per-identity",
        }
    }

    pub fn sessions_active(&self) -> usize {
        self.sessions.count()
    }

    /// Child stdout lines dropped as invalid, over every child so far.
    pub fn dropped_lines(&self) -> u64 {
        self.counters.dropped_lines.load(Ordering::Relaxed)
    }

    pub fn children_alive(&self) -> usize {
        self.counters.children.load(Ordering::Relaxed)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// False after a spawn failed, until one succeeds again; false while a shared child's
    /// circuit is open, and while overload shedding refuses new work.
    pub fn is_ready(&self) -> bool {
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
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.children.slots()
    }

    /// The slots of the stateless 2026-07-28 pool, once started.
    pub fn modern_slots(&self) -> Vec<Arc<Slot>> {
        self.modern
            .started()
            .map(|p| p.slots().to_vec())
            .unwrap_or_default()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Cancelled when shutdown starts: standalone streams end, new work is refused.
    pub fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    /// Opens a session for an `initialize` request of `identity`: binds it to a child and
    /// forwards the request (its own child) or answers it from the shared child's cache.
    pub fn open(
        &self,
        init: &Frame,
        caller: &Caller,
    ) -> Result<(Arc<Session>, Arc<Stream>), Error> {
        let ticket = self.admit(caller, None, init, false).map_err(|(e, _)| e)?;
        let mut ticket = Some(ticket);
        let opened = self.open_inner(init, caller, &mut ticket);
        // Refused: the front that answers the error records it.
        if let Some(t) = ticket.filter(|_| opened.is_err()) {
            t.discard();
        }
        opened
    }

    fn open_inner(
        &self,
        init: &Frame,
        caller: &Caller,
        ticket: &mut Option<Ticket>,
    ) -> Result<(Arc<Session>, Arc<Stream>), Error> {
        let identity = caller.owner();
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        if self.cfg.session_mode == crate::config::SessionMode::PerIdentity
            && identity.is_some_and(|i| !crate::caller::identity_is_valid(i))
        {
            return Err(Error::Identity("bad_identity"));
        }
        if self.sessions.count() >= self.cfg.max_sessions {
            return Err(Error::SessionCap);
        }
        // Checked again on insert; this spares a spawn for a caller already at its cap.
        if identity.is_some_and(|o| self.sessions.count_of(o) >= self.per_principal_cap()) {
            return Err(Error::PrincipalSessionCap);
        }
        let backend = self.children.bind(&self.cfg, &self.counters, identity);
        self.ready.store(
            !matches!(backend, Err(Error::ChildUnavailable | Error::LinkDown(_))),
            Ordering::Relaxed,
        );
        let backend = backend?;
        let session = Session::new(
            backend.clone(),
            Hello::of(init),
            identity.map(str::to_owned),
            self.cfg.buffer,
        );
        let per_owner = self.per_principal_cap();
        if let Err(full) = self
            .sessions
            .insert(session.clone(), self.cfg.max_sessions, per_owner)
        {
            if let Backend::Own(up) = &backend {
                up.stop();
            }
            return Err(match full {
                Full::Global => Error::SessionCap,
                Full::Principal => Error::PrincipalSessionCap,
            });
        }
        session.touch();
        let stream = session.new_stream();
        match &backend {
            Backend::Own(up) => {
                up.audience().join(&session);
                if let Err(e) = up.forward_request(
                    Some(&session),
                    init,
                    &stream,
                    ticket.take().unwrap_or_default(),
                ) {
                    self.close(&session);
                    return Err(e);
                }
                info!(
                    session = session.id().as_str(),
                    pid = up.pid(),
                    "session opened"
                );
            }
            Backend::Shared(slot) => {
                if self.cfg.forward_hello {
                    if let Some(params) = init_params(init) {
                        slot.set_hello(&params);
                    }
                }
                slot.audience().join(&session);
                let ticket = ticket.take().unwrap_or_default();
                answer_initialize(slot.clone(), &session, init, &stream, ticket);
                if slot.is_link() {
                    info!(
                        session = session.id().as_str(),
                        "session opened on the remote link"
                    );
                } else {
                    info!(
                        session = session.id().as_str(),
                        "session opened on a shared child"
                    );
                }
            }
        }
        crate::telemetry::metrics::session_opened();
        Ok((session, stream))
    }

    /// The pool serving stateless 2026-07-28 requests; `ModernToLegacy` for a legacy child,
    /// and in per-identity mode (one shared pool would mix identities; clients fall back to
    /// legacy sessions, which get their identity's child).
    pub async fn modern_pool(&self) -> Result<Arc<modern::ModernPool>, Error> {
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        if self.cfg.session_mode == crate::config::SessionMode::PerIdentity {
            return Err(Error::ModernToLegacy);
        }
        self.modern.pool(&self.cfg, &self.counters).await
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
    pub fn session(&self, id: &str, caller: &Caller) -> Result<Arc<Session>, Error> {
        self.sessions
            .get(id)
            .filter(|s| s.identity() == caller.owner())
            .ok_or(Error::UnknownSession)
    }

    /// The message phases for one request (`policy::phases::on_message`: RBAC, message
    /// rates, overload, the concurrency slot), against the policy loaded once for it, and its
    /// ticket (audit record, list filter). A refusal comes back with its rule, to be answered
    /// in place of the request (an unknown name, or -31004) and recorded.
    pub fn admit(
        &self,
        caller: &Caller,
        session: Option<&str>,
        frame: &Frame,
        modern: bool,
    ) -> Result<Ticket, (Error, String)> {
        self.policy()
            .on_message(&self.audit, caller, session, frame, modern)
    }

    /// Records a refusal of a request (or of an HTTP request with no frame yet).
    pub fn record_refusal(
        &self,
        caller: &Caller,
        session: Option<&str>,
        frame: Option<&Frame>,
        e: &Error,
    ) {
        Ticket::refused(&self.audit, caller, session, frame, e, None);
    }

    /// The audit log (disabled unless configured).
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Dispatches the messages of one POST inside a session, for `caller`.
    pub async fn submit(
        &self,
        session: &Arc<Session>,
        frames: &[Frame],
        caller: &Caller,
    ) -> Result<Posted, Error> {
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        if frames.iter().any(|f| f.method() == Some("initialize")) {
            return Err(Error::InvalidRequest("second_initialize"));
        }
        session.touch();
        let up = session.backend().upstream().await?;
        let init = match session.backend() {
            Backend::Shared(slot) => match slot.state() {
                supervisor::State::Ready(_, init) => init,
                _ => None,
            },
            Backend::Own(_) => None,
        };
        let shared = up.audience().is_shared();
        let batch = frames.len() > 1;
        let requests = frames.iter().filter(|f| f.kind() == Kind::Request).count();
        let stream = (requests > 0).then(|| session.new_stream());
        // Held while dispatching, so a fast answer cannot end the stream early.
        if let Some(s) = &stream {
            s.expect_answer();
        }
        let mut outcome = Ok(());
        let sid = Some(session.id().as_str());
        for frame in frames {
            let ticket = match frame.kind() {
                Kind::Request => {
                    let admitted = self.admit(caller, sid, frame, false);
                    let throttled = matches!(&admitted, Err((e, _)) if e.is_capacity());
                    session.note_admission(throttled);
                    admitted
                }
                _ => Ok(Ticket::default()),
            };
            let mut ticket = match (ticket, &stream, frame.id()) {
                (Ok(t), _, _) => t,
                (Err((e, rule)), Some(s), Some(id)) => {
                    // A denial is an answer, as if from the server: never a transport error.
                    Ticket::refused(&self.audit, caller, sid, Some(frame), &e, Some(rule));
                    s.expect_answer();
                    s.push(e.to_jsonrpc(&id), true);
                    continue;
                }
                (Err((e, _)), _, _) => {
                    outcome = Err(e);
                    continue;
                }
            };
            let handled = if shared {
                shared::intercept(session, &up, init.as_deref(), frame)
            } else {
                Handled::Forward
            };
            let result = match (handled, frame.kind(), &stream) {
                (Handled::Swallowed, _, _) => Ok(()),
                (Handled::Answered(bytes), _, Some(s)) => {
                    s.expect_answer();
                    let code = crate::jsonrpc::error_code(&bytes);
                    s.push(ticket.answer(bytes, code), true);
                    Ok(())
                }
                (Handled::Forward, Kind::Request, Some(s)) => up
                    .forward_request(Some(session), frame, s, ticket)
                    .map(|_| ()),
                (Handled::Forward, Kind::Notification, _) => {
                    up.forward_notification(session, frame);
                    Ok(())
                }
                (Handled::Forward, Kind::Response, _) => up.forward_response(session, frame),
                (_, _, None) => Err(Error::Internal),
            };
            // The session's or child's own caps refuse at dispatch: throttling too.
            if result.as_ref().is_err_and(Error::is_capacity) {
                session.note_admission(true);
            }
            match (result, &stream, frame.id()) {
                (Ok(()), _, _) => {}
                (Err(e), Some(s), Some(id)) if batch && frame.kind() == Kind::Request => {
                    Ticket::refused(&self.audit, caller, sid, Some(frame), &e, None);
                    s.expect_answer();
                    s.push(e.to_jsonrpc(&id), true);
                }
                (Err(e), _, _) if !batch => outcome = Err(e),
                (Err(e), _, _) => warn!(error = %e, "batch element refused"),
            }
        }
        if let Some(s) = &stream {
            s.forget_answer();
        }
        outcome?;
        Ok(stream.map_or(Posted::Accepted, Posted::Stream))
    }

    /// Ends a session: pending requests get an error; its own child is stopped, a shared
    /// child is told what the session's departure changes.
    pub fn close(&self, session: &Arc<Session>) {
        self.sessions.remove(session.id());
        match session.backend() {
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
    pub async fn sweep(self: Arc<Self>) {
        let ttl = self.cfg.session_ttl;
        let idle = self.cfg.session_idle;
        let every = (idle.min(ttl) / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.draining.cancelled() => return,
            }
            for (s, why) in self.sessions.take_expired(idle, ttl) {
                if why != crate::session::Expiry::Ended {
                    // Its own child (per-session mode) stops with it.
                    let child = match s.backend() {
                        Backend::Own(up) => Some(up.pid()),
                        Backend::Shared(_) => None,
                    };
                    info!(
                        session = s.id().as_str(),
                        reason = why.as_str(),
                        child,
                        "idle session expired"
                    );
                }
                self.close(&s);
            }
            self.children.sweep(ttl);
        }
    }

    /// Starts draining: new work is refused, standalone streams end.
    pub fn start_drain(&self) {
        self.draining.cancel();
    }

    /// Answers what is still pending with -31010.
    pub fn fail_in_flight(&self) {
        for s in self.sessions.all() {
            if let Some(up) = s.backend().current() {
                up.fail_pending(Some(&s), &Error::ShuttingDown);
            }
        }
        let modern = self.modern.started().map(|p| p.slots().to_vec());
        for slot in modern.unwrap_or_default() {
            if let Some(up) = slot.current() {
                up.fail_pending(None, &Error::ShuttingDown);
            }
        }
    }

    /// Waits (at most `limit`) until no child is left, including those of sessions closed
    /// before shutdown (their stop sequence may still be running).
    pub async fn wait_children(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.children_alive() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ends every session and waits until every child is reaped.
    pub async fn stop_all(&self) {
        let sessions = self.sessions.drain();
        for s in &sessions {
            self.close(s);
        }
        let waits = sessions.iter().filter_map(|s| match s.backend() {
            Backend::Own(up) => Some(up.clone()),
            Backend::Shared(_) => None,
        });
        let own = futures_util::future::join_all(waits.map(|up| async move { up.wait().await }));
        let modern = async {
            if let Some(pool) = self.modern.started() {
                pool.stop();
                pool.wait().await;
            }
        };
        tokio::join!(own, self.children.stop_all(), modern);
    }
}

/// The raw `params` of an `initialize` request.
fn init_params(init: &Frame) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Env<'a> {
        #[serde(borrow)]
        params: Option<&'a serde_json::value::RawValue>,
    }
    let env: Env<'_> = serde_json::from_slice(init.bytes()).ok()?;
    env.params.map(|p| p.get().to_owned())
}

/// Answers a shared session's `initialize` once its slot's child is ready.
fn answer_initialize(
    slot: Arc<Slot>,
    session: &Arc<Session>,
    init: &Frame,
    stream: &Arc<Stream>,
    mut ticket: Ticket,
) {
    let Some(id) = init.id() else { return };
    stream.expect_answer();
    let session = session.clone();
    let stream = stream.clone();
    tokio::spawn(async move {
        match slot.initialized().await {
            Ok((_, cached)) => {
                let (bytes, version) = shared::initialize_answer(&cached, session.requested(), &id);
                session.set_version(version);
                stream.push(ticket.answer(bytes, None), true);
            }
            Err(e) => {
                stream.push(ticket.answer(e.to_jsonrpc(&id), Some(e.wire().code)), true);
                slot.audience().leave(session.id());
                session.end();
            }
        }
    });
}
