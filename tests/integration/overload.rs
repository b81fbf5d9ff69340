//! Overload shedding by memory (SECURITY.md §2 "Overload", §3): past the hard threshold of
//! `[limits] memory_budget` new sessions, streams and upgrades get 503 + `Retry-After`
//! (-31005 `overloaded`) and requests inside a session get that JSON-RPC error, while the
//! session itself survives and works again once memory is back under the budget; past the soft
//! threshold answers carry `Connection: close`. The budget is changed under a running relay by
//! SIGHUP, against its real resident set.

use std::path::Path;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{children_of, hangup, init_request, poll_until, tempdir, Relay};

const VERSION: &str = "2025-11-25";

fn write_limits(config: &Path, limits: &str) {
    std::fs::write(config, format!("[limits]\n{limits}\n")).unwrap();
}

/// Reloads `limits` and waits until `/health` reports `level`.
async fn reload(relay: &Relay, config: &Path, limits: &str, level: &str) {
    write_limits(config, limits);
    hangup(relay);
    poll_until(
        &format!("memory level {level}"),
        || relay.health(),
        |h| h["memory"]["level"] == level,
    )
    .await;
}

/// The resident set of `pid` and its descendants in bytes, as the relay measures its tree.
fn tree_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let own = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    own + children_of(pid).into_iter().map(tree_rss).sum::<u64>()
}

