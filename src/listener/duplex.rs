//! One connection, one session: the driver shared by the message-oriented fronts (WebSocket,
//! TCP, the stdio front and legacy HTTP+SSE).
//!
//! A transport hands each incoming message's bytes to [`Duplex::handle`] and writes whatever
//! arrives on the outgoing channel, one message at a time. Each message goes to `Relay::post`
//! with the connection's session (none before `initialize`, except the one the relay reserved
//! for a legacy SSE connection), which decides what it does: the session rules live there, not
//! here. What this file does is pump: the answers of every request, and the session's
//! standalone stream (server→client requests and notifications no request claims), into the
//! same outgoing channel, where errors the relay makes travel as JSON-RPC error messages too.
//! Closing the connection ends the session; the caller's credential expiring closes the
//! connection. Framing stays in each transport's file.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::caller::Caller;
use crate::error::Error;
use crate::jsonrpc::RawId;
use crate::relay::{Posted, Relay, Within};
use crate::session::stream::Stream;
use crate::session::Session;
use std::time::Duration;

use tokio::task::{AbortHandle, JoinHandle};

/// Cancels `closing` when the caller's credential expires; the timer can be aborted.
fn close_at_expiry(caller: &Caller, closing: CancellationToken) -> Option<AbortHandle> {
    let at = caller.principal.expires_at?;
    let left = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let timer = tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(left) => {
                info!("credential expired: closing the connection");
                closing.cancel();
            }
            () = closing.cancelled() => {}
        }
    });
    Some(timer.abort_handle())
}

/// Messages queued towards one connection before its pumps wait for the writer.
pub(crate) const OUT_QUEUE: usize = 1024;

/// The session state of one connection.
#[derive(Debug)]
pub(crate) struct Duplex {
    relay: Arc<Relay>,
    out: mpsc::Sender<Bytes>,
    caller: Caller,
    /// The timer closing the connection at the caller's expiry.
    expiry: Option<AbortHandle>,
    session: Option<Arc<Session>>,
    /// The session is reserved (legacy SSE) and waits for `initialize`.
    reserved: bool,
    /// Cancelled when the connection must close: its session ended, or it could not keep up.
    closing: CancellationToken,
    /// The pumps of request streams still open (finished ones are dropped as new ones come),
    /// so a front whose input ended can let the answers already asked for arrive.
    answers: Vec<JoinHandle<()>>,
}

impl Duplex {
    /// A driver writing to `out` for `caller`, as the listener authenticated it. The
    /// connection closes when the caller's credential expires (SECURITY.md §4.7).
    pub(crate) fn new(relay: Arc<Relay>, out: mpsc::Sender<Bytes>, caller: Caller) -> Duplex {
        let closing = CancellationToken::new();
        let expiry = close_at_expiry(&caller, closing.clone());
        Duplex {
            relay,
            out,
            caller,
            expiry,
            session: None,
            reserved: false,
            closing,
            answers: Vec::new(),
        }
    }

    /// A driver for a connection whose session the relay reserved (legacy SSE): the session's
    /// standalone stream is pumped from now on, and its `initialize` fills it.
    pub(crate) fn reserved(
        relay: Arc<Relay>,
        out: mpsc::Sender<Bytes>,
        caller: Caller,
        session: Arc<Session>,
    ) -> Duplex {
        let mut duplex = Duplex::new(relay, out, caller);
        duplex.pump(session.standalone());
        duplex.watch(&session);
        duplex.session = Some(session);
        duplex.reserved = true;
        duplex
    }

    /// The caller of the next messages (legacy SSE re-authenticates every POST); it must be
    /// the principal that opened the connection.
    pub(crate) fn set_caller(&mut self, caller: Caller) {
        if caller.principal.expires_at != self.caller.principal.expires_at {
            if let Some(old) = self.expiry.take() {
                old.abort();
            }
            self.expiry = close_at_expiry(&caller, self.closing.clone());
        }
        self.caller = caller;
    }

