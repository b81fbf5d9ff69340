//! `mcp-relay connect URL`, the stdio bridge, driven as a host drives it (the host side is
//! `support::bridge::Bridge`). The remote server is `mcp-relay serve` around the recording
//! fixture, in its own process group (`Server`, here), or a hostile server written on a bare
//! `TcpListener` (`raw_server`, here) (SECURITY.md §6, §8.F). The tests, by concern:
//!
//! - `transports`: the host's scenario over every plain transport; malformed host input; EOF.
//! - `tls`: HTTPS, WSS and TLS-TCP with `--ca-file`, `--insecure`, client certificates.
//! - `credentials`: API keys from a header file, a bearer variable or argv, never logged.
//! - `tools`: `--deny-tool` and `--allow-tool`.
//! - `reconnect`: a server killed and restarted under load, sessions lost (404), outages.
//! - `hostile`: servers that send junk, foreign endpoints, redirects and endless lines.
//! - `links`: credentials over legacy SSE, huge lines, and why a link failed (issue 14).

use std::collections::{BTreeMap, HashSet};
#[cfg(unix)]
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::support::bridge::{Bridge, HOST};
use crate::support::{eventually, patience, tempdir, text_of, FIXTURE, RELAY};

mod credentials;
mod hostile;
mod links;
mod reconnect;
mod tls;
mod tools;
mod transports;

// === The remote server: `mcp-relay serve` in its own process group ===

/// A relay around the fixture, in its own process group so that a test can SIGKILL the relay
/// and its children at once (the "server machine crashed" case).
struct Server {
    child: std::process::Child,
    logs: Arc<crate::support::relay::Logs>,
    /// `http(s)://127.0.0.1:PORT/mcp`
    url: String,
    /// `http(s)://127.0.0.1:PORT`
    base: String,
}

impl Server {
    /// `mcp-relay serve ARGS` (the whole argv after `serve`).
    fn start(args: &[&str]) -> Server {
        let mut cmd = StdCommand::new(RELAY);
        cmd.arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().expect("spawn relay");
        let (logs, url) = crate::support::listening(&mut child);
        let base = url.rsplit_once('/').unwrap().0.to_owned();
        Server {
            child,
            logs,
            url,
            base,
        }
    }

    /// `serve --listen LISTEN --tcp-listen 127.0.0.1:0 EXTRA -- fixture --record RECORD`.
    fn fixture(listen: &str, extra: &[&str], record: &Path) -> Server {
        let mut args = vec!["--listen", listen, "--tcp-listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", FIXTURE, "--record", record.to_str().unwrap()]);
        Server::start(&args)
    }

    fn logs(&self) -> String {
        self.logs.text()
    }

    /// `tcp://…` or `tls://…` of the TCP front, once it is logged.
    async fn tcp_url(&self) -> String {
        eventually("tcp front listening", || {
            let l = self.logs();
            l.contains("url=tcp://") || l.contains("url=tls://")
        })
        .await;
        let logs = self.logs();
        let at = logs
            .find("url=tcp://")
            .or_else(|| logs.find("url=tls://"))
            .unwrap()
            + 4;
        logs[at..].split_whitespace().next().unwrap().to_owned()
    }

    fn ws_url(&self) -> String {
        self.base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1)
            + "/ws"
    }

    /// 127.0.0.1:PORT
    fn addr(&self) -> String {
        self.base.split_once("://").unwrap().1.to_owned()
    }

    /// SIGKILL to the whole process group (relay and fixture children), then reap. Without
    /// process groups (Windows) the relay is killed and its children see their stdin close.
    fn kill_group(&mut self) {
        #[cfg(unix)]
        {
            let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
        #[cfg(not(unix))]
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Lines of a fixture `--record` file, parsed.
fn recorded(record: &Path) -> Vec<Value> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The `initialize` requests the fixture received that carried the host's clientInfo.
fn host_inits(record: &Path) -> usize {
    recorded(record)
        .iter()
        .filter(|v| v["method"] == "initialize" && v["params"]["clientInfo"]["name"] == HOST)
        .count()
}

/// `mcp-relay cert generate`; returns (cert, key).
fn cert_generate() -> (PathBuf, PathBuf) {
    let dir = tempdir();
    let out = StdCommand::new(RELAY)
        .args(["cert", "generate", "--out-dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// The host's scenario over `connect ARGS`: initialize (the server sees the host's
/// clientInfo), tools/list, echo, progress, sampling, EOF.
async fn scenario(args: &[&str], record: &Path) {
    let before = host_inits(record);
    let mut b = Bridge::spawn(args);
    b.initialize().await;
    eventually("the host's initialize reached the server", || {
        host_inits(record) > before
    })
    .await;
    let list = b.request(json!("l"), "tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in ["echo", "progress", "sample", "crash"] {
        assert!(names.contains(&want), "{names:?}");
    }
    let echo = b
        .call(json!(1), "echo", json!({"text": "over the bridge"}))
        .await;
    assert_eq!(text_of(&echo), "over the bridge", "{echo}");
    // Progress notifications, then the answer.
    b.send(
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"progress","arguments":{"steps":3},"_meta":{"progressToken":"p"}}}),
    )
    .await;
    let done = b.answer(&json!(2)).await;
    assert_eq!(text_of(&done), "done", "{done}");
    let progress: Vec<Value> = b
        .backlog
        .drain(..)
        .filter(|v| v["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{progress:?}");
    assert!(progress.iter().all(|p| p["params"]["progressToken"] == "p"));
    // The server's sampling request reaches the host; the host's answer reaches the server.
    b.send(json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"sample","arguments":{}}}))
        .await;
    let ask = b
        .until("sampling/createMessage", |v| {
            v["method"] == "sampling/createMessage"
        })
        .await;
    assert!(ask.get("id").is_some(), "{ask}");
    b.send(
        json!({"jsonrpc":"2.0","id":ask["id"],"result":{"role":"assistant",
        "content":{"type":"text","text":"sampled by the host"},"model":"host-model"}}),
    )
    .await;
    let sampled = b.answer(&json!(3)).await;
    assert!(
        text_of(&sampled).contains("sampled by the host"),
        "{sampled}"
    );
    // EOF ends the bridge cleanly.
    let (code, took) = b.eof().await;
    assert_eq!(code, Some(0), "{}", b.stderr());
    assert!(took < Duration::from_secs(2), "{took:?}");
    b.assert_clean();
}

