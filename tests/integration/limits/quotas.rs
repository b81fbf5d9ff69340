//! Per-tool limits (-31004 inside the session, other tools unaffected), denied calls that
//! spend no quota, the per-principal concurrency cap, and TCP request messages counted against
//! the principal's rate.

use super::*;

#[tokio::test]
async fn per_tool_limit_answers_31004_inside_the_session_while_other_tools_work() {
    let (alice, block) = api_key("a", "alice");
    let cfg = config(&format!(
        "[auth]\nresource = \"{RESOURCE}\"\n{block}\n\n[limits]\nper_tool = \"2/min\"\n"
    ));
    let relay = serve(&cfg, &["--resource", RESOURCE]);
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), alice)];
    c.initialize(VERSION).await;
    for i in 1..=4 {
        let reply = c.call(json!(i), "echo", json!({"text": "hi"})).await;
        assert_eq!(text_of(&reply.messages()[0]), "hi", "{reply:?}");
    }
    let reply = c.call(json!(5), "echo", json!({"text": "hi"})).await;
    assert_eq!(
        reply.status, 200,
        "an error about one request never changes the stream"
    );
    let m = &reply.messages()[0];
    assert_eq!(m["id"], 5, "{m}");
    assert_eq!(m["error"]["code"], -31004, "{m}");
    assert!(
        m["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 0,
        "{m}"
    );
    // Other tools and methods keep working in the same session.
    let reply = c.call(json!(6), "slow", json!({"ms": 1})).await;
    assert!(reply.messages()[0].get("result").is_some(), "{reply:?}");
    let reply = c
        .post(json!({"jsonrpc":"2.0","id":7,"method":"tools/list"}))
        .await;
    assert!(reply.messages()[0]["result"]["tools"].is_array());
    // A new session is the same principal: still limited.
    let mut again = relay.client();
    again.extra = c.extra.clone();
    again.initialize(VERSION).await;
    let reply = again.call(json!(1), "echo", json!({"text": "hi"})).await;
    assert_eq!(reply.messages()[0]["error"]["code"], -31004);
}

#[tokio::test]
async fn b1_denied_calls_spend_no_tool_quota() {
    let out = Command::new(RELAY)
        .args([
            "token",
            "key",
            "--id",
            "u",
            "--principal",
            "ulla",
            "--roles",
            "user",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.lines().next().unwrap().trim().to_owned();
    let block = &text[text.find("[[auth.api_keys]]").unwrap()..];
    let cfg = config(&format!(
        "[auth]\nresource = \"{RESOURCE}\"\n{block}\n\n[limits]\nper_tool = \"1/min\"\nper_tool_burst = 1\n"
    ));
    let roles = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/permissions.json");
    let relay = serve(
        &cfg,
        &["--resource", RESOURCE, "--roles", roles.to_str().unwrap()],
    );
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), key)];
    c.initialize(VERSION).await;
    // RBAC runs first: a denied tool is always the unknown-tool answer, never -31004.
    for i in 0..3 {
        let reply = c.call(json!(i), "delete_all", json!({})).await;
        assert_eq!(reply.messages()[0]["error"]["code"], -32602, "{reply:?}");
    }
    let reply = c.call(json!(10), "echo", json!({"text": "one"})).await;
    assert_eq!(text_of(&reply.messages()[0]), "one");
    let reply = c.call(json!(11), "echo", json!({"text": "two"})).await;
    assert_eq!(reply.messages()[0]["error"]["code"], -31004, "{reply:?}");
}

#[tokio::test]
async fn d6_65th_concurrent_call_of_one_principal_is_refused_at_once() {
    let (alice, a_block) = api_key("a", "alice");
    let (bob, b_block) = api_key("b", "bob");
    let cfg = config(&format!(
        "[auth]\nresource = \"{RESOURCE}\"\n{a_block}\n{b_block}\n"
    ));
    let path = cfg.to_str().unwrap().to_owned();
    let (relay, record) = Relay::start_recorded(
        &[
            "--config",
            &path,
            "--resource",
            RESOURCE,
            "--max-inflight",
            "200",
        ],
        &[],
    );
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), alice)];
    c.initialize(VERSION).await;
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.call(json!(100 + i), "slow", json!({"ms": 3000})).await })
        })
        .collect();
    wait_recorded(&record, "\"slow\"", 64).await;
    let started = Instant::now();
    let res = c
        .post_builder()
        .body(ping().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once"
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], -31005, "{v}");
    assert_eq!(
        v["error"]["data"]["reason"], "principal_inflight_cap",
        "{v}"
    );
    // Another principal carries on meanwhile.
    let mut b = relay.client();
    b.extra = vec![("x-api-key".into(), bob)];
    b.initialize(VERSION).await;
    let reply = b.call(json!(1), "echo", json!({"text": "bob"})).await;
    assert_eq!(text_of(&reply.messages()[0]), "bob");
    // Every one of the 64 completes; then alice has room again.
    for call in calls {
        let reply = call.await.unwrap();
        assert!(reply.messages()[0].get("result").is_some(), "{reply:?}");
    }
    let reply = c.call(json!(1), "echo", json!({"text": "again"})).await;
    assert_eq!(text_of(&reply.messages()[0]), "again");
}

#[tokio::test]
async fn tcp_request_messages_count_against_the_principal_rate() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let cfg = config("[limits]\nper_principal = \"2/min\"\nper_principal_burst = 2\n");
    let relay = serve(&cfg, &["--tcp-listen", "127.0.0.1:0"]);
    let addr = tcp_listening(&relay).await;
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (r, mut w) = tcp.into_split();
    let mut lines = tokio::io::BufReader::new(r).lines();
    let requests = [
        init_request(json!(1), VERSION),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"ping"}),
        json!({"jsonrpc":"2.0","id":3,"method":"ping"}),
    ];
    for r in &requests {
        w.write_all((r.to_string() + "\n").as_bytes())
            .await
            .unwrap();
    }
    let mut answers = std::collections::HashMap::new();
    while answers.len() < 3 {
        let line = tokio::time::timeout(patience(), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("connection closed");
        let v: Value = serde_json::from_str(&line).unwrap();
        if let Some(id) = v["id"].as_i64() {
            answers.insert(id, v);
        }
    }
    assert!(answers[&1].get("result").is_some(), "{:?}", answers[&1]);
    assert!(answers[&2].get("result").is_some(), "{:?}", answers[&2]);
    let limited = &answers[&3];
    assert_eq!(limited["error"]["code"], -31004, "{limited}");
    assert!(limited["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 1000);
}
