//! 2026-07-28 continuations in a fleet: stateless requests run on any node, but a task handle
//! or a sealed `requestState` opens only on the node whose key sealed it. Both carry that
//! node's tag, and a follow-up or retry that reaches another node is forwarded there.

use super::*;
use crate::support::{read_reply, Reply, ACCEPT_BOTH};

const MODERN: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {
            "elicitation": {}, "extensions": {"io.modelcontextprotocol/tasks": {}}},
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1"}
    })
}

/// A modern POST of `body` to relay `i`, with the headers it implies.
async fn post(fleet: &Fleet, i: usize, body: &Value) -> Reply {
    post_to(&fleet.url(i), body).await
}

/// A modern POST of `body` to `url`, with the headers it implies.
async fn post_to(url: &str, body: &Value) -> Reply {
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    let mut b = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if let Some(name) = body["params"]["name"].as_str() {
        b = b.header("mcp-name", name);
    }
    read_reply(b.body(body.to_string()).send().await.unwrap()).await
}

fn last(r: &Reply) -> Value {
    r.messages().pop().unwrap_or(Value::Null)
}

fn task_get(id: &str, handle: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tasks/get","params":{"taskId":handle,"_meta":meta()}})
}

#[tokio::test]
async fn task_follow_ups_through_any_node_reach_the_node_that_made_the_task() {
    let fleet = Fleet::start(3, |_| vec![], &["conformance", "--era", "modern"]);
    let create = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"slow_compute","arguments":{"seconds":0.2,"label":"on-r1"},"_meta":meta()}});
    let created = post(&fleet, 1, &create).await;
    let result = last(&created)["result"].clone();
    assert_eq!(result["resultType"], "task", "{created:?}");
    let handle = result["taskId"].as_str().unwrap().to_owned();
    assert_eq!(node_of(&handle), "r1", "{handle}");
    assert!(handle.contains(".mcpt1."), "{handle}");
    for i in [0, 2, 1] {
        let got = poll_completed(&fleet, i, &handle).await;
        assert_eq!(got.header("mcp-relay-node").as_deref(), Some("r1"));
        let m = last(&got);
        assert_eq!(m["result"]["taskId"], handle.as_str(), "{m}");
        assert_eq!(
            m["result"]["result"]["content"][0]["text"], "computed on-r1",
            "{m}"
        );
    }
    assert!(forwarded(&fleet, 0, "ok").await >= 1.0);
    assert!(forwarded(&fleet, 2, "ok").await >= 1.0);
    assert_eq!(forwarded(&fleet, 1, "ok").await, 0.0);
    // The same handle under an unknown node, or another configured node, is an unknown task.
    let rest = handle.split_once('.').unwrap().1;
    for forged in [format!("r9.{rest}"), format!("r2.{rest}")] {
        let r = post(&fleet, 0, &task_get("bad", &forged)).await;
        let m = last(&r);
        assert_eq!(m["error"]["code"], -32602, "{forged}: {r:?}");
        assert_eq!(m["error"]["data"]["reason"], "unknown_task", "{m}");
    }
}

/// `tasks/get` of `handle` through relay `i` until the task is completed.
async fn poll_completed(fleet: &Fleet, i: usize, handle: &str) -> Reply {
    let get = task_get("g", handle);
    crate::support::poll_until(
        "the task completes",
        || post(fleet, i, &get),
        |r: &Reply| last(r)["result"]["status"] == "completed",
    )
    .await
}

#[tokio::test]
async fn a_retry_with_request_state_through_another_node_completes_on_the_sealing_node() {
    let fleet = Fleet::start(3, |_| vec![], &["conformance", "--era", "legacy"]);
    let tool = "test_input_required_result_elicitation";
    let first = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":tool,"arguments":{},"_meta":meta()}});
    let asked = post(&fleet, 2, &first).await;
    let result = last(&asked)["result"].clone();
    assert_eq!(result["resultType"], "input_required", "{asked:?}");
    let state = result["requestState"].as_str().unwrap().to_owned();
    assert_eq!(node_of(&state), "r2", "{state}");
    let mut again = first.clone();
    again["id"] = json!(2);
    again["params"]["inputResponses"] =
        json!({"user_name": {"action": "accept", "content": {"name": "Ada"}}});
    again["params"]["requestState"] = json!(state);
    let r = post(&fleet, 0, &again).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("mcp-relay-node").as_deref(), Some("r2"));
    let m = last(&r);
    assert_eq!(m["result"]["resultType"], "complete", "{m}");
    assert_eq!(text_of(&m), "Hello, Ada!");
    assert_eq!(m["id"], 2);
    assert_eq!(forwarded(&fleet, 0, "ok").await, 1.0);
    // Retagged for another node, the state opens nowhere: today's refusal, from that node.
    let rest = state.split_once('.').unwrap().1;
    again["params"]["requestState"] = json!(format!("r1.{rest}"));
    let r = post(&fleet, 0, &again).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("mcp-relay-node").as_deref(), Some("r1"));
    assert_eq!(last(&r)["error"]["code"], -32602);
}

