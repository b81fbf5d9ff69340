//! Streamable HTTP upstreams (`serve --upstream http(s)://…`): the client side of PROTOCOL.md §2,
//! falling back to legacy HTTP+SSE (§3, `http/sse.rs`). One link is one MCP session.
//!
//! Every message the relay sends is one POST (`Accept: application/json, text/event-stream`,
//! `Mcp-Session-Id` once the server gave one, `MCP-Protocol-Version` once the `initialize`
//! result named it). Requests run in their own tasks, so a long SSE answer never holds up
//! another; `initialize` is awaited up to its response head (everything after it needs its
//! session id), notifications and responses are sent in order. An answer is 202, a JSON body
//! (one message or a batch) or an SSE stream; a stream closed before its answer is resumed
//! with GET + `Last-Event-ID` after the server's `retry` (2025-11-25 polling). After
//! `notifications/initialized` the standalone GET stream carries server→client messages and
//! is reopened while the link lives (405: the server has none). 404 to a request carrying the
//! session id = the session is gone: the link ends, which the relay treats like a crashed
//! child. `initialize` refused with 400, 404 or 405 switches the link to legacy SSE. On stop
//! the session is deleted. A request the server refuses without a JSON-RPC answer gets the
//! relay's -31006 (`error.rs`), so callers do not wait for a timeout. Modern (2026-07-28)
//! requests get `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` from their body (not yet
//! `Mcp-Param-*`), and cancelling one closes its stream, which is how that era cancels.
//!
//! Credentials: only the static headers of the relay's own configuration; nothing from a relay
//! client reaches the upstream, redirects are not followed and environment proxies are not used.
//! `https://` uses the link's rustls configuration as it is (`remote/tls.rs`: its trust, ALPN `h2,
//! http/1.1`). Bodies and header values are never logged. Neighbours: `remote.rs` (URL parsing, the
//! link's exit and its log line), `upstream/stdio.rs` ([`LinkEnds`]).

mod era;
pub(super) mod error;
mod events;
mod link;
mod modern;
mod sse;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{StatusCode, Url};
use tokio::task::{AbortHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::jsonrpc::{Frame, Kind, RawId};
use crate::upstream::stdio::LinkEnds;
pub(crate) use error::Error;
use link::Link;
use modern::modern_headers;
use stream::{answer, listen};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const EVENT_STREAM: &str = "text/event-stream";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a notification or response POST (sent in order) may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long messages after `notifications/initialized` wait for the standalone stream.
const LISTEN_HEAD_WAIT: Duration = Duration::from_secs(2);
/// Reconnection delay until the server sends `retry`; floor and cap of any delay.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
const MIN_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Consecutive resumptions of a POST stream that bring no event before its answer is given up.
const MAX_RESUMES: u32 = 5;
/// Modern requests remembered for cancellation before finished ones are swept.
const SWEEP_AT: usize = 64;

/// The URL for logs: without query and fragment (they may hold secrets).
pub(crate) fn log_name(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "http://(invalid)".to_owned(),
    }
}

/// Drives one link until the relay stops it (deleting the session), the server ends it, or
/// the session or the network fails.
pub(crate) async fn run(
    url: &str,
    name: &str,
    max_message: usize,
    tls: Option<&super::TlsClient>,
    access: &super::Access,
    ends: &mut LinkEnds,
) -> Result<(), Error> {
    let link = Arc::new(Link::new(url, name, max_message, tls, access, ends)?);
    let mut driver = Driver {
        link,
        tasks: JoinSet::new(),
        mode: Mode::Fresh,
        listening: false,
        modern: HashMap::new(),
    };
    let result = driver.run(ends).await;
    // Aborted tasks drop their `incoming` senders, so the relay sees the end of the output.
    driver.tasks.shutdown().await;
    match result {
        Ok(End::Stopped) => {
            driver.delete_session().await;
            Ok(())
        }
        Ok(End::Closed) => Ok(()),
        Err(e) => Err(e),
    }
}

/// How the link talks to the server.
#[derive(Debug)]
enum Mode {
    /// Nothing decided yet: the first `initialize` decides.
    Fresh,
    Streamable,
    /// Legacy SSE: every message is POSTed to this endpoint.
    Legacy(Url),
    /// A 2026-07-28 server behind a legacy client (`era.rs`).
    Modern(Arc<era::Modern>),
}

/// How a link task ended when it did not fail.
#[derive(Debug)]
enum Done {
    /// Its work is over; the link goes on.
    Task,
    /// The server closed the legacy stream: the link is over.
    Closed,
}

/// How the driver loop ended when it did not fail.
#[derive(Debug)]
enum End {
    /// The relay asked (or went away): delete the session.
    Stopped,
    /// The server ended the link.
    Closed,
}

/// What an answer must bring: the request ids still unanswered, and whether it is the
/// `initialize` answer (whose result names the protocol version).
#[derive(Debug, Default)]
struct Pending {
    ids: Vec<RawId>,
    init: bool,
}

// === impl Driver ===

