//! One upstream MCP server process and the id multiplexing in front of it.
//!
//! Client→child requests always get relay-unique integer ids, and `_meta.progressToken`
//! is namespaced the same way; the [`Upstream`] maps them back to (session, stream, raw
//! original) when the child answers, so ids of any form survive byte for byte and sessions
//! cannot collide. Child→client requests keep their ids and are remembered with their
//! session so only that session may answer. Routing of child messages follows PROTOCOL.md
//! §5.4: related progress token → that request's stream; exactly one request in flight → its
//! stream; otherwise the child's [`Audience`] decides (the one session of a per-session child,
//! the fan-out rules of a shared one). A per-session child is a shared child with one
//! session: one code path. The relay can also ask the child itself ([`Upstream::call`]) for
//! `initialize`, subscriptions and log levels of shared children. Routing of the child's
//! output lives in `upstream/route.rs`, process handling in `upstream/stdio.rs`, restarts in
//! `upstream/supervisor.rs`, fan-out in `upstream/audience.rs`.

pub(crate) mod audience;
mod call;
mod lines;
mod mux;
pub(crate) mod remote;
mod route;
pub(crate) mod spares;
pub(crate) mod stdio;
pub(crate) mod supervisor;
pub(crate) mod tasks;
pub(crate) mod translate;
pub(crate) mod translation;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use crate::caller::Caller;
use crate::error::Error;
use crate::jsonrpc::{Frame, RawId};
use crate::session::stream::Stream;
use crate::session::Session;
use crate::ticket::Ticket;
use audience::Audience;
use mux::{Mux, Pending, Target};
use stdio::{ChildEvent, ChildHandle, ChildOutput, ChildSpec};

/// The configured server: a command run as a child, a remote server, or a server inside the
/// relay (the aggregate of several named servers, `aggregate.rs`).
#[derive(Debug, Clone)]
pub(crate) enum ServerSpec {
    Command(ChildSpec),
    Remote(remote::RemoteSpec),
    InProcess(Arc<dyn Launch>),
}

/// A server that runs inside the relay and speaks JSON-RPC lines over channels
/// ([`stdio::link`]), started once per session.
pub(crate) trait Launch: Send + Sync + std::fmt::Debug {
    /// Starts one instance, for the session `caller` opens (`None`: a supervised slot).
    fn launch(&self, caller: Option<&Caller>) -> (ChildHandle, ChildOutput);

    /// Largest message accepted from it.
    fn max_line(&self) -> usize;
}

impl ServerSpec {
    /// Starts one instance: spawns the child, starts connecting, or starts the in-process
    /// server for `caller`'s session.
    fn launch(&self, caller: Option<&Caller>) -> Result<(ChildHandle, ChildOutput), stdio::Error> {
        match self {
            ServerSpec::Command(spec) => stdio::spawn(spec),
            ServerSpec::Remote(spec) => Ok(remote::connect(spec)),
            ServerSpec::InProcess(server) => Ok(server.launch(caller)),
        }
    }

    /// Largest message accepted from the server (and from the stdio front).
    pub(crate) fn max_line(&self) -> usize {
        match self {
            ServerSpec::Command(c) => c.max_line,
            ServerSpec::Remote(spec) => spec.max_message(),
            ServerSpec::InProcess(server) => server.max_line(),
        }
    }
}

/// Per-request limits applied by the upstream.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Time without an answer (or progress) after which a request fails with -31008.
    pub request_timeout: Duration,
    /// Hard maximum, however much progress arrives.
    pub request_timeout_max: Duration,
    /// Requests in flight per session.
    pub inflight_per_session: usize,
    /// Requests in flight per child, over all its sessions.
    pub inflight_per_child: usize,
    /// `--method-timeout`: methods with their own `request_timeout` (the hard maximum is
    /// at least that long). Built once per configuration load.
    pub method_timeouts: Arc<[(Box<str>, Duration)]>,
}

impl Limits {
    /// The time without an answer or progress after which `method` fails.
    pub(crate) fn timeout_for(&self, method: &str) -> Duration {
        self.method_timeouts
            .iter()
            .find(|(m, _)| &**m == method)
            .map_or(self.request_timeout, |(_, t)| *t)
    }

    /// A request's timeout, deadline and hard deadline from `now`; a `listen` stream has
    /// neither deadline.
    fn deadlines(&self, method: &str, listen: bool, now: Instant) -> (Duration, Instant, Instant) {
        let timeout = self.timeout_for(method);
        if listen {
            let never = now + LISTEN_LIFETIME;
            return (timeout, never, never);
        }
        let hard = now + self.request_timeout_max.max(timeout);
        (timeout, now + timeout, hard)
    }
}

