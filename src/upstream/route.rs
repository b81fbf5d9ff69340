//! Routing of what a child writes (PROTOCOL.md §5.4), split from `upstream.rs`'s mux.
//!
//! A response finds its pending request by relay id and gets the client's raw id back; a
//! progress notification finds its request by the relay token and extends its timeout; a
//! modern listen stream's messages are found by `subscriptionId`. Any other child request or
//! notification is claimed by the request its progress token names, else by the only request
//! in flight; unclaimed ones go to the child's [`Audience`](super::audience::Audience), and a
//! child request no session can take is answered -32601.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::Bytes;
use tracing::{debug, warn};

use super::translation::Translation;
use super::{audience, protocol_version, Mux, Pending, Target, Upstream};
use crate::jsonrpc::{Frame, Kind, RawId};
use crate::session::stream::Stream;
use crate::session::Session;

impl Upstream {
    /// Routes one line from the child.
    pub(super) fn route_line(self: &Arc<Self>, line: Bytes) {
        let frame = match Frame::parse_upstream(line) {
            Ok(f) => f,
            Err(e) => {
                self.counters.dropped_lines.fetch_add(1, Ordering::Relaxed);
                warn!(pid = self.pid(), error = %e, "child stdout line dropped");
                return;
            }
        };
        match frame.kind() {
            Kind::Response => self.route_response(frame),
            Kind::Notification if frame.method() == Some("notifications/progress") => {
                self.route_progress(&frame)
            }
            Kind::Notification => {
                if let Some(c) = self.counters.changes.get() {
                    c.changed(&frame);
                }
                self.route_other(&frame, None)
            }
            Kind::Request => self.route_other(&frame, frame.id()),
        }
    }

    fn route_response(&self, frame: Frame) {
        let relay_id = frame.id().and_then(|id| id.as_u64());
        let Some(p) = relay_id.and_then(|id| self.lock().take(id)) else {
            debug!(id = ?frame.id(), "child answer to no pending request dropped");
            return;
        };
        // A 2026-07-28 client of a legacy child gets the answer in its era's terms; a task a
        // child of a pool made is named by the relay's handle (`tasks.rs`).
        let mut tasks = match &p.tasks {
            Some(ids) => super::tasks::task_edits(&frame, ids, self.pid()),
            None => Vec::new(),
        };
        let bytes = match (&p.to, frame.id_span(), &p.translation) {
            (Target::Client { raw_id, ticket, .. }, Some(span), Some(tr)) => {
                tr.decorate(&frame, span, raw_id, ticket.filters(), &mut tasks)
            }
            (Target::Client { raw_id, .. }, Some(span), None) if tasks.is_empty() => {
                frame.splice(&mut [(span, raw_id.as_str())])
            }
            (Target::Client { raw_id, .. }, Some(span), None) => {
                let mut edits = vec![(span, raw_id.as_str())];
                edits.extend(tasks.iter().map(|(r, t)| (r.clone(), t.as_str())));
                frame.splice(&mut edits)
            }
            _ => frame.bytes().clone(),
        };
        let session = p.session().and_then(Weak::upgrade);
        if p.initialize && p.is_client() {
            if let Some(s) = session {
                match frame.result().and_then(protocol_version) {
                    Some(v) => s.set_version(v),
                    None => {
                        // A failed initialize leaves nothing to talk to.
                        let code = crate::jsonrpc::error_code(frame.bytes());
                        if matches!(code, Some(-32601 | -32022..=-32020)) {
                            warn!(
                                pid = self.pid(),
                                code,
                                "the child refused initialize: if it speaks only 2026-07-28, \
                                 set child_era = \"modern\" (--child-era modern) so the relay \
                                 serves legacy clients in front of it"
                            );
                        }
                        p.finish(Ok((frame, bytes)));
                        s.end();
                        self.stop();
                        return;
                    }
                }
            }
        }
        p.finish(Ok((frame, bytes)));
    }

    fn route_progress(&self, frame: &Frame) {
        let token = frame.progress_token().and_then(|t| t.parse::<u64>().ok());
        let mut mux = self.lock();
        let Some((original, relay_id)) = token.and_then(|t| mux.tokens.get(&t).cloned()) else {
            debug!("progress for an unknown token dropped");
            return;
        };
        let Some(p) = mux.pending.get_mut(&relay_id) else {
            return;
        };
        // Progress extends the timeout, up to the hard maximum.
        p.deadline = (Instant::now() + p.timeout).min(p.hard_deadline);
        let Target::Client { stream, .. } = &p.to else {
            return;
        };
        let stream = stream.clone();
        drop(mux);
        if let Some(span) = frame.progress_token_span() {
            stream.push(frame.splice(&mut [(span, &original)]), false);
        }
    }

