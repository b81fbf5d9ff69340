//! `--session-mode shared` and `per-identity`: many sessions on one child. Colliding ids,
//! tokens and cancellations stay per session; child requests reach only their session;
//! global notifications fan out by the rules; the child restarts under its sessions; 500
//! sessions run on exactly N children.

use std::collections::{HashMap, HashSet};

use eventsource_stream::Eventsource;
use futures_util::future::join_all;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::{
    eventually, init_request, read_reply, text_of, wait_event, wait_recorded, Client, Relay,
};

const SHARED: &[&str] = &["--session-mode", "shared"];

async fn session(relay: &Relay) -> Client {
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    c
}

async fn pid_of(c: &Client) -> String {
    text_of(&c.call(json!("pid"), "pid", json!({})).await.messages()[0])
}

/// Opens the standalone GET stream and returns its event stream.
async fn listen(
    c: &Client,
) -> impl futures_util::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>> + Unpin
{
    let res = c.get(None).await;
    assert_eq!(res.status(), 200);
    Box::pin(res.bytes_stream().eventsource())
}

/// JSON-RPC messages that arrive on `stream` within `ms` milliseconds.
async fn drain_for(
    stream: &mut (impl futures_util::Stream<Item = Result<eventsource_stream::Event, impl std::fmt::Debug>>
              + Unpin),
    ms: u64,
) -> Vec<Value> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(ms);
    while let Ok(Some(Ok(ev))) = tokio::time::timeout_at(deadline, stream.next()).await {
        if !ev.data.is_empty() {
            out.push(serde_json::from_str(&ev.data).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b5_hundred_sessions_with_colliding_ids_tokens_and_cancels_share_one_child() {
    let relay = Relay::start(SHARED, &[]);
    let clients = join_all((0..100).map(|_| session(&relay))).await;
    let tasks = clients.into_iter().enumerate().map(|(s, c)| {
        tokio::spawn(async move {
            let calls = futures_util::stream::iter(1..=200u64).map(|i| {
                let c = c.clone();
                async move { one_call(&c, s, i).await }
            });
            let outcomes: Vec<&'static str> = calls.buffer_unordered(2).collect().await;
            outcomes
        })
    });
    let mut kinds: HashMap<&str, usize> = HashMap::new();
    for t in join_all(tasks).await {
        let outcomes = t.unwrap();
        assert_eq!(outcomes.len(), 200);
        for k in outcomes {
            *kinds.entry(k).or_default() += 1;
        }
    }
    assert_eq!(kinds["echo"], 100 * 160, "{kinds:?}");
    assert_eq!(kinds["progress"], 100 * 20, "{kinds:?}");
    assert_eq!(kinds["cancelled"], 100 * 20, "{kinds:?}");
    assert_eq!(relay.children().len(), 1);
    assert_eq!(relay.health().await["children"], 1);
    assert_eq!(relay.health().await["session_mode"], "shared");
}

/// One call of session `s` with id `i` (odd ids as strings): an echo, a progress call whose
/// token collides across sessions, or a slow call cancelled by the client.
async fn one_call(c: &Client, s: usize, i: u64) -> &'static str {
    let id = if i % 2 == 1 {
        json!(i.to_string())
    } else {
        json!(i)
    };
    match i % 10 {
        0 => {
            let r = c
                .post(
                    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{
                    "name":"progress","arguments":{"steps":2,"interval_ms":1},
                    "_meta":{"progressToken":"tok"}}}),
                )
                .await;
            let m = r.messages();
            assert_eq!(m.len(), 3, "session {s} call {i}: {m:?}");
            for p in &m[..2] {
                assert_eq!(p["method"], "notifications/progress");
                assert_eq!(p["params"]["progressToken"], "tok");
            }
            assert_eq!(m[2]["id"], id);
            assert_eq!(text_of(&m[2]), "done");
            "progress"
        }
        5 => {
            let res = c
                .post_builder()
                .body(
                    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
                        "params":{"name":"slow","arguments":{"ms":30000}}})
                    .to_string(),
                )
                .send()
                .await
                .unwrap();
            let ack = c
                .post(json!({"jsonrpc":"2.0","method":"notifications/cancelled",
                    "params":{"requestId":id,"reason":"test"}}))
                .await;
            assert_eq!(ack.status, 202);
            let r = read_reply(res).await;
            assert!(r.messages().is_empty(), "cancelled call answered: {r:?}");
            "cancelled"
        }
        _ => {
            let text = format!("s{s}-c{i}");
            let r = c.call(id.clone(), "echo", json!({ "text": text })).await;
            let m = r.messages();
            assert_eq!(m.len(), 1, "session {s} call {i}: {m:?}");
            assert_eq!(m[0]["id"], id);
            assert_eq!(text_of(&m[0]), text);
            "echo"
        }
    }
}

