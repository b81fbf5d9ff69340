//! The conformance fixture's legacy era (`conformance --era legacy`) driven directly over its
//! stdio pipes, no relay: the 2026-07-28 input tools ask with ordinary server->client requests
//! whose ids are the scenario's `inputRequests` keys, one round's requests back to back, the
//! next round only once the previous one is answered; a refused sampling request ends
//! `test_missing_capability` with -32021. This is the child the relay's modern-client bridge is
//! tested against (tests/conformance/run.sh with CONFORMANCE_FIXTURE_ERA=legacy).

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::support::conn::Conn;
use crate::support::lines::Lines;
use crate::support::{init_request, text_of, FIXTURE};

fn spawn() -> (Child, Lines) {
    let mut child = Command::new(FIXTURE)
        .args(["conformance", "--era", "legacy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (Some(out), Some(inp)) = (child.stdout.take(), child.stdin.take()) else {
        panic!("no pipes");
    };
    (child, Lines::new(out, inp))
}

fn call(id: i64, name: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":{}}})
}

/// A well-formed answer to the server->client request `req`.
fn answer(req: &Value) -> Value {
    let result = match req["method"].as_str() {
        Some("sampling/createMessage") => json!({"role":"assistant","model":"m",
            "content":{"type":"text","text":"Paris"}}),
        Some("roots/list") => json!({"roots":[{"uri":"file:///r","name":"r"}]}),
        _ => json!({"action":"accept","content":{"name":"Alice","color":"blue"}}),
    };
    json!({"jsonrpc":"2.0","id":req["id"],"result":result})
}

#[tokio::test]
async fn legacy_era_asks_with_server_requests_keyed_by_the_input_keys() {
    let (_child, mut c) = spawn();
    let init = c.initialize("2025-11-25").await;
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    let discover = c.request(json!("d"), "server/discover", json!({})).await;
    assert_eq!(discover["error"]["code"], -32601, "{discover}");
    let list = c.request(json!("l"), "tools/list", json!({})).await;
    let listed = list["result"]["tools"].to_string();
    assert!(
        listed.contains("test_input_required_result_multi_round"),
        "{list}"
    );
    assert!(listed.contains("x-mcp-header"), "{list}");

    // One round: all three requests are written before any is answered.
    c.send(call(1, "test_input_required_result_multiple_inputs"))
        .await;
    let mut asked = Vec::new();
    for _ in 0..3 {
        asked.push(c.next().await.unwrap());
    }
    let ids: Vec<&Value> = asked.iter().map(|r| &r["id"]).collect();
    assert_eq!(
        ids,
        [
            &json!("user_name"),
            &json!("greeting"),
            &json!("client_roots")
        ]
    );
    for r in &asked {
        c.send(answer(r)).await;
    }
    let done = c.answer(&json!(1)).await;
    assert!(
        text_of(&done).contains("name=Alice, greeting=Paris, roots=file:///r"),
        "{done}"
    );

    // Two rounds: step2 is asked only once step1 is answered.
    c.send(call(2, "test_input_required_result_multi_round"))
        .await;
    let step1 = c.next().await.unwrap();
    assert_eq!(step1["id"], "step1", "{step1}");
    let early = tokio::time::timeout(Duration::from_millis(300), c.next()).await;
    assert!(early.is_err(), "asked before step1 was answered: {early:?}");
    c.send(answer(&step1)).await;
    let step2 = c.next().await.unwrap();
    assert_eq!(step2["id"], "step2", "{step2}");
    c.send(answer(&step2)).await;
    let done = c.answer(&json!(2)).await;
    assert!(text_of(&done).contains("Alice likes blue"), "{done}");

    // A refused sampling request: the modern server's -32021.
    c.send(call(3, "test_missing_capability")).await;
    let req = c.next().await.unwrap();
    assert_eq!(req["id"], "completion", "{req}");
    c.send(json!({"jsonrpc":"2.0","id":"completion",
        "error":{"code":-32601,"message":"Method not found"}}))
        .await;
    let refused = c.answer(&json!(3)).await;
    assert_eq!(refused["error"]["code"], -32021, "{refused}");
    assert_eq!(
        refused["error"]["data"],
        json!({"requiredCapabilities":{"sampling":{}}})
    );
}

#[tokio::test]
async fn legacy_era_supersedes_an_unanswered_request_with_the_same_key() {
    let (_child, mut c) = spawn();
    c.exchange(init_request(json!(0), "2025-11-25")).await;
    c.send(call(1, "test_input_required_result_elicitation"))
        .await;
    let first = c.next().await.unwrap();
    assert_eq!(first["id"], "user_name", "{first}");
    c.send(call(2, "test_input_required_result_elicitation"))
        .await;
    let older = c.answer(&json!(1)).await;
    assert_eq!(older["result"]["isError"], true, "{older}");
    assert!(text_of(&older).contains("superseded"), "{older}");
    let second = c.until(|v| v["method"] == "elicitation/create").await;
    c.send(answer(&second)).await;
    let newer = c.answer(&json!(2)).await;
    assert_eq!(text_of(&newer), "Hello, Alice!", "{newer}");
    let gone = c
        .request(json!(3), "resources/read", json!({"uri":"test://nope"}))
        .await;
    assert_eq!(gone["error"]["code"], -32002, "{gone}");
    assert_eq!(gone["error"]["data"]["uri"], "test://nope", "{gone}");
}
