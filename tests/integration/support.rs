//! Test harness: the real `mcp-relay` binary on 127.0.0.1:0 wrapping the real fixture binary,
//! and a small Streamable HTTP client that reads SSE with a maintained parser.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};

pub const RELAY: &str = env!("CARGO_BIN_EXE_mcp-relay");
pub const FIXTURE: &str = env!("CARGO_BIN_EXE_mcp-relay-fixture");
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// How long tests wait for anything (scaled by `MCP_RELAY_TEST_PATIENCE_MS`).
pub fn patience() -> Duration {
    let ms = std::env::var("MCP_RELAY_TEST_PATIENCE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    Duration::from_millis(ms)
}

/// Polls `f` until it returns true or patience runs out.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience();
    while Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A running relay process; killed (SIGKILL) on drop unless stopped first.
pub struct Relay {
    pub child: Child,
    pub url: String,
    pub base: String,
    pub logs: Arc<Mutex<String>>,
}

impl Relay {
    /// `mcp-relay serve --listen 127.0.0.1:0 <relay_args> -- <fixture> <child_args>`.
    pub fn start(relay_args: &[&str], child_args: &[&str]) -> Relay {
        let mut args: Vec<&str> = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(relay_args);
        args.push("--");
        args.push(FIXTURE);
        args.extend_from_slice(child_args);
        Relay::start_raw(&args)
    }

    /// Like [`Relay::start`], with the fixture recording its stdin; returns the record path.
    pub fn start_recorded(relay_args: &[&str], child_args: &[&str]) -> (Relay, PathBuf) {
        let record = tempdir().join("stdin.log");
        let path = record.to_str().unwrap().to_owned();
        let mut args = vec!["--record", path.as_str()];
        args.extend_from_slice(child_args);
        (Relay::start(relay_args, &args), record)
    }

    pub fn start_raw(args: &[&str]) -> Relay {
        Relay::start_env(args, &[])
    }

    /// Like [`Relay::start_raw`], with extra environment variables for the relay only (the
    /// test process's own environment is never changed).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Relay {
        let mut child = Command::new(RELAY)
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn relay");
        let (logs, url) = listening(&mut child);
        let base = url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Relay {
            child,
            url,
            base,
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Processes whose parent is the relay (its children).
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Sends SIGTERM and waits for the exit code.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + patience();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub async fn health(&self) -> Value {
        reqwest::get(format!("{}/health", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids whose parent is `pid`, from /proc (Linux; empty elsewhere).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the command (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|f| f.parse::<u32>().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// True while a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !state.starts_with('Z')
        }
        Err(_) => false,
    }
}

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

/// Text of the first content item of a tools/call result message.
pub fn text_of(msg: &Value) -> String {
    msg["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the fixture's `--record` file holds `count` lines containing `needle`.
pub async fn wait_recorded(record: &std::path::Path, needle: &str, count: usize) {
    eventually(&format!("{count}× {needle} reached the child"), || {
        std::fs::read_to_string(record)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
            >= count
    })
    .await;
}

/// An `initialize` request with id `id` asking for `version`.
pub fn init_request(id: Value, version: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion": version,
        "capabilities": {"sampling": {}, "roots": {"listChanged": true}},
        "clientInfo": {"name": "it", "version": "1"}}})
}

/// A fresh temporary directory (unique per test process and call).
pub fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mcp-relay-it-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mcp-relay token jwt` for `user` with `roles` (comma-separated), valid for an hour, for
/// `audience`, signed with `secret` passed to that command alone as `secret_var`.
pub fn mint_jwt(secret_var: &str, secret: &str, user: &str, roles: &str, audience: &str) -> String {
    let out = Command::new(RELAY)
        .args(["token", "jwt", "--secret", &format!("env:{secret_var}")])
        .args(["--user", user, "--roles", roles, "--expires-in", "1h"])
        .args(["--audience", audience])
        .env(secret_var, secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `mcp-relay token key ARGS`: the key and its `[[auth.api_keys]]` block (only the hash).
pub fn mint_api_key(args: &[&str]) -> (String, String) {
    let out = Command::new(RELAY)
        .args(["token", "key"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap().trim().to_owned();
    assert!(key.starts_with("mcpr_"), "{text}");
    let at = text.find("[[auth.api_keys]]").expect("no config block");
    (key, text[at..].to_owned())
}

/// SIGHUP to the relay: reload its policy.
#[cfg(unix)]
pub fn hangup(relay: &Relay) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(relay.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

/// Collects a relay's stderr (its logs) on a thread and waits for the first
/// `url=http(s)://…` it logs: the (logs, url) of a relay that is listening.
pub fn listening(child: &mut Child) -> (Arc<Mutex<String>>, String) {
    let stderr = child.stderr.take().expect("stderr piped");
    let logs = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = logs.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let at = line.find("url=http://");
            if let Some(i) = at.or_else(|| line.find("url=https://")) {
                if let Some(t) = tx.take() {
                    let url = line[i + 4..].split_whitespace().next().unwrap_or("");
                    let _ = t.send(url.to_owned());
                }
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let url = rx
        .recv_timeout(patience())
        .unwrap_or_else(|_| panic!("relay did not start: {}", logs.lock().unwrap()));
    (logs, url)
}