    /// A child request or notification: pick its session and stream (PROTOCOL.md §5.4), or
    /// leave it to the audience.
    fn route_other(self: &Arc<Self>, frame: &Frame, request: Option<RawId>) {
        let shared = self.audience.is_shared();
        let method = frame.method().unwrap_or_default();
        if request.is_none() && self.route_to_listen(frame, method) {
            return;
        }
        if shared && request.is_none() && is_global(method) {
            self.audience.fan_out(frame);
            return;
        }
        let mut mux = self.lock();
        let token = frame
            .progress_token()
            .and_then(|t| t.parse::<u64>().ok())
            .and_then(|t| mux.tokens.get(&t));
        // The child named the relay's token: the client gets its own back.
        let bytes = match (token, frame.progress_token_span()) {
            (Some((original, _)), Some(span)) => frame.splice(&mut [(span, original)]),
            _ => frame.bytes().clone(),
        };
        let related_id = token.map(|(_, id)| *id);
        if let Some(claim) = translated(&mux, related_id) {
            drop(mux);
            return self.to_translated(frame, request, bytes, claim);
        }
        let related = related_id.and_then(|id| mux.pending.get(&id));
        let (session, stream) = match claim(&mux, related) {
            // A stateless request's notifications stay on its stream; it is never asked.
            Some((None, stream)) if request.is_none() => {
                drop(mux);
                stream.push(bytes, false);
                return;
            }
            Some((None, _)) => (None, None),
            Some((Some(s), stream)) => (s.upgrade(), Some(stream)),
            // With one session on the child, a request can only be for it (a bridge's host).
            // Unless another caller's stateless request may be the one asking.
            None if shared && request.is_some() && !has_stateless(&mux) => {
                (self.audience.sole(), None)
            }
            None if shared => (None, None),
            None => (self.audience.sole(), None),
        };
        let Some(session) = session else {
            drop(mux);
            match request {
                Some(id) => self.refuse(&id, method),
                None if shared => {
                    self.audience.fan_out(frame);
                }
                None => debug!(method, "child notification for no session dropped"),
            }
            return;
        };
        match &request {
            Some(id) if shared && !session.declares(method) => {
                drop(mux);
                self.refuse(id, method);
                return;
            }
            Some(id) => {
                mux.child_requests
                    .insert(id.clone(), Arc::downgrade(&session));
            }
            None if shared
                && method == "notifications/message"
                && !self
                    .audience
                    .admits(session.id(), audience::level_of(frame)) =>
            {
                return;
            }
            None => {}
        }
        drop(mux);
        let stream = stream.unwrap_or_else(|| session.standalone());
        stream.push(bytes, false);
    }

    /// A child message a translated request claimed (`translate.rs`): an input request joins
    /// its round (a `ping` is answered), or its next one if it is parked; a log notification
    /// reaches it only at the level it asked for, other notifications go on its stream.
    fn to_translated(
        self: &Arc<Self>,
        frame: &Frame,
        request: Option<RawId>,
        bytes: Bytes,
        claim: Claim,
    ) {
        let method = frame.method().unwrap_or_default();
        match (claim, request) {
            (_, Some(id)) if method == "ping" => self.refuse(&id, method),
            (Claim::Parked(relay_id), Some(id)) => self.park_input(relay_id, frame, id),
            (Claim::Parked(_), None) => {}
            (Claim::Live(relay_id, tr, _), Some(id)) => self.offer_input(relay_id, &tr, frame, id),
            (Claim::Live(_, tr, _), None)
                if method == "notifications/message" && !tr.admits_log(frame) => {}
            (Claim::Live(_, _, stream), None) => stream.push(bytes, false),
        }
    }

