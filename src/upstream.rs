//! One upstream MCP server process and the id multiplexing in front of it.
//!
//! Client→child requests always get relay-unique integer ids, and `_meta.progressToken`
//! is namespaced the same way; the [`Upstream`] maps them back to (session, stream, raw
//! original) when the child answers, so ids of any form survive byte for byte and sessions
//! cannot collide. Child→client requests keep their ids and are remembered with their
//! session so only that session may answer. Routing of child messages to streams follows
//! PROTOCOL.md §5.4: related progress token → that request's stream; exactly one request in
//! flight → its stream; otherwise the session's standalone stream (buffered until a GET
//! attaches). A per-session child is a shared child with one session: one code path.
//! Process handling lives in `upstream/stdio.rs`.

mod lines;
pub mod stdio;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{debug, warn};

use crate::error::Error;
use crate::jsonrpc::{Frame, Kind, RawId};
use crate::relay::stream::Stream;
use crate::session::Session;
use stdio::{ChildEvent, ChildHandle, ChildOutput, ChildSpec};

/// Per-request limits applied by the upstream.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time without an answer (or progress) after which a request fails with -31008.
    pub request_timeout: Duration,
    /// Hard maximum, however much progress arrives.
    pub request_timeout_max: Duration,
    /// Requests in flight per session.
    pub inflight_per_session: usize,
}

/// A running child plus its multiplexing state.
#[derive(Debug)]
pub struct Upstream {
    child: ChildHandle,
    limits: Limits,
    next_id: AtomicU64,
    mux: Mutex<Mux>,
    dropped_lines: AtomicU64,
}

#[derive(Debug, Default)]
struct Mux {
    pending: HashMap<u64, Pending>,
    /// Relay progress token → (original raw token, relay request id).
    tokens: HashMap<u64, (Box<str>, u64)>,
    /// Child→client requests awaiting an answer, with the session they went to.
    child_requests: HashMap<RawId, Weak<Session>>,
    owner: Weak<Session>,
    exited: bool,
}

#[derive(Debug)]
struct Pending {
    raw_id: RawId,
    session: Weak<Session>,
    stream: Arc<Stream>,
    token: Option<u64>,
    initialize: bool,
    deadline: Instant,
    hard_deadline: Instant,
}