/// `mcp-relay token key`: (key, its `[[auth.api_keys]]` block).
fn api_key() -> (String, String) {
    crate::support::mint_api_key(&["--id", "bridge-it"])
}

/// The recording server in `dir` (record `dir/rec.log`) taking one fresh API key: (the key,
/// the server).
fn keyed_server(dir: &Path) -> (String, Server) {
    let (key, block) = api_key();
    let config = dir.join("relay.toml");
    std::fs::write(&config, &block).unwrap();
    let s = Server::fixture(
        "127.0.0.1:0",
        &["--config", config.to_str().unwrap()],
        &dir.join("rec.log"),
    );
    (key, s)
}

// === Hostile servers (SECURITY.md §8.F6) ===

/// One parsed HTTP/1.1 request.
#[derive(Debug, Clone)]
struct RawRequest {
    method: String,
    path: String,
    /// The request head, lowercased.
    head: String,
    body: String,
}

impl RawRequest {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    }
}

/// What a raw handler answers: bytes to write, then whether to keep the connection open
/// (an SSE stream) or close it.
type Handler = Arc<dyn Fn(&RawRequest) -> (Vec<u8>, bool) + Send + Sync>;

/// A bare HTTP/1.1 server on 127.0.0.1:0; returns its address, the requests it saw and the
/// number of connections it accepted.
async fn raw_server(handler: Handler) -> (String, Arc<Mutex<Vec<RawRequest>>>, Arc<AtomicUsize>) {
    raw_server_with(handler, None).await
}

/// Like [`raw_server`]; the first connection kept open (an SSE stream) also writes whatever is
/// sent on `pushes` (the server→client direction of a legacy SSE server).
async fn raw_server_with(
    handler: Handler,
    pushes: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
) -> (String, Arc<Mutex<Vec<RawRequest>>>, Arc<AtomicUsize>) {
    let pushes = Arc::new(Mutex::new(pushes));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let conns = Arc::new(AtomicUsize::new(0));
    let (seen2, conns2) = (seen.clone(), conns.clone());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            conns2.fetch_add(1, Ordering::SeqCst);
            let (handler, seen, pushes) = (handler.clone(), seen2.clone(), pushes.clone());
            tokio::spawn(async move {
                let mut sock = tokio::io::BufReader::new(sock);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        match sock.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" || line == "\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let mut first = head.lines().next().unwrap_or("").split_whitespace();
                    let method = first.next().unwrap_or("").to_owned();
                    let path = first.next().unwrap_or("").to_owned();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    if sock.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let req = RawRequest {
                        method,
                        path,
                        head: head.to_lowercase(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    seen.lock().unwrap().push(req.clone());
                    let (bytes, keep_open) = handler(&req);
                    if sock.get_mut().write_all(&bytes).await.is_err() {
                        return;
                    }
                    let _ = sock.get_mut().flush().await;
                    if keep_open {
                        // Hold the stream (forwarding pushes) until the peer goes away.
                        let mut sink = [0u8; 1024];
                        let rx = pushes.lock().unwrap().take();
                        let Some(mut rx) = rx else {
                            while matches!(sock.get_mut().read(&mut sink).await, Ok(n) if n > 0) {}
                            return;
                        };
                        loop {
                            tokio::select! {
                                m = rx.recv() => {
                                    let Some(bytes) = m else { return };
                                    if sock.get_mut().write_all(&bytes).await.is_err() {
                                        return;
                                    }
                                    let _ = sock.get_mut().flush().await;
                                }
                                n = sock.get_mut().read(&mut sink) => {
                                    if !matches!(n, Ok(n) if n > 0) {
                                        return;
                                    }
                                }
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, seen, conns)
}

fn http_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn seen_requests(seen: &Arc<Mutex<Vec<RawRequest>>>) -> Vec<RawRequest> {
    seen.lock().unwrap().clone()
}
