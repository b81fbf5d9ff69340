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
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::link::{body, is_sse, lock, split, Link};
use super::modern::modern_headers;
use super::stream::Events;
use super::{Done, Error};
use crate::jsonrpc::{Frame, Kind, RawId};

/// The modern protocol version the link speaks to the server.
pub(super) const MODERN: &str = "2026-07-28";
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";
const META_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// Rounds of input one request may need before it is given up.
const MAX_ROUNDS: usize = 8;
/// How long the host may take to answer one server→client request.
const INPUT_WAIT: Duration = Duration::from_secs(300);
/// Ids of the server→client requests the link makes up for the host.
const INPUT_ID_PREFIX: &str = "mcp-relay-input-";

/// The modern session of a link: the host's hello and the input requests awaiting answers.
#[derive(Debug)]
pub(super) struct Modern {
    caps: Value,
    info: Option<Value>,
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
            caps: params
                .get("capabilities")
                .cloned()
                .unwrap_or_else(|| json!({})),
            info: params.get("clientInfo").cloned(),
            next: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        };
        let probe = modern
            .with_meta(&json!({"jsonrpc":"2.0","id":0,"method":"server/discover","params":{}}));
        let frame = Frame::parse_upstream(probe.clone()).ok()?;
        let res = link
            .post(probe, modern_headers(&frame))
            .await
            .map_err(|e| debug!(upstream = %link.name, error = %e.without_url(), "server/discover failed"))
            .ok()?;
        let answer = first_answer(link, res).await?;
        let v: Value = serde_json::from_slice(&answer).ok()?;
        let supported = v
            .get("result")
            .and_then(|r| r.get("supportedVersions"))
            .and_then(Value::as_array);
        if !supported.is_some_and(|s| s.iter().any(|s| s == MODERN)) {
            debug!(upstream = %link.name, answer = %String::from_utf8_lossy(&answer[..answer.len().min(300)]), "server/discover: not a 2026-07-28 server");
            return None;
        }
        // A server that also speaks the host's own version (a dual-era server, or a relay in
        // front of a legacy one) is spoken to in it: the host's `initialize` goes through.
        let asked = params.get("protocolVersion");
        if supported.is_some_and(|s| asked.is_some_and(|a| s.contains(a))) {
            debug!(upstream = %link.name, "server/discover: the server speaks the host's version");
            return None;
        }
        let result = v.get("result")?;
        let version = params
            .get("protocolVersion")
            .cloned()
            .unwrap_or_else(|| json!("2025-11-25"));
        let server_info = result
            .get("_meta")
            .and_then(|m| m.get("io.modelcontextprotocol/serverInfo"))
            .cloned()
            .or_else(|| result.get("serverInfo").cloned())
            .unwrap_or_else(|| json!({"name": "unknown", "version": "0"}));
        let mut out = Map::new();
        out.insert("protocolVersion".into(), version);
        out.insert(
            "capabilities".into(),
            result
                .get("capabilities")
                .cloned()
                .unwrap_or_else(|| json!({})),
        );
        out.insert("serverInfo".into(), server_info);
        if let Some(i) = result.get("instructions") {
            out.insert("instructions".into(), i.clone());
        }
        let id = init.id()?;
        let msg = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
            id.as_str(),
            Value::Object(out)
        );
        Some((modern, Bytes::from(msg)))
    }

    /// `msg` with the modern `_meta` in its params (created when absent).
    fn with_meta(&self, msg: &Value) -> Bytes {
        let mut msg = msg.clone();
        if let Some(obj) = msg.as_object_mut() {
            let params = obj.entry("params").or_insert_with(|| json!({}));
            if let Some(p) = params.as_object_mut() {
                let meta = p.entry("_meta").or_insert_with(|| json!({}));
                if let Some(m) = meta.as_object_mut() {
                    m.insert(META_VERSION.into(), json!(MODERN));
                    m.insert(META_CAPS.into(), self.caps.clone());
                    if let Some(info) = &self.info {
                        m.insert(META_INFO.into(), info.clone());
                    }
                }
            }
        }
        Bytes::from(msg.to_string())
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
            let body = self.with_meta(&req);
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
            let result = v.get("result");
            if result.and_then(|r| r.get("resultType")) != Some(&json!("input_required")) {
                link.deliver(with_id(&answer, &id)).await;
                return Ok(Done::Task);
            }
            let Some(result) = result else {
                return deliver_error(&link, &id).await;
            };
            let responses = self.ask_host(&link, result).await;
            let Some(responses) = responses else {
                return deliver_error(&link, &id).await;
            };
            if let Some(p) = req.get_mut("params").and_then(Value::as_object_mut) {
                p.insert("inputResponses".into(), responses);
                match result.get("requestState") {
                    Some(s) => p.insert("requestState".into(), s.clone()),
                    None => p.remove("requestState"),
                };
            }
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
        let requests = result.get("inputRequests")?.as_object()?;
        let mut answers = Map::new();
        for (key, r) in requests {
            let method = r.get("method")?.as_str()?;
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let id = format!("{INPUT_ID_PREFIX}{n}");
            let (tx, rx) = oneshot::channel();
            lock(&self.waiting).insert(id.clone(), tx);
            let msg = json!({"jsonrpc":"2.0","id":id,"method":method,
                "params": r.get("params").cloned().unwrap_or_else(|| json!({}))});
            if !link.deliver(Bytes::from(msg.to_string())).await {
                return None;
            }
            let answer = tokio::time::timeout(INPUT_WAIT, rx).await.ok()?.ok()?;
            // The host's result, or its error, as the server's input response.
            let value = answer
                .get("result")
                .cloned()
                .or_else(|| answer.get("error").map(|e| json!({ "error": e })))?;
            answers.insert(key.clone(), value);
        }
        Some(Value::Object(answers))
    }
}

/// `answer` with the relay's id (a retried round was sent with its own).
fn with_id(answer: &Bytes, id: &RawId) -> Bytes {
    match Frame::parse_upstream(answer.clone()) {
        Ok(f) => match f.id_span() {
            Some(span) => f.splice(&mut [(span, id.as_str())]),
            None => answer.clone(),
        },
        Err(_) => answer.clone(),
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
