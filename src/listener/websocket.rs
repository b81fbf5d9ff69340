//! The WebSocket front (`--ws-path`, default `/ws`): one JSON-RPC message per text frame, one
//! session per connection.
//!
//! The upgrade passes the same Host/Origin guard as every HTTP route (cross-site WebSocket
//! hijacking is an Origin problem) and selects the `mcp` subprotocol when offered. Messages go
//! through the connection's [`Duplex`]. Limits: `--ws-max-message` (4 MiB) and `--ws-max-frame`
//! (1 MiB); a ping every `--sse-keep-alive` keeps intermediaries from timing the connection
//! out. Close codes say why: 1009 too big, 1008 a binary frame (policy: text only), 1001 the
//! relay is shutting down or the session ended, 1013 no session could be opened now (session
//! or concurrency cap, overload, child unavailable, circuit open) or every request of the
//! connection has been refused for capacity (rate limit, cap, overload) for
//! [`SUSTAINED_THROTTLE`] (SECURITY.md §3: "WS close 1013 if sustained").

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::debug;

use super::duplex::{Duplex, OUT_QUEUE};
use crate::caller::{Caller, Transport};
use crate::error::Error;
use crate::relay::Relay;
use axum::Extension;

const SUBPROTOCOL: &str = "mcp";
const TOO_BIG: u16 = 1009;
const POLICY: u16 = 1008;
const GOING_AWAY: u16 = 1001;
const TRY_LATER: u16 = 1013;
/// How long a connection's requests may all be refused for capacity before it is closed with
/// 1013: a client that keeps sending past its limits is told to go away and come back later.
pub const SUSTAINED_THROTTLE: Duration = Duration::from_secs(5);

/// `GET <ws-path>` with an upgrade.
/// The router root has authenticated the upgrade request (401 before any 101).
pub async fn upgrade(
    State(relay): State<Arc<Relay>>,
    Extension(caller): Extension<Caller>,
    ws: WebSocketUpgrade,
) -> Response {
    let cfg = relay.config();
    let caller = caller.on(Transport::Websocket);
    ws.protocols([SUBPROTOCOL])
        .max_message_size(cfg.ws_max_message)
        .max_frame_size(cfg.ws_max_frame)
        .on_upgrade(move |socket| connection(relay, socket, caller))
}

/// Why the relay closes a connection.
enum Close {
    Client,
    Code(u16, &'static str),
}

async fn connection(relay: Arc<Relay>, socket: WebSocket, caller: Caller) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(OUT_QUEUE);
    let mut duplex = Duplex::new(relay.clone(), tx, caller);
    let draining = relay.draining().clone();
    let mut ping = tokio::time::interval(relay.config().sse_keep_alive);
    ping.reset();
    let close = loop {
        let ended = duplex.ended();
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let refused = duplex.handle(Bytes::copy_from_slice(text.as_bytes())).await;
                    // No session could be opened for now: say "try again later".
                    if duplex.session().is_none() && refused.as_ref().is_some_and(is_overload) {
                        break Close::Code(TRY_LATER, "try again later");
                    }
                    if duplex.session().is_some_and(|s| s.throttled_for() >= SUSTAINED_THROTTLE) {
                        break Close::Code(TRY_LATER, "limited: try again later");
                    }
                }
                Some(Ok(Message::Binary(_))) => break Close::Code(POLICY, "text frames only"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => break Close::Client,
                Some(Err(e)) => {
                    debug!(error = %e, "websocket read failed");
                    break too_big_or_gone(&e);
                }
            },
            out = rx.recv() => match out {
                Some(data) => {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    if sink.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                        break Close::Client;
                    }
                }
                None => break Close::Client,
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break Close::Client;
                }
            }
            () = draining.cancelled() => break Close::Code(GOING_AWAY, "shutting down"),
            () = ended.cancelled() => break Close::Code(GOING_AWAY, "session ended"),
        }
    };
    duplex.close();
    // What the session said last (e.g. the errors of its pending calls) still goes out.
    while let Ok(Some(data)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        let text = String::from_utf8_lossy(&data).into_owned();
        if sink
            .send(Message::Text(Utf8Bytes::from(text)))
            .await
            .is_err()
        {
            break;
        }
    }
    if let Close::Code(code, reason) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            sink.send(Message::Close(Some(frame))),
        )
        .await;
    }
}

/// Refusals of `initialize` that mean no session can be opened now (a rate-limited one may
/// be tried again on the same connection after `retry_after_ms`).
fn is_overload(e: &Error) -> bool {
    (e.is_capacity() && !matches!(e, Error::RateLimited(_)))
        || matches!(
            e,
            Error::SessionCap
                | Error::ChildUnavailable
                | Error::LinkDown(_)
                | Error::CircuitOpen(_)
                | Error::ShuttingDown
        )
}

/// A capacity error closes with 1009; anything else means the connection is gone.
fn too_big_or_gone(e: &axum::Error) -> Close {
    let text = e.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
        Close::Code(TOO_BIG, "message too big")
    } else {
        Close::Client
    }
}