impl Upstream {
    /// Spawns the child and starts routing its output.
    pub fn spawn(spec: &ChildSpec, limits: Limits) -> Result<Arc<Upstream>, stdio::Error> {
        let (child, events) = stdio::spawn(spec)?;
        let up = Arc::new(Upstream {
            child,
            limits,
            next_id: AtomicU64::new(1),
            mux: Mutex::new(Mux::default()),
            dropped_lines: AtomicU64::new(0),
        });
        tokio::spawn(route(up.clone(), events));
        tokio::spawn(expire(Arc::downgrade(&up)));
        Ok(up)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mux> {
        self.mux.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds the session whose messages this child serves (per-session mode).
    pub fn set_owner(&self, session: &Arc<Session>) {
        self.lock().owner = Arc::downgrade(session);
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn is_alive(&self) -> bool {
        !self.child.exited()
    }

    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines.load(Ordering::Relaxed)
    }

    /// Forwards a client request with a relay id; its answer will be pushed to `stream`.
    pub fn forward_request(
        &self,
        session: &Arc<Session>,
        frame: &Frame,
        stream: &Arc<Stream>,
    ) -> Result<(), Error> {
        let (Some(raw_id), Some(id_span)) = (frame.id(), frame.id_span()) else {
            return Err(Error::Internal);
        };
        let mut mux = self.lock();
        if mux.exited {
            return Err(Error::ChildExited);
        }
        let mine = mux
            .pending
            .values()
            .filter(|p| p.session.as_ptr() == Arc::as_ptr(session))
            .count();
        if mine >= self.limits.inflight_per_session {
            return Err(Error::InflightCap);
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
        let now = Instant::now();
        mux.pending.insert(
            relay_id,
            Pending {
                raw_id,
                session: Arc::downgrade(session),
                stream: stream.clone(),
                token,
                initialize: frame.method() == Some("initialize"),
                deadline: now + self.limits.request_timeout,
                hard_deadline: now + self.limits.request_timeout_max,
            },
        );
        stream.expect_answer();
        if let Err(e) = self.child.send(bytes) {
            let p = mux.pending.remove(&relay_id);
            if let Some(t) = p.and_then(|p| p.token) {
                mux.tokens.remove(&t);
            }
            stream.forget_answer();
            return Err(match e {
                stdio::Error::QueueFull => Error::InflightCap,
                _ => Error::ChildExited,
            });
        }
        Ok(())
    }

    /// Forwards a client notification; a cancellation is translated to the relay id, and
    /// dropped when it names no request of this session (or names `initialize`).
    pub fn forward_notification(&self, session: &Arc<Session>, frame: &Frame) {
        if frame.method() != Some("notifications/cancelled") {
            let _ = self.child.send(frame.bytes().clone());
            return;
        }
        let (Some(target), Some(span)) = (frame.request_id(), frame.request_id_span()) else {
            return;
        };
        let mut mux = self.lock();
        let found = mux.pending.iter().find(|(_, p)| {
            p.raw_id.as_str() == target
                && p.session.as_ptr() == Arc::as_ptr(session)
                && !p.initialize
        });
        let Some((&relay_id, _)) = found else {
            debug!(
                request_id = target,
                "cancellation for no pending request dropped"
            );
            return;
        };
        if let Some(p) = mux.pending.remove(&relay_id) {
            if let Some(t) = p.token {
                mux.tokens.remove(&t);
            }
            p.stream.forget_answer();
        }
        let _ = self
            .child
            .send(frame.splice(&mut [(span, &relay_id.to_string())]));
    }

    /// Forwards a client's answer to a child request; only the session it went to may answer.
    pub fn forward_response(&self, session: &Arc<Session>, frame: &Frame) -> Result<(), Error> {
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

    /// Answers every pending request of `session` (all when `None`) with `err`.
    pub fn fail_pending(&self, session: Option<&Arc<Session>>, err: &Error) {
        let mut mux = self.lock();
        let ids: Vec<u64> = mux
            .pending
            .iter()
            .filter(|(_, p)| session.is_none_or(|s| p.session.as_ptr() == Arc::as_ptr(s)))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(p) = mux.pending.remove(&id) {
                if let Some(t) = p.token {
                    mux.tokens.remove(&t);
                }
                p.stream.push(err.to_jsonrpc(&p.raw_id), true);
            }
        }
    }

    /// Starts the stop sequence of the child.
    pub fn stop(&self) {
        self.child.stop();
    }

    /// Waits until the child is reaped.
    pub async fn wait(&self) {
        self.child.wait().await;
    }

    /// Routes one line from the child.
    fn route_line(&self, line: Bytes) {
        let frame = match Frame::parse_upstream(line) {
            Ok(f) => f,
            Err(e) => {
                self.dropped_lines.fetch_add(1, Ordering::Relaxed);
                warn!(pid = self.pid(), error = %e, "child stdout line dropped");
                return;
            }
        };
        match frame.kind() {
            Kind::Response => self.route_response(&frame),
            Kind::Notification if frame.method() == Some("notifications/progress") => {
                self.route_progress(&frame)
            }
            Kind::Notification => self.route_other(&frame, None),
            Kind::Request => self.route_other(&frame, frame.id()),
        }
    }

    fn route_response(&self, frame: &Frame) {
        let relay_id = frame.id().and_then(|id| id.as_u64());
        let mut mux = self.lock();
        let Some(p) = relay_id.and_then(|id| mux.pending.remove(&id)) else {
            debug!(id = ?frame.id(), "child answer to no pending request dropped");
            return;
        };
        if let Some(t) = p.token {
            mux.tokens.remove(&t);
        }
        drop(mux);
        let Some(span) = frame.id_span() else { return };
        let bytes = frame.splice(&mut [(span, p.raw_id.as_str())]);
        let session = p.session.upgrade();
        if p.initialize {
            match (frame.result().and_then(protocol_version), &session) {
                (Some(v), Some(s)) => s.set_version(v),
                (None, Some(s)) => {
                    // A failed initialize leaves nothing to talk to.
                    p.stream.push(bytes, true);
                    s.end();
                    self.stop();
                    return;
                }
                _ => {}
            }
        }
        p.stream.push(bytes, true);
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
        p.deadline = (Instant::now() + self.limits.request_timeout).min(p.hard_deadline);
        let stream = p.stream.clone();
        drop(mux);
        if let Some(span) = frame.progress_token_span() {
            stream.push(frame.splice(&mut [(span, &original)]), false);
        }
    }

    /// A child request or notification: pick its stream (PROTOCOL.md §5.4).
    fn route_other(&self, frame: &Frame, request: Option<RawId>) {
        let mut mux = self.lock();
        let related = frame
            .progress_token()
            .and_then(|t| t.parse::<u64>().ok())
            .and_then(|t| mux.tokens.get(&t))
            .and_then(|(_, id)| mux.pending.get(id));
        let target = related.or_else(|| match mux.pending.len() {
            1 => mux.pending.values().next(),
            _ => None,
        });
        let (session, stream) = match target {
            Some(p) => (p.session.clone(), Some(p.stream.clone())),
            None => (mux.owner.clone(), None),
        };
        let Some(live) = session.upgrade() else {
            drop(mux);
            if let Some(id) = request {
                let refusal = crate::jsonrpc::error_response(
                    Some(id.as_str()),
                    -32601,
                    "Method not found",
                    &serde_json::Value::Null,
                );
                let _ = self.child.send(refusal);
            }
            return;
        };
        if let Some(id) = request {
            mux.child_requests.insert(id, session);
        }
        drop(mux);
        let stream = stream.unwrap_or_else(|| live.standalone());
        stream.push(frame.bytes().clone(), false);
    }

    fn on_exit(&self, info: stdio::ExitInfo) {
        let owner = {
            let mut mux = self.lock();
            mux.exited = true;
            mux.child_requests.clear();
            mux.owner.upgrade()
        };
        self.fail_pending(None, &Error::ChildExited);
        if let Some(s) = owner {
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
                .filter_map(|id| mux.pending.remove(&id).map(|p| (id, p)))
                .collect()
        };
        for (relay_id, p) in overdue {
            if let Some(t) = p.token {
                self.lock().tokens.remove(&t);
            }
            p.stream.push(Error::Timeout.to_jsonrpc(&p.raw_id), true);
            if !p.initialize {
                let cancel = format!(
                    r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{relay_id},"reason":"timeout"}}}}"#
                );
                let _ = self.child.send(Bytes::from(cancel));
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
}

async fn expire(up: Weak<Upstream>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Some(up) = up.upgrade() else { return };
        if !up.is_alive() {
            return;
        }
        up.expire_overdue();
    }
}

/// `result.protocolVersion` of an `InitializeResult`.
fn protocol_version(result: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Init {
        #[serde(rename = "protocolVersion")]
        protocol_version: String,
    }
    serde_json::from_str::<Init>(result)
        .ok()
        .map(|i| i.protocol_version)
}
