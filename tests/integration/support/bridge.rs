//! `mcp-relay connect URL`, the stdio bridge, as a host drives it: a child process with piped
//! stdin/stdout, JSON-RPC lines both ways, every stdout line checked to be JSON-RPC, stderr
//! kept for assertions. The servers it talks to are each test's own (`bridge.rs`,
//! `bridge_era.rs`).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{patience, RELAY};

/// The `clientInfo.name` the host sends in its `initialize`.
pub const HOST: &str = "bridge-it-host";

/// `mcp-relay connect ARGS`: its stdin, its stdout lines (each checked to be JSON-RPC) and
/// its stderr.
pub struct Bridge {
    pub child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    rx: mpsc::UnboundedReceiver<Value>,
    /// Messages read while waiting for another one.
    pub backlog: Vec<Value>,
    /// stdout lines that were not JSON-RPC (must stay empty).
    bad: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

/// True for a JSON-RPC 2.0 message (request, notification or response) or a batch of them.
fn is_jsonrpc(v: &Value) -> bool {
    match v {
        Value::Array(items) => !items.is_empty() && items.iter().all(is_jsonrpc),
        Value::Object(o) => {
            o.get("jsonrpc") == Some(&json!("2.0"))
                && (o.contains_key("method") || o.contains_key("result") || o.contains_key("error"))
        }
        _ => false,
    }
}

impl Bridge {
    pub fn spawn(args: &[&str]) -> Bridge {
        Bridge::spawn_env(args, &[], "info")
    }

    /// `mcp-relay connect ARGS` with `env` set for the bridge only.
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)], log: &str) -> Bridge {
        let mut child = tokio::process::Command::new(RELAY)
            .arg("connect")
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn bridge");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let bad = Arc::new(Mutex::new(Vec::new()));
        let bad_sink = bad.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) if is_jsonrpc(&v) => {
                        let _ = tx.send(v);
                    }
                    _ => {
                        let mut shown = line.clone();
                        shown.truncate(200);
                        bad_sink.lock().unwrap().push(shown);
                    }
                }
            }
        });
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Bridge {
            child,
            stdin,
            rx,
            backlog: Vec::new(),
            bad,
            stderr: logs,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Every stdout line so far was JSON-RPC.
    pub fn assert_clean(&self) {
        let bad = self.bad.lock().unwrap();
        assert!(
            bad.is_empty(),
            "non-JSON-RPC on stdout: {bad:?}\n{}",
            self.stderr()
        );
    }

    pub async fn send_raw(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        stdin.write_all(text.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
        stdin.flush().await.unwrap();
    }

    pub async fn send(&mut self, v: Value) {
        self.send_raw(&v.to_string()).await;
    }

    /// The next message within `wait`, `None` on timeout or end of stdout.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Value> {
        if !self.backlog.is_empty() {
            return Some(self.backlog.remove(0));
        }
        let v = tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten();
        self.assert_clean();
        v
    }

    /// Reads until a message matches (others are kept); panics after patience.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = tokio::time::Instant::now() + patience();
        loop {
            let v = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}\n{}", self.stderr()))
                .unwrap_or_else(|| {
                    panic!("bridge stdout ended waiting for {what}\n{}", self.stderr())
                });
            self.assert_clean();
            if pred(&v) {
                return v;
            }
            self.backlog.push(v);
        }
    }

    /// The answer (not a request) with this id.
    pub async fn answer(&mut self, id: &Value) -> Value {
        let id = id.clone();
        self.until(&format!("answer {id}"), move |v| {
            v["id"] == id && v.get("method").is_none()
        })
        .await
    }

    /// The answer with this id, answering the server's requests on the way with `reply`;
    /// also returns the methods of the requests it answered.
    pub async fn answer_serving(
        &mut self,
        id: &Value,
        reply: impl Fn(&Value) -> Value,
    ) -> (Value, Vec<String>) {
        let mut asked = Vec::new();
        loop {
            let m = self
                .until(&format!("answer {id}"), |m| {
                    m.get("method").is_some() && m.get("id").is_some()
                        || &m["id"] == id && m.get("method").is_none()
                })
                .await;
            if m.get("method").is_none() {
                return (m, asked);
            }
            asked.push(m["method"].as_str().unwrap().to_owned());
            let result = reply(&m);
            self.send(json!({"jsonrpc":"2.0","id":m["id"],"result":result}))
                .await;
        }
    }

    pub async fn request(&mut self, id: Value, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc":"2.0","id":id,"method":method,"params":params}))
            .await;
        self.answer(&id).await
    }

    /// `initialize` with the host's own clientInfo; returns the raw answer.
    pub async fn initialize_raw(&mut self) -> Value {
        self.request(json!(0), "initialize", host_init_params())
            .await
    }

    /// `initialize` (must succeed) and `notifications/initialized`.
    pub async fn initialize(&mut self) -> Value {
        let init = self.initialize_raw().await;
        assert_eq!(
            init["result"]["serverInfo"]["name"],
            "mcp-relay-fixture",
            "{init}\n{}",
            self.stderr()
        );
        self.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        init
    }

    pub async fn call(&mut self, id: Value, tool: &str, args: Value) -> Value {
        self.request(id, "tools/call", json!({"name": tool, "arguments": args}))
            .await
    }

    /// Closes stdin; returns the exit code and how long the bridge took to exit.
    pub async fn eof(&mut self) -> (Option<i32>, Duration) {
        drop(self.stdin.take());
        let started = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("bridge did not exit after stdin EOF")
            .unwrap();
        (status.code(), started.elapsed())
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

pub fn host_init_params() -> Value {
    json!({"protocolVersion": "2025-11-25",
        "capabilities": {"sampling": {}, "roots": {"listChanged": true}},
        "clientInfo": {"name": HOST, "version": "7.7.7"}})
}
