//! 2026-07-28 clients in front of a legacy-only child (`conformance --era legacy`): the relay
//! initializes the child itself, answers `server/discover` from its `initialize`, and turns the
//! child's own requests for input into `input_required` rounds with a sealed `requestState`.
//! Every test drives the real relay over a real socket; the child's `--record` shows what did
//! and did not reach it. This file holds the shared helpers and the discovery, fresh-call and
//! era-policy tests; the rounds, the sealed state, the streams and hints, and the session
//! modes are in `era_bridge/`.

mod limits;
mod modes;
mod rounds;
mod state;
mod streams;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::{
    eventually, mint_jwt, read_reply, tempdir, text_of, Client, Relay, Reply, ACCEPT_BOTH, FIXTURE,
};

const VERSION: &str = "2026-07-28";
/// The legacy conformance child.
const CHILD: [&str; 3] = ["conformance", "--era", "legacy"];

/// `_meta` of a modern request declaring `caps`.
fn meta_with(caps: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1"}
    })
}

/// `_meta` declaring elicitation, sampling and roots.
fn meta() -> Value {
    meta_with(json!({"elicitation": {}, "sampling": {}, "roots": {}}))
}

/// A modern POST of `body` with the headers it implies (and the client's extra headers).
async fn post(c: &Client, body: &Value) -> Reply {
    read_reply(builder(c, body).send().await.unwrap()).await
}

/// The modern POST of `body`, to send.
fn builder(c: &Client, body: &Value) -> reqwest::RequestBuilder {
    let method = body["method"].as_str().unwrap_or_default().to_owned();
    let mut b = c
        .http
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", VERSION)
        .header("mcp-method", method);
    let p = &body["params"];
    if let Some(name) = p["name"].as_str().or_else(|| p["uri"].as_str()) {
        b = b.header("mcp-name", name);
    }
    for (k, v) in &c.extra {
        b = b.header(k, v);
    }
    b.body(body.to_string())
}

fn request(id: Value, method: &str, mut params: Value, meta: Value) -> Value {
    params["_meta"] = meta;
    json!({"jsonrpc":"2.0","id":id,"method":method,"params":params})
}

fn call(id: Value, tool: &str) -> Value {
    request(
        id,
        "tools/call",
        json!({"name": tool, "arguments": {}}),
        meta(),
    )
}

/// `body` again with a new id, `inputResponses` and (when given) `requestState`.
fn retry(body: &Value, id: Value, responses: Value, state: Option<&str>) -> Value {
    let mut b = body.clone();
    b["id"] = id;
    b["params"]["inputResponses"] = responses;
    if let Some(s) = state {
        b["params"]["requestState"] = json!(s);
    }
    b
}

/// The last JSON-RPC message of a reply (the answer).
fn last(r: &Reply) -> Value {
    r.messages()
        .pop()
        .unwrap_or_else(|| panic!("no message: {r:?}"))
}

