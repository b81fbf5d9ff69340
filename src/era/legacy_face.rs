//! The legacy face of a 2026-07-28 server: what a legacy client (`initialize`, sessions,
//! server→client requests) needs translated to talk to a server that speaks only the modern
//! era, as pure functions over `serde_json::Value` and bytes (PROTOCOL.md §5.12).
//!
//! - The `initialize` answer, built from the server's `server/discover` result
//!   ([`initialize_result`]): capabilities, server info and instructions kept, the modern-only
//!   fields (`supportedVersions`, `resultType`, caching hints) dropped.
//! - The modern `_meta` every request carries for the client's hello ([`Hello::with_meta`]):
//!   protocol version, the client's declared capabilities and info, and a log level.
//! - Multi-round-trip results (basic/patterns/mrtr): recognising an `InputRequiredResult`
//!   ([`input_required`]), its input requests as ordinary server→client requests
//!   ([`input_requests`], [`input_request`]), the client's answers as input responses
//!   ([`input_response`]) and the retry's params ([`retry`]).
//!
//! Used by both sides of the relay: `mcp-relay connect` in front of a modern remote server
//! (`upstream/remote/http/era.rs`) and `mcp-relay serve` in front of a modern-only child
//! (`face.rs`). Transport, waiting and routing are theirs; nothing here does I/O.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::jsonrpc::{Frame, RawId};

/// The modern protocol version spoken to the server.
pub(crate) const MODERN: &str = super::FIRST_MODERN;
const META_VERSION: &str = super::MODERN_META_KEY;
const META_CAPS: &str = "io.modelcontextprotocol/clientCapabilities";
const META_INFO: &str = "io.modelcontextprotocol/clientInfo";
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// Rounds of input one request may need before it is given up.
pub(crate) const MAX_ROUNDS: usize = 8;
/// How long the client may take to answer one server→client request.
pub(crate) const INPUT_WAIT: Duration = Duration::from_secs(300);

/// What a legacy client declared in its `initialize`: sent as `_meta` on every request.
#[derive(Debug, Clone)]
pub(crate) struct Hello {
    pub caps: Value,
    pub info: Option<Value>,
}

impl Hello {
    /// The hello of an `initialize` request's `params` (capabilities `{}` when absent).
    pub(crate) fn of(params: &Value) -> Hello {
        Hello {
            caps: params
                .get("capabilities")
                .cloned()
                .unwrap_or_else(|| json!({})),
            info: params.get("clientInfo").cloned(),
        }
    }

    /// `msg` with the modern `_meta` in its params (created when absent), and the log level
    /// the client asked for with `logging/setLevel`, if any.
    pub(crate) fn with_meta(&self, msg: &Value, log_level: Option<&str>) -> Bytes {
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
                    if let Some(level) = log_level {
                        m.insert(META_LOG_LEVEL.into(), json!(level));
                    }
                }
            }
        }
        Bytes::from(msg.to_string())
    }

    /// The `server/discover` request (id `id`) for this hello.
    pub(crate) fn discover(&self, id: Value) -> Bytes {
        let msg = json!({"jsonrpc":"2.0","id":id,"method":"server/discover","params":{}});
        self.with_meta(&msg, None)
    }
}

/// The `result` of a `server/discover` answer from a server that speaks [`MODERN`].
pub(crate) fn discovered(answer: &Value) -> Option<&Value> {
    let result = answer.get("result")?;
    let supported = result.get("supportedVersions")?.as_array()?;
    supported.iter().any(|s| s == MODERN).then_some(result)
}

/// The `InitializeResult` for a legacy client, from a `DiscoverResult`: `version`, the
/// server's capabilities, server info (from `_meta`, else a `serverInfo` field) and
/// instructions; the modern-only fields are left out.
pub(crate) fn initialize_result(discover: &Value, version: Value) -> Value {
    let server_info = discover
        .get("_meta")
        .and_then(|m| m.get(META_SERVER_INFO))
        .cloned()
        .or_else(|| discover.get("serverInfo").cloned())
        .unwrap_or_else(|| json!({"name": "unknown", "version": "0"}));
    let mut out = Map::new();
    out.insert("protocolVersion".into(), version);
    out.insert(
        "capabilities".into(),
        discover
            .get("capabilities")
            .cloned()
            .unwrap_or_else(|| json!({})),
    );
    out.insert("serverInfo".into(), server_info);
    if let Some(i) = discover.get("instructions") {
        out.insert("instructions".into(), i.clone());
    }
    Value::Object(out)
}

/// A JSON-RPC result message with the raw id `id`.
pub(crate) fn result_message(id: &RawId, result: &Value) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
        id.as_str(),
        result
    ))
}

/// The `result` of an answer that is an `InputRequiredResult`.
pub(crate) fn input_required(answer: &Value) -> Option<&Value> {
    let result = answer.get("result")?;
    (result.get("resultType") == Some(&json!("input_required"))).then_some(result)
}