/// The link's own task: reads what the relay sends, owns the per-request tasks.
struct Driver {
    link: Arc<Link>,
    tasks: JoinSet<Result<Done, Error>>,
    mode: Mode,
    /// The standalone GET stream was started.
    listening: bool,
    /// In-flight modern requests by raw id: cancelling one closes its stream.
    modern: HashMap<String, AbortHandle>,
}

impl Driver {
    async fn run(&mut self, ends: &mut LinkEnds) -> Result<End, Error> {
        loop {
            tokio::select! {
                out = ends.outgoing.recv() => {
                    let Some(msg) = out else { return Ok(End::Stopped) };
                    tokio::select! {
                        sent = self.send(msg) => sent?,
                        () = ends.stop.cancelled() => return Ok(End::Stopped),
                    }
                }
                Some(joined) = self.tasks.join_next() => match joined {
                    Ok(Ok(Done::Task)) => {}
                    Ok(Ok(Done::Closed)) => return Ok(End::Closed),
                    Ok(Err(e)) => return Err(e),
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => return Err(Error::Task(e)),
                },
                () = ends.stop.cancelled() => return Ok(End::Stopped),
            }
        }
    }

    /// Sends one message the relay wrote (a valid frame; anything else goes as a notification).
    async fn send(&mut self, msg: Bytes) -> Result<(), Error> {
        let frame = Frame::parse_upstream(msg.clone()).ok();
        if let Mode::Modern(m) = &self.mode {
            let m = m.clone();
            return self.send_modern(&m, msg, frame.as_ref()).await;
        }
        if let Mode::Legacy(endpoint) = &self.mode {
            let endpoint = endpoint.clone();
            return sse::post(&self.link, &endpoint, msg, frame.as_ref()).await;
        }
        match frame {
            Some(f) if f.kind() == Kind::Request => {
                if f.method() == Some("initialize") && matches!(self.mode, Mode::Fresh) {
                    if self.link.access.era_bridge {
                        return self.initialize_either(msg, f).await;
                    }
                    self.initialize(msg, f).await
                } else {
                    self.request(msg, &f);
                    Ok(())
                }
            }
            f => self.notify(msg, f.as_ref()).await,
        }
    }

    /// POSTs `initialize` and waits for the response head: its session id, or the refusal
    /// that means the server only speaks legacy SSE.
    async fn initialize(&mut self, msg: Bytes, frame: Frame) -> Result<(), Error> {
        let link = &self.link;
        let res = if link.access.legacy_sse {
            None
        } else {
            Some(link.post(msg.clone(), None).await.map_err(Error::network)?)
        };
        let status = res.as_ref().map(reqwest::Response::status);
        if status.is_none_or(|status| {
            matches!(
                status,
                StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            )
        }) {
            if let Some(status) = status {
                info!(upstream = %link.name, status = status.as_u16(), "initialize refused; trying legacy sse");
            }
            drop(res);
            let (endpoint, events) = sse::open(link).await?;
            info!(upstream = %link.name, transport = "sse", "upstream connected");
            self.tasks.spawn(sse::read(link.clone(), events));
            self.mode = Mode::Legacy(endpoint.clone());
            return sse::post(link, &endpoint, msg, Some(&frame)).await;
        }
        // Both are set here: without a response the legacy branch above returned.
        let (Some(res), Some(status)) = (res, status) else {
            return Err(Error::NoEndpoint);
        };
        self.mode = Mode::Streamable;
        if status.is_success() {
            link.learn_session(res.headers());
            info!(upstream = %link.name, transport = "streamable_http", "upstream connected");
        }
        let pending = Pending {
            ids: frame.id().into_iter().collect(),
            init: true,
        };
        self.tasks.spawn(answer(link.clone(), res, pending));
        Ok(())
    }

    /// `initialize` when the server may be a 2026-07-28 one: the answer is read here, and a
    /// refusal of the method leads to `server/discover` and the modern mode.
    async fn initialize_either(&mut self, msg: Bytes, frame: Frame) -> Result<(), Error> {
        let link = self.link.clone();
        if link.access.legacy_sse {
            return self.initialize(msg, frame).await;
        }
        // A server that speaks 2026-07-28 is spoken to in that era (headers, `_meta`, input
        // rounds); a legacy one refuses the probe and gets the host's `initialize`.
        if let Some((modern, init)) = era::Modern::discover(&link, &frame).await {
            info!(upstream = %link.name, transport = "streamable_http", version = era::MODERN, "upstream connected");
            self.mode = Mode::Modern(Arc::new(modern));
            link.deliver(init).await;
            return Ok(());
        }
        let res = link.post(msg.clone(), None).await.map_err(Error::network)?;
        let status = res.status();
        let head = res.headers().clone();
        let answer = era::first_answer(&link, res).await;
        if era::refuses_initialize(status.as_u16(), answer.as_ref()) {
            if let Some((modern, init)) = era::Modern::discover(&link, &frame).await {
                info!(upstream = %link.name, transport = "streamable_http", version = era::MODERN, "upstream connected");
                self.mode = Mode::Modern(Arc::new(modern));
                link.deliver(init).await;
                return Ok(());
            }
        }
        let Some(answer) = answer.filter(|_| status.is_success()) else {
            // Not a Streamable HTTP server (or not now): the usual way decides.
            return self.initialize(msg, frame).await;
        };
        self.mode = Mode::Streamable;
        link.learn_session(&head);
        info!(upstream = %link.name, transport = "streamable_http", "upstream connected");
        let mut pending = Pending {
            ids: frame.id().into_iter().collect(),
            init: true,
        };
        link.deliver_all(answer, &mut pending).await;
        Ok(())
    }

