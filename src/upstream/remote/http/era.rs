//! A legacy client in front of a 2026-07-28 server (`connect --protocol auto`, PROTOCOL.md §5.12
//! bridge side). When the server refuses `initialize` as a method it no longer has, the link
//! asks `server/discover` and answers the relay's `initialize` itself from what the server
//! says; from then on every request carries the modern `_meta` (protocol version, the host's
//! capabilities and client info), and an `InputRequiredResult` (multi-round-trip requests) is
//! unpacked: each of its `inputRequests` goes to the host as an ordinary server→client
//! request, and the original request is sent again with `inputResponses` and the server's
//! `requestState`, until the server gives the final answer. Notifications the relay sends
//! that the modern era removed (`notifications/initialized`) are dropped.
//!
//! Not here: the modern headers (`modern.rs`), the driver (`http.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::link::{body, is_sse, lock, split, Link};
use super::modern::modern_headers;
use super::stream::Events;
use super::{Done, Error};
use crate::era::legacy_face::{self as face, Hello, INPUT_WAIT, MAX_ROUNDS};
use crate::jsonrpc::{Frame, Kind, RawId};

/// The modern protocol version the link speaks to the server.
pub(super) const MODERN: &str = face::MODERN;
/// Ids of the server→client requests the link makes up for the host.
const INPUT_ID_PREFIX: &str = "mcp-relay-input-";

/// The modern session of a link: the host's hello and the input requests awaiting answers.
#[derive(Debug)]
pub(super) struct Modern {
    hello: Hello,
    next: AtomicU64,
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

/// Whether an answer to `initialize` says the server has no such method (a modern server).
pub(super) fn refuses_initialize(status: u16, answer: Option<&Bytes>) -> bool {
    let code = answer.and_then(|a| crate::jsonrpc::error_code(a));
    matches!(code, Some(-32601 | -32020 | -32022)) || (code.is_none() && status == 404)
}

/// The first complete answer in a response (JSON, or the first SSE event that answers).
pub(super) async fn first_answer(link: &Link, res: reqwest::Response) -> Option<Bytes> {
    if is_sse(&res) {
        let mut events = Events::new(res, link.max_message);
        while let Some(Ok(ev)) = events.next().await {
            let data = Bytes::from(ev.data);
            if Frame::parse_upstream(data.clone()).is_ok_and(|f| f.kind() == Kind::Response) {
                return Some(data);
            }
        }
        return None;
    }
    body(res, link.max_message).await.ok()
}

impl Modern {
    /// Asks `server/discover` with the host's `initialize` params; on success, the modern
    /// session and the `initialize` answer for the relay (`id`, the host's version).
    pub(super) async fn discover(link: &Link, init: &Frame) -> Option<(Modern, Bytes)> {
        let params: Value = params_of(init.bytes())?;
        let modern = Modern {
            hello: Hello::of(&params),
            next: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        };
        let probe = modern.hello.discover(json!(0));
        let frame = Frame::parse_upstream(probe.clone()).ok()?;
        let res = link
            .post(probe, modern_headers(&frame))
            .await
            .map_err(|e| debug!(upstream = %link.name, error = %e.without_url(), "server/discover failed"))
            .ok()?;
        let answer = first_answer(link, res).await?;
        let v: Value = serde_json::from_slice(&answer).ok()?;
        let Some(result) = face::discovered(&v) else {
            debug!(upstream = %link.name, answer = %String::from_utf8_lossy(&answer[..answer.len().min(300)]), "server/discover: not a 2026-07-28 server");
            return None;
        };
        // A server that also speaks the host's own version (a dual-era server, or a relay in
        // front of a legacy one) is spoken to in it: the host's `initialize` goes through.
        let asked = params.get("protocolVersion");
        let supported = result.get("supportedVersions").and_then(Value::as_array);
        if supported.is_some_and(|s| asked.is_some_and(|a| s.contains(a))) {
            debug!(upstream = %link.name, "server/discover: the server speaks the host's version");
            return None;
        }
        let version = params
            .get("protocolVersion")
            .cloned()
            .unwrap_or_else(|| json!("2025-11-25"));
        let id = init.id()?;
        let msg = face::result_message(&id, &face::initialize_result(result, version));
        Some((modern, msg))
    }

