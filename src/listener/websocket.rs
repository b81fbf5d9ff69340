//! The WebSocket front (`--ws-path`, default `/ws`): one JSON-RPC message per text frame, one
//! session per connection.
//!
//! The upgrade passes the same Host/Origin guard as every HTTP route (cross-site WebSocket
//! hijacking is an Origin problem) and selects the `mcp` subprotocol when offered. Messages go
//! through the connection's [`Duplex`]. Limits: `--ws-max-message` (4 MiB) and `--ws-max-frame`
//! (1 MiB); a ping every `--sse-keep-alive` keeps intermediaries from timing the connection
//! out. Close codes say why, and `error.rs` decides them
//! ([`Wire::ws_close`](crate::error::Wire::ws_close)): 1009 too big, 1008 a binary frame
//! (policy: text only), 1001 the relay is shutting down or the session ended, 1013 no session
//! could be opened now (session or concurrency cap, overload, child unavailable, circuit open)
//! or every request of the connection has been refused for capacity (rate limit, cap,
//! overload) for [`SUSTAINED_THROTTLE`] (SECURITY.md §3: "WS close 1013 if sustained").

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
use crate::error::{Error, WsClose};
use crate::relay::Relay;
use axum::Extension;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::Error as WsError;

const SUBPROTOCOL: &str = "mcp";
/// How long a connection's requests may all be refused for capacity before it is closed with
/// 1013: a client that keeps sending past its limits is told to go away and come back later.
pub(crate) const SUSTAINED_THROTTLE: Duration = Duration::from_secs(5);

/// `GET <ws-path>` with an upgrade.
/// The router root has authenticated the upgrade request (401 before any 101).
pub(crate) async fn upgrade(
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
                    // No session could be opened (e.g. "try again later").
                    if duplex.session().is_none() {
                        if let Some(close) = refused.and_then(|e| e.wire().ws_close) {
                            break Some(close);
                        }
                    }
                    if duplex.session().is_some_and(|s| s.throttled_for() >= SUSTAINED_THROTTLE) {
                        break Some(WsClose::THROTTLED);
                    }
                }
                Some(Ok(Message::Binary(_))) => break Some(WsClose::TEXT_ONLY),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(e)) => {
                    debug!(error = %e, "websocket read failed");
                    break read_error(e).and_then(|e| e.wire().ws_close);
                }
            },
            out = rx.recv() => match out {
                Some(data) => {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    if sink.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                        break None;
                    }
                }
                None => break None,
            },
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break None;
                }
            }
            () = draining.cancelled() => break Error::ShuttingDown.wire().ws_close,
            () = ended.cancelled() => break Error::SessionEnded.wire().ws_close,
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
    // `None`: the client closed or is gone.
    if let Some(WsClose { code, reason }) = close {
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

/// What a failed read means, from the error's type: a message or control frame over its limit
/// is [`Error::BodyTooLarge`]; anything else means the connection is gone (`None`).
fn read_error(e: axum::Error) -> Option<Error> {
    let inner = e.into_inner().downcast::<WsError>().ok()?;
    match *inner {
        WsError::Capacity(CapacityError::MessageTooLong { max_size, .. }) => {
            Some(Error::BodyTooLarge(max_size as u64))
        }
        WsError::Protocol(ProtocolError::ControlFrameTooBig) => Some(Error::BodyTooLarge(125)),
        _ => None,
    }
}