    /// A message to a 2026-07-28 server: requests run in their own tasks (input rounds
    /// unpacked), the host's answers to input requests go to the request waiting for them,
    /// cancelling closes the request's stream, removed notifications are dropped.
    async fn send_modern(
        &mut self,
        m: &Arc<era::Modern>,
        msg: Bytes,
        frame: Option<&Frame>,
    ) -> Result<(), Error> {
        let Some(f) = frame else { return Ok(()) };
        match f.kind() {
            Kind::Request if f.method() == Some("ping") => {
                // The modern era has no ping: the link itself is alive, which is the answer.
                if let Some(id) = f.id() {
                    let pong = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#, id.as_str());
                    self.link.deliver(Bytes::from(pong)).await;
                }
                Ok(())
            }
            Kind::Request => {
                let task = self.tasks.spawn(m.clone().call(self.link.clone(), msg));
                if let Some(id) = f.id() {
                    if self.modern.len() >= SWEEP_AT {
                        self.modern.retain(|_, t| !t.is_finished());
                    }
                    self.modern.insert(id.as_str().to_owned(), task);
                }
                Ok(())
            }
            Kind::Response => {
                if !m.take_response(f) {
                    debug!(upstream = %self.link.name, "response to no input request dropped");
                }
                Ok(())
            }
            Kind::Notification => {
                if f.method() == Some("notifications/cancelled") {
                    if let Some(task) = f.request_id().and_then(|id| self.modern.remove(id)) {
                        task.abort();
                    }
                }
                Ok(())
            }
        }
    }

    /// A request: POSTed and answered in its own task.
    fn request(&mut self, msg: Bytes, frame: &Frame) {
        let modern = modern_headers(frame);
        let is_modern = modern.is_some();
        let id = frame.id();
        let link = self.link.clone();
        let pending = Pending {
            ids: id.clone().into_iter().collect(),
            init: false,
        };
        let task = self.tasks.spawn(async move {
            let res = link.post(msg, modern).await.map_err(Error::network)?;
            answer(link, res, pending).await
        });
        if let (true, Some(id)) = (is_modern, id) {
            if self.modern.len() >= SWEEP_AT {
                self.modern.retain(|_, t| !t.is_finished());
            }
            self.modern.insert(id.as_str().to_owned(), task);
        }
    }

    /// A notification or response: POSTed in order, its answer awaited (202 expected).
    async fn notify(&mut self, msg: Bytes, frame: Option<&Frame>) -> Result<(), Error> {
        let method = frame.and_then(Frame::method);
        if method == Some("notifications/cancelled") {
            // Modern era: cancelling is closing the request's stream.
            if let Some(task) = frame
                .and_then(Frame::request_id)
                .and_then(|id| self.modern.remove(id))
            {
                task.abort();
                return Ok(());
            }
        }
        let link = &self.link;
        let modern = frame.and_then(modern_headers);
        let res = match tokio::time::timeout(SEND_TIMEOUT, link.post(msg, modern)).await {
            Ok(res) => res.map_err(Error::network)?,
            Err(_) => {
                warn!(upstream = %link.name, "upstream did not accept a notification in time");
                return Ok(());
            }
        };
        let status = res.status();
        link.check(status)?;
        if !status.is_success() {
            warn!(upstream = %link.name, status = status.as_u16(), "upstream refused a message");
            return Ok(());
        }
        if method == Some("notifications/initialized") && !self.listening {
            self.listening = true;
            let (opened, head) = tokio::sync::oneshot::channel();
            self.tasks.spawn(listen(link.clone(), opened));
            // A server may send its first request on this stream as soon as the client acts:
            // the next message waits (bounded) until the stream is open.
            let _ = tokio::time::timeout(LISTEN_HEAD_WAIT, head).await;
        }
        Ok(())
    }

    /// Ends the session on the server (best effort; a server may answer 405).
    async fn delete_session(&self) {
        if !matches!(self.mode, Mode::Streamable) || self.link.session().is_none() {
            return;
        }
        let link = &self.link;
        let req = link.delete();
        match tokio::time::timeout(DELETE_TIMEOUT, req).await {
            Ok(Ok(res)) => {
                debug!(upstream = %link.name, status = res.status().as_u16(), "upstream session deleted")
            }
            Ok(Err(e)) => {
                debug!(upstream = %link.name, error = %e.without_url(), "upstream session delete failed")
            }
            Err(_) => debug!(upstream = %link.name, "upstream session delete timed out"),
        }
    }
}