    /// Cancelled when the connection must close: the session ended on its own (its child
    /// died, it expired), so the client reconnects instead of talking to nothing; or the
    /// client reads too slowly and a stream's queue overflowed (SECURITY.md D5: only this
    /// connection goes, with what it had not lost).
    pub(crate) fn ended(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// The session, once `initialize` opened one (or the relay reserved it).
    pub(crate) fn session(&self) -> Option<&Arc<Session>> {
        self.session.as_ref()
    }

    /// Handles one incoming message; a refusal is written to the connection as an error and
    /// also returned, so a transport can close with a code that says why (WebSocket 1013).
    pub(crate) async fn handle(&mut self, bytes: Bytes) -> Option<Error> {
        let sid = self.session.as_ref().filter(|_| !self.reserved);
        let sid = sid.map(|s| s.id().as_str());
        let message = match self.relay.parse(&self.caller, sid, Ok(bytes)) {
            Ok(m) => m,
            Err(e) => {
                self.refuse(&e, None).await;
                // A credential that ran out ends the connection, not just the message.
                if self.caller.is_expired() {
                    self.closing.cancel();
                }
                return Some(e);
            }
        };
        let within = match &self.session {
            Some(s) if self.reserved => Within::Reserved(s),
            Some(s) => Within::Session(s),
            None => Within::Unopened,
        };
        match self.relay.post(&self.caller, within, &message).await {
            Ok(Posted::Accepted) => None,
            Ok(Posted::Stream(stream)) => {
                self.pump_answers(stream);
                None
            }
            Ok(Posted::Opened(session, stream)) => {
                self.opened(session, stream);
                None
            }
            Err(r) => {
                self.refuse(&r.error, r.id.as_ref()).await;
                Some(r.error)
            }
        }
    }

    /// `initialize` opened the connection's session: its answer and its standalone stream
    /// are pumped, and the connection closes when the session ends on its own.
    fn opened(&mut self, session: Arc<Session>, stream: Arc<Stream>) {
        self.pump_answers(stream);
        if !std::mem::take(&mut self.reserved) {
            self.pump(session.standalone());
            self.watch(&session);
        }
        self.session = Some(session);
    }

    /// Closes the connection when `session` ends on its own.
    fn watch(&self, session: &Session) {
        let (ended, closing) = (session.ended().clone(), self.closing.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = ended.cancelled() => closing.cancel(),
                () = closing.cancelled() => {}
            }
        });
    }

    /// [`Duplex::pump`] for the answers of requests, tracked until they have all arrived.
    fn pump_answers(&mut self, stream: Arc<Stream>) {
        self.answers.retain(|pump| !pump.is_finished());
        let pump = self.pump(stream);
        self.answers.push(pump);
    }

    /// Waits, at most `limit`, until every request sent so far has its answer written (or its
    /// session ended): the client's input is over, its questions are not.
    pub(crate) async fn answers_written(&mut self, limit: Duration) {
        let pending = std::mem::take(&mut self.answers);
        let ended = self.closing.clone();
        let all = futures_util::future::join_all(pending);
        tokio::select! {
            _ = tokio::time::timeout(limit, all) => {}
            () = ended.cancelled() => {}
        }
    }

    /// Copies a stream's messages to the connection until the stream ends. A stream that
    /// let go of the connection before it was done overflowed: the connection closes.
    fn pump(&self, stream: Arc<Stream>) -> JoinHandle<()> {
        let out = self.out.clone();
        let closing = self.closing.clone();
        let (mut rx, _) = stream.attach(None);
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                if out.send(msg.data).await.is_err() {
                    return;
                }
            }
            if !stream.is_done() {
                info!("connection too slow: a stream overflowed; closing it");
                closing.cancel();
            }
        })
    }

    async fn refuse(&self, e: &Error, id: Option<&RawId>) {
        debug!(error = %e, "message refused");
        let _ = self.out.send(e.message(id)).await;
    }

    /// The connection is gone: its session ends (pending requests fail, its child stops).
    pub(crate) fn close(self) {
        if let Some(timer) = &self.expiry {
            timer.abort();
        }
        if let Some(s) = &self.session {
            self.relay.close(s);
        }
    }
}
