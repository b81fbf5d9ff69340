//! `connect --protocol auto` in front of a 2026-07-28 server: a legacy host initializes,
//! lists, calls, and answers the server's input requests (multi-round-trip results unpacked
//! into ordinary server→client requests), without knowing the server is modern.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::bridge::Bridge;
use crate::support::{Relay, FIXTURE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_host_talks_to_a_modern_server_through_connect() {
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--",
        FIXTURE,
        "conformance",
        "--era",
        "modern",
    ]);
    let mut host = Bridge::spawn(&[&relay.url]);
    let none = |_: &Value| json!({});
    host.send(
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25",
        "capabilities":{"elicitation":{},"sampling":{}},
        "clientInfo":{"name":"legacy-host","version":"1"}}}),
    )
    .await;
    let (init, _) = host.answer_serving(&json!(0), none).await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    host.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;

    host.send(json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
        .await;
    let (pong, _) = host.answer_serving(&json!(1), none).await;
    assert_eq!(pong["result"], json!({}), "{pong}");

    host.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .await;
    let (list, _) = host.answer_serving(&json!(2), none).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"test_simple_text"), "{list}");

    host.send(json!({"jsonrpc":"2.0","id":"three","method":"tools/call",
        "params":{"name":"test_simple_text","arguments":{}}}))
        .await;
    let (text, _) = host.answer_serving(&json!("three"), none).await;
    assert!(text["result"]["content"][0]["text"].is_string(), "{text}");

    let elicit = |m: &Value| {
        assert_eq!(m["method"], "elicitation/create", "{m}");
        json!({"action":"accept","content":{"name":"Ada","username":"ada","email":"a@b.c","color":"red"}})
    };
    host.send(json!({"jsonrpc":"2.0","id":4,"method":"tools/call",
        "params":{"name":"test_input_required_result_elicitation","arguments":{}}}))
        .await;
    let (done, asked) = host.answer_serving(&json!(4), elicit).await;
    assert_eq!(asked, ["elicitation/create"]);
    assert_eq!(
        done["result"]["content"][0]["text"], "Hello, Ada!",
        "{done}"
    );

    host.send(json!({"jsonrpc":"2.0","id":5,"method":"tools/call",
        "params":{"name":"test_input_required_result_multi_round","arguments":{}}}))
        .await;
    let (multi, asked) = host.answer_serving(&json!(5), elicit).await;
    assert!(asked.len() >= 2, "{asked:?}");
    assert!(
        multi["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("state-ok"),
        "{multi}"
    );

    // stdin EOF: the bridge exits cleanly, and soon.
    let (code, took) = host.eof().await;
    assert_eq!(code, Some(0), "{}", host.stderr());
    assert!(took < Duration::from_secs(5), "{took:?}");
    host.assert_clean();
}
