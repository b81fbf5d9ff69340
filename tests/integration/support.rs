//! Test harness shared by every module (STYLE.md §9): waiting with patience, temporary
//! directories, minted credentials, and one client per front in its own file:
//!
//! - `relay`: the real `mcp-relay` binary on 127.0.0.1:0 around the real fixture, its logs,
//!   children and listener addresses.
//! - `http`: a Streamable HTTP client that reads SSE with a maintained parser.
//! - `sse`: a legacy HTTP+SSE connection (`GET /sse` + `POST /message`).
//! - `lines`: a newline-delimited connection (TCP, TLS-TCP, the stdio front's pipes).
//! - `ws`: a WebSocket connection with the `mcp` subprotocol.
//! - `conn`: what the message-per-unit fronts (`lines`, `ws`, `sse`) share, and the scenario
//!   every front runs.
//! - `bridge`: `mcp-relay connect` driven as a host drives it.
//! - `fleet`: N relays on pre-picked ports that know each other as peers (`[cluster]`).
//! - `postgres`: a throwaway PostgreSQL server (Debian's binaries) and its URL.
//! - `redis`: a throwaway redis-server (Debian's) on a free port, paused or killed by pid.
//!
//! Test modules take what they need from here and never from each other.

// Built on every OS, but the modules that use some of these helpers (signals, Unix
// permissions, /proc) are Unix only (main.rs), so elsewhere some are unused.
#![cfg_attr(not(unix), allow(dead_code))]

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod bridge;
pub mod conn;
pub mod fleet;
pub mod http;
pub mod lines;
#[cfg(unix)]
pub mod postgres;
#[cfg(unix)]
pub mod redis;
pub mod relay;
pub mod sse;
pub mod ws;

pub use http::{collect_events, read_reply, wait_event, Client, Reply};
#[cfg(unix)]
pub use relay::hangup;
pub use relay::{alive, children_of, listening, tcp_addr, ws_url, Relay};

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

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(25);

/// Polls `f` until it returns true (`true`), or patience runs out (`false`): for a caller
/// whose panic message needs more than a fixed text.
pub async fn settles(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patience();
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // The poll interval of a wait on a condition, not a guess at how long something takes.
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `f` until it returns true; panics naming `what` when patience runs out.
pub async fn eventually(what: &str, f: impl FnMut() -> bool) {
    assert!(settles(f).await, "timed out waiting for: {what}");
}

/// Polls the async `probe` until its value satisfies `done` and returns that value; panics
/// naming `what` and showing the last value seen when patience runs out.
pub async fn poll_until<T: std::fmt::Debug, F: Future<Output = T>>(
    what: &str,
    mut probe: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + patience();
    loop {
        let v = probe().await;
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; last seen: {v:?}"
        );
        // The poll interval of a wait on a condition, not a guess at how long something takes.
        tokio::time::sleep(POLL).await;
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
/// A client CA named `cn` (`clients-ca.pem` in `dir`) and a relay config file in `dir` whose
/// `[auth.mtls]` maps `dns:client.example.com` to principal `svc` with role `user`:
/// `((ca_cert_pem, ca_key_pem), config_path)`.
pub fn mtls_config(dir: &std::path::Path, cn: &str) -> ((String, String), PathBuf) {
    let ca = crate::certs::make_ca(cn).unwrap();
    std::fs::write(dir.join("clients-ca.pem"), &ca.0).unwrap();
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        "[auth]\nresource = \"http://relay.test/mcp\"\n\n[auth.mtls]\nca = \"clients-ca.pem\"\n\n\
         [[auth.mtls.clients]]\nmatch = \"dns:client.example.com\"\nprincipal = \"svc\"\n\
         roles = [\"user\"]\n",
    )
    .unwrap();
    (ca, config)
}

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