/// One input request of an `InputRequiredResult`: its key, method and params.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Input {
    pub key: String,
    pub method: String,
    pub params: Value,
}

/// The input requests of an `InputRequiredResult`, in the server's order; `None` when there
/// are none or one of them has no method.
pub(crate) fn input_requests(result: &Value) -> Option<Vec<Input>> {
    result
        .get("inputRequests")?
        .as_object()?
        .iter()
        .map(|(key, r)| {
            Some(Input {
                key: key.clone(),
                method: r.get("method")?.as_str()?.to_owned(),
                params: r.get("params").cloned().unwrap_or_else(|| json!({})),
            })
        })
        .collect()
}

/// The server→client request asking the client for one input, under the id `id`.
pub(crate) fn input_request(id: &str, input: &Input) -> Bytes {
    let msg = json!({"jsonrpc":"2.0","id":id,"method":input.method,"params":input.params});
    Bytes::from(msg.to_string())
}

/// The client's answer to an input request as the server's input response: its result, or
/// `{"error": …}`.
pub(crate) fn input_response(answer: &Value) -> Option<Value> {
    answer
        .get("result")
        .cloned()
        .or_else(|| answer.get("error").map(|e| json!({ "error": e })))
}

/// Turns `req` into the retry of an `InputRequiredResult` (`result`): `inputResponses` and
/// the exact `requestState` (removed when the server sent none). The caller gives it a new id.
pub(crate) fn retry(req: &mut Value, responses: Value, result: &Value) {
    if let Some(p) = req.get_mut("params").and_then(Value::as_object_mut) {
        p.insert("inputResponses".into(), responses);
        match result.get("requestState") {
            Some(s) => p.insert("requestState".into(), s.clone()),
            None => p.remove("requestState"),
        };
    }
}

/// `answer` with the id `id` (a retried round was sent with its own).
pub(crate) fn with_id(answer: &Bytes, id: &RawId) -> Bytes {
    match Frame::parse_upstream(answer.clone()) {
        Ok(f) => match f.id_span() {
            Some(span) => f.splice(&mut [(span, id.as_str())]),
            None => answer.clone(),
        },
        Err(_) => answer.clone(),
    }
}

/// The filter of a `subscriptions/listen` for a legacy client: the list changes the server's
/// `capabilities` declare (`listChanged: true`) when `lists`, and the resources `uris`.
pub(crate) fn listen_filter(capabilities: &Value, lists: bool, uris: &[String]) -> Value {
    let mut filter = Map::new();
    if lists {
        for (cap, flag) in LIST_CHANGED {
            if capabilities.pointer(&format!("/{cap}/listChanged")) == Some(&json!(true)) {
                filter.insert(flag.into(), json!(true));
            }
        }
    }
    if !uris.is_empty() {
        filter.insert("resourceSubscriptions".into(), json!(uris));
    }
    Value::Object(filter)
}

/// Capability → listen filter flag of each list a server may say changed.
const LIST_CHANGED: [(&str, &str); 3] = [
    ("tools", "toolsListChanged"),
    ("prompts", "promptsListChanged"),
    ("resources", "resourcesListChanged"),
];

/// The `subscriptions/listen` request (id `id`) for `filter` (without `_meta` yet).
pub(crate) fn listen_request(id: &str, filter: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"subscriptions/listen",
        "params":{"notifications":filter}})
}

/// A notification of a listen stream as a legacy client gets it: `None` for the stream's
/// acknowledgement (a legacy client has no such thing), else the notification with the
/// `subscriptionId` removed from its `_meta` (and `_meta` removed when nothing is left).
pub(crate) fn from_listen(msg: &[u8]) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(msg).ok()?;
    if v.get("method") == Some(&json!("notifications/subscriptions/acknowledged")) {
        return None;
    }
    if let Some(params) = v.get_mut("params").and_then(Value::as_object_mut) {
        if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.remove(META_SUBSCRIPTION_ID);
            if meta.is_empty() {
                params.remove("_meta");
            }
        }
    }
    Some(Bytes::from(v.to_string()))
}

const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// A legacy `logging/setLevel` in front of a modern server: the level to send as `_meta`
/// from now on, or the error a legacy server answers (code, message): -32601 when the
/// server's `capabilities` declare no `logging`, -32602 for an unknown level.
pub(crate) fn log_level(
    params: &Value,
    capabilities: &Value,
) -> Result<String, (i64, &'static str)> {
    if capabilities.get("logging").is_none() {
        return Err((-32601, "Method not found"));
    }
    match params.get("level").and_then(Value::as_str) {
        Some(level) if crate::era::LOG_LEVELS.contains(&level) => Ok(level.to_owned()),
        _ => Err((-32602, "Invalid params: unknown log level")),
    }
}

/// The empty result a legacy method the modern era removed gets (`ping`, `logging/setLevel`).
pub(crate) fn empty_result(id: &RawId) -> Bytes {
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#,
        id.as_str()
    ))
}

#[cfg(test)]
mod tests;
