//! Traffic protection end to end (SECURITY.md §2, §3, §8.C2, §8.D6): rate limits keyed on
//! identity, the per-principal concurrency cap, IP allow/deny and trusted proxies, CORS. The
//! real relay with `[limits]` and `[network]` in `--config`, API keys minted by
//! `mcp-relay token key`, clients on real sockets (some bound to 127.0.0.2, a second loopback
//! address, to be a different client IP).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

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

/// The TCP front's address, once the relay has logged it.
async fn tcp_listening(relay: &Relay) -> String {
    eventually("tcp listener logged", || {
        relay.logs().contains("url=tcp://")
    })
    .await;
    crate::support::tcp_addr(relay)
}

// === D6: keys and proxies ===

#[tokio::test]
async fn d6_rotating_xff_from_an_untrusted_peer_makes_no_new_buckets_and_cannot_lock_out_the_spoofed_address(
) {
    let audit = tempdir().join("audit.log");
    let cfg = config("[limits]\nper_ip = \"3/min\"\nper_ip_burst = 3\nper_principal = \"off\"\n");
    let relay = serve(&cfg, &["--audit-log", audit.to_str().unwrap()]);
    let http = reqwest::Client::new();
    // Three requests, each claiming another client: all one bucket, the socket's.
    for (i, xff) in ["127.0.0.2", "203.0.113.1", "10.0.0.1, 198.51.100.7"]
        .iter()
        .enumerate()
    {
        let res = post(
            &http,
            &relay.url,
            &[("x-forwarded-for", xff)],
            &init_request(json!(i), VERSION),
        )
        .await;
        session_of(res).await;
    }
    for xff in ["203.0.113.2", "127.0.0.2", "::1"] {
        let res = post(&http, &relay.url, &[("x-forwarded-for", xff)], &ping()).await;
        expect_429(res, xff).await;
    }
    let res = post(
        &http,
        &relay.url,
        &[("forwarded", "for=203.0.113.3")],
        &ping(),
    )
    .await;
    expect_429(res, "forwarded").await;
    // The address the attacker named is not locked out: its own bucket is untouched.
    let res = post(
        &http_from(OTHER),
        &relay.url,
        &[],
        &init_request(json!(9), VERSION),
    )
    .await;
    session_of(res).await;
    // The audit log names the socket's address, never a spoofed one.
    eventually("audit lines", || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .count()
            >= 4
    })
    .await;
    let text = std::fs::read_to_string(&audit).unwrap();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let client = v["client"].as_str().unwrap_or_default();
        assert!(
            client.starts_with("127.0.0.1:") || client.starts_with("127.0.0.2:"),
            "{line}"
        );
        assert!(
            !line.contains("203.0.113") && !line.contains("198.51.100"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn d6_with_a_trusted_proxy_the_forwarded_client_is_limited_and_denied() {
    let cfg = config(
        "[limits]\nper_ip = \"2/min\"\nper_ip_burst = 2\nper_principal = \"off\"\n\n\
         [network]\ntrusted_proxies = [\"127.0.0.1/32\"]\ndeny = [\"203.0.113.66\"]\n",
    );
    let relay = serve(&cfg, &[]);
    let http = reqwest::Client::new();
    let from = |xff: &'static str| [("x-forwarded-for", xff)];
    for _ in 0..2 {
        let res = post(&http, &relay.url, &from("203.0.113.7"), &ping()).await;
        assert_eq!(
            res.status(),
            400,
            "passes the limits, then misses a session"
        );
    }
    expect_429(
        post(&http, &relay.url, &from("203.0.113.7"), &ping()).await,
        "third",
    )
    .await;
    // A hop the client wrote itself, left of the proxy's entry, changes nothing.
    let spoofed = post(
        &http,
        &relay.url,
        &from("198.51.100.1, 203.0.113.7"),
        &ping(),
    )
    .await;
    expect_429(spoofed, "spoofed left hop").await;
    // Another forwarded client has its own bucket; so does the proxy itself.
    let res = post(&http, &relay.url, &from("203.0.113.8"), &ping()).await;
    assert_eq!(res.status(), 400);
    let res = post(
        &http,
        &relay.url,
        &[("forwarded", "for=\"203.0.113.9:80\"")],
        &ping(),
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = post(&http, &relay.url, &[], &ping()).await;
    assert_eq!(res.status(), 400);
    // Deny applies to the forwarded client, before anything else.
    expect_403_ip(
        post(&http, &relay.url, &from("203.0.113.66"), &ping()).await,
        "deny",
    )
    .await;
    let mapped = post(&http, &relay.url, &from("::ffff:203.0.113.66"), &ping()).await;
    expect_403_ip(mapped, "mapped deny").await;
}

#[tokio::test]
async fn d6_new_sessions_do_not_dodge_the_principal_rate() {
    let (alice, a_block) = api_key("a", "alice");
    let (bob, b_block) = api_key("b", "bob");
    let cfg = config(&format!(
        "[auth]\nresource = \"{RESOURCE}\"\n{a_block}\n{b_block}\n\n\
         [limits]\nper_principal = \"4/min\"\nper_principal_burst = 4\n"
    ));
    let relay = serve(&cfg, &["--resource", RESOURCE]);
    let http = reqwest::Client::new();
    let a = [("x-api-key", alice.as_str())];
    let mut sessions = Vec::new();
    for i in 0..4 {
        let res = post(&http, &relay.url, &a, &init_request(json!(i), VERSION)).await;
        sessions.push(session_of(res).await);
    }
    sessions.dedup();
    assert_eq!(sessions.len(), 4, "each initialize opened its own session");
    let res = post(&http, &relay.url, &a, &init_request(json!(5), VERSION)).await;
    let ms = expect_429(res, "fifth initialize").await;
    assert!(ms > 1000, "{ms}");
    // The bucket is alice's, not a session's: her existing session is limited too.
    let mut in_session = a.to_vec();
    in_session.push(("mcp-session-id", sessions[0].as_str()));
    in_session.push(("mcp-protocol-version", VERSION));
    expect_429(
        post(&http, &relay.url, &in_session, &ping()).await,
        "old session",
    )
    .await;
    // Bob is not affected.
    let res = post(
        &http,
        &relay.url,
        &[("x-api-key", bob.as_str())],
        &init_request(json!(0), VERSION),
    )
    .await;
    session_of(res).await;
}

// === Per tool and concurrency ===

#[tokio::test]
async fn per_tool_limit_answers_31004_inside_the_session_while_other_tools_work() {
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "[auth]\nresource = \"{RESOURCE}\"\n{block}\n\n[limits]\nper_tool = \"2/min\"\n"
    ));
    let relay = serve(&cfg, &["--resource", RESOURCE]);
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), alice)];
    c.initialize(VERSION).await;
    for i in 1..=4 {
        let reply = c.call(json!(i), "echo", json!({"text": "hi"})).await;
        assert_eq!(text_of(&reply.messages()[0]), "hi", "{reply:?}");
    }
    let reply = c.call(json!(5), "echo", json!({"text": "hi"})).await;
    assert_eq!(
        reply.status, 200,
        "an error about one request never changes the stream"
    );
    let m = &reply.messages()[0];
    assert_eq!(m["id"], 5, "{m}");
    assert_eq!(m["error"]["code"], -31004, "{m}");
    assert!(
        m["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 0,
        "{m}"
    );
    // Other tools and methods keep working in the same session.
    let reply = c.call(json!(6), "slow", json!({"ms": 1})).await;
    assert!(reply.messages()[0].get("result").is_some(), "{reply:?}");
    let reply = c
        .post(json!({"jsonrpc":"2.0","id":7,"method":"tools/list"}))
        .await;
    assert!(reply.messages()[0]["result"]["tools"].is_array());
    // A new session is the same principal: still limited.
    let mut again = relay.client();
    again.extra = c.extra.clone();
    again.initialize(VERSION).await;
    let reply = again.call(json!(1), "echo", json!({"text": "hi"})).await;
    assert_eq!(reply.messages()[0]["error"]["code"], -31004);
}

