//! Remote upstreams: a front relay whose server is another relay reached over TCP or WebSocket
//! (`--upstream tcp://…`, `ws://…`). Every front (Streamable HTTP, WebSocket, TCP) runs the same
//! scenario against every remote kind, in per-session and shared mode.

use eventsource_stream::Eventsource;
use serde_json::json;

use crate::support::{eventually, text_of, wait_event, Client as HttpClient, Relay};
use crate::transports::{scenario, tcp_addr, ws_url, Client};

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

async fn all_fronts(front: &Relay) {
    http_scenario(front).await;
    let mut ws = Client::ws(&ws_url(front)).await;
    scenario(&mut ws).await;
    let mut tcp = Client::tcp(&tcp_addr(front)).await;
    scenario(&mut tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_over_a_remote_tcp_upstream() {
    let back = back();
    eventually("back tcp listening", || back.logs().contains("url=tcp://")).await;
    let upstream = format!("tcp://{}", tcp_addr(&back));
    let per_session = front(&upstream, &[]).await;
    all_fronts(&per_session).await;
    let shared = front(&upstream, &["--session-mode", "shared"]).await;
    all_fronts(&shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_over_a_remote_websocket_upstream() {
    let back = back();
    let upstream = ws_url(&back);
    let per_session = front(&upstream, &[]).await;
    all_fronts(&per_session).await;
    let shared = front(&upstream, &["--session-mode", "shared"]).await;
    all_fronts(&shared).await;
}

#[tokio::test]
async fn an_unreachable_remote_upstream_fails_the_session_not_the_relay() {
    let front = front("tcp://127.0.0.1:1", &[]).await;
    let c = HttpClient::new(&front.url);
    let r = c
        .post(crate::support::init_request(json!(0), "2025-11-25"))
        .await;
    let m = r.messages();
    assert_eq!(m[0]["error"]["code"], -31007, "{m:?}");
    // The relay is still up.
    assert_eq!(front.health().await["status"], "ok");
}

#[tokio::test]
async fn upstream_and_command_are_exclusive_and_unknown_schemes_are_usage_errors() {
    let out = std::process::Command::new(crate::support::RELAY)
        .args(["serve", "--upstream", "https://x.example/mcp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("supported schemes"));
    let out = std::process::Command::new(crate::support::RELAY)
        .args(["serve", "--upstream", "tcp://127.0.0.1:9", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}
