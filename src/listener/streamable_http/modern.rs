//! 2026-07-28 requests on the Streamable HTTP front (PROTOCOL.md §2.3).
//!
//! Stateless: no session is minted or read, one message per POST, headers checked against the
//! body (`era/modern.rs`) before anything reaches a child. A notification is forwarded and
//! answered 202. A request's answer is held briefly: when the final answer comes first it is
//! sent as JSON, with 404 for an unknown method and 400 for the modern request errors, so a
//! client can tell them from transport errors; otherwise it streams as SSE (notifications
//! about the request, then the answer). Closing the connection before the answer cancels the
//! request at the child. A `tools/list` answer sent as JSON refreshes the `Mcp-Param-*`
//! mapping. The pool and era probe are `relay/modern.rs`.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{sse, Attach};
use crate::caller::Caller;
use crate::era;
use crate::error::Error;
use crate::jsonrpc::{Frame, Kind};
use crate::relay::modern::CancelOnDrop;
use crate::relay::Relay;
use crate::session::stream::Stream;

/// Handles one modern POST.
pub(super) async fn post(
    relay: &Arc<Relay>,
    headers: &HeaderMap,
    frames: &[Frame],
    batch: bool,
    caller: &Caller,
) -> Result<Response, Error> {
    let (false, Some(frame)) = (batch, frames.first()) else {
        return Err(Error::InvalidRequest("batch_not_allowed"));
    };
    let pool = match relay.modern_pool().await {
        Ok(pool) => pool,
        Err(Error::ModernToLegacy) => return Ok(to_legacy(relay, caller, frame)),
        Err(e) => return Err(e),
    };
    {
        let tools = pool.tools();
        era::modern::validate(headers, frame, &tools).map_err(Error::Modern)?;
    }
    match frame.kind() {
        Kind::Response => Err(Error::UnexpectedResponse),
        Kind::Notification => {
            pool.upstream().await?.forward_raw(frame);
            Ok(StatusCode::ACCEPTED.into_response())
        }
        Kind::Request => {
            let ticket = match relay.admit(caller, None, frame, true) {
                Ok(t) => t,
                Err((e, rule)) => return Ok(denied(relay, caller, frame, &e, rule)),
            };
            // A list filtered for this caller says nothing about the tools of others.
            let lists_tools = frame.method() == Some("tools/list") && !ticket.filters();
            let up = pool.upstream().await?;
            let stream = Stream::new(1, false, relay.config().buffer);
            let relay_id = up.forward_request(None, frame, &stream, ticket)?;
            let guard = CancelOnDrop::new(up, relay_id, stream.clone());
            let expires = caller.principal.expires_at;
            let res = respond(relay, stream, guard, expires, |answer| {
                if lists_tools {
                    if let Ok(f) = Frame::parse_upstream(answer.clone()) {
                        pool.learn_tools(&f);
                    }
                }
            })
            .await;
            Ok(res)
        }
    }
}

/// A modern request to a legacy child: the 400 that makes the client fall back, recorded
/// with the rule that allows the method when roles allow it (`always_allowed` for
/// `server/discover`), so its record reads as it would for a modern child.
fn to_legacy(relay: &Relay, caller: &Caller, frame: &Frame) -> Response {
    let e = Error::ModernToLegacy;
    let rule = match frame.kind() {
        Kind::Request => relay
            .policy()
            .authorize(caller, frame, true)
            .ok()
            .and_then(|(rule, _)| rule),
        _ => None,
    };
    crate::ticket::Ticket::refused(relay.audit(), caller, None, Some(frame), &e, rule);
    e.into_response_for(frame.id().as_ref())
}

/// A denied request: the answer for an unknown name, with that answer's status.
fn denied(relay: &Relay, caller: &Caller, frame: &Frame, e: &Error, rule: String) -> Response {
    crate::ticket::Ticket::refused(relay.audit(), caller, None, Some(frame), e, Some(rule));
    let body = frame.id().map(|id| e.to_jsonrpc(&id)).unwrap_or_default();
    (
        status_of(&body),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// JSON when the final answer comes first (within `--json-hold`), SSE otherwise. `seen` gets
/// a final answer sent as JSON (to learn from `tools/list`).
async fn respond(
    relay: &Relay,
    stream: Arc<Stream>,
    guard: CancelOnDrop,
    expires: Option<std::time::SystemTime>,
    seen: impl FnOnce(&bytes::Bytes),
) -> Response {
    let (mut rx, _) = stream.attach(None);
    let first = match tokio::time::timeout(relay.config().json_hold, rx.recv()).await {
        Ok(Some(out)) if out.last => {
            drop(guard);
            seen(&out.data);
            let status = status_of(&out.data);
            return (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                out.data,
            )
                .into_response();
        }
        Ok(out) => out,
        Err(_) => None,
    };
    let attach = Attach {
        rx,
        after: 0,
        first,
        new_session: false,
        poll: false,
        prime: false,
        guard: Some(guard),
        expires,
    };
    sse(relay, None, &stream, attach)
}

/// 404 for -32601, 400 for the modern request errors, else 200.
fn status_of(answer: &[u8]) -> StatusCode {
    let code = crate::jsonrpc::error_code(answer);
    match code {
        Some(-32601) => StatusCode::NOT_FOUND,
        Some(-32022..=-32020) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}