fn relay_error(v: &Value) -> (i64, String) {
    (
        v["error"]["code"].as_i64().unwrap_or(0),
        v["error"]["data"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
    )
}

#[tokio::test]
async fn past_the_budget_new_work_is_shed_and_sessions_survive_until_memory_is_back() {
    let config = tempdir().join("relay.toml");
    write_limits(&config, "memory_budget = \"64GiB\"");
    let relay = Relay::start(&["--config", config.to_str().unwrap()], &[]);
    let mut session = relay.client();
    session.initialize(VERSION).await;
    let health = relay.health().await;
    assert_eq!(health["memory"]["level"], "normal", "{health}");
    assert_eq!(health["memory"]["budget_bytes"], 64u64 << 30);

    reload(&relay, &config, "memory_budget = \"1MiB\"", "shedding").await;

    // A new session: 503, Retry-After, -31005 overloaded; nothing was opened.
    let sessions = relay.health().await["sessions"].clone();
    let fresh = relay.client().post(init_request(json!(1), VERSION)).await;
    assert_eq!(fresh.status, 503, "{fresh:?}");
    assert_eq!(fresh.header("retry-after").as_deref(), Some("1"));
    assert_eq!(relay_error(&fresh.json()), (-31005, "overloaded".into()));
    assert_eq!(relay.health().await["sessions"], sessions);

    // A request inside the live session: its JSON-RPC error with the retry hint.
    let call = session.call(json!(2), "echo", json!({"text": "hi"})).await;
    let answer = &call.messages()[0];
    assert_eq!(answer["id"], 2);
    assert_eq!(relay_error(answer), (-31005, "overloaded".into()));
    assert_eq!(answer["error"]["data"]["retry_after_ms"], 1000);
    // A notification still passes (it finishes work rather than starting it).
    let note = session
        .post(json!({"jsonrpc":"2.0","method":"notifications/roots/list_changed"}))
        .await;
    assert_eq!(note.status, 202, "{note:?}");

    // A standalone stream and a WebSocket upgrade are new work too; readiness says no.
    let stream = session.get(None).await;
    assert_eq!(stream.status().as_u16(), 503);
    let ws = format!("{}/ws", relay.base.replacen("http", "ws", 1));
    let err = tokio_tungstenite::connect_async(ws.into_client_request().unwrap())
        .await
        .expect_err("upgrade must be refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(res) => assert_eq!(res.status(), 503),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
    let ready = reqwest::get(format!("{}/ready", relay.base)).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);

    // Memory back under the budget: the same session works, new sessions open.
    reload(&relay, &config, "memory_budget = \"64GiB\"", "normal").await;
    let call = session
        .call(json!(3), "echo", json!({"text": "back"}))
        .await;
    assert_eq!(
        crate::support::text_of(&call.messages()[0]),
        "back",
        "{call:?}"
    );
    let mut another = relay.client();
    another.initialize(VERSION).await;
    assert_eq!(session.delete().await, 200);
    let ready = reqwest::get(format!("{}/ready", relay.base)).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

#[tokio::test]
async fn past_the_soft_threshold_answers_close_their_connection() {
    let config = tempdir().join("relay.toml");
    write_limits(&config, "memory_budget = \"64GiB\"");
    let relay = Relay::start(&["--config", config.to_str().unwrap()], &[]);
    let mut session = relay.client();
    session.initialize(VERSION).await;
    let call = session.call(json!(1), "echo", json!({"text": "a"})).await;
    assert_eq!(call.header("connection"), None, "{call:?}");

    // A budget of 1.4 × the tree's resident set with soft 50 % and hard 100 %: the relay
    // sits in the no-keep-alive band even if its memory moves by a third either way.
    let budget = tree_rss(relay.pid()) * 14 / 10;
    let limits = format!(
        "memory_budget = \"{budget}\"\nmemory_soft_percent = 50\nmemory_hard_percent = 100"
    );
    reload(&relay, &config, &limits, "no_keep_alive").await;
    let call = session.call(json!(2), "echo", json!({"text": "b"})).await;
    assert_eq!(call.status, 200);
    assert_eq!(crate::support::text_of(&call.messages()[0]), "b");
    assert_eq!(call.header("connection").as_deref(), Some("close"));
    let mut fresh = relay.client();
    fresh.initialize(VERSION).await;
    // A WebSocket upgrade still works: its 101 keeps `Connection: upgrade`.
    let ws = format!("{}/ws", relay.base.replacen("http", "ws", 1));
    let (_ws, res) = tokio_tungstenite::connect_async(ws.into_client_request().unwrap())
        .await
        .expect("upgrade in the no-keep-alive band");
    assert_eq!(res.status(), 101);

    reload(&relay, &config, "memory_budget = \"64GiB\"", "normal").await;
    let call = session.call(json!(3), "echo", json!({"text": "c"})).await;
    assert_eq!(call.header("connection"), None);
}

#[tokio::test]
async fn a_broken_budget_is_a_config_error_with_all_its_problems() {
    let config = tempdir().join("relay.toml");
    write_limits(
        &config,
        "memory_budget = \"lots\"\nmemory_soft_percent = 97\nmemory_hard_percent = 95",
    );
    let out = std::process::Command::new(crate::support::RELAY)
        .args(["check-config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("memory_soft_percent"), "{text}");
    assert!(text.contains("memory_budget"), "{text}");
}

/// One phase order on every front (issue 15): network allow/deny, then overload, then the
/// per-IP rate. While the relay sheds load and the client is over its per-IP rate as well
/// (one token, spent by the first refusal if the rate came first), HTTP and TCP both refuse
/// for overload, every time, and audit it alike; a denied address is refused as denied on
/// both. TCP used to take the per-IP token before looking at the load.
#[tokio::test]
async fn http_and_tcp_refuse_in_the_same_phase_order() {
    let dir = tempdir();
    let (config, audit) = (dir.join("relay.toml"), dir.join("audit.log"));
    std::fs::write(
        &config,
        "[limits]\nmemory_budget = \"1MiB\"\nper_ip = \"1/h\"\nper_ip_burst = 1\n\n\
         [network]\ndeny = [\"127.0.0.3/32\"]\n",
    )
    .unwrap();
    let relay = Relay::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--tcp-listen",
            "127.0.0.1:0",
            "--audit-log",
            audit.to_str().unwrap(),
        ],
        &[],
    );
    crate::support::eventually("tcp listener logged", || {
        relay.logs().contains("url=tcp://")
    })
    .await;
    let tcp: std::net::SocketAddr = crate::support::tcp_addr(&relay).parse().unwrap();
    let cases = [
        ("127.0.0.2", 503, "overloaded"),
        ("127.0.0.3", 403, "ip_not_allowed"),
    ];
    for (from, status, _) in cases {
        let http = reqwest::Client::builder()
            .local_address(from.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        for attempt in 0..2 {
            let res = http
                .post(&relay.url)
                .header("content-type", "application/json")
                .header("accept", crate::support::ACCEPT_BOTH)
                .body(init_request(json!(attempt), VERSION).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), status, "http from {from}");
            assert_eq!(tcp_closed_at_once(from, tcp).await, 0, "tcp from {from}");
        }
    }
    crate::support::eventually("8 audit lines", || audit_lines(&audit).len() >= 8).await;
    let records = audit_lines(&audit);
    for (from, _, reason) in cases {
        for transport in ["streamable_http", "tcp"] {
            let reasons: Vec<&Value> = records
                .iter()
                .filter(|r| r["transport"] == transport)
                .filter(|r| {
                    let client = r["client"].as_str().unwrap_or_default();
                    client.starts_with(&format!("{from}:"))
                })
                .map(|r| &r["reason"])
                .collect();
            assert_eq!(
                reasons,
                [reason, reason],
                "{transport} from {from}: {records:?}"
            );
        }
    }
}

/// Connects to `tcp` from `from` and reads: the bytes the relay wrote before closing.
async fn tcp_closed_at_once(from: &str, tcp: std::net::SocketAddr) -> usize {
    use tokio::io::AsyncReadExt;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut conn = sock.connect(tcp).await.unwrap();
    let mut buf = [0u8; 64];
    tokio::time::timeout(std::time::Duration::from_secs(2), conn.read(&mut buf))
        .await
        .expect("not closed at once")
        .unwrap_or(0)
}

fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
