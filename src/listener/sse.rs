//! The legacy HTTP+SSE front (2024-11-05, PROTOCOL.md §3), hosted next to the MCP path.
//!
//! `GET /sse` opens one connection: its first event is `endpoint`, whose data is the relative
//! URL `/message?sessionId=<id>` (128 random bits naming this connection, not the relay's
//! session id); every message for the client follows as an `event: message`, with keep-alive
//! comments every `--sse-keep-alive`. `POST /message?sessionId=<id>` hands one JSON-RPC
//! message (or batch) to that connection's [`Duplex`] and answers 202; whatever it produces,
//! errors about the message included, travels on the stream. One connection is one relay
//! session (its first message must be `initialize`); the stream going away closes it, and the
//! stream ends when the relay drains.
//!
//! Owns the connection table (id → driver, identity) and the framing. Not here: Host/Origin
//! (the guard in `guard.rs` wraps these routes), session logic (`duplex.rs`,
//! `relay.rs`), status codes and error bodies (`error.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::duplex::{Duplex, OUT_QUEUE};
use super::http::{
    accepts, caller_of, media_type_is, read_body, sse_response, MESSAGE_PATH, SSE_PATH,
};
use crate::caller::{Caller, Transport};
use crate::error::{Allow, Error};
use crate::relay::Relay;
use crate::session::SessionId;

/// The legacy routes of one listener: `GET /sse` and `POST /message`. A path already served
/// by another route (`--path`, `--ws-path`, `/health`, `/ready`) is left to it, with a warning.
pub fn routes(relay: Arc<Relay>) -> Router<Arc<Relay>> {
    let served = served(relay.config());
    let legacy = Arc::new(Legacy {
        relay: relay.clone(),
        conns: Mutex::default(),
    });
    let sse: MethodRouter<Arc<Legacy>> =
        get(open_stream).fallback(|| async { Error::MethodNotAllowed(Allow::Get) });
    let message: MethodRouter<Arc<Legacy>> =
        post(handle_message).fallback(|| async { Error::MethodNotAllowed(Allow::Post) });
    let mut router = Router::new();
    for (path, route) in [(SSE_PATH, sse), (MESSAGE_PATH, message)] {
        if served.contains(&Some(path)) {
            router = router.route(path, route);
        } else {
            warn!(path, "legacy sse route not served: the path is taken");
        }
    }
    router.with_state(legacy)
}

/// The legacy paths served (`/sse`, `/message`): each unless another route has it.
pub(super) fn served(cfg: &crate::config::ServeConfig) -> [Option<&'static str>; 2] {
    let taken = [cfg.path.as_str(), cfg.ws_path.as_str(), "/health", "/ready"];
    [SSE_PATH, MESSAGE_PATH].map(|p| (!taken.contains(&p)).then_some(p))
}

/// The legacy connections of one listener.
#[derive(Debug)]
struct Legacy {
    relay: Arc<Relay>,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
}

/// One GET stream: its session driver (taken when the stream goes) and the identity that
/// opened it. The async mutex serializes concurrent POSTs; `Duplex::handle` returns quickly.
#[derive(Debug)]
struct Conn {
    duplex: tokio::sync::Mutex<Option<Duplex>>,
    /// The principal that opened the stream; only it may post to it.
    owner: Option<String>,
    /// The driver's closing token: the stream ends so the client reconnects.
    ended: CancellationToken,
}