/// An `input_required` answer's result, checked; its keys in order and its state.
fn input_required(r: &Reply) -> (Value, Vec<String>, String) {
    assert_eq!(r.status, 200, "{r:?}");
    let res = last(r)["result"].clone();
    assert_eq!(res["resultType"], "input_required", "{r:?}");
    let keys = res["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let state = res["requestState"].as_str().unwrap().to_owned();
    assert!(state.starts_with("mcpr1."), "{state}");
    (res, keys, state)
}

/// A complete tools/call answer's text.
fn complete_text(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{r:?}");
    let m = last(r);
    assert_eq!(m["result"]["resultType"], "complete", "{m}");
    text_of(&m)
}

fn accept(content: Value) -> Value {
    json!({"action": "accept", "content": content})
}

fn sampled(text: &str) -> Value {
    json!({"role": "assistant", "model": "m", "content": {"type": "text", "text": text}})
}

fn roots() -> Value {
    json!({"roots": [{"uri": "file:///work", "name": "work"}]})
}

/// A relay around a recording legacy child.
fn legacy(relay_args: &[&str]) -> (Relay, PathBuf) {
    Relay::start_recorded(relay_args, &CHILD)
}

/// The messages the child received, parsed.
fn received(record: &Path) -> Vec<Value> {
    std::fs::read_to_string(record)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits until the child has received a message satisfying `pred`; returns it.
async fn child_got(record: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(what, || received(record).iter().any(&pred)).await;
    received(record).into_iter().find(pred).unwrap()
}

const SECRET_VAR: &str = "ERA_BRIDGE_JWT_KEY";
const SECRET: &str = "q8Vn2LwZr4Tj7XbK1mPd9HsYc3GfUe6A0oRiNxQyWkE";
const RESOURCE: &str = "http://relay.example/mcp";

/// A relay with JWT auth and an audit log around a recording legacy child:
/// `(relay, record, audit)`.
fn authed(extra: &[&str]) -> (Relay, PathBuf, PathBuf) {
    let dir = tempdir();
    let (record, audit) = (dir.join("stdin.log"), dir.join("audit.log"));
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--resource",
        RESOURCE,
        "--jwt-secret",
        "env:ERA_BRIDGE_JWT_KEY",
        "--audit-log",
        audit.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", FIXTURE, "--record", record.to_str().unwrap()]);
    args.extend_from_slice(&CHILD);
    let relay = Relay::start_env(&args, &[(SECRET_VAR, SECRET)]);
    (relay, record, audit)
}

fn as_user(relay: &Relay, user: &str, roles: &str) -> Client {
    let token = mint_jwt(SECRET_VAR, SECRET, user, roles, RESOURCE);
    let mut c = relay.client();
    c.extra
        .push(("authorization".to_owned(), format!("Bearer {token}")));
    c
}

#[tokio::test]
async fn discover_comes_from_the_childs_initialize_and_calls_complete() {
    let (relay, record) = legacy(&[]);
    let c = relay.client();
    let d = post(&c, &request(json!(1), "server/discover", json!({}), meta())).await;
    assert_eq!(d.status, 200, "{d:?}");
    let res = last(&d)["result"].clone();
    let versions = res["supportedVersions"].as_array().unwrap();
    assert!(versions.contains(&json!("2025-11-25")), "{res}");
    assert!(versions.contains(&json!(VERSION)), "{res}");
    // The child's own capabilities and name, as a legacy session sees them.
    let mut old = relay.client();
    let init = old.initialize("2025-11-25").await.messages()[0]["result"].clone();
    assert_eq!(res["capabilities"], init["capabilities"], "{res}");
    assert_eq!(res["serverInfo"], init["serverInfo"], "{res}");
    let r = post(&c, &call(json!("a"), "test_simple_text")).await;
    assert!(!complete_text(&r).is_empty());
    assert_eq!(last(&r)["id"], "a");
    // The relay initialized the child as itself; after the era probe no server/discover
    // reaches a legacy child.
    let inits: Vec<Value> = received(&record)
        .into_iter()
        .filter(|m| m["method"] == "initialize")
        .collect();
    assert!(
        inits
            .iter()
            .any(|m| m["params"]["clientInfo"]["name"] == "mcp-relay"),
        "{inits:?}"
    );
    let discovers = |r: &Path| {
        received(r)
            .iter()
            .filter(|m| m["method"] == "server/discover")
            .count()
    };
    let probed = discovers(&record);
    assert!(probed <= 1, "{probed} probes");
    for id in 2..5 {
        let d = post(
            &c,
            &request(json!(id), "server/discover", json!({}), meta()),
        )
        .await;
        assert_eq!(d.status, 200);
    }
    let r = post(&c, &call(json!("b"), "test_simple_text")).await;
    complete_text(&r);
    assert_eq!(discovers(&record), probed);
}

#[tokio::test]
async fn input_responses_on_a_fresh_call_answer_the_child_at_once() {
    let (relay, record) = legacy(&[]);
    let c = relay.client();
    let body = retry(
        &call(json!(1), "test_input_required_result_elicitation"),
        json!(1),
        json!({"user_name": accept(json!({"name": "Zed"}))}),
        None,
    );
    let r = post(&c, &body).await;
    assert_eq!(complete_text(&r), "Hello, Zed!");
    // The child got its answer under its own id.
    let answer = child_got(&record, "the child's user_name answered", |m| {
        m["id"] == "user_name" && m.get("result").is_some()
    })
    .await;
    assert_eq!(answer["result"]["content"]["name"], "Zed");
}

#[tokio::test]
async fn era_legacy_only_sends_modern_clients_back_to_the_legacy_era() {
    let (relay, record) = legacy(&["--era", "legacy-only"]);
    let c = relay.client();
    let r = post(&c, &call(json!(1), "test_simple_text")).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(last(&r)["error"]["code"], -31011);
    assert!(!received(&record)
        .iter()
        .any(|m| m["method"] == "tools/call"));
    // The legacy era still works.
    let mut old = relay.client();
    old.initialize("2025-11-25").await;
    let r = old.call(json!(2), "test_simple_text", json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn era_modern_only_refuses_initialize_and_serves_modern_requests() {
    let (relay, _record) = legacy(&["--era", "modern-only"]);
    let old = relay.client();
    let r = old
        .post(crate::support::init_request(json!(0), "2025-11-25"))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(last(&r)["error"]["code"], -32601, "{r:?}");
    let c = relay.client();
    let d = post(&c, &request(json!(1), "server/discover", json!({}), meta())).await;
    let versions = last(&d)["result"]["supportedVersions"].clone();
    assert_eq!(versions, json!([VERSION]), "{d:?}");
    let r = post(&c, &call(json!(2), "test_simple_text")).await;
    complete_text(&r);
}

#[tokio::test]
async fn param_headers_are_checked_against_the_childs_tool_list() {
    let (relay, record) = legacy(&[]);
    let body = request(
        json!(1),
        "tools/call",
        json!({"name": "test_custom_header", "arguments": {"region": "eu-west"}}),
        meta(),
    );
    // The header the child's tool list asks for is missing, then wrong: refused before the
    // child.
    let mut c = relay.client();
    let r = post(&c, &body).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(last(&r)["error"]["code"], -32020, "{r:?}");
    c.extra.push(("mcp-param-region".into(), "us-east".into()));
    let r = post(&c, &body).await;
    assert_eq!(r.status, 400, "{r:?}");
    let named = |m: &Value| m["params"]["name"] == "test_custom_header";
    assert!(!received(&record).iter().any(named));
    c.extra[0].1 = "eu-west".into();
    let r = post(&c, &body).await;
    assert!(complete_text(&r).contains("eu-west"), "{r:?}");
    assert_eq!(received(&record).iter().filter(|m| named(m)).count(), 1);
}
