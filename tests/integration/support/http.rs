//! A minimal Streamable HTTP client for the relay's `/mcp` endpoint: session and protocol
//! version headers, replies read whole (SSE with a maintained parser, or a JSON body), and
//! GET streams. The legacy HTTP+SSE front has its own client in `sse`.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::{init_request, patience, ACCEPT_BOTH};

/// A minimal Streamable HTTP client.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    pub version: Option<String>,
    /// Headers sent with every request (e.g. an identity header).
    pub extra: Vec<(String, String)>,
}

/// A response with its SSE events (or its JSON body as one message).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub events: Vec<SseEvent>,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: String,
    pub data: String,
    pub retry: Option<Duration>,
}

impl Reply {
    /// JSON-RPC messages received (priming events skipped).
    pub fn messages(&self) -> Vec<Value> {
        if self.events.is_empty() && !self.body.is_empty() {
            return vec![serde_json::from_str(&self.body).unwrap()];
        }
        self.events
            .iter()
            .filter(|e| !e.data.is_empty())
            .map(|e| serde_json::from_str(&e.data).unwrap())
            .collect()
    }

    /// Raw data strings of the messages (for byte comparisons).
    pub fn raw(&self) -> Vec<String> {
        if self.events.is_empty() && !self.body.is_empty() {
            return vec![self.body.clone()];
        }
        self.events
            .iter()
            .filter(|e| !e.data.is_empty())
            .map(|e| e.data.clone())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl Client {
    pub fn new(url: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(4)
                .build()
                .unwrap(),
            url: url.to_owned(),
            session: None,
            version: None,
            extra: Vec::new(),
        }
    }

    pub fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut b = self.http.request(method, &self.url);
        if let Some(s) = &self.session {
            b = b.header("mcp-session-id", s);
        }
        if let Some(v) = &self.version {
            b = b.header("mcp-protocol-version", v);
        }
        for (k, v) in &self.extra {
            b = b.header(k, v);
        }
        b
    }

    /// Initializes with `version`, sends `notifications/initialized`, keeps the session.
    pub async fn initialize(&mut self, version: &str) -> Reply {
        let reply = self.post(init_request(json!(0), version)).await;
        assert_eq!(reply.status, 200, "initialize failed: {reply:?}");
        self.session = reply.header("mcp-session-id");
        self.version = Some(
            reply.messages()[0]["result"]["protocolVersion"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        let ack = self
            .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        assert_eq!(ack.status, 202);
        reply
    }

    pub async fn post(&self, body: Value) -> Reply {
        self.post_raw(body.to_string()).await
    }

    /// A POST with the session headers, `Content-Type` and `Accept` set; add the body.
    pub fn post_builder(&self) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
    }

    pub async fn post_raw(&self, body: String) -> Reply {
        let res = self.post_builder().body(body).send().await.unwrap();
        read_reply(res).await
    }

    /// `tools/call` of the fixture; returns the messages of its stream.
    pub async fn call(&self, id: Value, tool: &str, args: Value) -> Reply {
        self.post(json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
            "params":{"name":tool,"arguments":args}}))
            .await
    }

    pub async fn delete(&self) -> u16 {
        self.request(reqwest::Method::DELETE)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Opens a GET stream (optionally resuming) and returns the live response.
    pub async fn get(&self, last_event_id: Option<&str>) -> reqwest::Response {
        let mut b = self
            .request(reqwest::Method::GET)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            b = b.header("last-event-id", id);
        }
        b.send().await.unwrap()
    }
}

/// Reads a whole response: SSE events until the stream ends, or the body.
pub async fn read_reply(res: reqwest::Response) -> Reply {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let is_sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        let body = tokio::time::timeout(patience(), res.text())
            .await
            .expect("body timeout")
            .unwrap_or_default();
        return Reply {
            status,
            headers,
            events: vec![],
            body,
        };
    }
    let events = tokio::time::timeout(patience(), collect_events(res, usize::MAX))
        .await
        .expect("SSE stream did not end");
    Reply {
        status,
        headers,
        events,
        body: String::new(),
    }
}

/// Reads up to `max` events (stops early when the stream ends).
pub async fn collect_events(res: reqwest::Response, max: usize) -> Vec<SseEvent> {
    let mut stream = res.bytes_stream().eventsource();
    let mut out = Vec::new();
    while out.len() < max {
        match stream.next().await {
            Some(Ok(ev)) => out.push(SseEvent {
                id: ev.id,
                data: ev.data,
                retry: ev.retry,
            }),
            _ => break,
        }
    }
    out
}

/// Reads SSE events until one with JSON-RPC data satisfies `pred`.
pub async fn wait_event(
    stream: &mut (impl futures_util::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>>
              + Unpin),
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("event timeout")
            .expect("stream ended")
            .expect("sse error");
        if ev.data.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        if pred(&v) {
            return v;
        }
    }
}