#[tokio::test]
async fn b1_denied_calls_spend_no_tool_quota() {
    let out = Command::new(RELAY)
        .args([
            "token",
            "key",
            "--id",
            "u",
            "--principal",
            "ulla",
            "--roles",
            "user",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap().trim().to_owned();
    let block = &text[text.find("[[auth.api_keys]]").unwrap()..];
    let cfg = config(&format!(
        "[auth]\nresource = \"{RESOURCE}\"\n{block}\n\n[limits]\nper_tool = \"1/min\"\nper_tool_burst = 1\n"
    ));
    let roles = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/permissions.json");
    let relay = serve(
        &cfg,
        &["--resource", RESOURCE, "--roles", roles.to_str().unwrap()],
    );
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), key)];
    c.initialize(VERSION).await;
    // RBAC runs first: a denied tool is always the unknown-tool answer, never -31004.
    for i in 0..3 {
        let reply = c.call(json!(i), "delete_all", json!({})).await;
        assert_eq!(reply.messages()[0]["error"]["code"], -32602, "{reply:?}");
    }
    let reply = c.call(json!(10), "echo", json!({"text": "one"})).await;
    assert_eq!(text_of(&reply.messages()[0]), "one");
    let reply = c.call(json!(11), "echo", json!({"text": "two"})).await;
    assert_eq!(reply.messages()[0]["error"]["code"], -31004, "{reply:?}");
}

