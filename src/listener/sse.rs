//! The legacy HTTP+SSE front (2024-11-05, PROTOCOL.md §3), hosted next to the MCP path.
//!
//! `GET /sse` opens one connection and reserves its relay session (`Relay::reserve`: the
//! session caps count it from now on). Its first event is `endpoint`, whose data is the
//! relative URL `/message?sessionId=<id>` (the reserved session's id); every message for the
//! client follows as an `event: message`, with keep-alive comments every `--sse-keep-alive`.
//! `POST /message?sessionId=<id>` finds the session by `Relay::session` (the one owner rule:
//! unknown, ended and other principals' sessions are the same 404) and hands one JSON-RPC
//! message (or batch) to the connection's [`Duplex`] through the session's inbox, then answers
//! 202; whatever it produces, errors about the message included, travels on the stream. The
//! first message must be `initialize`, which fills the reserved session; the stream going
//! away closes it, and the stream ends when the relay drains.
//!
//! Owns the framing and each connection's driver task. Not here: Host/Origin (the guard in
//! `guard.rs` wraps these routes), sessions (`relay.rs`, `relay/post.rs`), status codes and
//! error bodies (`error.rs`).

use std::sync::Arc;
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
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::duplex::{Duplex, OUT_QUEUE};
use super::http::{
    accepts, caller_of, media_type_is, read_body, sse_response, MESSAGE_PATH, SSE_PATH,
};
use crate::caller::{Caller, Transport};
use crate::error::{Allow, Error};
use crate::relay::Relay;
use crate::session::{Inbound, Session};

/// The legacy routes of one listener: `GET /sse` and `POST /message`. A path already served
/// by another route (`--path`, `--ws-path`, `/health`, `/ready`) is left to it, with a warning.
pub(crate) fn routes(relay: Arc<Relay>) -> Router<Arc<Relay>> {
    let served = served(relay.config());
    let sse: MethodRouter<Arc<Relay>> =
        get(open_stream).fallback(|| async { Error::MethodNotAllowed(Allow::Get) });
    let message: MethodRouter<Arc<Relay>> =
        post(handle_message).fallback(|| async { Error::MethodNotAllowed(Allow::Post) });
    let mut router = Router::new();
    for (path, route) in [(SSE_PATH, sse), (MESSAGE_PATH, message)] {
        if served.contains(&Some(path)) {
            router = router.route(path, route);
        } else {
            warn!(path, "legacy sse route not served: the path is taken");
        }
    }
    router.with_state(relay)
}

/// The legacy paths served (`/sse`, `/message`): each unless another route has it.
pub(super) fn served(cfg: &crate::config::ServeConfig) -> [Option<&'static str>; 2] {
    let taken = [cfg.path.as_str(), cfg.ws_path.as_str(), "/health", "/ready"];
    [SSE_PATH, MESSAGE_PATH].map(|p| (!taken.contains(&p)).then_some(p))
}

/// The query of `POST /message`.
#[derive(Debug, Deserialize)]
struct Target {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

async fn open_stream(State(relay): State<Arc<Relay>>, req: Request) -> Response {
    caller_of(req.extensions())
        .and_then(|c| open(&relay, req.headers(), c.on(Transport::Sse)))
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle_message(
    State(relay): State<Arc<Relay>>,
    target: Result<Query<Target>, QueryRejection>,
    req: Request,
) -> Response {
    // A query that does not parse (e.g. `sessionId` twice) names no connection.
    let id = target
        .ok()
        .and_then(|Query(t)| t.session_id)
        .filter(|id| !id.is_empty());
    message(&relay, id, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /sse`: reserves a session, starts the connection's driver and streams `endpoint`,
/// then its messages.
fn open(relay: &Arc<Relay>, headers: &HeaderMap, caller: Caller) -> Result<Response, Error> {
    if relay.is_draining() {
        return Err(Error::ShuttingDown);
    }
    // No `Accept` at all accepts anything (RFC 9110 §12.5.1).
    if headers.contains_key(header::ACCEPT) && !accepts(headers, "text/event-stream") {
        return Err(Error::NotAcceptable);
    }
    let (inbox, inbound) = mpsc::channel(1);
    let session = relay.reserve(&caller, inbox)?;
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let duplex = Duplex::reserved(relay.clone(), tx, caller, session.clone());
    // The stream ends when the driver must close: its session ended on its own, or the
    // caller's credential expired (with or without a session).
    let ended = duplex.ended();
    let gone = CancellationToken::new();
    tokio::spawn(drive(duplex, inbound, gone.clone()));
    debug!("legacy sse stream opened");
    let endpoint = Bytes::from(format!(
        "event: endpoint\ndata: {}{MESSAGE_PATH}?sessionId={}\n\n",
        relay.config().mount,
        session.id().as_str()
    ));
    let mut keep_alive = tokio::time::interval(relay.config().sse_keep_alive);
    keep_alive.reset();
    let pump = Pump {
        rx,
        endpoint: Some(endpoint),
        keep_alive,
        stop: relay.draining().clone(),
        ended,
        _gone: Gone(gone),
    };
    Ok(sse_response(Body::from_stream(
        futures_util::stream::unfold(pump, next_chunk),
    )))
}

/// `POST /message`: media type, body limit, then the session (by id and owner), whose
/// connection handles the message before the 202.
async fn message(relay: &Relay, id: Option<String>, req: Request) -> Result<Response, Error> {
    if relay.is_draining() {
        return Err(Error::ShuttingDown);
    }
    let caller = caller_of(req.extensions())?.on(Transport::Sse);
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    if !media_type_is(headers, "application/json") {
        return Err(Error::UnsupportedMediaType);
    }
    let (max, idle) = (relay.config().max_body, relay.config().body_idle);
    let bytes = read_body(body, headers, max, idle).await?;
    let id = id.ok_or(Error::MissingSession)?;
    let session: Arc<Session> = relay.session(&id, &caller)?;
    let inbox = session.inbox().ok_or(Error::UnknownSession)?;
    let (done, handled) = oneshot::channel();
    let inbound = Inbound {
        caller,
        bytes,
        done,
    };
    inbox
        .send(inbound)
        .await
        .map_err(|_| Error::UnknownSession)?;
    // Gone with its connection: the message was not handled, like a POST after it closed.
    handled.await.map_err(|_| Error::UnknownSession)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Drives one connection: its POSTs, one at a time, until its stream goes; then its session
/// ends.
async fn drive(mut duplex: Duplex, mut inbound: mpsc::Receiver<Inbound>, gone: CancellationToken) {
    loop {
        let next = tokio::select! {
            next = inbound.recv() => next,
            () = gone.cancelled() => None,
        };
        let Some(Inbound {
            caller,
            bytes,
            done,
        }) = next
        else {
            break;
        };
        // Re-authenticated on this POST: its roles and expiry apply from now on.
        duplex.set_caller(caller);
        let _ = duplex.handle(bytes).await;
        let _ = done.send(());
    }
    debug!("legacy sse stream closed");
    duplex.close();
}

/// Tells the driver its stream went away.
struct Gone(CancellationToken);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The state of one SSE body. `rx` is declared first so it is dropped before the driver is
/// told: a message blocked on a full queue then fails fast and releases the driver.
struct Pump {
    rx: mpsc::Receiver<Bytes>,
    endpoint: Option<Bytes>,
    keep_alive: tokio::time::Interval,
    stop: CancellationToken,
    ended: CancellationToken,
    _gone: Gone,
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