/// How long a `subscriptions/listen` may stay open (no request timeout applies to it).
const LISTEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// Relay-wide counters every child reports into, and the children the one timeout sweeper
/// ([`expire_all`]) visits.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub children: AtomicUsize,
    pub dropped_lines: AtomicU64,
    live: Mutex<Vec<Weak<Upstream>>>,
    /// Told of every child notification (the response cache's invalidation), when set.
    pub changes: std::sync::OnceLock<Arc<dyn Changes>>,
}

/// Hears the notifications of a relay's children that change what they would answer
/// (`notifications/*/list_changed`, `notifications/resources/updated`).
pub(crate) trait Changes: Send + Sync + std::fmt::Debug {
    fn changed(&self, notification: &Frame);
}

/// What the relay gets back for a request it sent itself.
pub(crate) type Answer = oneshot::Receiver<Result<Frame, Error>>;

/// A running child plus its multiplexing state.
#[derive(Debug)]
pub(crate) struct Upstream {
    child: ChildHandle,
    limits: Limits,
    next_id: AtomicU64,
    mux: Mutex<Mux>,
    audience: Arc<Audience>,
    counters: Arc<Counters>,
    /// The relay asked this child to stop (its exit is expected; metrics).
    stop_asked: std::sync::atomic::AtomicBool,
}

impl Upstream {
    /// Spawns the child (for the session `caller` opens, when one does) and starts routing
    /// its output.
    pub(crate) fn spawn(
        spec: &ServerSpec,
        caller: Option<&Caller>,
        limits: Limits,
        audience: Arc<Audience>,
        counters: Arc<Counters>,
    ) -> Result<Arc<Upstream>, stdio::Error> {
        let (child, events) = spec.launch(caller)?;
        Ok(Upstream::adopt(child, events, limits, audience, counters))
    }