    /// A modern listen stream's messages: tagged with its request's (relay) id as
    /// `subscriptionId`, which goes back as the client's id; the child's
    /// `notifications/cancelled` for it ends the stream. True when handled.
    fn route_to_listen(&self, frame: &Frame, method: &str) -> bool {
        let teardown = method == "notifications/cancelled";
        let (value, span) = if teardown {
            (frame.request_id(), frame.request_id_span())
        } else {
            (frame.subscription_id(), frame.subscription_id_span())
        };
        let Some(relay_id) = value.and_then(|v| v.parse::<u64>().ok()) else {
            return false;
        };
        let mut mux = self.lock();
        if teardown {
            // Only a listen stream is torn down so: any other number is the child's own id.
            let listen = mux
                .pending
                .get(&relay_id)
                .is_some_and(|p| p.listen && p.is_client() && p.session().is_none());
            if !listen {
                return false;
            }
            if let Some(Target::Client {
                session, stream, ..
            }) = mux.take(relay_id).map(|p| p.to)
            {
                drop(mux);
                if let Some(s) = session.and_then(|s| s.upgrade()) {
                    s.end_request();
                }
                stream.forget_answer();
            }
            return true;
        }
        let Some(Target::Client {
            raw_id,
            stream,
            session: None,
            ..
        }) = mux.pending.get(&relay_id).map(|p| &p.to)
        else {
            return false;
        };
        let stream = stream.clone();
        let bytes = match span {
            Some(span) => frame.splice(&mut [(span, raw_id.as_str())]),
            None => frame.bytes().clone(),
        };
        drop(mux);
        stream.push(bytes, false);
        true
    }

    /// Answers a child request no session can take, as a client without the capability would
    /// (a `ping` is answered: the relay is alive).
    fn refuse(&self, id: &RawId, method: &str) {
        if method == "ping" {
            let pong = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#, id.as_str());
            let _ = self.child.send(Bytes::from(pong));
            return;
        }
        debug!(method, "child request refused: no session can answer it");
        let refusal = crate::jsonrpc::error_response(
            Some(id.as_str()),
            -32601,
            "Method not found",
            &serde_json::Value::Null,
        );
        let _ = self.child.send(refusal);
    }
}

/// Notifications a shared child's sessions all care about, whoever is in flight.
fn is_global(method: &str) -> bool {
    (method.starts_with("notifications/") && method.ends_with("/list_changed"))
        || method == "notifications/resources/updated"
}

/// What a child message belongs to among translated requests.
enum Claim {
    /// A translated request the child is serving: its relay id, translation and stream.
    Live(u64, Arc<Translation>, Arc<Stream>),
    /// A translated request waiting for its client's retry.
    Parked(u64),
}

/// The request a child message belongs to, chosen like any client request ([`claim`]), when
/// it is a translated one (`translate.rs`). A parked request counts as in flight: the child
/// still serves it.
fn translated(mux: &Mux, related: Option<u64>) -> Option<Claim> {
    let (id, p) = match related {
        Some(id) => (id, mux.pending.get(&id)?),
        None => only_in_flight(mux)?,
    };
    match (&p.translation, &p.to) {
        (Some(tr), Target::Client { stream, .. }) => {
            Some(Claim::Live(id, tr.clone(), stream.clone()))
        }
        (_, Target::Parked { .. }) => Some(Claim::Parked(id)),
        _ => None,
    }
}

/// Whether a stateless request (or a parked one) is pending on the child.
fn has_stateless(mux: &Mux) -> bool {
    mux.pending.values().any(|p| {
        matches!(p.to, Target::Parked { .. })
            || (p.is_client() && p.session().is_none() && !p.listen)
    })
}

/// The only client request in flight on the child, if there is one. A parked request does
/// not count: its child is blocked on the round's answers (a round gathers every request the
/// child writes together), so what the child asks now is for a request it is serving.
fn only_in_flight(mux: &Mux) -> Option<(u64, &Pending)> {
    let mut clients = mux
        .pending
        .iter()
        .filter(|(_, p)| p.is_client() && !p.listen);
    match (clients.next(), clients.next()) {
        (Some((id, p)), None) => Some((*id, p)),
        _ => None,
    }
}

/// The client request a child message belongs to: the one its progress token names, else
/// the only client request in flight; with its session (`None`: stateless) and stream.
fn claim(mux: &Mux, related: Option<&Pending>) -> Option<(Option<Weak<Session>>, Arc<Stream>)> {
    related
        .or_else(|| only_in_flight(mux).map(|(_, p)| p))
        .and_then(|p| match &p.to {
            Target::Client {
                session, stream, ..
            } => Some((session.clone(), stream.clone())),
            Target::Relay(_) | Target::Parked { .. } => None,
        })
}
