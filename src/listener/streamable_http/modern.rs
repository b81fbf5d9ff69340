//! 2026-07-28 requests on the Streamable HTTP front (PROTOCOL.md §2.3): HTTP framing only.
//!
//! Stateless: no session is minted or read, one message per POST. `Relay::stateless`
//! (`relay/modern.rs`) checks the headers against the body, applies the policy phases,
//! dispatches and records refusals. Here: a notification is answered 202. A request's answer
//! is held briefly: when the final answer comes first it is sent as JSON with the status
//! `error::modern_status` gives its code (404 for an unknown method, 400 for the modern
//! request errors), so a client can tell them from transport errors; otherwise it streams as
//! SSE (notifications about the request, then the answer). Closing the connection before the
//! answer cancels the request at the child (the request's guard goes with the body).

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{sse, Attach};
use crate::caller::Caller;
use crate::error::modern_status;
use crate::jsonrpc::Message;
use crate::relay::stateless::{Pending, Stateless};
use crate::relay::Relay;

/// Handles one modern POST.
pub(super) async fn post(
    relay: &Arc<Relay>,
    headers: &HeaderMap,
    message: &Message,
    caller: &Caller,
) -> Response {
    match relay.stateless(caller, headers, message).await {
        Ok(Stateless::Accepted) => StatusCode::ACCEPTED.into_response(),
        Ok(Stateless::Answered(body)) => json(body),
        Ok(Stateless::Pending(pending)) => {
            respond(relay, pending, caller.principal.expires_at).await
        }
        Err(r) => r.error.into_response_for(r.id.as_ref()),
    }
}

/// A final answer as JSON, with its status.
fn json(body: Bytes) -> Response {
    let status = modern_status(crate::jsonrpc::error_code(&body));
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// JSON when the final answer comes first (within `--json-hold`), SSE otherwise.
async fn respond(
    relay: &Relay,
    pending: Pending,
    expires: Option<std::time::SystemTime>,
) -> Response {
    let stream = pending.stream.clone();
    let (mut rx, _) = stream.attach(None);
    let first = match tokio::time::timeout(relay.config().json_hold, rx.recv()).await {
        Ok(Some(out)) if out.last => {
            pending.answered(&out.data);
            return json(out.data);
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
        guard: Some(pending.into_guard()),
        expires,
    };
    sse(relay, None, &stream, attach)
}
