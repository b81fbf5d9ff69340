//! Traffic protection end to end (SECURITY.md §2, §3, §8.C2, §8.D6): rate limits keyed on
//! identity, the per-principal concurrency cap, IP allow/deny and trusted proxies, CORS. The
//! real relay with `[limits]` and `[network]` in `--config`, API keys minted by
//! `mcp-relay token key`, clients on real sockets (some bound to 127.0.0.2, a second loopback
//! address, to be a different client IP).
//!
//! The tests, by concern:
//! - `keys`: what a limit is keyed on (D6): spoofed and trusted `X-Forwarded-For`, new
//!   sessions that try to dodge the principal's rate.
//! - `quotas`: per-tool limits, denied calls spending nothing, the concurrency cap, TCP
//!   messages counted against the rate.
//! - `ip`: IP allow and deny on every front, and their flags.
//! - `cors`: preflights allowed, denied, and never with credentials for a wildcard.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::support::relay::tcp_listening;
use crate::support::{
    eventually, init_request, patience, tempdir, text_of, wait_recorded, Relay, ACCEPT_BOTH, RELAY,
};

const VERSION: &str = "2025-06-18";
const OTHER: &str = "127.0.0.2";
const RESOURCE: &str = "http://relay.test/mcp";

// === Setup ===

/// `mcp-relay token key --id ID --principal NAME`: the key and its config block.
fn api_key(id: &str, principal: &str) -> (String, String) {
    crate::support::mint_api_key(&["--id", id, "--principal", principal])
}

/// Writes a `--config` file.
fn config(text: &str) -> PathBuf {
    let path = tempdir().join("relay.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn serve(config: &Path, extra: &[&str]) -> Relay {
    let mut args = vec!["--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    Relay::start(&args, &[])
}

/// An HTTP client whose connections come from `local` (a loopback address).
fn http_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(local.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// POST `body` with the MCP headers and `headers`.
async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> reqwest::Response {
    let mut b = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .body(body.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.send().await.unwrap()
}

fn ping() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"ping"})
}

/// 429 + `Retry-After` (whole seconds, ≥ 1) + -31004 with `data.retry_after_ms`.
async fn expect_429(res: reqwest::Response, what: &str) -> u64 {
    assert_eq!(res.status(), 429, "{what}");
    let after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after >= 1, "{what}: Retry-After {after}");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -31004, "{what}: {v}");
    assert_eq!(v["error"]["data"]["reason"], "rate_limited", "{what}: {v}");
    let ms = v["error"]["data"]["retry_after_ms"].as_u64().unwrap();
    assert!(
        ms > 0 && ms.div_ceil(1000) == after,
        "{what}: {ms} ms vs {after} s"
    );
    ms
}

async fn expect_403_ip(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 403, "{what}");
    let v: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(v["error"]["code"], -31002, "{what}: {v}");
    assert_eq!(
        v["error"]["data"]["reason"], "ip_not_allowed",
        "{what}: {v}"
    );
}

/// Session id of a successful `initialize` answer (body read to the end).
async fn session_of(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    let id = res.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = tokio::time::timeout(patience(), res.bytes()).await;
    id
}

mod cors;
mod ip;
mod keys;
mod quotas;
