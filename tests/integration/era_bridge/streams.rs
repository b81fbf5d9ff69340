//! What a modern client hears besides answers: listen streams acknowledged and fed the
//! child's list changes (only the kinds asked for), log messages only at a requested level,
//! caching hints on list results, and the modern code for an unknown resource.

use eventsource_stream::Eventsource;

use super::*;
use crate::support::wait_event;

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/permissions.json");

/// Opens a listen stream with `filter`; its events.
async fn listen(
    c: &Client,
    id: &str,
    filter: Value,
) -> impl futures_util::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>> + Unpin
{
    let body = request(
        json!(id),
        "subscriptions/listen",
        json!({"notifications": filter}),
        meta(),
    );
    let res = builder(c, &body).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    Box::pin(res.bytes_stream().eventsource())
}

fn subscription(v: &Value) -> Value {
    v["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"].clone()
}

#[tokio::test]
async fn listen_streams_get_the_kinds_they_asked_for() {
    let (relay, _record) = legacy(&[]);
    let c = relay.client();
    let mut tools = listen(&c, "sub-tools", json!({"toolsListChanged": true})).await;
    let ack = wait_event(&mut tools, |_| true).await;
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(subscription(&ack), "sub-tools");
    assert_eq!(
        ack["params"]["notifications"]["toolsListChanged"], true,
        "{ack}"
    );
    let mut prompts = listen(&c, "sub-prompts", json!({"promptsListChanged": true})).await;
    let ack = wait_event(&mut prompts, |_| true).await;
    assert_eq!(subscription(&ack), "sub-prompts");
    let r = post(&c, &call(json!(1), "test_trigger_tool_change")).await;
    complete_text(&r);
    let changed = wait_event(&mut tools, |_| true).await;
    assert_eq!(
        changed["method"], "notifications/tools/list_changed",
        "{changed}"
    );
    assert_eq!(subscription(&changed), "sub-tools");
    // The prompts stream did not get the tools change: the next thing it hears, after a
    // prompt change that the child sends later on the same pipe, is that prompt change.
    let r = post(&c, &call(json!(2), "test_trigger_prompt_change")).await;
    complete_text(&r);
    let next = wait_event(&mut prompts, |_| true).await;
    assert_eq!(
        next["method"], "notifications/prompts/list_changed",
        "{next}"
    );
    assert_eq!(subscription(&next), "sub-prompts");
    // And the tools stream did not get the prompt change.
    let r = post(&c, &call(json!(3), "test_trigger_tool_change")).await;
    complete_text(&r);
    let next = wait_event(&mut tools, |_| true).await;
    assert_eq!(next["method"], "notifications/tools/list_changed", "{next}");
    drop((tools, prompts));
}

#[tokio::test]
async fn logs_reach_a_call_only_at_the_level_it_asked_for() {
    let (relay, _record) = legacy(&[]);
    let c = relay.client();
    let quiet = post(&c, &call(json!(1), "test_logging_tool")).await;
    let msgs = quiet.messages();
    assert!(
        !msgs.iter().any(|m| m["method"] == "notifications/message"),
        "{msgs:?}"
    );
    assert_eq!(msgs.last().unwrap()["result"]["resultType"], "complete");
    let mut m = meta();
    m["io.modelcontextprotocol/logLevel"] = json!("debug");
    let body = request(
        json!(2),
        "tools/call",
        json!({"name": "test_logging_tool", "arguments": {}}),
        m,
    );
    let msgs = post(&c, &body).await.messages();
    let logs = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .count();
    assert!(logs >= 1, "{msgs:?}");
    assert_eq!(msgs.last().unwrap()["id"], 2);
}

fn list_tools(id: i64) -> Value {
    request(json!(id), "tools/list", json!({}), meta())
}

#[tokio::test]
async fn list_results_carry_the_configured_caching_hints() {
    let (relay, _record) = legacy(&["--cache-ttl", "30s", "--cache-scope", "public"]);
    let c = relay.client();
    let r = last(&post(&c, &list_tools(1)).await)["result"].clone();
    assert_eq!(
        (
            r["resultType"].clone(),
            r["ttlMs"].clone(),
            r["cacheScope"].clone()
        ),
        (json!("complete"), json!(30000), json!("public")),
        "{r}"
    );
    // A call is no list: no hints.
    let r = last(&post(&c, &call(json!(2), "test_simple_text")).await)["result"].clone();
    assert!(r.get("ttlMs").is_none(), "{r}");
    // An unknown resource is the modern -32602, naming it.
    let read = request(
        json!(3),
        "resources/read",
        json!({"uri": "test://no/such/resource"}),
        meta(),
    );
    let e = last(&post(&c, &read).await)["error"].clone();
    assert_eq!(e["code"], -32602, "{e}");
    assert_eq!(e["data"]["uri"], "test://no/such/resource", "{e}");
}

#[tokio::test]
async fn a_list_filtered_for_the_caller_is_private() {
    let (relay, _record, _audit) = authed(&[
        "--roles",
        SEED,
        "--cache-ttl",
        "30s",
        "--cache-scope",
        "public",
    ]);
    let user = as_user(&relay, "ursula", "user");
    let r = last(&post(&user, &list_tools(1)).await)["result"].clone();
    assert_eq!(
        (r["ttlMs"].clone(), r["cacheScope"].clone()),
        (json!(30000), json!("private")),
        "{r}"
    );
    let admin = as_user(&relay, "ada", "admin");
    let r = last(&post(&admin, &list_tools(2)).await)["result"].clone();
    assert_eq!(r["cacheScope"], "public", "{r}");
}

#[tokio::test]
async fn a_listen_watches_only_the_uris_the_roles_allow() {
    let roles = tempdir().join("roles.json");
    std::fs::write(
        &roles,
        r#"{"watcher": {
            "allowedMethods": ["server/discover", "subscriptions/listen", "resources/subscribe"],
            "resources": {"allow": ["test://static-*"]}
        }}"#,
    )
    .unwrap();
    let (relay, record, _audit) = authed(&["--roles", roles.to_str().unwrap()]);
    let c = as_user(&relay, "wendy", "watcher");
    let filter =
        json!({"resourceSubscriptions": ["test://static-text", "test://watched-resource"]});
    let mut events = listen(&c, "W", filter).await;
    let ack = wait_event(&mut events, |_| true).await;
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!(["test://static-text"]),
        "{ack}"
    );
    // The child was subscribed to the allowed URI only.
    child_got(&record, "a subscribe for the allowed URI", |v| {
        v["method"] == "resources/subscribe" && v["params"]["uri"] == "test://static-text"
    })
    .await;
    assert!(
        !received(&record)
            .iter()
            .any(|v| v["params"]["uri"] == "test://watched-resource"),
        "{:?}",
        received(&record)
    );
}
