//! Sessions on one shared child stay apart: a hundred sessions with colliding ids, progress
//! tokens and cancellations (B5), one `initialize` of the child with each session keeping its
//! version, sampling that reaches only its session, child requests without a session.

use super::*;

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