#[tokio::test]
async fn d6_65th_concurrent_call_of_one_principal_is_refused_at_once() {
    let (alice, a_block) = api_key("a", "alice");
    let (bob, b_block) = api_key("b", "bob");
    let cfg = config(&format!(
        "[auth]\nresource = \"{RESOURCE}\"\n{a_block}\n{b_block}\n"
    ));
    let path = cfg.to_str().unwrap().to_owned();
    let (relay, record) = Relay::start_recorded(
        &[
            "--config",
            &path,
            "--resource",
            RESOURCE,
            "--max-inflight",
            "200",
        ],
        &[],
    );
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), alice)];
    c.initialize(VERSION).await;
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.call(json!(100 + i), "slow", json!({"ms": 3000})).await })
        })
        .collect();
    wait_recorded(&record, "\"slow\"", 64).await;
    let started = Instant::now();
    let res = c
        .post_builder()
        .body(ping().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -31005, "{v}");
    assert_eq!(
        v["error"]["data"]["reason"], "principal_inflight_cap",
        "{v}"
    );
    // Another principal carries on meanwhile.
    let mut b = relay.client();
    b.extra = vec![("x-api-key".into(), bob)];
    b.initialize(VERSION).await;
    let reply = b.call(json!(1), "echo", json!({"text": "bob"})).await;
    assert_eq!(text_of(&reply.messages()[0]), "bob");
    // Every one of the 64 completes; then alice has room again.
    for call in calls {
        let reply = call.await.unwrap();
        assert!(reply.messages()[0].get("result").is_some(), "{reply:?}");
    }
    let reply = c.call(json!(1), "echo", json!({"text": "again"})).await;
    assert_eq!(text_of(&reply.messages()[0]), "again");
}

#[tokio::test]
async fn tcp_request_messages_count_against_the_principal_rate() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let cfg = config("[limits]\nper_principal = \"2/min\"\nper_principal_burst = 2\n");
    let relay = serve(&cfg, &["--tcp-listen", "127.0.0.1:0"]);
    let addr = tcp_listening(&relay).await;
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let mut lines = tokio::io::BufReader::new(r).lines();
    let requests = [
        init_request(json!(1), VERSION),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"ping"}),
        json!({"jsonrpc":"2.0","id":3,"method":"ping"}),
    ];
    for r in &requests {
        w.write_all((r.to_string() + "\n").as_bytes())
            .await
            .unwrap();
    }
    let mut answers = std::collections::HashMap::new();
    while answers.len() < 3 {
        let line = tokio::time::timeout(patience(), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("connection closed");
        let v: Value = serde_json::from_str(&line).unwrap();
        if let Some(id) = v["id"].as_i64() {
            answers.insert(id, v);
        }
    }
    assert!(answers[&1].get("result").is_some(), "{:?}", answers[&1]);
    assert!(answers[&2].get("result").is_some(), "{:?}", answers[&2]);
    let limited = &answers[&3];
    assert_eq!(limited["error"]["code"], -31004, "{limited}");
    assert!(limited["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 1000);
}

// === IP rules ===

#[tokio::test]
async fn ip_deny_is_403_on_post_get_ws_and_metadata_and_closes_tcp() {
    let cfg = config("[network]\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.2/32\"]\n");
    let relay = serve(&cfg, &["--tcp-listen", "127.0.0.1:0"]);
    let denied = http_from(OTHER);
    expect_403_ip(
        post(&denied, &relay.url, &[], &init_request(json!(0), VERSION)).await,
        "post",
    )
    .await;
    let get = denied
        .get(&relay.url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    expect_403_ip(get, "get").await;
    let ws = denied
        .get(format!("{}/ws", relay.base))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "mcp")
        .send()
        .await
        .unwrap();
    expect_403_ip(ws, "ws upgrade").await;
    let meta = denied
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            relay.base
        ))
        .send()
        .await
        .unwrap();
    expect_403_ip(meta, "metadata").await;
    // TCP: closed at once, nothing written.
    let addr: SocketAddr = tcp_listening(&relay).await.parse().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{OTHER}:0").parse().unwrap()).unwrap();
    let mut tcp = sock.connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf))
        .await
        .expect("not closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The allowed address is served on both fronts.
    let res = post(
        &reqwest::Client::new(),
        &relay.url,
        &[],
        &init_request(json!(0), VERSION),
    )
    .await;
    session_of(res).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let line = init_request(json!(7), VERSION).to_string() + "\n";
    tokio::io::AsyncWriteExt::write_all(&mut w, line.as_bytes())
        .await
        .unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(r));
    let answer = tokio::time::timeout(patience(), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["id"], 7, "{v}");
}

