//! The session state machine: what one message does, inside a session or outside one.
//!
//! Every session-based front (Streamable HTTP before 2026-07-28, legacy SSE, WebSocket, TCP, the
//! stdio front) hands [`Relay::post`] one parsed message with the session it arrived in. This file
//! decides, once for all of them: `initialize` opens a session (refused inside one, and inside a
//! batch), anything else needs a session, batches only where the session's version allows them and
//! at most `MAX_BATCH` long, the session caps; then each message is admitted (`Relay::admit`),
//! passed through the shared-child rules (`relay/shared.rs`) and dispatched (`upstream.rs`,
//! `upstream/mux.rs`). Refusals of the whole message are recorded in the audit log here and
//! returned with the id the error must echo; refusals of one request among others are answered on
//! that request's stream. Framing stays in `listener/`, the policy phases in `policy/phases.rs`
//! (run per message by `Relay::admit`), stateless (2026-07-28) requests in `relay/modern.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tracing::{info, warn};

use super::cache::Probe;
use super::children::Backend;
use super::shared::{self, Handled};
use super::Relay;
use crate::caller::{AuthFailure, Caller, Transport};
use crate::era;
use crate::error::Error;
use crate::jsonrpc::{Frame, Kind, Message, RawId, MAX_BATCH};
use crate::session::stream::Stream;
use crate::session::{Full, Hello, Session};
use crate::ticket::Ticket;
use crate::upstream::supervisor::{self, Init, Slot};
use crate::upstream::{ServerSpec, Upstream};

/// What a message produced.
#[derive(Debug)]
pub(crate) enum Posted {
    /// Only notifications and responses: nothing will be answered (HTTP 202).
    Accepted,
    /// Requests: their answers arrive on this stream.
    Stream(Arc<Stream>),
    /// `initialize` opened this session; its answer arrives on the stream.
    Opened(Arc<Session>, Arc<Stream>),
}

