//! Remote upstreams: a front relay whose server is another relay (or a stand-in) reached over
//! TCP, WebSocket, Streamable HTTP or legacy HTTP+SSE, plain or TLS. Shared here: the back and
//! front relays, the scenario over every front, TLS back relays. The tests, by concern:
//!
//! - `kinds`: every front (Streamable HTTP, WebSocket, TCP, legacy SSE, the stdio front) runs
//!   the same scenario against every remote kind, in per-session and shared mode; JSON
//!   answers, polling, the SSE fallback, a remote session lost mid-way.
//! - `http_client`: what the HTTP client owes the server (headers, session, DELETE, never a
//!   client's credentials), against a recording mock; unreachable upstreams; usage errors.
//! - `tls`: `https://`, `wss://` and `tls://` upstreams, `--upstream-ca`, refused certificates.
//! - `tls_options`: `connect`'s TLS options (`--insecure`, mTLS, system roots), at the lib.
//! - `credentials`: authenticating to the remote relay (issue 14).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use eventsource_stream::Eventsource;
use serde_json::{json, Value};

use crate::support::conn::scenario;
use crate::support::lines::Lines;
use crate::support::sse::Legacy;
use crate::support::ws::Ws;
use crate::support::{eventually, text_of, wait_event, Client as HttpClient, Relay};
use crate::support::{tcp_addr, ws_url};

mod credentials;
mod http_client;
mod kinds;
mod tls;
mod tls_options;

/// A relay around the fixture with a TCP front.
fn back() -> Relay {
    Relay::start(&["--tcp-listen", "127.0.0.1:0"], &[])
}

async fn front(upstream: &str, extra: &[&str]) -> Relay {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tcp-listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
    ];
    args.extend_from_slice(extra);
    let relay = Relay::start_raw(&args);
    eventually("front tcp listening", || {
        relay.logs().contains("url=tcp://")
    })
    .await;
    relay
}

/// The scenario over Streamable HTTP.
async fn http_scenario(relay: &Relay) {
    let mut c = HttpClient::new(&relay.url);
    let init = c.initialize("2025-11-25").await;
    assert_eq!(
        init.messages()[0]["result"]["serverInfo"]["name"],
        "mcp-relay-fixture"
    );
    let list = c
        .post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    assert!(
        list.messages()[0]["result"]["tools"]
            .as_array()
            .unwrap()
            .len()
            > 5
    );
    let r = c
        .post(
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
            "name":"progress","arguments":{"steps":3},"_meta":{"progressToken":"p"}}}),
        )
        .await;
    let m = r.messages();
    assert_eq!(m.len(), 4, "{m:?}");
    assert_eq!(text_of(&m[3]), "done");
    let res = c
        .post_builder()
        .body(
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
                "params":{"name":"sample","arguments":{}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let mut events = Box::pin(res.bytes_stream().eventsource());
    let ask = wait_event(&mut events, |v| v["method"] == "sampling/createMessage").await;
    let answer = json!({"jsonrpc":"2.0","id":ask["id"],"result":{"role":"assistant",
        "content":{"type":"text","text":"sampled"},"model":"m"}});
    assert_eq!(c.post(answer).await.status, 202);
    let done = wait_event(&mut events, |v| v["id"] == 3).await;
    assert!(text_of(&done).contains("sampled"));
    // Unclaimed notifications may also travel on the GET stream: listen there too.
    let mut get = Box::pin(c.get(None).await.bytes_stream().eventsource());
    let r = c.call(json!(4), "notify", json!({})).await;
    let on_post = |method: &str| r.messages().iter().any(|v| v["method"] == method);
    assert!(on_post("notifications/message"), "{:?}", r.messages());
    if !on_post("notifications/tools/list_changed") {
        wait_event(&mut get, |v| {
            v["method"] == "notifications/tools/list_changed"
        })
        .await;
    }
    assert_eq!(c.delete().await, 200);
}

/// `mcp-relay stdio --upstream <the front's own upstream>`: the stdio front over the same
/// remote kind.
async fn stdio_scenario(upstream: &str) {
    let mut child = tokio::process::Command::new(crate::support::RELAY)
        .args(["stdio", "--upstream", upstream])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut c = Lines::new(stdout, stdin);
    scenario(&mut c).await;
    drop(c);
    let status = tokio::time::timeout(crate::support::patience(), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

async fn all_fronts(front: &Relay, upstream: &str) {
    http_scenario(front).await;
    scenario(&mut Legacy::open(front).await).await;
    stdio_scenario(upstream).await;
    let mut ws = Ws::connect(&ws_url(front)).await;
    scenario(&mut ws).await;
    let mut tcp = Lines::tcp(&tcp_addr(front)).await;
    scenario(&mut tcp).await;
}

/// Whether the relay logged its upstream link as legacy SSE (not its own `/sse` listener).
fn linked_over_sse(logs: &str) -> bool {
    logs.lines()
        .any(|l| l.contains("upstream connected") && l.contains("transport=\"sse\""))
}

/// `mcp-relay cert generate` into a fresh directory (`extra`: `--san …`); returns (cert, key).
fn cert_generate(extra: &[&str]) -> (PathBuf, PathBuf) {
    let dir = crate::support::tempdir();
    let out = std::process::Command::new(crate::support::RELAY)
        .args(["cert", "generate", "--out-dir", dir.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// A relay around the fixture serving HTTPS, WSS and TLS over TCP with `cert`.
async fn tls_back(cert: &Path, key: &Path) -> Relay {
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tcp-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--",
        crate::support::FIXTURE,
    ]);
    assert!(relay.url.starts_with("https://"), "{}", relay.url);
    eventually("back tls listening", || relay.logs().contains("url=tls://")).await;
    relay
}
