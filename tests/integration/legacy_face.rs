//! Legacy (2025-era) clients in front of a child that speaks only 2026-07-28 (issue 17 item 5):
//! `mcp-relay serve --child-era modern` around `mcp-relay-fixture conformance --era modern`,
//! driven over Streamable HTTP sessions. The relay answers `initialize` from the child's
//! `server/discover`, keeps the session, `ping` and the log level, sends every other request
//! statelessly, unpacks `input_required` results into server→client requests on the session,
//! and maps `resources/subscribe` onto `subscriptions/listen`.

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::conn::Conn;
use crate::support::sse::Legacy;
use crate::support::{
    patience, poll_until, read_reply, text_of, wait_event, wait_recorded, Client, Relay, Reply,
};

/// The relay in front of a modern-only child.
fn relay() -> Relay {
    Relay::start(
        &["--child-era", "modern"],
        &["conformance", "--era", "modern"],
    )
}

/// A session opened with every client capability declared.
async fn session(relay: &Relay, version: &str) -> (Client, Value) {
    let mut c = relay.client();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion": version,
        "capabilities": {"elicitation": {}, "sampling": {}, "roots": {"listChanged": true}},
        "clientInfo": {"name": "it", "version": "1"}}});
    let reply = c.post(init).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    c.session = reply.header("mcp-session-id");
    assert!(c.session.is_some(), "no session minted");
    let result = reply.messages()[0]["result"].clone();
    c.version = result["protocolVersion"].as_str().map(str::to_owned);
    let ack = c
        .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    assert_eq!(ack.status, 202);
    (c, result)
}

/// The final answer among a reply's messages.
fn answer(r: &Reply) -> Value {
    r.messages()
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no answer in {r:?}"))
}

#[tokio::test]
async fn legacy_client_initializes_lists_and_calls_a_modern_only_child() {
    let relay = relay();
    let (c, result) = session(&relay, "2025-11-25").await;
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert_eq!(result["serverInfo"]["name"], "mcp-relay-fixture");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");
    // Modern-only fields of the discover result stay behind.
    for field in ["supportedVersions", "resultType", "_meta"] {
        assert!(result.get(field).is_none(), "{field} in {result}");
    }
    let list = answer(
        &c.post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
            .await,
    );
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"test_simple_text"), "{names:?}");
    let call = answer(&c.call(json!("a-1"), "test_simple_text", json!({})).await);
    assert_eq!(call["id"], "a-1");
    assert!(text_of(&call).contains("simple text"), "{call}");

    // An older legacy version is kept; one the relay does not speak gets its latest.
    let (_, older) = session(&relay, "2025-06-18").await;
    assert_eq!(older["protocolVersion"], "2025-06-18");
    let (_, unknown) = session(&relay, "2024-10-07").await;
    assert_eq!(unknown["protocolVersion"], "2025-11-25");
}

#[tokio::test]
async fn ping_and_log_level_are_kept_by_the_relay() {
    let relay = relay();
    let (c, _) = session(&relay, "2025-11-25").await;
    let pong = answer(
        &c.post(json!({"jsonrpc":"2.0","id":1,"method":"ping"}))
            .await,
    );
    assert_eq!(pong, json!({"jsonrpc":"2.0","id":1,"result":{}}));

    let logs = |r: &Reply| {
        r.messages()
            .into_iter()
            .filter(|m| m["method"] == "notifications/message")
            .count()
    };
    // Without a level the modern child logs nothing.
    let quiet = c.call(json!(2), "test_tool_with_logging", json!({})).await;
    assert_eq!(logs(&quiet), 0, "{quiet:?}");
    let set =
        json!({"jsonrpc":"2.0","id":3,"method":"logging/setLevel","params":{"level":"debug"}});
    assert_eq!(answer(&c.post(set).await)["result"], json!({}));
    let loud = c.call(json!(4), "test_tool_with_logging", json!({})).await;
    assert_eq!(logs(&loud), 3, "{loud:?}");
    assert!(text_of(&answer(&loud)).contains("executed successfully"));
    let set =
        json!({"jsonrpc":"2.0","id":5,"method":"logging/setLevel","params":{"level":"error"}});
    assert_eq!(answer(&c.post(set).await)["result"], json!({}));
    let calm = c.call(json!(6), "test_tool_with_logging", json!({})).await;
    assert_eq!(logs(&calm), 0, "{calm:?}");
    // An unknown level is refused as a legacy server refuses it, and changes nothing.
    let bad = json!({"jsonrpc":"2.0","id":7,"method":"logging/setLevel","params":{"level":"loud"}});
    assert_eq!(answer(&c.post(bad).await)["error"]["code"], -32602);
    let still = c.call(json!(8), "test_tool_with_logging", json!({})).await;
    assert_eq!(logs(&still), 0, "{still:?}");
}

