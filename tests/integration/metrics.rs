//! The admin listener (`--admin-listen`): `/metrics` counts a scripted workload and open
//! connections exactly, it is separate from the main listener, it checks Host and its token, a
//! non-loopback admin bind without a token is a usage error, and `/health` shows each shared
//! slot's state.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::{eventually, patience, poll_until, text_of, Client, Relay, FIXTURE, RELAY};

const SECRET_VAR: &str = "RELAY_METRICS_SECRET";
const SECRET: &str = "kaKhJKXQuVy5_2Ul-NkJnCfQgy5izzh69ja0ZPg6Bpk";
const RESOURCE: &str = "http://relay.test/mcp";
const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/permissions.json");
const ADMIN_TOKEN_VAR: &str = "RELAY_ADMIN_TOKEN";
const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
const VERSION: &str = "2025-11-25";

async fn get(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url).timeout(patience());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn scrape(base: &str, token: Option<&str>) -> String {
    let res = get(&format!("{base}/metrics"), token).await;
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    res.text().await.unwrap()
}

/// The value of one series (name with its labels, exactly as exposed); 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The sum of every `mcp_relay_requests_total` series.
fn total_requests(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("mcp_relay_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn requests(text: &str, method: &str, outcome: &str) -> f64 {
    value(
        text,
        &format!(
            "mcp_relay_requests_total{{transport=\"streamable_http\",method=\"{method}\",outcome=\"{outcome}\"}}"
        ),
    )
}

/// `mcp-relay token jwt` for `user` with `roles`.
fn mint(user: &str, roles: &str) -> String {
    crate::support::mint_jwt(SECRET_VAR, SECRET, user, roles, RESOURCE)
}

fn client(relay: &Relay, token: &str) -> Client {
    let mut c = relay.client();
    c.extra
        .push(("authorization".to_owned(), format!("Bearer {token}")));
    c
}

/// A relay with JWT auth, the seed roles, a 1 s request timeout and a loopback admin listener.
fn auth_relay() -> Relay {
    let secret = format!("env:{SECRET_VAR}");
    Relay::start_env(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--resource",
            RESOURCE,
            "--jwt-secret",
            &secret,
            "--roles",
            SEED,
            "--request-timeout",
            "1s",
            "--",
            FIXTURE,
        ],
        &[(SECRET_VAR, SECRET)],
    )
}

#[tokio::test]
async fn a_scripted_workload_is_counted_exactly() {
    const N: usize = 3;
    const M: usize = 4;
    let relay = auth_relay();
    let admin = relay.admin_base().await;
    let token = mint("alice", "user");

    let mut sessions = Vec::new();
    for _ in 0..N {
        let mut c = client(&relay, &token);
        c.initialize(VERSION).await;
        sessions.push(c);
    }
    for i in 0..M {
        let r = sessions[0]
            .call(json!(i), "echo", json!({ "text": format!("hi {i}") }))
            .await;
        assert_eq!(text_of(&r.messages()[0]), format!("hi {i}"));
    }
    // Denied under roles: `user` may not call `delete_*` (answered as an unknown tool).
    let denied = sessions[0]
        .call(json!("d"), "delete_everything", json!({}))
        .await;
    assert!(denied.messages()[0].get("error").is_some(), "{denied:?}");
    // No credential: 401 before anything is parsed.
    let anonymous = relay.client();
    let r = anonymous
        .post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    assert_eq!(r.status, 401);
    // A timeout: the child sleeps 5 s, the relay gives up after 1 s with -31008.
    let slow = sessions[1]
        .call(json!("t"), "slow", json!({ "ms": 5000 }))
        .await;
    assert_eq!(slow.messages()[0]["error"]["code"], -31008, "{slow:?}");
    // A child crash: its request fails, its session ends.
    let crash = sessions[2]
        .call(json!("c"), "crash", json!({ "code": 3 }))
        .await;
    assert!(crash.messages()[0].get("error").is_some(), "{crash:?}");

    let text = poll_until(
        "the crash, the running children and every request counted",
        || scrape(&admin, None),
        |text| {
            value(text, "mcp_relay_child_exits_total{reason=\"unexpected\"}") == 1.0
                && value(text, "mcp_relay_children_running") == (N - 1) as f64
                && total_requests(text) >= (N + M + 4) as f64
        },
    )
    .await;
    assert_eq!(requests(&text, "initialize", "ok"), N as f64, "{text}");
    assert_eq!(requests(&text, "tools/call", "ok"), M as f64, "{text}");
    assert_eq!(requests(&text, "tools/call", "denied"), 1.0, "{text}");
    assert_eq!(requests(&text, "tools/call", "timeout"), 1.0, "{text}");
    assert_eq!(requests(&text, "tools/call", "error"), 1.0, "{text}");
    assert_eq!(requests(&text, "other", "unauthenticated"), 1.0, "{text}");
    assert_eq!(total_requests(&text), (N + M + 4) as f64, "{text}");
    // Admitted requests are timed; refusals are not.
    let count = |m: &str| {
        value(
            &text,
            &format!(
                "mcp_relay_request_duration_seconds_count{{transport=\"streamable_http\",method=\"{m}\"}}"
            ),
        )
    };
    assert_eq!(count("tools/call"), (M + 2) as f64, "{text}");
    assert_eq!(count("initialize"), N as f64, "{text}");
    let inf = "mcp_relay_request_duration_seconds_bucket{transport=\"streamable_http\",method=\"tools/call\",le=\"+Inf\"}";
    assert_eq!(value(&text, inf), (M + 2) as f64);
    let fast = "mcp_relay_request_duration_seconds_bucket{transport=\"streamable_http\",method=\"tools/call\",le=\"0.5\"}";
    assert!(
        value(&text, fast) < (M + 2) as f64,
        "the timeout took ≥ 1 s"
    );
    assert!(value(&text, "mcp_relay_request_bytes_total{direction=\"in\"}") > 0.0);
    assert!(value(&text, "mcp_relay_request_bytes_total{direction=\"out\"}") > 0.0);
    assert_eq!(value(&text, "mcp_relay_sessions_opened_total"), N as f64);
    assert_eq!(value(&text, "mcp_relay_children_running"), (N - 1) as f64);
    assert_eq!(
        value(&text, "mcp_relay_child_exits_total{reason=\"unexpected\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "mcp_relay_child_exits_total{reason=\"stopped\"}"),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "mcp_relay_auth_failures_total{reason=\"missing_credential\"}"
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "mcp_relay_policy_denials_total{kind=\"tool\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "mcp_relay_policy_denials_total{kind=\"method\"}"),
        0.0
    );
    assert_eq!(
        value(&text, "mcp_relay_child_restarts_total{reason=\"exited\"}"),
        0.0
    );
    assert!(value(&text, "mcp_relay_uptime_seconds") > 0.0);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(name.starts_with("mcp_relay_"), "{line}");
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            text.contains(&format!("# TYPE {family} "))
                || text.contains(&format!("# TYPE {name} ")),
            "{line}"
        );
    }
    // The echo texts and tool names never become labels.
    assert!(
        !text.contains("hi 0") && !text.contains("delete_everything") && !text.contains("echo")
    );
}

