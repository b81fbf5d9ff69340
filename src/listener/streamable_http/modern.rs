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
//!
//! In a fleet, a retry or task follow-up whose `requestState` or `taskId` another node sealed
//! (its owner tag, `era/state.rs`) is forwarded there as it came (`elsewhere`): only that
//! node's key opens it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{sse, Attach};
use crate::caller::Caller;
use crate::cluster::id::{owner, Owner};
use crate::cluster::FORWARDED_BY;
use crate::error::modern_status;
use crate::jsonrpc::{Frame, Message};
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

/// A stateless retry or task follow-up whose `requestState` or `taskId` a configured peer
/// sealed: carried to it with the same headers and its one message (already read, so sent
/// whole, with the length of what is sent); `None` for anything else (a batch is judged
/// here, and refused), and for a request forwarded here already. The concurrency slot this
/// node took for it is given back first (the owner takes its own); the principal's rate was
/// spent here already and is spent again by the owner (docs/fleet.md).
pub(super) async fn elsewhere(
    relay: &Relay,
    parts: &Parts,
    message: &Message,
    caller: &Caller,
) -> Option<Response> {
    let cluster = relay.config().cluster.as_ref()?;
    if parts.headers.contains_key(FORWARDED_BY) {
        return None;
    }
    let Message::Single(frame) = message else {
        return None;
    };
    let node = continuation_owner(frame)?;
    cluster.peer(&node)?;
    // The path as the client sent it (a named server's mount included).
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |o| o.0.clone());
    let mut req = Request::new(Body::from(frame.bytes().clone()));
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = parts.headers.clone();
    req.headers_mut().remove(header::CONTENT_LENGTH);
    crate::listener::guard::release_slot(&parts.extensions);
    let forwarder = cluster.forwarder();
    let id = frame.id();
    let res = forwarder.forward_to(cluster, relay.audit(), &node, req, caller.peer, id.as_ref());
    Some(res.await)
}

/// The other node a continuation names: the owner tag of `params.taskId` or
/// `params.requestState`.
fn continuation_owner(frame: &Frame) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(rename = "taskId")]
        task_id: Option<serde_json::Value>,
        #[serde(rename = "requestState")]
        request_state: Option<serde_json::Value>,
    }
    let p = frame.params::<Params>()?;
    [p.task_id, p.request_state]
        .iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .find_map(|t| match owner(t) {
            Owner::Node(n) => Some(n.to_owned()),
            _ => None,
        })
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