/// The query of `POST /message`.
#[derive(Debug, Deserialize)]
struct Target {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

async fn open_stream(State(legacy): State<Arc<Legacy>>, req: Request) -> Response {
    caller_of(req.extensions())
        .and_then(|c| legacy.open(req.headers(), c.on(Transport::Sse)))
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle_message(
    State(legacy): State<Arc<Legacy>>,
    target: Result<Query<Target>, QueryRejection>,
    req: Request,
) -> Response {
    // A query that does not parse (e.g. `sessionId` twice) names no connection.
    let id = target
        .ok()
        .and_then(|Query(t)| t.session_id)
        .filter(|id| !id.is_empty());
    legacy
        .message(id, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

// === impl Legacy ===

impl Legacy {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `GET /sse`: registers a connection and streams `endpoint`, then its messages.
    fn open(self: &Arc<Self>, headers: &HeaderMap, caller: Caller) -> Result<Response, Error> {
        let relay = &self.relay;
        if relay.is_draining() {
            return Err(Error::ShuttingDown);
        }
        // No `Accept` at all accepts anything (RFC 9110 §12.5.1).
        if headers.contains_key(header::ACCEPT) && !accepts(headers, "text/event-stream") {
            return Err(Error::NotAcceptable);
        }
        let owner = caller.owner().map(str::to_owned);
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        let duplex = Duplex::new(relay.clone(), tx, caller);
        // The stream ends when the driver must close: its session ended on its own, or the
        // caller's credential expired (with or without a session).
        let ended = duplex.ended();
        let conn = Arc::new(Conn {
            duplex: tokio::sync::Mutex::new(Some(duplex)),
            owner,
            ended: ended.clone(),
        });
        let id = SessionId::random().as_str().to_owned();
        {
            // A connection is a session to be: the session cap bounds both.
            let mut conns = self.lock();
            if conns.len() >= relay.config().max_sessions {
                return Err(Error::SessionCap);
            }
            conns.insert(id.clone(), conn.clone());
        }
        debug!("legacy sse stream opened");
        let endpoint = Bytes::from(format!(
            "event: endpoint\ndata: {MESSAGE_PATH}?sessionId={id}\n\n"
        ));
        let mut keep_alive = tokio::time::interval(relay.config().sse_keep_alive);
        keep_alive.reset();
        let pump = Pump {
            rx,
            endpoint: Some(endpoint),
            keep_alive,
            stop: relay.draining().clone(),
            ended: conn.ended.clone(),
            _registration: Registration {
                legacy: self.clone(),
                id,
                conn,
            },
        };
        Ok(sse_response(Body::from_stream(
            futures_util::stream::unfold(pump, next_chunk),
        )))
    }

    /// `POST /message`: media type, body limit, then the connection (by id and identity).
    async fn message(&self, id: Option<String>, req: Request) -> Result<Response, Error> {
        let relay = &self.relay;
        if relay.is_draining() {
            return Err(Error::ShuttingDown);
        }
        let caller = caller_of(req.extensions())?.on(Transport::Sse);
        let (parts, body) = req.into_parts();
        let headers = &parts.headers;
        if !media_type_is(headers, "application/json") {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = read_body(
            body,
            headers,
            relay.config().max_body,
            relay.config().body_idle,
        )
        .await?;
        let id = id.ok_or(Error::MissingSession)?;
        // Unknown, ended and other principals' connections are the same 404.
        let conn = self
            .lock()
            .get(&id)
            .filter(|c| c.owner.as_deref() == caller.owner())
            .cloned()
            .ok_or(Error::UnknownSession)?;
        let mut driver = conn.duplex.lock().await;
        let duplex = driver.as_mut().ok_or(Error::UnknownSession)?;
        // Re-authenticated on this POST: its roles and expiry apply from now on.
        duplex.set_caller(caller);
        let _ = duplex.handle(bytes).await;
        Ok(StatusCode::ACCEPTED.into_response())
    }
}

/// Removes a connection from the table and ends its session when its stream goes away.
struct Registration {
    legacy: Arc<Legacy>,
    id: String,
    conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.legacy.lock().remove(&self.id);
        debug!("legacy sse stream closed");
        let conn = self.conn.clone();
        if let Ok(mut driver) = conn.duplex.try_lock() {
            if let Some(d) = driver.take() {
                d.close();
            }
            return;
        }
        // A POST holds the driver: close it once that message is handled. The body is
        // dropped inside the server's runtime, so there is one.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Some(d) = conn.duplex.lock().await.take() {
                    d.close();
                }
            });
        }
    }
}

/// The state of one SSE body. `rx` is declared first so it is dropped before the
/// registration: a POST blocked on a full queue then fails fast and releases the driver.
struct Pump {
    rx: mpsc::Receiver<Bytes>,
    endpoint: Option<Bytes>,
    keep_alive: tokio::time::Interval,
    stop: CancellationToken,
    ended: CancellationToken,
    _registration: Registration,
}

type Chunk = Result<Bytes, std::convert::Infallible>;

/// The next bytes of the body: `endpoint`, messages, keep-alive comments; `None` ends it.
async fn next_chunk(mut p: Pump) -> Option<(Chunk, Pump)> {
    if let Some(e) = p.endpoint.take() {
        return Some((Ok(e), p));
    }
    tokio::select! {
        out = p.rx.recv() => out.map(|m| (Ok(message_event(&m)), p)),
        _ = p.keep_alive.tick() => Some((Ok(Bytes::from_static(b":\n\n")), p)),
        () = p.stop.cancelled() => None,
        // The session's last words (errors of its pending calls) still go out.
        () = p.ended.cancelled() => {
            let last = tokio::time::timeout(Duration::from_millis(200), p.rx.recv()).await;
            match last {
                Ok(Some(m)) => Some((Ok(message_event(&m)), p)),
                _ => None,
            }
        }
    }
}

/// One `message` event. Raw CR or LF in valid JSON can only be insignificant whitespace, so
/// they become spaces: the event stays one `data:` line whatever the child wrote.
fn message_event(data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + 24);
    b.extend_from_slice(b"event: message\ndata: ");
    let start = b.len();
    b.extend_from_slice(data);
    if memchr::memchr2(b'\r', b'\n', data).is_some() {
        for byte in &mut b[start..] {
            if matches!(*byte, b'\r' | b'\n') {
                *byte = b' ';
            }
        }
    }
    b.extend_from_slice(b"\n\n");
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_event_is_one_data_line() {
        let e = message_event(b"{\"a\":\r\n1}\n");
        assert_eq!(&e[..], b"event: message\ndata: {\"a\":  1} \n\n");
        let e = message_event(b"{}");
        assert_eq!(&e[..], b"event: message\ndata: {}\n\n");
    }
}