#[tokio::test]
async fn the_admin_listener_is_separate_and_checks_host() {
    let relay = auth_relay();
    let admin = relay.admin_base().await;
    assert_ne!(admin, relay.base);
    let token = mint("bob", "user");
    // The main listener serves neither /metrics nor (now) the probes, even authenticated.
    for path in ["/metrics", "/health", "/ready"] {
        let res = get(&format!("{}{path}", relay.base), Some(&token)).await;
        assert_eq!(res.status(), 404, "{path} on the main listener");
    }
    // The admin listener needs no MCP credential on loopback without --admin-token-env.
    for path in ["/metrics", "/health", "/ready"] {
        let res = get(&format!("{admin}{path}"), None).await;
        assert_eq!(res.status(), 200, "{path} on the admin listener");
    }
    // DNS rebinding: a foreign Host is refused on every admin route; loopback names pass.
    let port = admin.rsplit(':').next().unwrap().to_owned();
    for path in ["/metrics", "/health", "/ready", "/nope"] {
        let res = reqwest::Client::new()
            .get(format!("{admin}{path}"))
            .header("host", format!("evil.example:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
    let res = reqwest::Client::new()
        .get(format!("{admin}/metrics"))
        .header("host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A cross-site browser request is refused too.
    let res = reqwest::Client::new()
        .get(format!("{admin}/metrics"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // MCP is not served on the admin listener.
    let res = reqwest::Client::new()
        .post(format!("{admin}/mcp"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn an_admin_token_is_required_when_configured() {
    let relay = Relay::start_env(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token-env",
            ADMIN_TOKEN_VAR,
            "--",
            FIXTURE,
        ],
        &[(ADMIN_TOKEN_VAR, ADMIN_TOKEN)],
    );
    let admin = relay.admin_base().await;
    for path in ["/metrics", "/health", "/ready"] {
        let res = get(&format!("{admin}{path}"), None).await;
        assert_eq!(res.status(), 401, "{path}");
        assert!(res.headers().contains_key("www-authenticate"));
        let res = get(&format!("{admin}{path}"), Some("wrong-token")).await;
        assert_eq!(res.status(), 401, "{path}");
    }
    let text = scrape(&admin, Some(ADMIN_TOKEN)).await;
    assert_eq!(
        value(
            &text,
            "mcp_relay_auth_failures_total{reason=\"admin_missing_token\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            "mcp_relay_auth_failures_total{reason=\"admin_invalid_token\"}"
        ),
        3.0
    );
    assert!(!relay.logs().contains(ADMIN_TOKEN));
}

#[test]
fn a_non_loopback_admin_listener_without_a_token_is_a_usage_error() {
    let out = Command::new(RELAY)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
            "--allowed-host",
            "relay.example",
            "--",
            FIXTURE,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--admin-token-env"), "{err}");
    // Named but unset: also a usage error, and nothing is bound.
    let out = Command::new(RELAY)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token-env",
            "RELAY_NO_SUCH_ADMIN_TOKEN_VAR",
            "--",
            FIXTURE,
        ])
        .env_remove("RELAY_NO_SUCH_ADMIN_TOKEN_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

/// The admin listener's `/health`.
async fn health(admin: &str) -> Value {
    get(&format!("{admin}/health"), None)
        .await
        .json()
        .await
        .unwrap()
}

/// The slots of `/health` whose `state` is `state`.
fn slots_in(health: &Value, state: &str) -> usize {
    health["slots"]
        .as_array()
        .map_or(0, |s| s.iter().filter(|s| s["state"] == state).count())
}

#[tokio::test]
async fn health_shows_each_shared_slot_and_restarts_are_counted() {
    let relay = Relay::start(
        &[
            "--session-mode",
            "shared",
            "--children",
            "2",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let admin = relay.admin_base().await;
    let two_ready = |h: &Value| slots_in(h, "ready") == 2;
    let h = poll_until("two ready slots", || health(&admin), two_ready).await;
    assert_eq!(h["session_mode"], "shared");
    assert_eq!(h["upstream"]["kind"], "command");
    let slots = h["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 2, "{h}");
    for (i, s) in slots.iter().enumerate() {
        assert_eq!(s["pool"], "shared");
        assert_eq!(s["slot"], i);
        assert_eq!(s["state"], "ready", "{h}");
        assert!(s["pid"].as_u64().is_some(), "{h}");
    }
    assert_eq!(h["children"], 2);
    assert_eq!(h["ready"], true);

    // One shared child crashes: its slot restarts it (counted), and /health follows it.
    let mut c = relay.client();
    c.initialize(VERSION).await;
    let r = c.call(json!(1), "crash", json!({ "code": 9 })).await;
    assert!(r.messages()[0].get("error").is_some());
    let text = poll_until(
        "the restart counted",
        || scrape(&admin, None),
        |text| value(text, "mcp_relay_child_restarts_total{reason=\"exited\"}") >= 1.0,
    )
    .await;
    assert_eq!(
        value(&text, "mcp_relay_child_restarts_total{reason=\"exited\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&text, "mcp_relay_child_exits_total{reason=\"unexpected\"}"),
        1.0
    );
    assert_eq!(value(&text, "mcp_relay_sessions_active"), 1.0);
    // Back to two ready slots (the restart backoff is at most 0.5 s on the first failure).
    poll_until("two ready slots again", || health(&admin), two_ready).await;
}

#[tokio::test]
async fn health_names_a_remote_upstream_without_its_query() {
    // Nothing listens there: the slot backs off, and /health says so (without the query).
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--session-mode",
        "shared",
        "--upstream",
        "http://127.0.0.1:9/mcp?key=secret-in-query",
    ]);
    let h = relay.health().await;
    assert_eq!(h["upstream"]["kind"], "remote", "{h}");
    assert_eq!(h["upstream"]["url"], "http://127.0.0.1:9/mcp", "{h}");
    assert!(!h.to_string().contains("secret-in-query"));
    assert_eq!(h["slots"].as_array().map(Vec::len), Some(1), "{h}");
}

#[tokio::test]
async fn open_connections_are_counted_per_front_and_in_health() {
    let relay = Relay::start(
        &[
            "--admin-listen",
            "127.0.0.1:0",
            "--tcp-listen",
            "127.0.0.1:0",
            "--max-connections",
            "8",
        ],
        &[],
    );
    let admin = relay.admin_base().await;
    let open = |text: &str, front: &str| {
        value(
            text,
            &format!("mcp_relay_connections_open{{front=\"{front}\"}}"),
        )
    };
    let before = scrape(&admin, None).await;
    let (http0, tcp0) = (open(&before, "http"), open(&before, "tcp"));

    // Five idle HTTP connections and two TCP ones: the gauges move by exactly that.
    let http_addr = relay.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(&http_addr).await.unwrap());
    }
    eventually("tcp listener logged", || {
        relay.logs().contains("url=tcp://")
    })
    .await;
    let tcp_addr = crate::support::tcp_addr(&relay);
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(&tcp_addr).await.unwrap());
    }
    poll_until(
        "the held connections counted",
        || scrape(&admin, None),
        |text| open(text, "http") == http0 + 5.0 && open(text, "tcp") == tcp0 + 2.0,
    )
    .await;
    let health: Value = get(&format!("{admin}/health"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["connections"]["http"],
        json!(http0 as u64 + 5),
        "{health}"
    );

    // Over --max-connections (8): the extra ones are refused and counted.
    for _ in 0..5 {
        held.push(tokio::net::TcpStream::connect(&http_addr).await.unwrap());
    }
    poll_until(
        "the surplus connections refused and counted",
        || scrape(&admin, None),
        |text| value(text, "mcp_relay_connections_refused_total{front=\"http\"}") >= 2.0,
    )
    .await;

    // Closed connections leave the gauge.
    held.clear();
    poll_until(
        "the closed connections left the gauge",
        || scrape(&admin, None),
        |text| open(text, "http") == http0 && open(text, "tcp") == tcp0,
    )
    .await;
}