#[tokio::test]
async fn shared_initialize_runs_once_and_sessions_keep_their_version() {
    let (relay, record) = Relay::start_recorded(SHARED, &[]);
    let mut a = relay.client();
    let ra = a.initialize("2025-06-18").await;
    assert_eq!(ra.messages()[0]["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(ra.messages()[0]["id"], 0);
    let mut b = relay.client();
    let rb = b.initialize("2025-11-25").await;
    assert_eq!(rb.messages()[0]["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(
        rb.messages()[0]["result"]["serverInfo"]["name"],
        "mcp-relay-fixture"
    );
    assert_ne!(a.session, b.session);
    assert_eq!(pid_of(&a).await, pid_of(&b).await);
    let log = std::fs::read_to_string(&record).unwrap();
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count(r#""method":"initialize""#), 1, "{log}");
    assert_eq!(count("notifications/initialized"), 1, "{log}");
    assert!(log.contains(r#""name":"mcp-relay""#), "{log}");
}

#[tokio::test]
async fn shared_sampling_reaches_only_its_session_and_completes_its_call() {
    let relay = Relay::start(SHARED, &[]);
    let x = session(&relay).await;
    let y = session(&relay).await;
    let mut y_get = listen(&y).await;
    // Y keeps a call in flight, so "one request in flight" cannot pick X.
    let y_slow = {
        let y = y.clone();
        tokio::spawn(async move { y.call(json!(1), "slow", json!({"ms": 1500})).await })
    };
    let res = x
        .post_builder()
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
                "params":{"name":"sample","arguments":{},"_meta":{"progressToken":1}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let mut events = Box::pin(res.bytes_stream().eventsource());
    let ask = wait_event(&mut events, |v| v["method"] == "sampling/createMessage").await;
    assert_eq!(ask["params"]["_meta"]["progressToken"], 1, "{ask}");
    let answer = json!({"jsonrpc":"2.0","id":ask["id"],"result":{
        "role":"assistant","content":{"type":"text","text":"from X"},"model":"m"}});
    // Only X may answer it.
    assert_eq!(y.post(answer.clone()).await.status, 400);
    assert_eq!(x.post(answer).await.status, 202);
    let done = wait_event(&mut events, |v| v["id"] == 1).await;
    assert!(text_of(&done).contains("from X"), "{done}");
    let y_reply = y_slow.await.unwrap();
    assert_eq!(y_reply.messages().len(), 1, "{y_reply:?}");
    assert!(drain_for(&mut y_get, 200).await.is_empty());
}

#[tokio::test]
async fn shared_child_requests_without_a_session_or_capability_get_method_not_found() {
    let relay = Relay::start(SHARED, &[]);
    // No sampling capability: the child is refused as that client would refuse it.
    let mut bare = relay.client();
    let init = json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"1"}}});
    let r = bare.post(init).await;
    bare.session = r.header("mcp-session-id");
    bare.version = Some("2025-11-25".into());
    let reply = bare.call(json!(1), "sample", json!({})).await;
    let m = reply.messages();
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(text_of(&m[0]).contains("-32601"), "{m:?}");
    // Elicitation is not declared by the test client either.
    let c = session(&relay).await;
    let reply = c.call(json!(2), "elicit", json!({})).await;
    assert!(text_of(&reply.messages()[0]).contains("-32601"));
}

#[tokio::test]
async fn shared_list_changed_fans_out_and_log_messages_follow_each_sessions_level() {
    let (relay, record) = Relay::start_recorded(SHARED, &[]);
    let quiet = session(&relay).await;
    let chatty = session(&relay).await;
    let plain = session(&relay).await;
    let busy = session(&relay).await;
    async fn set(c: &Client, level: &str, id: u64) -> crate::support::Reply {
        c.post(json!({"jsonrpc":"2.0","id":id,"method":"logging/setLevel",
            "params":{"level":level}}))
            .await
    }
    assert_eq!(
        set(&quiet, "error", 1).await.messages()[0]["result"],
        json!({})
    );
    assert_eq!(
        set(&chatty, "debug", 1).await.messages()[0]["result"],
        json!({})
    );
    wait_recorded(&record, r#""level":"debug""#, 1).await;
    let mut streams = Vec::new();
    for c in [&quiet, &chatty, &plain, &busy] {
        streams.push(listen(c).await);
    }
    let slow = {
        let busy = busy.clone();
        tokio::spawn(async move { busy.call(json!(9), "slow", json!({"ms": 1000})).await })
    };
    wait_recorded(&record, r#""name":"slow""#, 1).await;
    let r = plain.call(json!(1), "notify", json!({})).await;
    assert_eq!(text_of(r.messages().last().unwrap()), "notified");
    slow.await.unwrap();
    let mut got = Vec::new();
    for s in &mut streams {
        got.push(drain_for(s, 500).await);
    }
    let has =
        |msgs: &Vec<Value>, method: &str| msgs.iter().filter(|m| m["method"] == method).count();
    for (i, msgs) in got.iter().enumerate() {
        assert_eq!(
            has(msgs, "notifications/tools/list_changed"),
            1,
            "session {i}: {msgs:?}"
        );
    }
    assert_eq!(
        has(&got[0], "notifications/message"),
        0,
        "error level: {:?}",
        got[0]
    );
    assert_eq!(
        has(&got[1], "notifications/message"),
        1,
        "debug level: {:?}",
        got[1]
    );
    assert_eq!(
        has(&got[2], "notifications/message"),
        1,
        "no level: {:?}",
        got[2]
    );
    assert_eq!(
        has(&got[3], "notifications/message"),
        1,
        "no level: {:?}",
        got[3]
    );
}

#[tokio::test]
async fn shared_subscriptions_are_counted_and_updates_reach_subscribers_only() {
    let (relay, record) = Relay::start_recorded(SHARED, &[]);
    let a = session(&relay).await;
    let b = session(&relay).await;
    let c = session(&relay).await;
    async fn sub(cl: &Client, method: &str, uri: &str) -> crate::support::Reply {
        cl.post(json!({"jsonrpc":"2.0","id":5,"method":method,"params":{"uri":uri}}))
            .await
    }
    for cl in [&a, &b] {
        assert_eq!(
            sub(cl, "resources/subscribe", "x://a").await.messages()[0]["id"],
            5
        );
    }
    assert_eq!(
        sub(&c, "resources/subscribe", "x://b").await.messages()[0]["id"],
        5
    );
    let log = std::fs::read_to_string(&record).unwrap();
    assert_eq!(log.matches(r#""uri":"x://a""#).count(), 1, "{log}");
    let mut streams = Vec::new();
    for cl in [&a, &b, &c] {
        streams.push(listen(cl).await);
    }
    let r = c.call(json!(1), "touch", json!({"uri": "x://a"})).await;
    assert_eq!(text_of(&r.messages()[0]), "touched x://a");
    let updated = |m: &Vec<Value>| {
        m.iter()
            .filter(|v| v["method"] == "notifications/resources/updated")
            .count()
    };
    assert_eq!(updated(&drain_for(&mut streams[0], 300).await), 1);
    assert_eq!(updated(&drain_for(&mut streams[1], 300).await), 1);
    assert_eq!(updated(&drain_for(&mut streams[2], 300).await), 0);
    // The child hears the unsubscribe only after the last subscriber left.
    sub(&a, "resources/unsubscribe", "x://a").await;
    assert_eq!(b.delete().await, 200);
    wait_recorded(&record, "resources/unsubscribe", 1).await;
    let r = c.call(json!(2), "touch", json!({"uri": "x://a"})).await;
    assert_eq!(text_of(&r.messages()[0]), "not subscribed: x://a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_kill_9_of_the_shared_child_fails_pending_calls_and_sessions_carry_on() {
    let (relay, record) = Relay::start_recorded(SHARED, &[]);
    let clients = join_all((0..10).map(|_| session(&relay))).await;
    let sub = clients[0]
        .post(
            json!({"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"x://k"}}),
        )
        .await;
    assert_eq!(sub.messages()[0]["result"], json!({}));
    let old_pid = pid_of(&clients[0]).await;
    let pending: Vec<_> = clients
        .iter()
        .flat_map(|c| {
            (0..3).map(move |i| {
                let c = c.clone();
                tokio::spawn(async move { c.call(json!(i), "slow", json!({"ms": 60000})).await })
            })
        })
        .collect();
    wait_recorded(&record, r#""name":"slow""#, 30).await;
    let pid: i32 = old_pid.parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for p in join_all(pending).await {
        let r = p.unwrap();
        let m = r.messages();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0]["error"]["code"], -31007, "{m:?}");
    }
    let mut new_pid = String::new();
    for c in &clients {
        new_pid = pid_of(c).await;
        assert!(!new_pid.is_empty() && new_pid != old_pid);
    }
    assert_eq!(relay.health().await["sessions"], 10);
    assert_eq!(relay.children().len(), 1);
    // The subscription was issued again to the new child.
    let r = clients[1]
        .call(json!(1), "touch", json!({"uri": "x://k"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "touched x://k", "{new_pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_five_hundred_sessions_run_on_exactly_n_children() {
    let relay = Relay::start(&["--session-mode", "shared", "--children", "3"], &[]);
    let clients: Vec<Client> = futures_util::stream::iter(0..500)
        .map(|_| session(&relay))
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(relay.health().await["sessions"], 500);
    assert_eq!(relay.children().len(), 3);
    assert_eq!(relay.health().await["children"], 3);
    let pids: HashSet<String> = futures_util::stream::iter(clients.iter().take(30))
        .map(pid_of)
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(pids.len(), 3, "{pids:?}");
}

#[tokio::test]
async fn e3_crash_looping_shared_child_opens_the_circuit() {
    let relay = Relay::start(SHARED, &["--crash-on-init"]);
    eventually("circuit open", || relay.logs().contains("circuit open")).await;
    let res = relay
        .client()
        .post_builder()
        .body(init_request(json!(1), "2025-11-25").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31006);
    assert_eq!(body["error"]["data"]["reason"], "circuit_open");
    let ready = reqwest::get(format!("{}/ready", relay.base)).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(relay.children().len() <= 1);
}

#[tokio::test]
async fn per_identity_children_keep_each_identity_apart() {
    let relay = Relay::start(
        &[
            "--session-mode",
            "per-identity",
            "--identity-header",
            "X-User",
            "--env",
            "MCP_USER={identity}",
        ],
        &[],
    );
    let as_user = |name: &str| {
        let mut c = relay.client();
        c.extra.push(("x-user".into(), name.into()));
        c
    };
    let mut alice1 = as_user("alice");
    let mut alice2 = as_user("alice");
    let mut bob = as_user("bob");
    for c in [&mut alice1, &mut alice2, &mut bob] {
        c.initialize("2025-11-25").await;
    }
    let env = |c: &Client| {
        let c = c.clone();
        async move {
            text_of(
                &c.call(json!(1), "env", json!({"name": "MCP_USER"}))
                    .await
                    .messages()[0],
            )
        }
    };
    assert_eq!(env(&alice1).await, "alice");
    assert_eq!(env(&bob).await, "bob");
    assert_eq!(pid_of(&alice1).await, pid_of(&alice2).await);
    assert_ne!(pid_of(&alice1).await, pid_of(&bob).await);
    assert_eq!(relay.children().len(), 2);
    // Bob cannot use Alice's session: the same 404 as an unknown one.
    let mut stolen = as_user("bob");
    stolen.session = alice1.session.clone();
    stolen.version = alice1.version.clone();
    assert_eq!(stolen.call(json!(1), "pid", json!({})).await.status, 404);
    // No identity, or a malformed one: 400.
    let anonymous = relay.client();
    let r = anonymous.post(init_request(json!(1), "2025-11-25")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["data"]["reason"], "missing_identity");
    let r = as_user("a b;c")
        .post(init_request(json!(1), "2025-11-25"))
        .await;
    assert_eq!(r.json()["error"]["data"]["reason"], "bad_identity");
    // Modern requests would share one pool across identities: they get the fallback 400.
    let r = as_user("alice")
        .post_builder()
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover")
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
                "io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientCapabilities":{}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(relay.children().len(), 2);
}

#[tokio::test]
async fn per_identity_env_templates_may_not_target_loader_variables() {
    let out = std::process::Command::new(crate::support::RELAY)
        .args([
            "serve",
            "--session-mode",
            "per-identity",
            "--identity-header",
            "x-user",
            "--env",
            "LD_PRELOAD={identity}",
            "--",
            crate::support::FIXTURE,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LD_PRELOAD"), "{err}");
}

#[tokio::test]
async fn per_identity_child_stops_after_its_last_session_has_been_gone_for_the_ttl() {
    let relay = Relay::start(
        &[
            "--session-mode",
            "per-identity",
            "--identity-header",
            "x-user",
            "--session-ttl",
            "1s",
        ],
        &[],
    );
    let mut c = relay.client();
    c.extra.push(("x-user".into(), "carol".into()));
    c.initialize("2025-11-25").await;
    assert_eq!(relay.children().len(), 1);
    assert_eq!(c.delete().await, 200);
    eventually("carol's child stopped", || relay.children().is_empty()).await;
    // She comes back: a new child.
    let mut again = relay.client();
    again.extra.push(("x-user".into(), "carol".into()));
    again.initialize("2025-11-25").await;
    assert_eq!(relay.children().len(), 1);
}

#[tokio::test]
async fn shared_child_in_flight_cap_answers_503_and_frees_up() {
    let (relay, record) = Relay::start_recorded(
        &["--session-mode", "shared", "--max-inflight-per-child", "2"],
        &[],
    );
    let a = session(&relay).await;
    let b = session(&relay).await;
    let c = session(&relay).await;
    let busy: Vec<_> = [&a, &b]
        .into_iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.call(json!(1), "slow", json!({"ms": 800})).await })
        })
        .collect();
    wait_recorded(&record, r#""name":"slow""#, 2).await;
    let mut refused = None;
    for _ in 0..100 {
        let r = c.call(json!(2), "echo", json!({"text": "x"})).await;
        if r.status == 503 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the third call was never refused");
    assert_eq!(r.json()["error"]["code"], -31005);
    assert!(r.header("retry-after").is_some());
    for t in busy {
        assert_eq!(t.await.unwrap().messages().len(), 1);
    }
    let r = c.call(json!(3), "echo", json!({"text": "y"})).await;
    assert_eq!(text_of(&r.messages()[0]), "y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5_a_session_that_stops_reading_does_not_stall_the_others() {
    let relay = Relay::start(SHARED, &[]);
    let stalled = session(&relay).await;
    let other = session(&relay).await;
    // 20,000 progress events nobody reads.
    let res = stalled
        .post_builder()
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
                "name":"progress","arguments":{"steps":20000,"interval_ms":0},
                "_meta":{"progressToken":1}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    for i in 0..50 {
        let started = std::time::Instant::now();
        let r = other.call(json!(i), "echo", json!({"text": "ok"})).await;
        assert_eq!(text_of(&r.messages()[0]), "ok");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    drop(res);
}