#[tokio::test]
async fn an_empty_allow_list_is_a_config_error() {
    let cfg = config("[network]\nallow = []\n");
    let out = Command::new(RELAY)
        .args(["serve", "--config", cfg.to_str().unwrap(), "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("network.allow"),
        "{out:?}"
    );
}

// === CORS (SECURITY.md §8.C2) ===

async fn preflight(relay: &Relay, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &relay.url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type, mcp-session-id, mcp-param-region",
        )
        .send()
        .await
        .unwrap()
}

fn h(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn c2_cors_preflight_allowed_denied_and_exposed_headers() {
    const APP: &str = "https://app.example.com";
    let (key, block) = api_key("a", "alice");
    let secret = String::from_utf8(
        Command::new(RELAY)
            .args(["token", "secret"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let cfg = config(&format!("[auth]\nresource = \"{RESOURCE}\"\n{block}\n"));
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        cfg.to_str().unwrap(),
    ];
    args.extend_from_slice(&[
        "--resource",
        RESOURCE,
        "--jwt-secret",
        "env:LIMITS_IT_SECRET",
    ]);
    args.extend_from_slice(&["--cors-origin", APP, "--", crate::support::FIXTURE]);
    let relay = Relay::start_env(&args, &[("LIMITS_IT_SECRET", secret.trim())]);

    // Allowed: 204 without credentials, exact origin, credentials, never `*`.
    let res = preflight(&relay, APP).await;
    assert_eq!(res.status(), 204);
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(
        h(&res, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(h(&res, "vary").unwrap().contains("Origin"));
    let methods = h(&res, "access-control-allow-methods").unwrap();
    for m in ["GET", "POST", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = h(&res, "access-control-allow-headers").unwrap();
    for name in [
        "Authorization",
        "Content-Type",
        "Mcp-Session-Id",
        "Mcp-Protocol-Version",
        "Last-Event-ID",
        "X-API-Key",
        "mcp-param-region",
    ] {
        assert!(headers.contains(name), "{name}: {headers}");
    }
    assert!(h(&res, "access-control-max-age").is_some());
    // Denied origin: 403, no CORS headers.
    let res = preflight(&relay, "https://app.example.com.evil.com").await;
    assert_eq!(res.status(), 403);
    assert!(h(&res, "access-control-allow-origin").is_none());
    // A loopback origin passes the origin check but is not a CORS origin: no ACAO.
    let res = preflight(&relay, "http://localhost:3000").await;
    assert!(h(&res, "access-control-allow-origin").is_none());

    // Actual requests: allowed origin echoed with the exposed headers, on success and 401.
    let http = reqwest::Client::new();
    let res = post(
        &http,
        &relay.url,
        &[("origin", APP), ("x-api-key", &key)],
        &init_request(json!(0), VERSION),
    )
    .await;
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some(APP));
    let exposed = h(&res, "access-control-expose-headers").unwrap();
    for name in ["Mcp-Session-Id", "Mcp-Protocol-Version", "WWW-Authenticate"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    session_of(res).await;
    let res = post(&http, &relay.url, &[("origin", APP)], &ping()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some(APP));
    // The protected-resource metadata is readable cross-origin too.
    let res = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource/mcp",
            relay.base
        ))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some(APP));
}

#[tokio::test]
async fn c2_wildcard_cors_never_allows_credentials() {
    let relay = Relay::start(&["--cors-origin", "*"], &[]);
    let res = preflight(&relay, "https://anywhere.example").await;
    assert_eq!(res.status(), 204);
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some("*"));
    assert!(h(&res, "access-control-allow-credentials").is_none());
    let res = post(
        &reqwest::Client::new(),
        &relay.url,
        &[("origin", "https://anywhere.example")],
        &init_request(json!(0), VERSION),
    )
    .await;
    assert_eq!(h(&res, "access-control-allow-origin").as_deref(), Some("*"));
    session_of(res).await;
    // The Host check still holds.
    let res = reqwest::Client::new()
        .post(&relay.url)
        .header("host", "evil.example.com")
        .header("origin", "https://anywhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

/// The network rules have command-line shortcuts: `--deny-ip` refuses, `--allow-ip` admits.
#[tokio::test]
async fn deny_ip_and_allow_ip_flags_apply_like_the_network_section() {
    let denied = crate::support::Relay::start(&["--deny-ip", "127.0.0.0/8"], &[]);
    let r = denied
        .client()
        .post(crate::support::init_request(
            serde_json::json!(1),
            "2025-11-25",
        ))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let allowed = crate::support::Relay::start(&["--allow-ip", "127.0.0.1"], &[]);
    let mut c = allowed.client();
    c.initialize("2025-11-25").await;
}