    /// Starts routing the output of a child already started (by [`Upstream::spawn`], or
    /// ahead of its session: `upstream/spares.rs`).
    pub(crate) fn adopt(
        child: ChildHandle,
        events: ChildOutput,
        limits: Limits,
        audience: Arc<Audience>,
        counters: Arc<Counters>,
    ) -> Arc<Upstream> {
        counters.children.fetch_add(1, Ordering::Relaxed);
        let up = Arc::new(Upstream {
            child,
            limits,
            next_id: AtomicU64::new(1),
            mux: Mutex::new(Mux::default()),
            audience,
            counters,
            stop_asked: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(route(up.clone(), events));
        up.counters
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&up));
        up
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mux> {
        self.mux.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn audience(&self) -> &Arc<Audience> {
        &self.audience
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// A remote link rather than a child process.
    pub(crate) fn is_link(&self) -> bool {
        self.child.is_link()
    }

    /// Why the remote link last failed (`upstream/remote/cause.rs`), if it said.
    pub(crate) fn link_cause(&self) -> Option<Arc<str>> {
        self.child.link_cause()
    }

    pub(crate) fn is_alive(&self) -> bool {
        !self.child.exited()
    }

    /// Requests in flight on this child.
    pub(crate) fn inflight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Forwards a client request with a relay id (returned); its answer will be pushed to
    /// `stream`. `session` is `None` for a stateless (modern) request.
    pub(crate) fn forward_request(
        &self,
        session: Option<&Arc<Session>>,
        frame: &Frame,
        stream: &Arc<Stream>,
        ticket: Ticket,
    ) -> Result<u64, Error> {
        let (Some(raw_id), Some(id_span)) = (frame.id(), frame.id_span()) else {
            return Err(Error::Internal);
        };
        let mut ticket = Some(ticket);
        let result = self.dispatch(
            session,
            frame,
            stream,
            (raw_id, id_span),
            &mut ticket,
            (None, None),
        );
        // Refused here: the caller answers (and records) the error.
        if let Some(t) = ticket {
            t.discard();
        }
        result
    }

    /// Registers and sends one client request; `ticket` is taken once it is registered.
    fn dispatch(
        &self,
        session: Option<&Arc<Session>>,
        frame: &Frame,
        stream: &Arc<Stream>,
        (raw_id, id_span): (RawId, std::ops::Range<usize>),
        ticket: &mut Option<Ticket>,
        (translation, tasks): (
            Option<Arc<translation::Translation>>,
            Option<Arc<dyn tasks::TaskIds>>,
        ),
    ) -> Result<u64, Error> {
        let mut mux = self.lock();
        if mux.exited {
            return Err(Error::ChildExited);
        }
        if mux.pending.len() >= self.limits.inflight_per_child {
            return Err(Error::InflightCap);
        }
        if let Some(s) = session {
            if !s.begin_request(self.limits.inflight_per_session) {
                return Err(Error::InflightCap);
            }
        }
        let relay_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id_text = relay_id.to_string();
        let mut edits = vec![(id_span, id_text.as_str())];
        let mut token = None;
        let token_text;
        if let (Some(raw), Some(span)) = (frame.progress_token(), frame.progress_token_span()) {
            let t = self.next_id.fetch_add(1, Ordering::Relaxed);
            mux.tokens.insert(t, (raw.into(), relay_id));
            token = Some(t);
            token_text = t.to_string();
            edits.push((span, token_text.as_str()));
        }
        let bytes = frame.splice(&mut edits);
        // A modern subscription stream lives until the client closes it.
        let listen = frame.method() == Some("subscriptions/listen");
        let (timeout, deadline, hard_deadline) =
            self.limits
                .deadlines(frame.method().unwrap_or_default(), listen, Instant::now());
        mux.pending.insert(
            relay_id,
            Pending {
                to: Target::Client {
                    raw_id,
                    session: session.map(Arc::downgrade),
                    stream: stream.clone(),
                    ticket: ticket.take().unwrap_or_default(),
                },
                token,
                initialize: frame.method() == Some("initialize"),
                listen,
                deadline,
                hard_deadline,
                timeout,
                translation,
                tasks,
            },
        );
        stream.expect_answer();
        if let Err(e) = self.child.send(bytes) {
            let e = match e {
                stdio::Error::QueueFull => Error::InflightCap,
                _ => Error::ChildExited,
            };
            if let Some(Target::Client { ticket, .. }) = mux.take(relay_id).map(|p| p.to) {
                ticket.discard();
            }
            if let Some(s) = session {
                s.end_request();
            }
            stream.forget_answer();
            return Err(e);
        }
        Ok(relay_id)
    }

    /// Forwards a stateless (modern) client notification as it is.
    pub(crate) fn forward_raw(&self, frame: &Frame) {
        let _ = self.child.send(frame.bytes().clone());
    }

    /// Sends a notification of the relay's own.
    pub(crate) fn notify(&self, method: &str, params: &str) {
        let method = serde_json::Value::from(method);
        let line = format!(r#"{{"jsonrpc":"2.0","method":{method},"params":{params}}}"#);
        let _ = self.child.send(Bytes::from(line));
    }

    /// Cancels a request by relay id (a modern client closed its stream, or a timeout):
    /// nothing more is delivered for it and the child is told.
    pub(crate) fn cancel(&self, relay_id: u64, reason: &str) {
        let Some(p) = self.lock().take(relay_id) else {
            return;
        };
        let initialize = p.initialize;
        if let Target::Client {
            session, stream, ..
        } = p.to
        {
            if let Some(s) = session.and_then(|s| s.upgrade()) {
                s.end_request();
            }
            stream.forget_answer();
        }
        if !initialize {
            self.send_cancel(relay_id, reason);
        }
    }

    fn send_cancel(&self, relay_id: u64, reason: &str) {
        let reason = serde_json::Value::from(reason);
        self.notify(
            "notifications/cancelled",
            &format!(r#"{{"requestId":{relay_id},"reason":{reason}}}"#),
        );
    }

    /// Forwards a client notification; a cancellation is translated to the relay id, and
    /// dropped when it names no request of this session (or names `initialize`).
    pub(crate) fn forward_notification(&self, session: &Arc<Session>, frame: &Frame) {
        if frame.method() != Some("notifications/cancelled") {
            let _ = self.child.send(frame.bytes().clone());
            return;
        }
        let (Some(target), Some(span)) = (frame.request_id(), frame.request_id_span()) else {
            return;
        };
        let mut mux = self.lock();
        let found = mux.pending.iter().find(|(_, p)| {
            !p.initialize
                && p.belongs_to(session)
                && matches!(&p.to, Target::Client { raw_id, .. } if raw_id.as_str() == target)
        });
        let Some((&relay_id, _)) = found else {
            debug!(
                request_id = target,
                "cancellation for no pending request dropped"
            );
            return;
        };
        if let Some(Target::Client { stream, .. }) = mux.take(relay_id).map(|p| p.to) {
            session.end_request();
            stream.forget_answer();
        }
        drop(mux);
        let _ = self
            .child
            .send(frame.splice(&mut [(span, &relay_id.to_string())]));
    }

    /// Forwards a client's answer to a child request; only the session it went to may answer.
    pub(crate) fn forward_response(
        &self,
        session: &Arc<Session>,
        frame: &Frame,
    ) -> Result<(), Error> {
        let id = frame.id().ok_or(Error::UnexpectedResponse)?;
        let mut mux = self.lock();
        match mux.child_requests.get(&id) {
            Some(s) if s.as_ptr() == Arc::as_ptr(session) => {
                mux.child_requests.remove(&id);
            }
            _ => return Err(Error::UnexpectedResponse),
        }
        drop(mux);
        self.child
            .send(frame.bytes().clone())
            .map_err(|_| Error::ChildExited)
    }

    /// Answers every pending request of `session` (all, the relay's own included, when
    /// `None`) with `err`.
    pub(crate) fn fail_pending(&self, session: Option<&Arc<Session>>, err: &Error) {
        let taken: Vec<Pending> = {
            let mut mux = self.lock();
            let ids: Vec<u64> = mux
                .pending
                .iter()
                .filter(|(_, p)| session.is_none_or(|s| p.belongs_to(s)))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| mux.take(id)).collect()
        };
        for p in taken {
            p.finish(Err(err.clone()));
        }
    }

    /// Forgets what a departing session was asked by the child.
    pub(crate) fn forget_session(&self, session: &Arc<Session>) {
        self.lock()
            .child_requests
            .retain(|_, s| s.as_ptr() != Arc::as_ptr(session));
    }

    /// Starts the stop sequence of the child.
    pub(crate) fn stop(&self) {
        self.stop_asked.store(true, Ordering::Relaxed);
        self.child.stop();
    }

    /// Waits until the child is reaped.
    pub(crate) async fn wait(&self) {
        self.child.wait().await;
    }

    fn on_exit(&self, info: stdio::ExitInfo) {
        {
            let mut mux = self.lock();
            mux.exited = true;
            mux.child_requests.clear();
        }
        self.fail_pending(None, &Error::ChildExited);
        crate::telemetry::metrics::child_exited(self.stop_asked.load(Ordering::Relaxed));
        if self.audience.is_shared() {
            // (`stopping()` is also true after any stdout EOF: ask who asked.)
            let stopped = self.stop_asked.load(Ordering::Relaxed);
            match (self.is_link(), stopped) {
                (true, true) => info!("remote link closed"),
                (true, false) => match self.link_cause() {
                    Some(cause) => warn!(cause = %cause, "remote link lost"),
                    None => warn!("remote link lost"),
                },
                (false, true) => info!(pid = self.pid(), code = ?info.code, "shared child stopped"),
                (false, false) => {
                    warn!(pid = self.pid(), code = ?info.code, signal = ?info.signal, "shared child exited")
                }
            }
            return;
        }
        if let Some(s) = self.audience.sole() {
            if !s.is_ended() {
                warn!(pid = self.pid(), code = ?info.code, signal = ?info.signal, "child exited; session ended");
                s.end();
            }
        }
    }

    fn expire_overdue(&self) {
        let now = Instant::now();
        let overdue: Vec<(u64, Pending)> = {
            let mut mux = self.lock();
            let ids: Vec<u64> = mux
                .pending
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter()
                .filter_map(|id| mux.take(id).map(|p| (id, p)))
                .collect()
        };
        for (relay_id, p) in overdue {
            if let Target::Parked { inputs, .. } = &p.to {
                self.expire_parked(relay_id, inputs);
                continue;
            }
            let initialize = p.initialize;
            p.finish(Err(Error::Timeout));
            if !initialize {
                self.send_cancel(relay_id, "timeout");
            }
        }
    }
}

async fn route(up: Arc<Upstream>, mut output: ChildOutput) {
    while let Some(event) = output.next().await {
        match event {
            ChildEvent::Line(line) => up.route_line(line),
            ChildEvent::Exited(info) => {
                up.on_exit(info);
                break;
            }
        }
    }
    up.counters.children.fetch_sub(1, Ordering::Relaxed);
}

/// A relay's one timeout sweeper: every 250 ms, overdue requests of every live child get
/// -31008 and the child a `notifications/cancelled`. One task, however many children; it ends
/// once the relay and its children are gone (a server a reload retired).
pub(crate) async fn expire_all(counters: Weak<Counters>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(counters) = counters.upgrade() else {
            return;
        };
        let live: Vec<Arc<Upstream>> = {
            let mut list = counters.live.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|w| w.upgrade().is_some_and(|u| u.is_alive()));
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for up in live {
            up.expire_overdue();
        }
    }
}

/// `result.protocolVersion` of an `InitializeResult`.
pub(crate) fn protocol_version(result: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Init {
        #[serde(rename = "protocolVersion")]
        protocol_version: String,
    }
    serde_json::from_str::<Init>(result)
        .ok()
        .map(|i| i.protocol_version)
}