    /// A response from the host to an input request the link made up: handed to the request
    /// that waits for it. `false` when it is not one of those (forward it as usual).
    pub(super) fn take_response(&self, frame: &Frame) -> bool {
        let Some(id) = frame.id() else { return false };
        let Some(key) = serde_json::from_str::<String>(id.as_str())
            .ok()
            .filter(|k| k.starts_with(INPUT_ID_PREFIX))
        else {
            return false;
        };
        let Some(tx) = lock(&self.waiting).remove(&key) else {
            return true;
        };
        let v: Value = serde_json::from_slice(frame.bytes()).unwrap_or(Value::Null);
        let _ = tx.send(v);
        true
    }

    /// One request, modern style: `_meta` added, input rounds unpacked, the final answer (or a
    /// relay error) delivered with the relay's id.
    pub(super) async fn call(self: Arc<Self>, link: Arc<Link>, msg: Bytes) -> Result<Done, Error> {
        let Some(mut req) = serde_json::from_slice::<Value>(&msg).ok() else {
            return Ok(Done::Task);
        };
        let Some(id) = Frame::parse_upstream(msg.clone()).ok().and_then(|f| f.id()) else {
            return Ok(Done::Task);
        };
        for round in 0..MAX_ROUNDS {
            // Each round is a new request to the server: its own JSON-RPC id.
            if round > 0 {
                req["id"] = json!(format!(
                    "{INPUT_ID_PREFIX}retry-{}",
                    self.next.fetch_add(1, Ordering::Relaxed)
                ));
            }
            let body = self.hello.with_meta(&req, None);
            let frame = Frame::parse_upstream(body.clone()).map_err(|_| Error::Sse)?;
            let res = link
                .post(body, modern_headers(&frame))
                .await
                .map_err(Error::network)?;
            link.check(res.status())?;
            let Some(answer) = self.relay_until_answer(&link, res).await else {
                return deliver_error(&link, &id).await;
            };
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            let Some(result) = face::input_required(&v) else {
                link.deliver(face::with_id(&answer, &id)).await;
                return Ok(Done::Task);
            };
            let responses = self.ask_host(&link, result).await;
            let Some(responses) = responses else {
                return deliver_error(&link, &id).await;
            };
            face::retry(&mut req, responses, result);
        }
        warn!(upstream = %link.name, "a request needed too many rounds of input; given up");
        deliver_error(&link, &id).await
    }

    /// Reads a response: messages that are not the answer (progress, notifications) go to
    /// the relay at once; the answer is returned.
    async fn relay_until_answer(&self, link: &Link, res: reqwest::Response) -> Option<Bytes> {
        if !is_sse(&res) {
            let data = body(res, link.max_message).await.ok()?;
            return split(data).into_iter().next();
        }
        let mut events = Events::new(res, link.max_message);
        while let Some(Ok(ev)) = events.next().await {
            let data = Bytes::from(ev.data);
            match Frame::parse_upstream(data.clone()) {
                Ok(f) if f.kind() == Kind::Response => return Some(data),
                Ok(_) => {
                    link.deliver(data).await;
                }
                Err(_) => {}
            }
        }
        None
    }

    /// Sends each input request of an `InputRequiredResult` to the host and collects the
    /// answers, keyed as the server keyed the requests.
    async fn ask_host(&self, link: &Link, result: &Value) -> Option<Value> {
        let mut answers = Map::new();
        for input in face::input_requests(result)? {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let id = format!("{INPUT_ID_PREFIX}{n}");
            let (tx, rx) = oneshot::channel();
            lock(&self.waiting).insert(id.clone(), tx);
            if !link.deliver(face::input_request(&id, &input)).await {
                return None;
            }
            let answer = tokio::time::timeout(INPUT_WAIT, rx).await.ok()?.ok()?;
            // The host's result, or its error, as the server's input response.
            answers.insert(input.key, face::input_response(&answer)?);
        }
        Some(Value::Object(answers))
    }
}

async fn deliver_error(link: &Link, id: &RawId) -> Result<Done, Error> {
    link.deliver(crate::error::Error::ChildUnavailable.to_jsonrpc(id))
        .await;
    Ok(Done::Task)
}

fn params_of(msg: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(msg)
        .ok()?
        .get("params")
        .cloned()
}
