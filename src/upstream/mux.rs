//! The id multiplexing state of one child: its pending requests (who waits for each answer
//! and until when), relay progress tokens and child→client requests. How a child's output
//! finds them is `upstream/route.rs`; the child actor is `upstream.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::tasks::TaskIds;
use super::translation::{Input, Translation};
use crate::error::Error;
use crate::jsonrpc::{Frame, RawId};
use crate::session::stream::Stream;
use crate::session::Session;
use crate::ticket::Ticket;

#[derive(Debug, Default)]
pub(super) struct Mux {
    pub(super) pending: HashMap<u64, Pending>,
    /// Relay progress token → (original raw token, relay request id).
    pub(super) tokens: HashMap<u64, (Box<str>, u64)>,
    /// Child→client requests awaiting an answer, with the session they went to.
    pub(super) child_requests: HashMap<RawId, Weak<Session>>,
    pub(super) exited: bool,
}

#[derive(Debug)]
pub(super) struct Pending {
    pub(super) to: Target,
    pub(super) token: Option<u64>,
    pub(super) initialize: bool,
    /// A modern `subscriptions/listen`: open until cancelled, never "the request in flight".
    pub(super) listen: bool,
    pub(super) deadline: Instant,
    pub(super) hard_deadline: Instant,
    /// How far progress pushes the deadline (the method's timeout).
    pub(super) timeout: Duration,
    /// A 2026-07-28 request a legacy child serves (`translate.rs`).
    pub(super) translation: Option<Arc<Translation>>,
    /// A stateless request whose answer may name a task of this child (`tasks.rs`).
    pub(super) tasks: Option<Arc<dyn TaskIds>>,
}

/// Who is waiting for an answer.
#[derive(Debug)]
pub(super) enum Target {
    /// A client: its raw id, its session (`None` for a stateless modern request) and the
    /// stream the answer goes to.
    Client {
        raw_id: RawId,
        session: Option<Weak<Session>>,
        stream: Arc<Stream>,
        /// Its audit record and list filter.
        ticket: Ticket,
    },
    /// The relay itself.
    Relay(oneshot::Sender<Result<Frame, Error>>),
    /// A translated request whose client was sent an `input_required` result: the child
    /// still works on it and waits for these inputs until the client's retry (`translate.rs`).
    Parked { round: u32, inputs: Vec<Input> },
}

impl Pending {
    pub(super) fn session(&self) -> Option<&Weak<Session>> {
        match &self.to {
            Target::Client { session, .. } => session.as_ref(),
            Target::Relay(_) | Target::Parked { .. } => None,
        }
    }

    pub(super) fn is_client(&self) -> bool {
        matches!(self.to, Target::Client { .. })
    }

    pub(super) fn belongs_to(&self, session: &Arc<Session>) -> bool {
        self.session()
            .is_some_and(|s| s.as_ptr() == Arc::as_ptr(session))
    }

    /// Delivers the final answer (or a relay error) and releases the session's slot.
    pub(super) fn finish(self, answer: Result<(Frame, Bytes), Error>) {
        match self.to {
            Target::Client {
                raw_id,
                session,
                stream,
                mut ticket,
            } => {
                if let Some(s) = session.and_then(|s| s.upgrade()) {
                    s.end_request();
                }
                let (bytes, code) = match answer {
                    // Only an error answer is read for its code (they are small).
                    Ok((frame, bytes)) => {
                        let code = frame
                            .is_error()
                            .then(|| crate::jsonrpc::error_code(&bytes))
                            .flatten();
                        (bytes, code)
                    }
                    Err(e) => (e.to_jsonrpc(&raw_id), Some(e.wire().code)),
                };
                stream.push(ticket.answer(bytes, code), true);
            }
            Target::Relay(tx) => {
                let _ = tx.send(answer.map(|(frame, _)| frame));
            }
            // Nobody waits: the client will retry, or the wait runs out.
            Target::Parked { .. } => {}
        }
    }
}

impl Mux {
    /// Removes a pending request and its progress token.
    pub(super) fn take(&mut self, id: u64) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        if let Some(t) = p.token {
            self.tokens.remove(&t);
        }
        Some(p)
    }
}