/// The session a message arrived in, as its front found it.
#[derive(Debug)]
pub(crate) enum Within<'a> {
    /// A request naming no session (Streamable HTTP without `Mcp-Session-Id`).
    Unnamed,
    /// A connection whose `initialize` has not opened its session yet.
    Unopened,
    /// A session reserved for its connection (legacy SSE), waiting for `initialize`.
    Reserved(&'a Arc<Session>),
    /// This session.
    Session(&'a Arc<Session>),
    /// A session the front could not use (unknown, another principal's, a version header
    /// that does not match): the message is refused with `error`.
    Unusable { id: &'a str, error: Error },
}

impl Within<'_> {
    /// The session id the audit record names.
    fn id(&self) -> Option<&str> {
        match self {
            Within::Unnamed | Within::Unopened | Within::Reserved(_) => None,
            Within::Session(s) => Some(s.id().as_str()),
            Within::Unusable { id, .. } => Some(id),
        }
    }
}

/// A message refused as a whole (already recorded): the error, and the id of the request it
/// answers (a single request's; none for a batch or a notification).
#[derive(Debug)]
pub(crate) struct Refused {
    pub error: Error,
    pub id: Option<RawId>,
}

impl Refused {
    /// Records `error` as the refusal of `frames` and says which id the answer echoes.
    pub(super) fn record(
        relay: &Relay,
        caller: &Caller,
        session: Option<&str>,
        frames: &[Frame],
        error: Error,
    ) -> Refused {
        let single = match frames {
            [one] => Some(one),
            _ => None,
        };
        relay.record_refusal(caller, session, single, &error);
        let id = single
            .filter(|f| f.kind() == Kind::Request)
            .and_then(Frame::id);
        Refused { error, id }
    }
}

impl Relay {
    /// Parses what a front read: a body it could not read (`Err`) or one that does not parse
    /// is refused and recorded here, and so is every message of a caller whose credential ran
    /// out (a connection front authenticates once, then outlives the token).
    pub(crate) fn parse(
        &self,
        caller: &Caller,
        session: Option<&str>,
        read: Result<Bytes, Error>,
    ) -> Result<Message, Error> {
        let parsed = if caller.is_expired() {
            Err(self
                .policy()
                .refusal_at(AuthFailure::Expired, Some(&self.config().mount)))
        } else {
            read.and_then(|bytes| Message::parse(bytes).map_err(Error::from))
        };
        if let Err(e) = &parsed {
            self.record_refusal(caller, session, None, e);
        }
        parsed
    }

    /// Handles one message of `caller` arriving `within` a session (or outside one): opens
    /// the session on `initialize`, or dispatches it in its session. A refusal of the whole
    /// message is recorded and returned for the front to answer.
    pub(crate) async fn post(
        &self,
        caller: &Caller,
        within: Within<'_>,
        message: &Message,
    ) -> Result<Posted, Refused> {
        let frames = message.frames();
        let session = within.id().map(str::to_owned);
        match self
            .decide(caller, within, frames, message.is_batch())
            .await
        {
            Ok(posted) => Ok(posted),
            Err(e) => Err(Refused::record(self, caller, session.as_deref(), frames, e)),
        }
    }

    /// The state machine, in this order: an unusable session; `initialize` (never inside a
    /// session, never in a batch); a session needed for anything else; batches where the
    /// session's version allows them, and not longer than `MAX_BATCH`.
    async fn decide(
        &self,
        caller: &Caller,
        within: Within<'_>,
        frames: &[Frame],
        batch: bool,
    ) -> Result<Posted, Error> {
        let init = frames
            .iter()
            .find(|f| f.kind() == Kind::Request && f.method() == Some("initialize"));
        let (session, reserved) = match within {
            Within::Unusable { error, .. } => return Err(error),
            // An aggregate session's servers decide with the roles it was opened with: a
            // caller with other roles opens a session of its own (a session is not a token).
            Within::Session(s) if s.roles().is_some_and(|r| r != caller.principal.roles) => {
                return Err(Error::UnknownSession)
            }
            Within::Session(s) => (Ok(s), None),
            Within::Unnamed => (Err(Error::MissingSession), None),
            Within::Unopened => (Err(Error::InvalidRequest("not_initialized")), None),
            Within::Reserved(s) => (Err(Error::InvalidRequest("not_initialized")), Some(s)),
        };
        match (init, session) {
            (Some(_), Ok(_)) => Err(Error::InvalidRequest("second_initialize")),
            (Some(_), Err(_)) if batch => Err(Error::InvalidRequest("initialize_in_batch")),
            (Some(_), Err(_)) if self.cfg.era == crate::config::EraPolicy::ModernOnly => {
                Err(Error::LegacyRefused)
            }
            (Some(init), Err(_)) => {
                let face = self.legacy_face().await?;
                let (session, stream) = self.open(init, caller, reserved, face.as_deref()).await?;
                Ok(Posted::Opened(session, stream))
            }
            (None, Err(e)) => Err(e),
            (None, Ok(session)) => {
                if batch && !era::batches_allowed(session.effective_version()) {
                    return Err(Error::InvalidRequest("batch_not_allowed"));
                }
                if frames.len() > MAX_BATCH {
                    return Err(Error::InvalidRequest("batch_too_large"));
                }
                self.submit(session, frames, caller).await
            }
        }
    }

    /// Opens a session for an `initialize` request of `caller` (or fills the one reserved
    /// for its connection): binds it to a child and forwards the request (its own child) or
    /// answers it from the shared child's cache.
    async fn open(
        &self,
        init: &Frame,
        caller: &Caller,
        reserved: Option<&Arc<Session>>,
        face: Option<&ServerSpec>,
    ) -> Result<(Arc<Session>, Arc<Stream>), Error> {
        let ticket = self
            .admit(caller, None, init, false)
            .await
            .map_err(|(e, _)| e)?;
        let mut ticket = Some(ticket);
        let opened = self.open_inner(init, caller, reserved, face, &mut ticket);
        // Refused: `post` records it, once.
        if let Some(t) = ticket.filter(|_| opened.is_err()) {
            t.discard();
        }
        opened
    }

    fn open_inner(
        &self,
        init: &Frame,
        caller: &Caller,
        reserved: Option<&Arc<Session>>,
        face: Option<&ServerSpec>,
        ticket: &mut Option<Ticket>,
    ) -> Result<(Arc<Session>, Arc<Stream>), Error> {
        let identity = caller.owner();
        // A reserved session was counted when it was reserved.
        self.may_open(identity, reserved.is_none())?;
        // A modern-only child: the session gets its own instance of the legacy face.
        let backend = match face {
            Some(face) => self.bind_face(face, caller),
            None => self.children.bind(&self.cfg, &self.counters, caller),
        };
        self.ready.store(
            !matches!(backend, Err(Error::ChildUnavailable | Error::LinkDown(_))),
            Ordering::Relaxed,
        );
        let backend = backend?;
        let session = match reserved {
            Some(s) => self.fill(s, init, &backend)?,
            None => self.insert(init, caller, &backend)?,
        };
        if matches!(self.names(), crate::policy::rbac::Names::Delegated) {
            session.keep_roles(&caller.principal.roles);
        }
        session.opened_on(caller.transport);
        session.touch();
        let stream = session.new_stream();
        let ticket = ticket.take().unwrap_or_default();
        self.greet(&session, &backend, init, &stream, ticket)?;
        crate::telemetry::metrics::session_opened();
        Ok((session, stream))
    }

    /// A new session of `caller` bound to `backend`, in the table under the caps. Only a
    /// Streamable HTTP client can resume its streams.
    fn insert(
        &self,
        init: &Frame,
        caller: &Caller,
        backend: &Backend,
    ) -> Result<Arc<Session>, Error> {
        let session = Session::new(
            Hello::of(init),
            caller.owner().map(str::to_owned),
            self.cfg.buffer,
            caller.transport == Transport::StreamableHttp,
        );
        let (cap, per_owner) = (self.cfg.max_sessions, self.per_principal_cap());
        if let Err(full) =
            self.sessions
                .insert(session.clone(), Some(backend.clone()), cap, per_owner)
        {
            stop_own(backend);
            return Err(match full {
                Full::Global => Error::SessionCap,
                Full::Principal => Error::PrincipalSessionCap,
            });
        }
        Ok(session)
    }

    /// A reserved session filled with its `initialize` and bound to `backend`.
    fn fill(
        &self,
        session: &Arc<Session>,
        init: &Frame,
        backend: &Backend,
    ) -> Result<Arc<Session>, Error> {
        let bound = session.greet(Hello::of(init))
            && self.sessions.bind(session.id(), Some(backend.clone()));
        if !bound {
            stop_own(backend);
            return Err(Error::UnknownSession);
        }
        Ok(session.clone())
    }

    /// Whether a new session of `identity` may open now; with `caps`, under the session caps
    /// (checked again on insert; checking first spares a spawn for a caller at its cap).
    fn may_open(&self, identity: Option<&str>, caps: bool) -> Result<(), Error> {
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        if self.cfg.session_mode == crate::config::SessionMode::PerIdentity
            && identity.is_some_and(|i| !crate::caller::identity_is_valid(i))
        {
            return Err(Error::Identity("bad_identity"));
        }
        if !caps {
            return Ok(());
        }
        if self.sessions.count() >= self.cfg.max_sessions {
            return Err(Error::SessionCap);
        }
        if identity.is_some_and(|o| self.sessions.count_of(o) >= self.per_principal_cap()) {
            return Err(Error::PrincipalSessionCap);
        }
        Ok(())
    }

    /// Hands a new session's `initialize` to its child, or answers it from the shared
    /// child's cache.
    fn greet(
        &self,
        session: &Arc<Session>,
        backend: &Backend,
        init: &Frame,
        stream: &Arc<Stream>,
        ticket: Ticket,
    ) -> Result<(), Error> {
        match backend {
            Backend::Own(up) => {
                up.audience().join(session);
                if let Err(e) = up.forward_request(Some(session), init, stream, ticket) {
                    self.close(session);
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
                slot.audience().join(session);
                answer_initialize(slot.clone(), session, init, stream, ticket);
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
        Ok(())
    }

    /// Dispatches the messages of one POST (or line, or WebSocket message) inside a session.
    async fn submit(
        &self,
        session: &Arc<Session>,
        frames: &[Frame],
        caller: &Caller,
    ) -> Result<Posted, Error> {
        if self.is_draining() {
            return Err(Error::ShuttingDown);
        }
        // Any `initialize` (a notification or response too) is refused in a session.
        if frames.iter().any(|f| f.method() == Some("initialize")) {
            return Err(Error::InvalidRequest("second_initialize"));
        }
        session.touch();
        let backend = self
            .sessions
            .bound(session.id())
            .flatten()
            .ok_or(Error::UnknownSession)?;
        let up = backend.upstream().await?;
        let init = match &backend {
            Backend::Shared(slot) => match slot.state() {
                supervisor::State::Ready(_, init) => init,
                _ => None,
            },
            Backend::Own(_) => None,
        };
        let requests = frames.iter().filter(|f| f.kind() == Kind::Request).count();
        let batch = Batch {
            caller,
            session,
            shared: up.audience().is_shared(),
            up,
            init,
            many: frames.len() > 1,
            stream: (requests > 0).then(|| session.new_stream()),
        };
        // Held while dispatching, so a fast answer cannot end the stream early.
        if let Some(s) = &batch.stream {
            s.expect_answer();
        }
        let mut outcome = Ok(());
        for frame in frames {
            let cached = match &self.cache {
                Some(c) => c.probe(caller, session, frame).await,
                None => Probe::Pass,
            };
            if let Err(e) = self.submit_one(&batch, frame, cached).await {
                outcome = Err(e);
            }
        }
        if let Some(s) = &batch.stream {
            s.forget_answer();
        }
        outcome?;
        Ok(batch.stream.map_or(Posted::Accepted, Posted::Stream))
    }

    /// Admits and dispatches one message of a batch. A refused request is answered on the
    /// stream (a denial always; a dispatch refusal inside a batch); the error returned is
    /// the whole POST's. An admitted request the response cache has the answer to is
    /// answered from it (`cached`).
    async fn submit_one(&self, b: &Batch<'_>, frame: &Frame, cached: Probe) -> Result<(), Error> {
        let sid = Some(b.session.id().as_str());
        let Some(mut ticket) = self.ticket_in(b, frame).await? else {
            return Ok(());
        };
        let handled = match cached {
            Probe::Hit(answer) => Handled::Answered(answer),
            Probe::Miss(keep) => {
                ticket.keep_with(keep);
                Handled::Forward
            }
            Probe::Pass if b.shared => {
                shared::intercept(b.session, &b.up, b.init.as_deref(), frame)
            }
            Probe::Pass => Handled::Forward,
        };
        let result = match (handled, frame.kind(), &b.stream) {
            (Handled::Swallowed, _, _) => Ok(()),
            (Handled::Answered(bytes), _, Some(s)) => {
                s.expect_answer();
                let code = crate::jsonrpc::error_code(&bytes);
                s.push(ticket.answer(bytes, code), true);
                Ok(())
            }
            (Handled::Forward, Kind::Request, Some(s)) => {
                b.up.forward_request(Some(b.session), frame, s, ticket)
                    .map(|_| ())
            }
            (Handled::Forward, Kind::Notification, _) => {
                b.up.forward_notification(b.session, frame);
                Ok(())
            }
            (Handled::Forward, Kind::Response, _) => b.up.forward_response(b.session, frame),
            (_, _, None) => Err(Error::Internal),
        };
        // The session's or child's own caps refuse at dispatch: throttling too.
        if result.as_ref().is_err_and(Error::is_capacity) {
            b.session.note_admission(true);
        }
        match (result, &b.stream, frame.id()) {
            (Ok(()), _, _) => Ok(()),
            (Err(e), Some(s), Some(id)) if b.many && frame.kind() == Kind::Request => {
                Ticket::refused(&self.audit, b.caller, sid, Some(frame), &e, None);
                s.expect_answer();
                s.push(e.to_jsonrpc(&id), true);
                Ok(())
            }
            (Err(e), _, _) if !b.many => Err(e),
            (Err(e), _, _) => {
                warn!(error = %e, "batch element refused");
                Ok(())
            }
        }
    }

    /// The ticket of one message of a batch: a request is admitted (and the session's
    /// throttling noted), other messages need none. `None`: the request was refused and
    /// answered on the stream (a denial is an answer, as if from the server: never a
    /// transport error).
    async fn ticket_in(&self, b: &Batch<'_>, frame: &Frame) -> Result<Option<Ticket>, Error> {
        if frame.kind() != Kind::Request {
            return Ok(Some(Ticket::default()));
        }
        let sid = Some(b.session.id().as_str());
        let admitted = self.admit(b.caller, sid, frame, false).await;
        let throttled = matches!(&admitted, Err((e, _)) if e.is_capacity());
        b.session.note_admission(throttled);
        match (admitted, &b.stream, frame.id()) {
            (Ok(t), _, _) => Ok(Some(t)),
            (Err((e, rule)), Some(s), Some(id)) => {
                Ticket::refused(&self.audit, b.caller, sid, Some(frame), &e, Some(rule));
                s.expect_answer();
                s.push(e.to_jsonrpc(&id), true);
                Ok(None)
            }
            (Err((e, _)), _, _) => Err(e),
        }
    }
}

/// What the messages of one POST share while they are dispatched.
struct Batch<'a> {
    caller: &'a Caller,
    session: &'a Arc<Session>,
    up: Arc<Upstream>,
    /// The shared child's cached `initialize` answer.
    init: Option<Arc<Init>>,
    shared: bool,
    /// More than one message: a refused request is answered on the stream.
    many: bool,
    /// The stream of the requests' answers (none when there are no requests).
    stream: Option<Arc<Stream>>,
}

/// Stops the child spawned for a session that did not open.
fn stop_own(backend: &Backend) {
    if let Backend::Own(up) = backend {
        up.stop();
    }
}

/// The raw `params` of an `initialize` request.
fn init_params(init: &Frame) -> Option<String> {
    let params = init.params::<&serde_json::value::RawValue>()?;
    Some(params.get().to_owned())
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
