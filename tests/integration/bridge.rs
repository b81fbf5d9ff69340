//! `mcp-relay connect URL`, the stdio bridge, driven as a host drives it: a child process with
//! piped stdin/stdout, JSON-RPC lines both ways, every stdout line checked to be JSON-RPC.
//! The remote server is `mcp-relay serve` around the recording fixture, over every transport
//! (Streamable HTTP, legacy SSE, WebSocket, TCP, and their TLS forms), with API keys, tool
//! filters, a server killed and restarted under load, malformed host input, and hostile servers
//! written here on a bare `TcpListener` (SECURITY.md §6, §8.F).

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

// === The remote server: `mcp-relay serve` in its own process group ===

/// A relay around the fixture, in its own process group so that a test can SIGKILL the relay
/// and its children at once (the "server machine crashed" case).
struct Server {
    child: std::process::Child,
    logs: Arc<Mutex<String>>,
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
        self.logs.lock().unwrap().clone()
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

// === The host's scenario over every transport ===

/// initialize (the server sees the host's clientInfo), tools/list, echo, progress, sampling.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_streamable_http() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    scenario(&[&s.url], &record).await;
    // `--transport http` says the same.
    scenario(&["--transport", "http", &s.url], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_legacy_sse() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    let sse = format!("{}/sse", s.base);
    scenario(&["--transport", "sse", &sse], &record).await;
    // Without --transport: the automatic fallback from Streamable HTTP.
    scenario(&[&sse], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_websocket() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    scenario(&[&s.ws_url()], &record).await;
    scenario(&["--transport", "ws", &s.ws_url()], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_tcp() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    let tcp = s.tcp_url().await;
    assert!(tcp.starts_with("tcp://"), "{tcp}");
    scenario(&[&tcp], &record).await;
    scenario(&["--transport", "tcp", &tcp], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_https_wss_and_tls_with_ca_file() {
    let (cert, key) = cert_generate();
    let record = tempdir().join("rec.log");
    let s = Server::fixture(
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &record,
    );
    assert!(s.url.starts_with("https://"), "{}", s.url);
    let ca = cert.to_str().unwrap();
    let tls = s.tcp_url().await;
    assert!(tls.starts_with("tls://"), "{tls}");
    let sse = format!("{}/sse", s.base);
    for url in [s.url.clone(), s.ws_url(), tls.clone()] {
        scenario(&["--ca-file", ca, &url], &record).await;
    }
    scenario(&["--transport", "sse", "--ca-file", ca, &sse], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_refuses_a_self_signed_server_without_ca_file() {
    let (cert, key) = cert_generate();
    let record = tempdir().join("rec.log");
    let s = Server::fixture(
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &record,
    );
    let mut b = Bridge::spawn(&[&s.url]);
    let init = b.initialize_raw().await;
    assert!(init.get("error").is_some(), "{init}");
    assert!(b.alive());
    assert_eq!(host_inits(&record), 0);
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_insecure_accepts_a_self_signed_server_and_warns() {
    let (cert, key) = cert_generate();
    let record = tempdir().join("rec.log");
    let s = Server::fixture(
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &record,
    );
    let mut b = Bridge::spawn(&["--insecure", &s.url]);
    let init = b.initialize_raw().await;
    assert_eq!(
        init["result"]["serverInfo"]["name"],
        "mcp-relay-fixture",
        "{init}\n{}",
        b.stderr()
    );
    assert!(
        b.stderr().to_lowercase().contains("insecure"),
        "--insecure must be logged loudly: {}",
        b.stderr()
    );
}

// === Credentials passed through ===

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_passes_api_keys_from_header_file_and_bearer_env_and_never_logs_them() {
    let dir = tempdir();
    let (key, s) = keyed_server(&dir);
    let record = dir.join("rec.log");
    let tcp = s.tcp_url().await;

    // --header-file with `X-API-Key: …` (and a comment line).
    let headers = dir.join("headers");
    std::fs::write(&headers, format!("# the relay's key\nX-API-Key: {key}\n")).unwrap();
    for url in [
        s.url.clone(),
        s.ws_url(),
        format!("{}/sse", s.base),
        tcp.clone(),
    ] {
        let mut b = Bridge::spawn_env(
            &["--header-file", headers.to_str().unwrap(), &url],
            &[],
            "debug",
        );
        b.initialize().await;
        let r = b.call(json!(1), "echo", json!({"text": "keyed"})).await;
        assert_eq!(text_of(&r), "keyed", "{url}: {r}");
        let (code, _) = b.eof().await;
        assert_eq!(code, Some(0));
        assert!(!b.stderr().contains(&key), "{url}: key on stderr");
    }

    // --bearer-env: the variable is set on the bridge's Command only.
    let env = "MCP_RELAY_BRIDGE_IT_TOKEN";
    assert!(std::env::var_os(env).is_none());
    let mut b = Bridge::spawn_env(&["--bearer-env", env, &s.url], &[(env, &key)], "debug");
    b.initialize().await;
    let r = b.call(json!(1), "echo", json!({"text": "bearer"})).await;
    assert_eq!(text_of(&r), "bearer", "{r}");
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    assert!(!b.stderr().contains(&key), "key on stderr");

    // --header on argv, debug logging: the value is still never logged (§8.F5).
    let mut b = Bridge::spawn_env(
        &["--header", &format!("Authorization: Bearer {key}"), &s.url],
        &[],
        "debug,mcp_relay=trace",
    );
    b.initialize().await;
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    assert!(!b.stderr().contains(&key), "key on stderr");

    // Without credentials: the host's initialize gets an error answer, no hang, nothing
    // reached the server beyond what the keyed bridges sent.
    let before = host_inits(&record);
    for extra in [&["--oauth", "off"][..], &[][..]] {
        let mut args = extra.to_vec();
        args.push(&s.url);
        let mut b = Bridge::spawn(&args);
        let init = b.initialize_raw().await;
        assert!(init.get("error").is_some(), "{init}\n{}", b.stderr());
        assert!(init.get("result").is_none());
        assert!(b.alive(), "the bridge stays up for the host");
        let (code, took) = b.eof().await;
        assert_eq!(code, Some(0));
        assert!(took < Duration::from_secs(2), "{took:?}");
        b.assert_clean();
    }
    assert_eq!(host_inits(&record), before);
    // A --bearer-env naming an unset variable is a usage error before anything runs.
    let out = StdCommand::new(RELAY)
        .args([
            "connect",
            "--bearer-env",
            "MCP_RELAY_BRIDGE_IT_UNSET",
            &s.url,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MCP_RELAY_BRIDGE_IT_UNSET"));
}

// === Tool filtering ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_deny_tool_hides_and_refuses_locally() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    let mut b = Bridge::spawn(&["--deny-tool", "crash*", &s.url]);
    b.initialize().await;
    let list = b.request(json!(1), "tools/list", json!({})).await;
    let names: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("crash")), "{names:?}");
    assert!(names.iter().any(|n| n == "echo"), "{names:?}");
    let r = b.call(json!(2), "crash", json!({"code": 3})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(r["error"]["message"], "Unknown tool: crash", "{r}");
    // Still working, and the refused call never reached the server.
    let r = b.call(json!(3), "echo", json!({"text": "after"})).await;
    assert_eq!(text_of(&r), "after");
    wait_for_text(&record, "after").await;
    let crashes = recorded(&record)
        .iter()
        .filter(|v| v["params"]["name"] == "crash")
        .count();
    assert_eq!(crashes, 0);
    // --allow-tool: only matching tools.
    let mut b = Bridge::spawn(&["--allow-tool", "ech*", &s.url]);
    b.initialize().await;
    let list = b.request(json!(1), "tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo"], "{list}");
    let r = b.call(json!(2), "progress", json!({})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

async fn wait_for_text(record: &Path, text: &str) {
    eventually(&format!("echo {text} reached the server"), || {
        recorded(record)
            .iter()
            .any(|v| v["params"]["arguments"]["text"] == text)
    })
    .await;
}

// === Reconnect ===

/// Echo texts of every `tools/call echo` in these record files.
fn echo_texts(records: &[&Path]) -> Vec<String> {
    records
        .iter()
        .flat_map(|r| recorded(r))
        .filter(|v| v["method"] == "tools/call" && v["params"]["name"] == "echo")
        .filter_map(|v| v["params"]["arguments"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// The host sends one echo every 50 ms (id = text = n) while the server is SIGKILLed (whole
/// process group) and restarted on the same port.
async fn reconnect_under_load(url_of: impl Fn(&Server) -> String, extra: &[&str]) {
    let dir = tempdir();
    let (rec1, rec2) = (dir.join("rec1.log"), dir.join("rec2.log"));
    let mut s1 = Server::fixture("127.0.0.1:0", &[], &rec1);
    let addr = s1.addr();
    let url = url_of(&s1);
    let mut args = extra.to_vec();
    args.push(&url);
    let mut b = Bridge::spawn(&args);
    b.initialize().await;

    const N: u64 = 80;
    const KILL_AT: u64 = 20;
    const RESTART_AT: u64 = 40;
    let mut sent_at: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut answers: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut killed_at = None;
    let mut restarted_at = None;
    let mut s2 = None;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for n in 1..=N {
        tick.tick().await;
        if n == KILL_AT {
            s1.kill_group();
            killed_at = Some(Instant::now());
        }
        if n == RESTART_AT {
            s2 = Some(Server::fixture(&addr, &[], &rec2));
            restarted_at = Some(Instant::now());
        }
        b.send(json!({"jsonrpc":"2.0","id":n,"method":"tools/call",
            "params":{"name":"echo","arguments":{"text": n.to_string()}}}))
            .await;
        sent_at.insert(n, Instant::now());
        // Collect whatever came back meanwhile.
        while let Some(v) = b.next_within(Duration::from_millis(1)).await {
            if let Some(id) = v["id"].as_u64().filter(|_| v.get("method").is_none()) {
                answers.entry(id).or_default().push(v);
            }
        }
    }
    let s2 = s2.unwrap();
    let deadline = Instant::now() + patience();
    while answers.len() < N as usize && Instant::now() < deadline {
        if let Some(v) = b.next_within(Duration::from_millis(100)).await {
            if let Some(id) = v["id"].as_u64().filter(|_| v.get("method").is_none()) {
                answers.entry(id).or_default().push(v);
            }
        }
    }
    // A little longer: nothing answered twice.
    while let Some(v) = b.next_within(Duration::from_millis(300)).await {
        if let Some(id) = v["id"].as_u64().filter(|_| v.get("method").is_none()) {
            answers.entry(id).or_default().push(v);
        }
    }
    let (killed_at, restarted_at) = (killed_at.unwrap(), restarted_at.unwrap());
    let summary = || {
        answers
            .iter()
            .map(|(id, a)| {
                let s: Vec<String> = a
                    .iter()
                    .map(|v| {
                        if v.get("error").is_some() {
                            format!("E{}", v["error"]["code"])
                        } else {
                            text_of(v)
                        }
                    })
                    .collect();
                format!("{id}:{}", s.join("|"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for n in 1..=N {
        let a = answers.get(&n).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            a.len(),
            1,
            "id {n} got {} answers\n{}\n--- bridge ---\n{}",
            a.len(),
            summary(),
            b.stderr()
        );
        let v = &a[0];
        if v.get("error").is_some() {
            // Only a request on the wire when the link broke may fail, with -31007.
            assert_eq!(
                v["error"]["code"],
                -31007,
                "id {n}: {v}\n{}\n--- bridge ---\n{}",
                summary(),
                b.stderr()
            );
            assert!(
                sent_at[&n] < killed_at + Duration::from_millis(250),
                "id {n} sent {:?} after the kill failed: {v}\n{}\n--- bridge ---\n{}",
                sent_at[&n] - killed_at,
                summary(),
                b.stderr()
            );
        } else {
            assert_eq!(text_of(v), n.to_string(), "id {n}: {v}");
        }
    }
    // Requests sent while the server was down were answered with results once it was back.
    let while_down: Vec<u64> = (1..=N)
        .filter(|n| {
            sent_at[n] > killed_at + Duration::from_millis(250) && sent_at[n] < restarted_at
        })
        .collect();
    assert!(while_down.len() >= 10, "{while_down:?}");
    for n in &while_down {
        assert!(
            answers[n][0].get("result").is_some(),
            "id {n} sent while down: {}\n{}",
            answers[n][0],
            summary()
        );
    }
    // No echo reached a server twice (the two runs' records together).
    let texts = echo_texts(&[&rec1, &rec2]);
    let mut seen = HashSet::new();
    for t in &texts {
        assert!(seen.insert(t.clone()), "echo {t} reached the server twice");
    }
    // The new server was initialized with the host's own initialize.
    assert!(host_inits(&rec2) >= 1, "{:?}", recorded(&rec2));
    assert!(b.alive(), "the bridge died\n{}", b.stderr());
    b.assert_clean();
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    drop(s2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reconnects_over_streamable_http_when_the_server_is_killed_and_restarted() {
    reconnect_under_load(|s| s.url.clone(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reconnects_over_websocket_when_the_server_is_killed_and_restarted() {
    reconnect_under_load(Server::ws_url, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reconnects_over_legacy_sse_when_the_server_is_killed_and_restarted() {
    reconnect_under_load(|s| format!("{}/sse", s.base), &["--transport", "sse"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reinitializes_after_a_404_for_its_session() {
    let dir = tempdir();
    let (rec1, rec2) = (dir.join("rec1.log"), dir.join("rec2.log"));
    let mut s1 = Server::fixture("127.0.0.1:0", &[], &rec1);
    let addr = s1.addr();
    let mut b = Bridge::spawn(&[&s1.url]);
    b.initialize().await;
    let r = b.call(json!(1), "echo", json!({"text": "one"})).await;
    assert_eq!(text_of(&r), "one");
    let r = b
        .request(json!("lvl"), "logging/setLevel", json!({"level": "debug"}))
        .await;
    assert!(r.get("result").is_some(), "{r}");
    let r = b
        .request(
            json!("sub"),
            "resources/subscribe",
            json!({"uri": "file:///public/bridge-it.txt"}),
        )
        .await;
    assert!(r.get("result").is_some(), "{r}");
    // The server restarts while idle: the old session id is unknown to the new process.
    s1.kill_group();
    let s2 = Server::fixture(&addr, &[], &rec2);
    // The request that met the 404 (or the broken stream) was on the wire: a result or -31007.
    let r2 = b.call(json!(2), "echo", json!({"text": "two"})).await;
    if r2.get("error").is_some() {
        assert_eq!(r2["error"]["code"], -31007, "{r2}\n{}", b.stderr());
    } else {
        assert_eq!(text_of(&r2), "two", "{r2}\n{}", b.stderr());
    }
    // The next one is answered by the new server, initialized with the host's initialize.
    let r = b.call(json!(3), "echo", json!({"text": "three"})).await;
    assert_eq!(text_of(&r), "three", "{r}\n{}", b.stderr());
    assert_eq!(host_inits(&rec2), 1, "{:?}", recorded(&rec2));
    // Log level and subscriptions were replayed on the new session.
    // The replays are sent without waiting for their answers: they may land after the call.
    eventually("log level and subscription replayed", || {
        let replayed = recorded(&rec2);
        replayed
            .iter()
            .any(|v| v["method"] == "logging/setLevel" && v["params"]["level"] == "debug")
            && replayed.iter().any(|v| {
                v["method"] == "resources/subscribe"
                    && v["params"]["uri"] == "file:///public/bridge-it.txt"
            })
    })
    .await;
    let texts = echo_texts(&[&rec1, &rec2]);
    assert!(
        texts.iter().filter(|t| *t == "two").count() <= 1,
        "{texts:?}"
    );
    assert!(texts.ends_with(&["three".to_owned()]), "{texts:?}");
    assert!(b.alive());
    b.assert_clean();
    drop(s2);
}

// === Host input and shutdown ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_answers_malformed_host_input_and_exits_on_eof() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    let mut b = Bridge::spawn(&[&s.url]);
    b.send_raw("not json").await;
    let e = b.until("parse error", |v| v.get("error").is_some()).await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert_eq!(e["id"], Value::Null, "{e}");
    b.initialize().await;
    b.send_raw("{}").await;
    let e = b
        .until("invalid request", |v| v.get("error").is_some())
        .await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    b.send_raw("{\"jsonrpc\":\"2.0\",\"id\":9,").await;
    let e = b.until("parse error", |v| v.get("error").is_some()).await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    let r = b
        .call(json!(1), "echo", json!({"text": "still here"}))
        .await;
    assert_eq!(text_of(&r), "still here");
    // stdin EOF: exit 0 within 2 s, and the remote session is ended.
    let (code, took) = b.eof().await;
    assert_eq!(code, Some(0), "{}", b.stderr());
    assert!(took < Duration::from_secs(2), "{took:?}");
    b.assert_clean();
    eprintln!("--- server log ---\n{}", s.logs());
    // The server's session (and its child) is gone: DELETE or the connection's end.
    eventually("the remote session ended", || {
        crate::support::children_of(s.child.id()).is_empty()
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_refuses_a_legacy_sse_endpoint_on_another_origin() {
    // The other origin: any connection to it is a failure.
    let (other, other_seen, other_conns) =
        raw_server(Arc::new(|_| (http_response("200 OK", &[], b""), false))).await;
    let endpoint = format!("http://{other}/message?sessionId=stolen");
    let (addr, seen, _) = raw_server(Arc::new(move |req: &RawRequest| {
        if req.method == "GET" && req.path.starts_with("/sse") {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n\
                 event: endpoint\ndata: {endpoint}\n\n"
            );
            (head.into_bytes(), true)
        } else {
            (http_response("405 Method Not Allowed", &[], b""), false)
        }
    }))
    .await;
    let url = format!("http://{addr}/sse");
    let secret = "Bearer sse-origin-secret";
    let mut b = Bridge::spawn(&[
        "--transport",
        "sse",
        "--header",
        &format!("Authorization: {secret}"),
        &url,
    ]);
    let init = tokio::time::timeout(patience(), b.initialize_raw())
        .await
        .expect("the host's initialize hung");
    eprintln!("cross-origin endpoint: {init}");
    assert!(init.get("error").is_some(), "{init}");
    assert!(b.alive());
    // Let any retry happen; still nothing at the other origin.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        other_conns.load(Ordering::SeqCst),
        0,
        "{:?}",
        other_seen.lock().unwrap()
    );
    assert!(seen.lock().unwrap().iter().any(|r| r.method == "GET"));
    let logs = b.stderr();
    assert!(
        logs.contains("origin") || logs.contains("endpoint"),
        "the refusal is logged: {logs}"
    );
    assert!(!logs.contains("sse-origin-secret"));
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    b.assert_clean();
}

/// A Streamable HTTP server, JSON answers, whose tools misbehave: `junk` answers a 20 MB line
/// of garbage, `badsse` an SSE event whose data is not JSON; `echo` works.
async fn hostile_streamable() -> (String, Arc<Mutex<Vec<RawRequest>>>) {
    let junk: Arc<Vec<u8>> = Arc::new(vec![b'x'; 20 * 1024 * 1024]);
    let (addr, seen, _) = raw_server(Arc::new(move |req: &RawRequest| {
        let json_headers = [
            ("content-type", "application/json"),
            ("mcp-session-id", "h-1"),
        ];
        if req.method == "GET" || req.method == "DELETE" {
            return (http_response("405 Method Not Allowed", &[], b""), false);
        }
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let id = v["id"].clone();
        let answer = |result: Value| {
            let body = json!({"jsonrpc":"2.0","id":id,"result":result}).to_string();
            (
                http_response("200 OK", &json_headers, body.as_bytes()),
                false,
            )
        };
        match v["method"].as_str().unwrap_or_default() {
            "initialize" => answer(json!({"protocolVersion":"2025-06-18",
                "capabilities":{"tools":{}},"serverInfo":{"name":"hostile","version":"1"}})),
            _ if v.get("id").is_none() => (http_response("202 Accepted", &[], b""), false),
            "tools/call" => match v["params"]["name"].as_str().unwrap_or_default() {
                "junk" => {
                    let mut body = junk.to_vec();
                    body.push(b'\n');
                    (http_response("200 OK", &json_headers, &body), false)
                }
                "badsse" => {
                    let body = b"event: message\ndata: this is not json {\n\n";
                    (
                        http_response(
                            "200 OK",
                            &[
                                ("content-type", "text/event-stream"),
                                ("mcp-session-id", "h-1"),
                            ],
                            body,
                        ),
                        false,
                    )
                }
                _ => answer(json!({"content":[{"type":"text",
                    "text": v["params"]["arguments"]["text"]}]})),
            },
            _ => answer(json!({})),
        }
    }))
    .await;
    (format!("http://{addr}/mcp"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_survives_a_streamable_server_sending_junk() {
    let (url, _seen) = hostile_streamable().await;
    let mut b = Bridge::spawn(&[&url]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "hostile", "{init}");
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    for (id, tool) in [(1, "junk"), (2, "badsse")] {
        b.send(json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
            "params":{"name":tool,"arguments":{}}}))
            .await;
        // An error for that id, or nothing: never a result, never junk on stdout.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match b.next_within(Duration::from_millis(200)).await {
                Some(v) if v["id"] == id => {
                    eprintln!("{tool}: {v}");
                    assert!(v.get("error").is_some(), "{tool}: {v}");
                    break;
                }
                Some(_) | None => {}
            }
        }
        assert!(b.alive(), "{tool} killed the bridge\n{}", b.stderr());
        b.assert_clean();
        let r = b
            .call(
                json!(100 + id),
                "echo",
                json!({"text": format!("after {tool}")}),
            )
            .await;
        assert_eq!(text_of(&r), format!("after {tool}"), "{r}\n{}", b.stderr());
    }
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    b.assert_clean();
}

/// A Streamable HTTP server that forgets session `s-1` after its first `tools/call` (404 from
/// then on), as a server does whose session expired; a new `initialize` gets `s-2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reinitializes_with_the_hosts_initialize_after_a_pure_404() {
    let sessions = Arc::new(AtomicUsize::new(0));
    let expired = Arc::new(AtomicUsize::new(0));
    let (addr, seen, _) = raw_server(Arc::new(move |req: &RawRequest| {
        if req.method == "GET" {
            return (http_response("405 Method Not Allowed", &[], b""), false);
        }
        if req.method == "DELETE" {
            return (http_response("200 OK", &[], b""), false);
        }
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let json_headers = [("content-type", "application/json")];
        if v["method"] == "initialize" {
            let n = sessions.fetch_add(1, Ordering::SeqCst) + 1;
            let sid = format!("s-{n}");
            let body = json!({"jsonrpc":"2.0","id":v["id"],"result":{
                "protocolVersion":"2025-06-18","capabilities":{"tools":{}},
                "serverInfo":{"name":"forgetful","version":"1"}}})
            .to_string();
            let headers = [("content-type", "application/json"), ("mcp-session-id", &sid)];
            return (http_response("200 OK", &headers, body.as_bytes()), false);
        }
        let sid = req.header("mcp-session-id").unwrap_or_default();
        if sid == "s-1" && expired.load(Ordering::SeqCst) > 0 {
            return (http_response("404 Not Found", &[], b""), false);
        }
        if v.get("id").is_none() {
            return (http_response("202 Accepted", &[], b""), false);
        }
        if sid == "s-1" && v["method"] == "tools/call" {
            expired.fetch_add(1, Ordering::SeqCst);
        }
        let body = json!({"jsonrpc":"2.0","id":v["id"],"result":{"content":[{"type":"text",
            "text": format!("{}@{sid}", v["params"]["arguments"]["text"].as_str().unwrap_or(""))}]}})
        .to_string();
        (http_response("200 OK", &json_headers, body.as_bytes()), false)
    }))
    .await;
    let mut b = Bridge::spawn(&[&format!("http://{addr}/mcp")]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "forgetful", "{init}");
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let r = b.call(json!(1), "echo", json!({"text": "a"})).await;
    assert_eq!(text_of(&r), "a@s-1", "{r}");
    // The server has forgotten s-1: this POST gets 404.
    let r2 = b.call(json!(2), "echo", json!({"text": "b"})).await;
    if r2.get("error").is_some() {
        assert_eq!(r2["error"]["code"], -31007, "{r2}\n{}", b.stderr());
    } else {
        assert_eq!(text_of(&r2), "b@s-2", "{r2}\n{}", b.stderr());
    }
    let r3 = b.call(json!(3), "echo", json!({"text": "c"})).await;
    assert_eq!(text_of(&r3), "c@s-2", "{r3}\n{}", b.stderr());
    let requests = seen_requests(&seen);
    let bodies: Vec<Value> = requests
        .iter()
        .filter(|r| r.method == "POST")
        .filter_map(|r| serde_json::from_str(&r.body).ok())
        .collect();
    let inits: Vec<&Value> = bodies
        .iter()
        .filter(|v| v["method"] == "initialize")
        .collect();
    assert_eq!(inits.len(), 2, "{bodies:?}");
    for i in &inits {
        assert_eq!(i["params"]["clientInfo"]["name"], HOST, "{i}");
    }
    // The new session got `notifications/initialized` before the host's next request.
    let after: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.header("mcp-session-id").as_deref() == Some("s-2"))
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .map(|v| v["method"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        after.first().map(String::as_str),
        Some("notifications/initialized"),
        "{after:?}"
    );
    eprintln!("the request that met the 404: {r2}");
    assert!(b.stderr().contains("404"), "{}", b.stderr());
    assert!(b.alive());
    b.assert_clean();
    // stdin EOF: the live session (s-2) is deleted, then the bridge exits 0 within 2 s.
    let (code, took) = b.eof().await;
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(2), "{took:?}");
    let deletes: Vec<Option<String>> = seen_requests(&seen)
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.header("mcp-session-id"))
        .collect();
    assert_eq!(deletes, [Some("s-2".to_owned())], "{}", b.stderr());
}

fn seen_requests(seen: &Arc<Mutex<Vec<RawRequest>>>) -> Vec<RawRequest> {
    seen.lock().unwrap().clone()
}

/// A working legacy SSE server whose stream announces its endpoint, then a second endpoint on
/// the same origin and a third on another origin: only the first is ever used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_uses_only_the_first_legacy_sse_endpoint() {
    let (other, other_seen, other_conns) = raw_server(Arc::new(|_| {
        (http_response("202 Accepted", &[], b""), false)
    }))
    .await;
    let (push, pushes) = mpsc::unbounded_channel::<Vec<u8>>();
    let (addr, seen, _) = raw_server_with(
        Arc::new(move |req: &RawRequest| {
            if req.method == "GET" && req.path.starts_with("/sse") {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n\
                     event: endpoint\ndata: /message?s=1\n\n\
                     event: endpoint\ndata: /hijack?s=2\n\n\
                     event: endpoint\ndata: http://{other}/message?s=3\n\n"
                );
                return (head.into_bytes(), true);
            }
            if req.method != "POST" || !req.path.starts_with("/message") {
                return (http_response("404 Not Found", &[], b""), false);
            }
            let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            if v.get("id").is_some() && v.get("method").is_some() {
                let result = match v["method"].as_str().unwrap_or_default() {
                    "initialize" => json!({"protocolVersion":"2024-11-05",
                        "capabilities":{"tools":{}},"serverInfo":{"name":"legacy","version":"1"}}),
                    "tools/call" => json!({"content":[{"type":"text",
                        "text": v["params"]["arguments"]["text"]}]}),
                    _ => json!({}),
                };
                let msg = json!({"jsonrpc":"2.0","id":v["id"],"result":result});
                let _ = push.send(format!("event: message\ndata: {msg}\n\n").into_bytes());
            }
            (http_response("202 Accepted", &[], b""), false)
        }),
        Some(pushes),
    )
    .await;
    let mut b = Bridge::spawn(&[
        "--transport",
        "sse",
        "--header",
        "X-API-Key: legacy-origin-secret",
        &format!("http://{addr}/sse"),
    ]);
    let init = b.initialize_raw().await;
    assert_eq!(
        init["result"]["serverInfo"]["name"],
        "legacy",
        "{init}\n{}",
        b.stderr()
    );
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    for n in 1..=3 {
        let r = b
            .call(json!(n), "echo", json!({"text": format!("legacy {n}")}))
            .await;
        assert_eq!(text_of(&r), format!("legacy {n}"), "{r}");
    }
    let posts: Vec<String> = seen_requests(&seen)
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.clone())
        .collect();
    let messages: Vec<&String> = posts.iter().filter(|p| *p != "/sse").collect();
    assert!(messages.len() >= 5, "{posts:?}");
    assert!(messages.iter().all(|p| *p == "/message?s=1"), "{posts:?}");
    assert_eq!(
        other_conns.load(Ordering::SeqCst),
        0,
        "{:?}",
        other_seen.lock().unwrap()
    );
    assert!(!b.stderr().contains("legacy-origin-secret"));
    b.assert_clean();
}

/// A Streamable HTTP server that redirects every POST to another origin: the configured
/// credentials (an `X-API-Key` from the header file, a bearer token) never reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_never_sends_credentials_across_an_origin_redirect() {
    let (other, other_seen, _) = raw_server(Arc::new(|req: &RawRequest| {
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let body = json!({"jsonrpc":"2.0","id":v["id"],"result":{"protocolVersion":"2025-06-18",
            "capabilities":{},"serverInfo":{"name":"thief","version":"1"}}})
        .to_string();
        (
            http_response(
                "200 OK",
                &[
                    ("content-type", "application/json"),
                    ("mcp-session-id", "t"),
                ],
                body.as_bytes(),
            ),
            false,
        )
    }))
    .await;
    let target = format!("http://{other}/mcp");
    let (addr, _seen, _) = raw_server(Arc::new(move |_req: &RawRequest| {
        (
            http_response("307 Temporary Redirect", &[("location", &target)], b""),
            false,
        )
    }))
    .await;
    let dir = tempdir();
    let headers = dir.join("headers");
    std::fs::write(&headers, "X-API-Key: redirect-key-secret\n").unwrap();
    let env = "MCP_RELAY_BRIDGE_IT_REDIRECT";
    let mut b = Bridge::spawn_env(
        &[
            "--header-file",
            headers.to_str().unwrap(),
            "--bearer-env",
            env,
            "--oauth",
            "off",
            &format!("http://{addr}/mcp"),
        ],
        &[(env, "redirect-bearer-secret")],
        "info",
    );
    let init = b.initialize_raw().await;
    eprintln!("cross-origin redirect: {init}");
    let leaked: Vec<String> = seen_requests(&other_seen)
        .iter()
        .filter(|r| {
            r.head.contains("redirect-key-secret") || r.head.contains("redirect-bearer-secret")
        })
        .map(|r| r.head.clone())
        .collect();
    assert!(
        leaked.is_empty(),
        "credentials sent to another origin: {leaked:?}"
    );
    assert!(b.alive());
    b.assert_clean();
}

/// A Streamable server whose answer is an SSE event with a 64 MB data line and no end: the
/// bridge bounds it by --max-message (memory stays bounded), stdout stays clean, and it stays
/// up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_bounds_an_endless_sse_data_line() {
    let mut flood = b"event: message\ndata: ".to_vec();
    flood.resize(64 * 1024 * 1024, b'x');
    let flood = Arc::new(flood);
    let (addr, _seen, _) = raw_server(Arc::new(move |req: &RawRequest| {
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let json_headers = [("content-type", "application/json"), ("mcp-session-id", "f-1")];
        if req.method != "POST" {
            return (http_response("405 Method Not Allowed", &[], b""), false);
        }
        if v.get("id").is_none() {
            return (http_response("202 Accepted", &[], b""), false);
        }
        let result = match v["method"].as_str().unwrap_or_default() {
            "initialize" => json!({"protocolVersion":"2025-06-18","capabilities":{"tools":{}},
                "serverInfo":{"name":"flood","version":"1"}}),
            "tools/call" if v["params"]["name"] == "flood" => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: f-1\r\n\r\n";
                let mut bytes = head.as_bytes().to_vec();
                bytes.extend_from_slice(&flood);
                return (bytes, true);
            }
            "tools/call" => json!({"content":[{"type":"text","text": v["params"]["arguments"]["text"]}]}),
            _ => json!({}),
        };
        let body = json!({"jsonrpc":"2.0","id":v["id"],"result":result}).to_string();
        (http_response("200 OK", &json_headers, body.as_bytes()), false)
    }))
    .await;
    let mut b = Bridge::spawn(&["--max-message", "1MiB", &format!("http://{addr}/mcp")]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "flood", "{init}");
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let pid = b.child.id().unwrap();
    let hwm = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let before = hwm();
    b.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"flood","arguments":{}}}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut flood_answer = None;
    while Instant::now() < deadline && flood_answer.is_none() {
        if let Some(v) = b.next_within(Duration::from_millis(200)).await {
            if v["id"] == 1 {
                flood_answer = Some(v);
            }
        }
    }
    eprintln!("endless data line: {flood_answer:?}");
    if let Some(v) = &flood_answer {
        assert!(v.get("error").is_some(), "{v}");
    }
    assert!(b.alive(), "{}", b.stderr());
    // The high-water mark is read from /proc: Linux only.
    let grew_kb = hwm().saturating_sub(before);
    assert!(
        !cfg!(target_os = "linux") || before > 0,
        "no VmHWM for the bridge"
    );
    assert!(
        grew_kb < 48 * 1024,
        "the bridge grew by {grew_kb} kB reading one 64 MB line with --max-message 1MiB"
    );
    let r = b
        .call(json!(2), "echo", json!({"text": "after the flood"}))
        .await;
    assert_eq!(text_of(&r), "after the flood", "{r}\n{}", b.stderr());
    b.assert_clean();
}

/// The Streamable HTTP server dies while the link is idle; the host's next request finds it
/// gone (connection refused: it never reached any server). It was not on the wire when the
/// link broke, so it must wait for the reconnect and be delivered, not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: over Streamable HTTP a server death is noticed only by the next POST; that \
            request, refused at connect (never delivered), is answered -31007 `server exited` \
            instead of waiting for the reconnect (same for the request that meets a 404)"]
async fn bridge_holds_a_request_that_never_reached_a_dead_server() {
    let dir = tempdir();
    let (rec1, rec2) = (dir.join("rec1.log"), dir.join("rec2.log"));
    let mut s1 = Server::fixture("127.0.0.1:0", &[], &rec1);
    let addr = s1.addr();
    let mut b = Bridge::spawn(&[&s1.url]);
    b.initialize().await;
    let r = b.call(json!(1), "echo", json!({"text": "before"})).await;
    assert_eq!(text_of(&r), "before");
    s1.kill_group();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Sent 500 ms after the server died: nothing of it can be on the wire.
    b.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"echo","arguments":{"text":"while down"}}}))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _s2 = Server::fixture(&addr, &[], &rec2);
    let r = b.answer(&json!(2)).await;
    assert_eq!(text_of(&r), "while down", "{r}\n{}", b.stderr());
    assert_eq!(echo_texts(&[&rec1, &rec2]), ["before", "while down"]);
    assert!(b.alive());
    b.assert_clean();
}

/// A server down for longer than the backoff takes to fail five times (an ordinary redeploy):
/// requests sent meanwhile must still wait and be delivered once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_delivers_requests_across_a_long_outage() {
    let dir = tempdir();
    let (rec1, rec2) = (dir.join("rec1.log"), dir.join("rec2.log"));
    let mut s1 = Server::fixture("127.0.0.1:0", &[], &rec1);
    let addr = s1.addr();
    // WebSocket: the link notices the death at once (no request is sacrificed to find out).
    let mut b = Bridge::spawn(&[&s1.ws_url()]);
    b.initialize().await;
    let r = b.call(json!(1), "echo", json!({"text": "before"})).await;
    assert_eq!(text_of(&r), "before");
    s1.kill_group();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Sent while the server is down.
    b.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"echo","arguments":{"text":"while down"}}}))
        .await;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let _s2 = Server::fixture(&addr, &[], &rec2);
    let back = Instant::now();
    let r = b.answer(&json!(2)).await;
    assert_eq!(text_of(&r), "while down", "{r}\n{}", b.stderr());
    // Sent after the server is back: answered.
    let r = b.call(json!(3), "echo", json!({"text": "after"})).await;
    assert_eq!(text_of(&r), "after", "{r}\n{}", b.stderr());
    assert!(
        back.elapsed() < Duration::from_secs(10),
        "{:?}\n{}",
        back.elapsed(),
        b.stderr()
    );
    assert!(b.alive());
    b.assert_clean();
}

/// `--transport sse` forces legacy SSE: the SSE URL is only ever opened with GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_transport_sse_never_posts_to_the_sse_url() {
    let (push, pushes) = mpsc::unbounded_channel::<Vec<u8>>();
    let (addr, seen, _) = raw_server_with(
        Arc::new(move |req: &RawRequest| {
            if req.method == "GET" && req.path.starts_with("/sse") {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n\
                            event: endpoint\ndata: /message?s=1\n\n";
                return (head.as_bytes().to_vec(), true);
            }
            if req.method != "POST" || !req.path.starts_with("/message") {
                return (http_response("405 Method Not Allowed", &[], b""), false);
            }
            let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            if v["method"] == "initialize" {
                let msg = json!({"jsonrpc":"2.0","id":v["id"],"result":{
                    "protocolVersion":"2024-11-05","capabilities":{},
                    "serverInfo":{"name":"legacy","version":"1"}}});
                let _ = push.send(format!("event: message\ndata: {msg}\n\n").into_bytes());
            }
            (http_response("202 Accepted", &[], b""), false)
        }),
        Some(pushes),
    )
    .await;
    let mut b = Bridge::spawn(&["--transport", "sse", &format!("http://{addr}/sse")]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "legacy", "{init}");
    let to_sse: Vec<String> = seen_requests(&seen)
        .iter()
        .filter(|r| r.path.starts_with("/sse"))
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(to_sse, ["GET"], "{}", b.stderr());
}

/// A server that requires a client certificate (`[auth.mtls]`): `--client-cert/--client-key`
/// authenticate the bridge over HTTPS, WSS and TLS-TCP; without them the host gets an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_authenticates_with_a_client_certificate() {
    use mcp_relay::tls::client::testing::{make_ca, make_client};
    let (cert, key) = cert_generate();
    let dir = cert.parent().unwrap().to_path_buf();
    let ca = make_ca("bridge-it client CA").unwrap();
    std::fs::write(dir.join("clients-ca.pem"), &ca.0).unwrap();
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        "[auth]\nresource = \"http://relay.test/mcp\"\n\n[auth.mtls]\nca = \"clients-ca.pem\"\n\n\
         [[auth.mtls.clients]]\nmatch = \"dns:client.example.com\"\nprincipal = \"svc\"\n\
         roles = [\"user\"]\n",
    )
    .unwrap();
    let (client_cert, client_key) =
        make_client(&ca.0, &ca.1, &["dns:client.example.com"], None).unwrap();
    let (cc, ck) = (dir.join("client.pem"), dir.join("client-key.pem"));
    std::fs::write(&cc, client_cert).unwrap();
    std::fs::write(&ck, client_key).unwrap();
    let record = dir.join("rec.log");
    let s = Server::fixture(
        "127.0.0.1:0",
        &[
            "--resource",
            "http://relay.test/mcp",
            "--config",
            config.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &record,
    );
    let tls = s.tcp_url().await;
    let (ca_file, cc, ck) = (
        cert.to_str().unwrap(),
        cc.to_str().unwrap(),
        ck.to_str().unwrap(),
    );
    for url in [s.url.clone(), s.ws_url(), tls] {
        let mut b = Bridge::spawn(&[
            "--ca-file",
            ca_file,
            "--client-cert",
            cc,
            "--client-key",
            ck,
            &url,
        ]);
        b.initialize().await;
        let r = b.call(json!(1), "echo", json!({"text": "mtls"})).await;
        assert_eq!(text_of(&r), "mtls", "{url}: {r}\n{}", b.stderr());
        let (code, _) = b.eof().await;
        assert_eq!(code, Some(0));
        // Without the client certificate: an error answer, not a hang.
        let mut b = Bridge::spawn(&["--ca-file", ca_file, "--oauth", "off", &url]);
        let started = Instant::now();
        let init = b.initialize_raw().await;
        eprintln!(
            "{url} without a client certificate, {:?}: {init}",
            started.elapsed()
        );
        assert!(init.get("error").is_some(), "{url}: {init}");
        assert!(b.alive());
        b.assert_clean();
    }
    // --client-cert without --client-key is a usage error.
    let out = StdCommand::new(RELAY)
        .args(["connect", "--client-cert", cc, &s.url])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(out.stdout.is_empty());
}

mod links;
