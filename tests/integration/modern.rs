//! 2026-07-28 clients in front of a dual-era child: stateless POSTs on a pool, headers checked
//! against the body before the child sees anything, modern errors with their HTTP status,
//! closing the stream cancels at the child, and legacy sessions keep working beside them.

mod tasks;

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::support::{read_reply, text_of, wait_recorded, Client, Relay, ACCEPT_BOTH};

const VERSION: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1"}
    })
}

/// A modern POST with the headers the body implies (`name` for `Mcp-Name`).
fn modern(c: &Client, body: &Value) -> reqwest::RequestBuilder {
    modern_as(c, body, VERSION)
}

/// Like [`modern`], with `MCP-Protocol-Version: version`.
fn modern_as(c: &Client, body: &Value, version: &str) -> reqwest::RequestBuilder {
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    let mut b = c
        .http
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", version)
        .header("mcp-method", method);
    if let Some(name) = body["params"]["name"].as_str() {
        b = b.header("mcp-name", name);
    }
    b.body(body.to_string())
}

fn call(id: Value, tool: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
        "params":{"name":tool,"arguments":args,"_meta":meta()}})
}

#[tokio::test]
async fn modern_requests_to_a_dual_era_child_are_served_statelessly() {
    let relay = Relay::start(&[], &["--era", "dual"]);
    let c = relay.client();
    let discover =
        json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":meta()}});
    let res = modern(&c, &discover).send().await.unwrap();
    assert!(res.headers().get("mcp-session-id").is_none());
    let r = read_reply(res).await;
    assert_eq!(r.status, 200);
    assert!(r.messages()[0]["result"]["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!(VERSION)));
    // Ids of any form come back as sent.
    let r = read_reply(
        modern(&c, &call(json!("x-1"), "echo", json!({"text": "hi"})))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.messages()[0]["id"], "x-1");
    assert_eq!(text_of(&r.messages()[0]), "hi");
    // Removed and unknown methods: 404 with -32601, the id echoed.
    let ping = json!({"jsonrpc":"2.0","id":7,"method":"ping","params":{"_meta":meta()}});
    let r = read_reply(modern(&c, &ping).send().await.unwrap()).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        (r.json()["id"].clone(), r.json()["error"]["code"].clone()),
        (json!(7), json!(-32601))
    );
    // No GET or DELETE in this era.
    for m in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let res = c
            .http
            .request(m, &c.url)
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", VERSION)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405);
    }
    // A legacy session works beside them on the same endpoint.
    let mut legacy = relay.client();
    legacy.initialize("2025-11-25").await;
    let r = legacy.call(json!(1), "echo", json!({"text": "old"})).await;
    assert_eq!(text_of(&r.messages()[0]), "old");
}

#[tokio::test]
async fn modern_header_mismatches_are_refused_before_the_child_sees_them() {
    let (relay, record) = Relay::start_recorded(&[], &["--era", "dual"]);
    let c = relay.client();
    // Warm up: the era probe and the tool listing happen on the first modern request.
    let r = read_reply(
        modern(&c, &call(json!(1), "echo", json!({"text": "a"})))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let before = std::fs::read_to_string(&record).unwrap().lines().count();
    let cases: Vec<(reqwest::RequestBuilder, i64)> = vec![
        // Header and body versions differ.
        (
            modern(&c, &call(json!(2), "echo", json!({}))).body(
                json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo",
                    "_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01",
                    "io.modelcontextprotocol/clientCapabilities":{}}}})
                .to_string(),
            ),
            -32020,
        ),
        // Mcp-Name names another tool.
        (
            modern(&c, &call(json!(3), "other", json!({})))
                .body(call(json!(3), "echo", json!({})).to_string()),
            -32020,
        ),
        // No _meta at all.
        (
            modern(
                &c,
                &json!({"jsonrpc":"2.0","id":4,"method":"tools/list","params":{}}),
            ),
            -32602,
        ),
    ];
    for (req, code) in cases {
        let r = read_reply(req.send().await.unwrap()).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.json()["error"]["code"], code, "{r:?}");
    }
    // An unsupported version, the same in header and body.
    let body = json!({"jsonrpc":"2.0","id":5,"method":"server/discover","params":{"_meta":{
        "io.modelcontextprotocol/protocolVersion":"v999","io.modelcontextprotocol/clientCapabilities":{}}}});
    let r = read_reply(modern_as(&c, &body, "v999").send().await.unwrap()).await;
    assert_eq!(r.status, 400);
    let e = &r.json()["error"];
    assert_eq!(
        (e["code"].clone(), e["data"]["requested"].clone()),
        (json!(-32022), json!("v999"))
    );
    assert_eq!(e["data"]["supported"], json!([VERSION]));
    let after = std::fs::read_to_string(&record).unwrap().lines().count();
    assert_eq!(before, after, "a refused request reached the child");
}