/// Calls `tool` and answers each `elicitation/create` it sends on the call's stream with
/// `answers` in order; returns the requests seen and the final answer.
async fn call_answering(c: &Client, tool: &str, answers: &[Value]) -> (Vec<Value>, Value) {
    let body = json!({"jsonrpc":"2.0","id":"m-1","method":"tools/call",
        "params":{"name":tool,"arguments":{}}});
    let res = c
        .post_builder()
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut events = res.bytes_stream().eventsource();
    let mut asked = Vec::new();
    loop {
        let m = wait_event(&mut events, |m| m.get("id").is_some()).await;
        if m.get("method").is_none() {
            return (asked, m);
        }
        assert_eq!(m["method"], "elicitation/create", "{m}");
        let content = answers
            .get(asked.len())
            .cloned()
            .expect("one input too many");
        asked.push(m.clone());
        let reply = json!({"jsonrpc":"2.0","id":m["id"],
            "result":{"action":"accept","content":content}});
        assert_eq!(c.post(reply).await.status, 202);
    }
}

#[tokio::test]
async fn an_input_required_result_becomes_an_elicitation_on_the_session() {
    let relay = relay();
    let (c, _) = session(&relay, "2025-11-25").await;
    let (asked, done) = call_answering(
        &c,
        "test_input_required_result_elicitation",
        &[json!({"name": "Ada"})],
    )
    .await;
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["params"]["message"], "What is your name?");
    assert_eq!(done["id"], "m-1");
    assert_eq!(text_of(&done), "Hello, Ada!");
}

