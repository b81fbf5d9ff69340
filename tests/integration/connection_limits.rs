//! Capacity on fronts where one connection carries many requests (SECURITY.md §2, §3, D6):
//! every request message on TCP, WebSocket or legacy SSE holds a place among its principal's
//! 64 concurrent requests, across all of that principal's connections, and a WebSocket whose
//! requests have all been refused for capacity for 5 s is closed with 1013.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::conn::Conn;
use crate::support::lines::Lines;
use crate::support::relay::tcp_listening;
use crate::support::sse::Legacy;
use crate::support::ws::Ws;
use crate::support::{init_request, tempdir, text_of, wait_recorded, ws_url, Relay};

const VERSION: &str = "2025-11-25";
const RESOURCE: &str = "http://relay.test/mcp";

/// `mcp-relay token key`: the key and its config block.
fn api_key(id: &str) -> (String, String) {
    crate::support::mint_api_key(&["--id", id, "--principal", id])
}

/// A TCP connection that sent `key` as its credential line.
async fn open(addr: &str, key: &str) -> Lines {
    Lines::tcp_with(addr, &json!({ "authorization": format!("Bearer {key}") })).await
}

fn call(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":tool,"arguments":args}})
}

#[tokio::test]
async fn the_65th_concurrent_tcp_request_of_a_principal_is_refused_on_any_of_its_connections() {
    let (alice, a_block) = api_key("alice");
    let (bob, b_block) = api_key("bob");
    let config = tempdir().join("relay.toml");
    std::fs::write(
        &config,
        format!("[auth]\nresource = \"{RESOURCE}\"\n{a_block}\n{b_block}\n"),
    )
    .unwrap();
    let (relay, record) = Relay::start_recorded(
        &[
            "--config",
            config.to_str().unwrap(),
            "--resource",
            RESOURCE,
            "--tcp-listen",
            "127.0.0.1:0",
            "--max-inflight",
            "200",
        ],
        &[],
    );
    let addr = tcp_listening(&relay).await;
    let mut a = open(&addr, &alice).await;
    assert!(a.initialize(VERSION).await.get("result").is_some());
    for i in 0..64 {
        a.send(call(json!(100 + i), "slow", json!({"ms": 10000})))
            .await;
    }
    wait_recorded(&record, "\"slow\"", 64).await;

    // The 65th, on the same connection: refused at once, with the retry hint.
    let started = Instant::now();
    a.send(call(json!(1), "echo", json!({"text": "one too many"})))
        .await;
    let refused = a.answer(&json!(1)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    assert_eq!(refused["error"]["code"], -31005, "{refused}");
    assert_eq!(
        refused["error"]["data"]["reason"], "principal_inflight_cap",
        "{refused}"
    );
    assert_eq!(refused["error"]["data"]["retry_after_ms"], 1000);

    // A second connection of the same principal: no room either (keyed on the principal).
    let mut a2 = open(&addr, &alice).await;
    let init = a2.initialize(VERSION).await;
    assert_eq!(init["error"]["code"], -31005, "{init}");

    // Another principal is untouched.
    let mut b = open(&addr, &bob).await;
    assert!(b.initialize(VERSION).await.get("result").is_some());
    b.send(call(json!(1), "echo", json!({"text": "bob"}))).await;
    assert_eq!(text_of(&b.answer(&json!(1)).await), "bob");

    // All 64 complete; then alice has room again on the first connection.
    for i in 0..64 {
        let done = a.answer(&json!(100 + i)).await;
        assert!(done.get("result").is_some(), "{done}");
    }
    a.send(call(json!(2), "echo", json!({"text": "again"})))
        .await;
    assert_eq!(text_of(&a.answer(&json!(2)).await), "again");
}

#[tokio::test]
async fn a_websocket_refused_for_capacity_for_5_s_is_closed_with_1013() {
    // Burst 3: the upgrade, `initialize` and one call; then every request is over the rate.
    let config = tempdir().join("relay.toml");
    std::fs::write(
        &config,
        "[limits]\nper_principal = \"1/h\"\nper_principal_burst = 3\n",
    )
    .unwrap();
    let relay = Relay::start(&["--config", config.to_str().unwrap()], &[]);
    let mut ws = Ws::connect(&ws_url(&relay)).await.stream;
    let send = |v: Value| Message::text(v.to_string());
    ws.send(send(init_request(json!(0), VERSION)))
        .await
        .unwrap();
    ws.send(send(
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    ))
    .await
    .unwrap();
    ws.send(send(call(json!(1), "echo", json!({"text": "ok"}))))
        .await
        .unwrap();

    let started = Instant::now();
    let mut limited = 0;
    let mut next_id = 2;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let close = loop {
        tokio::select! {
            _ = tick.tick() => {
                // The socket may already be closing; a failed send is not the test's point.
                let _ = ws.send(send(call(json!(next_id), "echo", json!({"text": "more"})))).await;
                next_id += 1;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["id"] == 1 {
                        assert_eq!(text_of(&v), "ok");
                    } else if v["id"].as_i64().is_some_and(|id| id >= 2) {
                        assert_eq!(v["error"]["code"], -31004, "{v}");
                        limited += 1;
                    }
                }
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => {}
                other => panic!("connection ended without a close frame: {other:?}"),
            },
        }
        assert!(started.elapsed() < Duration::from_secs(15), "never closed");
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1013, "{frame:?}");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(4500),
        "closed too soon: {after:?}"
    );
    assert!(
        limited >= 15,
        "each refused request was answered first: {limited}"
    );
}

#[tokio::test]
async fn legacy_sse_requests_each_hold_one_place_in_the_principal_cap() {
    let (alice, a_block) = api_key("alice");
    let config = tempdir().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nresource = \"{RESOURCE}\"\n{a_block}\n\n[limits]\nmax_concurrent_per_principal = 1\n"
        ),
    )
    .unwrap();
    let (relay, record) = Relay::start_recorded(
        &["--config", config.to_str().unwrap(), "--resource", RESOURCE],
        &[],
    );
    let mut sse = Legacy::open_with(&relay, &[("x-api-key", &alice)]).await;
    // With a cap of 1, `initialize` passes: the POST and its request count once, not twice.
    sse.send(init_request(json!(0), VERSION)).await;
    let init = sse.answer(&json!(0)).await;
    assert!(init.get("result").is_some(), "{init}");
    sse.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    sse.send(call(json!(1), "slow", json!({"ms": 4000}))).await;
    wait_recorded(&record, "\"slow\"", 1).await;
    sse.send(call(json!(2), "echo", json!({"text": "no room"})))
        .await;
    let refused = sse.answer(&json!(2)).await;
    assert_eq!(
        refused["error"]["data"]["reason"], "principal_inflight_cap",
        "{refused}"
    );
    assert!(sse.answer(&json!(1)).await.get("result").is_some());
    sse.send(call(json!(3), "echo", json!({"text": "room"})))
        .await;
    assert_eq!(text_of(&sse.answer(&json!(3)).await), "room");
}