#[tokio::test]
async fn modern_closing_the_response_stream_cancels_the_request_at_the_child() {
    let (relay, record) = Relay::start_recorded(&[], &["--era", "dual"]);
    let c = relay.client();
    // A request with progress streams at once; one without holds its head briefly. Both are
    // cancelled when the client goes away.
    let with_progress = json!({"jsonrpc":"2.0","id":"p","method":"tools/call","params":{
        "name":"progress","arguments":{"steps":1000,"interval_ms":20},
        "_meta":{"progressToken":"t","io.modelcontextprotocol/protocolVersion":VERSION,
            "io.modelcontextprotocol/clientCapabilities":{}}}});
    let res = modern(&c, &with_progress).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    drop(res);
    wait_recorded(&record, "notifications/cancelled", 1).await;
    let slow = tokio::spawn({
        let req = modern(&c, &call(json!("s"), "slow", json!({"ms": 60000})));
        async move { req.send().await }
    });
    wait_recorded(&record, r#""name":"slow""#, 1).await;
    slow.abort();
    wait_recorded(&record, "notifications/cancelled", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_requests_spread_over_the_pool() {
    let (relay, record) = Relay::start_recorded(&["--children", "2"], &["--era", "dual"]);
    let c = relay.client();
    // Both children ready first: calls spread by load over the ready ones, so a child still
    // starting under a loaded machine would take none of the slow calls and every pid call.
    read_reply(
        modern(&c, &call(json!("warm"), "pid", json!({})))
            .send()
            .await
            .unwrap(),
    )
    .await;
    crate::support::poll_until(
        "both children ready",
        || relay.health(),
        |h| {
            h["slots"]
                .as_array()
                .map_or(0, |v| v.iter().filter(|s| s["state"] == "ready").count())
                >= 2
        },
    )
    .await;
    let slow: Vec<_> = (0..20)
        .map(|i| {
            let req = modern(&c, &call(json!(i), "slow", json!({"ms": 4000})));
            tokio::spawn(async move { read_reply(req.send().await.unwrap()).await })
        })
        .collect();
    wait_recorded(&record, r#""name":"slow""#, 20).await;
    let pids = (0..10).map(|i| {
        let req = modern(&c, &call(json!(i), "pid", json!({})));
        async move { text_of(&read_reply(req.send().await.unwrap()).await.messages()[0]) }
    });
    let pids: HashSet<String> = futures_util::future::join_all(pids)
        .await
        .into_iter()
        .collect();
    for s in slow {
        assert_eq!(s.await.unwrap().messages().len(), 1);
    }
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_eq!(relay.children().len(), 2);
}

#[tokio::test]
async fn era_legacy_only_refuses_modern_requests_without_probing() {
    let (relay, record) = Relay::start_recorded(
        &["--child-era", "legacy", "--era", "legacy-only"],
        &["--era", "dual"],
    );
    let c = relay.client();
    let r = read_reply(
        modern(&c, &call(json!(1), "echo", json!({})))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -31011);
    assert!(std::fs::read_to_string(&record)
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn modern_listen_stream_gets_its_notifications_and_other_calls_keep_their_logs() {
    use eventsource_stream::Eventsource;
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--",
        crate::support::FIXTURE,
        "conformance",
        "--era",
        "dual",
    ]);
    let c = relay.client();
    let listen = json!({"jsonrpc":"2.0","id":"sub-A","method":"subscriptions/listen","params":{
        "notifications":{"toolsListChanged":true},"_meta":meta()}});
    let res = modern(&c, &listen).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut events = Box::pin(res.bytes_stream().eventsource());
    let ack = crate::support::wait_event(&mut events, |_| true).await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-A"
    );
    // A call's log messages still reach its own stream while the listen is open.
    let mut m = meta();
    m["io.modelcontextprotocol/logLevel"] = json!("debug");
    let logged = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"test_logging_tool","arguments":{},"_meta":m}});
    let r = read_reply(modern(&c, &logged).send().await.unwrap()).await;
    let msgs = r.messages();
    let logs = msgs
        .iter()
        .filter(|v| v["method"] == "notifications/message")
        .count();
    assert!(logs >= 1, "no log messages: {msgs:?}");
    assert_eq!(msgs.last().unwrap()["id"], 2);
    // A tool change reaches the listen stream, tagged with the client's own listen id.
    let trigger = call(json!(3), "test_trigger_tool_change", json!({}));
    let r = read_reply(modern(&c, &trigger).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    let changed = crate::support::wait_event(&mut events, |v| {
        v["method"] == "notifications/tools/list_changed"
    })
    .await;
    assert_eq!(
        changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-A"
    );
    // Modern streams carry no event ids (nothing to resume).
    let raw = modern(&c, &call(json!(4), "test_simple_text", json!({})))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!raw.contains("id: "), "{raw}");
    drop(events);
}