#[tokio::test]
async fn several_rounds_of_input_are_asked_in_turn() {
    let relay = relay();
    let (c, _) = session(&relay, "2025-11-25").await;
    let answers = [json!({"name": "Ada"}), json!({"color": "green"})];
    let (asked, done) =
        call_answering(&c, "test_input_required_result_multi_round", &answers).await;
    assert_eq!(asked.len(), 2);
    assert!(asked[1]["params"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Step 2"));
    // The fixture verified the exact requestState on the last retry.
    assert_eq!(text_of(&done), "Ada likes green (state-ok)");
}

/// A notification `method` of a session: on the triggering call's stream (the relay routes a
/// server message to the one request in flight) or else on the GET stream.
async fn notified(
    get: &mut (impl futures_util::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>>
              + Unpin),
    call: &Reply,
    method: &str,
) -> Value {
    if let Some(m) = call.messages().into_iter().find(|m| m["method"] == method) {
        return m;
    }
    wait_event(get, |m| m["method"] == method).await
}

#[tokio::test]
async fn subscriptions_and_list_changes_reach_the_session() {
    let relay = relay();
    let (c, _) = session(&relay, "2025-11-25").await;
    let get = c.get(None).await;
    assert_eq!(get.status(), 200);
    let mut get = get.bytes_stream().eventsource();
    let uri = "test://watched-resource";
    let trigger = || {
        c.call(
            json!(9),
            "test_trigger_resource_update",
            json!({"uri": uri}),
        )
    };
    assert!(text_of(&answer(&trigger().await)).contains("on 0 listens"));

    let sub = json!({"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":uri}});
    assert_eq!(answer(&c.post(sub).await)["result"], json!({}));
    let call = trigger().await;
    assert!(text_of(&answer(&call)).contains("on 1 listens"), "{call:?}");
    let update = notified(&mut get, &call, "notifications/resources/updated").await;
    assert_eq!(
        update["params"],
        json!({"uri": uri}),
        "listen _meta left in {update}"
    );

    let unsub =
        json!({"jsonrpc":"2.0","id":2,"method":"resources/unsubscribe","params":{"uri":uri}});
    assert_eq!(answer(&c.post(unsub).await)["result"], json!({}));
    let after = trigger().await;
    assert!(
        text_of(&answer(&after)).contains("on 0 listens"),
        "{after:?}"
    );

    // List changes come from the relay's shared listen.
    let change = c
        .call(json!(10), "test_trigger_tool_change", json!({}))
        .await;
    let changed = notified(&mut get, &change, "notifications/tools/list_changed").await;
    assert!(changed["params"]
        .get("_meta")
        .is_none_or(|m| m.get("io.modelcontextprotocol/subscriptionId").is_none()));
}

#[tokio::test]
async fn a_cancelled_call_is_cancelled_at_the_child_and_the_session_goes_on() {
    let (relay, record) = Relay::start_recorded(
        &["--child-era", "modern"],
        &[
            "conformance",
            "--era",
            "modern",
            "--reconnection-ms",
            "20000",
        ],
    );
    let (c, _) = session(&relay, "2025-11-25").await;
    let cancel = |id: &str| {
        json!({"jsonrpc":"2.0","method":"notifications/cancelled",
            "params":{"requestId":id,"reason":"changed my mind"}})
    };
    // Cancelled while the child works on it: the child is told.
    let body = json!({"jsonrpc":"2.0","id":"slow","method":"tools/call",
        "params":{"name":"test_reconnection","arguments":{}}});
    let slow = c.post_builder().body(body.to_string()).send();
    let slow = tokio::spawn(slow);
    wait_recorded(&record, "test_reconnection", 1).await;
    assert_eq!(c.post(cancel("slow")).await.status, 202);
    wait_recorded(&record, "notifications/cancelled", 1).await;
    let slow = read_reply(slow.await.unwrap().unwrap()).await;
    assert!(slow.messages().iter().all(|m| m.get("result").is_none()));

    // Cancelled while the client is asked for input: the stream ends without an answer.
    let body = json!({"jsonrpc":"2.0","id":"asking","method":"tools/call",
        "params":{"name":"test_input_required_result_elicitation","arguments":{}}});
    let res = c
        .post_builder()
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let mut events = res.bytes_stream().eventsource();
    wait_event(&mut events, |m| m["method"] == "elicitation/create").await;
    assert_eq!(c.post(cancel("asking")).await.status, 202);
    let rest = tokio::time::timeout(patience(), async {
        while let Some(Ok(ev)) = events.next().await {
            let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
            assert!(v.get("result").is_none(), "answered after cancel: {v}");
        }
    })
    .await;
    assert!(rest.is_ok(), "the cancelled call's stream did not end");
    let pong = answer(
        &c.post(json!({"jsonrpc":"2.0","id":3,"method":"ping"}))
            .await,
    );
    assert_eq!(pong["result"], json!({}));
}

#[tokio::test]
async fn a_legacy_sse_client_gets_progress_and_sampling_from_a_modern_only_child() {
    let relay = relay();
    let mut c = Legacy::open(&relay).await;
    let init = c.initialize("2024-11-05").await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    // Progress crosses both id spaces back to the client's own token.
    c.send(
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"p"}}}),
    )
    .await;
    let done = c.answer(&json!(1)).await;
    assert!(done.get("result").is_some(), "{done}");
    let progress: Vec<Value> = c.backlog.drain(..).collect();
    assert_eq!(progress.len(), 3, "{progress:?}");
    assert!(progress
        .iter()
        .all(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "p"));
    // An input request arrives on the SSE stream; the answer is POSTed back.
    c.send(
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"test_sampling","arguments":{"prompt":"Say hi"}}}),
    )
    .await;
    let ask = c.until(|m| m["method"] == "sampling/createMessage").await;
    c.send(json!({"jsonrpc":"2.0","id":ask["id"],"result":{
        "role":"assistant","content":{"type":"text","text":"hi there"},"model":"m"}}))
        .await;
    let done = c.answer(&json!(2)).await;
    assert!(text_of(&done).contains("hi there"), "{done}");
}

#[cfg(unix)]
#[tokio::test]
async fn subscriptions_survive_a_restart_of_the_modern_child() {
    let relay = relay();
    let (c, _) = session(&relay, "2025-11-25").await;
    let uri = "test://watched-resource";
    let sub = json!({"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":uri}});
    assert_eq!(answer(&c.post(sub).await)["result"], json!({}));
    let before = relay.children();
    assert_eq!(before.len(), 1, "one modern child: {before:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The pool restarts the child and the session's listen is opened on it again.
    let c = &c;
    poll_until(
        "the listen opened again on the restarted child",
        || async move {
            let r = c
                .call(
                    json!(10),
                    "test_trigger_resource_update",
                    json!({"uri": uri}),
                )
                .await;
            text_of(&answer(&r))
        },
        |text| text.contains("on 1 listens"),
    )
    .await;
    assert_ne!(relay.children(), before);
}