#[tokio::test]
async fn a_named_servers_task_follow_up_is_forwarded_under_its_mount() {
    let fixture = crate::support::FIXTURE;
    let config = crate::support::tempdir().join("servers.toml");
    std::fs::write(
        &config,
        format!(
            "[servers.work]\ncommand = [{fixture:?}, \"conformance\", \"--era\", \"modern\"]\n"
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap().to_owned();
    let fleet = Fleet::start_with_child(2, move |_| vec!["--config".into(), path.clone()], vec![]);
    let at = |i: usize| format!("{}/servers/work/mcp", fleet.base(i));
    let create = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"slow_compute","arguments":{"seconds":0,"label":"mounted"},"_meta":meta()}});
    let created = post_to(&at(0), &create).await;
    let handle = last(&created)["result"]["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(node_of(&handle), "r0", "{created:?}");
    let (get, via) = (task_get("g", &handle), at(1));
    let got = crate::support::poll_until(
        "the task completes",
        || post_to(&via, &get),
        |r: &Reply| last(r)["result"]["status"] == "completed",
    )
    .await;
    assert_eq!(got.header("mcp-relay-node").as_deref(), Some("r0"));
    let text = &last(&got)["result"]["result"]["content"][0]["text"];
    assert_eq!(text, "computed mounted");
}

/// A raw modern POST of `body` (any JSON text) to `url` as `tools/call`.
async fn post_raw(url: &str, body: String) -> Reply {
    let b = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "test_input_required_result_elicitation");
    read_reply(b.body(body).send().await.unwrap()).await
}

#[tokio::test]
async fn a_continuation_in_a_one_element_batch_is_refused_here_not_cut_short() {
    let fleet = Fleet::start(2, |_| vec![], &["conformance", "--era", "legacy"]);
    let tool = "test_input_required_result_elicitation";
    let first = json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":tool,"arguments":{},"_meta":meta()}});
    let asked = post(&fleet, 1, &first).await;
    let state = last(&asked)["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut again = first.clone();
    again["id"] = json!(2);
    again["params"]["inputResponses"] =
        json!({"user_name": {"action": "accept", "content": {"name": "Ada"}}});
    again["params"]["requestState"] = json!(state);
    // A batch is refused by the modern era wherever it lands: here, at once, not a truncated
    // body sent on with the batch's length.
    let r = post_raw(&fleet.url(0), format!("[{again}]")).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("mcp-relay-node").as_deref(), Some("r0"));
    // The same message alone, with spaces the parser drops, crosses the hop whole.
    let r = post_raw(&fleet.url(0), format!("  {again}\n\n")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("mcp-relay-node").as_deref(), Some("r1"));
    assert_eq!(text_of(&last(&r)), "Hello, Ada!");
}

#[tokio::test]
async fn a_continuation_whose_owner_is_gone_is_answered_with_its_id() {
    let mut fleet = Fleet::start(2, |_| vec![], &["conformance", "--era", "modern"]);
    let create = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"slow_compute","arguments":{"seconds":0,"label":"gone"},"_meta":meta()}});
    let created = post(&fleet, 1, &create).await;
    let handle = last(&created)["result"]["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(node_of(&handle), "r1", "{created:?}");
    fleet.kill(1);
    let r = post(&fleet, 0, &task_get("follow-up-7", &handle)).await;
    assert_eq!(r.status, 404, "{r:?}");
    let m = last(&r);
    assert_eq!(m["error"]["code"], -31003, "{m}");
    assert_eq!(m["id"], "follow-up-7", "{m}");
}

#[tokio::test]
async fn a_forwarded_continuation_gives_its_slot_back_on_the_forwarding_node() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // r3 accepts connections and says nothing: the forward waits for its answer.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = accepted.clone();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            open.push(s);
        }
    });
    let resource = "http://relay.test/mcp";
    let (key, block) = crate::support::mint_api_key(&["--id", "alice", "--principal", "alice"]);
    let config = crate::support::tempdir().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nresource = \"{resource}\"\n{block}\n\n[limits]\nmax_concurrent_per_principal = 1\n\n\
             [cluster]\nforward_timeout = \"20s\"\npeers = {{ r3 = \"http://127.0.0.1:{port}\" }}\n"
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap();
    let relay = crate::support::Relay::start(
        &["--node", "r0", "--config", path, "--resource", resource],
        &[],
    );
    let retry = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"echo","arguments":{},"requestState":"r3.0000abcd.mcpr1.AAAA","_meta":meta()}});
    let (url, auth) = (relay.url.clone(), format!("Bearer {key}"));
    let pending = {
        let (url, auth) = (url.clone(), auth.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .header("authorization", auth)
                .header("content-type", "application/json")
                .header("accept", ACCEPT_BOTH)
                .header("mcp-protocol-version", MODERN)
                .header("mcp-method", "tools/call")
                .header("mcp-name", "echo")
                .body(retry.to_string())
                .send()
                .await
        })
    };
    crate::support::eventually("the continuation reached its owner", || {
        accepted.load(Ordering::SeqCst) == 1
    })
    .await;
    // While it waits there, alice's cap of one is free on this node.
    let mut c = Client::new(&url);
    c.extra = vec![("authorization".into(), auth)];
    c.initialize(VERSION).await;
    assert!(c.session.is_some());
    assert!(!pending.is_finished());
    pending.abort();
    held.abort();
}
