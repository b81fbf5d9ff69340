//! What the fronts that carry one JSON-RPC message per unit share (`lines`: a line, `ws`: a
//! text frame, `sse`: an event out and a POST in): reading with patience, a backlog of
//! messages read while waiting for another one, requests and their answers; and the scenario
//! every front runs. Streamable HTTP (`http`) is request/response and is not one of them.

use std::collections::VecDeque;

use serde_json::{json, Value};

use super::{init_request, patience, text_of};

/// A connection carrying one JSON-RPC message per unit. Implementors give the framing
/// (`send_raw`, `read`) and a backlog; the rest is shared.
#[allow(async_fn_in_trait)] // used only here, by concrete types, never as `dyn`
pub trait Conn {
    /// Writes one message as it is (a line, a text frame, a POST body).
    async fn send_raw(&mut self, text: &str);

    /// The next message off the wire, `None` once the connection ended (no timeout here).
    async fn read(&mut self) -> Option<Value>;

    /// Messages read while waiting for another one.
    fn backlog(&mut self) -> &mut VecDeque<Value>;

    async fn send(&mut self, v: Value) {
        self.send_raw(&v.to_string()).await;
    }

    /// The next message (the backlog first), or `None` when the connection ended; panics
    /// after patience.
    async fn next(&mut self) -> Option<Value> {
        if let Some(v) = self.backlog().pop_front() {
            return Some(v);
        }
        tokio::time::timeout(patience(), self.read())
            .await
            .expect("read timeout")
    }

    /// Reads until a message matches; others are kept for later, in order.
    async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let mut skipped = Vec::new();
        let found = loop {
            let v = self.next().await.expect("connection ended");
            if pred(&v) {
                break v;
            }
            skipped.push(v);
        };
        self.backlog().extend(skipped);
        found
    }

    /// The answer (not a request) with this id.
    async fn answer(&mut self, id: &Value) -> Value {
        self.until(|v| &v["id"] == id && v.get("method").is_none())
            .await
    }

    /// Sends the request `msg` and returns its answer.
    async fn exchange(&mut self, msg: Value) -> Value {
        let id = msg["id"].clone();
        self.send(msg).await;
        self.answer(&id).await
    }

    async fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.exchange(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await
    }

    /// `initialize` with `version` (id 0), then `notifications/initialized` whatever the
    /// answer; returns the answer.
    async fn initialize(&mut self, version: &str) -> Value {
        let init = self.exchange(init_request(json!(0), version)).await;
        self.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        init
    }

    /// The fixture's `echo` tool as request `id`: the text it answered.
    async fn echo(&mut self, id: Value, text: &str) -> String {
        let r = self
            .request(
                id,
                "tools/call",
                json!({"name":"echo","arguments":{"text":text}}),
            )
            .await;
        text_of(&r)
    }
}

/// The scenario every front runs: initialize, tools/list, a call with progress, a
/// server→client request answered on the same connection, notifications from the child.
pub async fn scenario(c: &mut impl Conn) {
    let init = c
        .request(
            json!(0),
            "initialize",
            init_request(json!(0), "2025-11-25")["params"].clone(),
        )
        .await;
    assert_eq!(init["result"]["serverInfo"]["name"], "mcp-relay-fixture");
    c.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let list = c.request(json!("l"), "tools/list", json!({})).await;
    assert!(list["result"]["tools"].as_array().unwrap().len() > 5);
    traffic(c, "").await;
}

/// The scenario's traffic after `tools/list`, with the fixture's tool names behind `prefix`
/// (`""`, or a named server's `echo__` through the aggregate): a call with progress, a
/// server→client request answered on the same connection, notifications from the child.
pub async fn traffic(c: &mut impl Conn, prefix: &str) {
    let tool = |name: &str| format!("{prefix}{name}");
    // Progress, then the answer.
    c.send(
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":tool("progress"),"arguments":{"steps":3},"_meta":{"progressToken":"p"}}}),
    )
    .await;
    let done = c.until(|v| v["id"] == 2).await;
    assert_eq!(text_of(&done), "done");
    let progress: Vec<Value> = c
        .backlog()
        .drain(..)
        .filter(|v| v["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{progress:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "p"));
    // A server→client request, answered on the same connection.
    c.send(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":tool("sample"),"arguments":{}}}))
        .await;
    let ask = c.until(|v| v["method"] == "sampling/createMessage").await;
    c.send(
        json!({"jsonrpc":"2.0","id":ask["id"],"result":{"role":"assistant",
        "content":{"type":"text","text":"sampled"},"model":"m"}}),
    )
    .await;
    let sampled = c.until(|v| v["id"] == 3).await;
    assert!(text_of(&sampled).contains("sampled"), "{sampled}");
    // Notifications from the child.
    c.send(json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":tool("notify"),"arguments":{}}}))
        .await;
    c.until(|v| v["method"] == "notifications/tools/list_changed")
        .await;
    c.until(|v| v["method"] == "notifications/message").await;
    assert_eq!(text_of(&c.until(|v| v["id"] == 4).await), "notified");
}
