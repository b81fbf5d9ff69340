//! A session's life: initialize (a session id, priming), the status codes of the spec,
//! batches (2025-03-26 only), DELETE, idle expiry (D4), JSON response mode, a modern request to
//! a legacy child, and `/health` and `/ready`.

use super::*;

#[tokio::test]
async fn initialize_mints_a_session_and_streams_with_priming() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    let reply = c.initialize("2025-11-25").await;
    let sid = c.session.clone().unwrap();
    assert_eq!(sid.len(), 32);
    assert!(sid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    assert_eq!(reply.header("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-cache"));
    // 2025-11-25: first event primes (id, retry, empty data).
    assert!(reply.events[0].data.is_empty());
    assert!(!reply.events[0].id.is_empty());
    assert_eq!(reply.events[0].retry, Some(Duration::from_secs(1)));
    assert_eq!(
        reply.messages()[0]["result"]["protocolVersion"],
        "2025-11-25"
    );

    // Older versions get no priming event.
    let mut old = relay.client();
    let r = old.initialize("2025-03-26").await;
    assert!(!r.events[0].data.is_empty());
}

#[tokio::test]
async fn c5_status_codes_follow_the_spec() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-06-18").await;
    let http = reqwest::Client::new();
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let sid = c.session.clone().unwrap();

    // 415 wrong content type, 406 missing accept, 405 other method.
    let r = http
        .post(&relay.url)
        .header("content-type", "text/plain")
        .header("accept", crate::support::ACCEPT_BOTH)
        .header("mcp-session-id", &sid)
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = http
        .post(&relay.url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-session-id", &sid)
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);
    let r = http
        .put(&relay.url)
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("allow").is_some());
    let r = http
        .get(&relay.url)
        .header("accept", "application/json")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 406);

    // 400 missing session, 404 unknown session, bit-flipped session.
    let anon = Client::new(&relay.url);
    let r = anon.post_raw(ping.clone()).await;
    assert_eq!((r.status, code(&r)), (400, -31011));
    let mut flipped = c.clone();
    let mut bytes = sid.clone().into_bytes();
    bytes[0] = if bytes[0] == b'a' { b'b' } else { b'a' };
    flipped.session = Some(String::from_utf8(bytes).unwrap());
    let r = flipped.post_raw(ping.clone()).await;
    assert_eq!((r.status, code(&r)), (404, -31003));
    assert_eq!(flipped.delete().await, 404);

    // Parse error, invalid envelope, duplicate and look-alike keys, batch on 2025-06-18.
    for (body, status, want) in [
        ("{not json", 400, -32700),
        ("\u{ff}", 400, -32700),
        (r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#, 400, -32600),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","id":2}"#,
            400,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"crash"}}"#,
            400,
            -32600,
        ),
        (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, 400, -32600),
        ("[]", 400, -32600),
        (r#"{"jsonrpc":"2.0","id":9,"result":{}}"#, 400, -32600),
    ] {
        let r = c.post_raw(body.to_owned()).await;
        assert_eq!((r.status, code(&r)), (status, want), "{body}");
        assert_eq!(r.json()["error"]["data"]["source"], "mcp-relay");
    }

    // Protocol version header: mismatch and garbage are 400.
    let mut wrong = c.clone();
    wrong.version = Some("2025-03-26".into());
    assert_eq!(wrong.post_raw(ping.clone()).await.status, 400);
    wrong.version = Some("banana".into());
    assert_eq!(wrong.post_raw(ping.clone()).await.status, 400);

    // Second initialize on a session: 400 -32600.
    let r = c.post(init_request(json!(5), "2025-06-18")).await;
    assert_eq!((r.status, code(&r)), (400, -32600));

    // The session still works after all that.
    let r = c.post_raw(ping).await;
    assert_eq!(r.messages()[0]["result"], json!({}));
}

#[tokio::test]
async fn b3_batches_only_on_2025_03_26_sessions() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-03-26").await;
    let r = c
        .post(json!([
            {"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"text":"A"}}},
            {"jsonrpc":"2.0","method":"notifications/roots/list_changed"},
            {"jsonrpc":"2.0","id":"b","method":"ping"}
        ]))
        .await;
    let mut ids: Vec<String> = r.messages().iter().map(|m| m["id"].to_string()).collect();
    ids.sort();
    assert_eq!(ids, [r#""a""#, r#""b""#]);
    // Notification-only batch: 202. Over 100 elements: 400.
    let r = c
        .post(json!([{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}]))
        .await;
    assert_eq!(r.status, 202);
    let big: Vec<Value> = (0..101)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"ping"}))
        .collect();
    assert_eq!(c.post(Value::Array(big)).await.status, 400);
    // Nested arrays are never envelopes.
    assert_eq!(
        c.post(json!([[{"jsonrpc":"2.0","id":1,"method":"ping"}]]))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn delete_ends_the_session_and_its_child() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let pid: u32 = text_of(&c.call(json!(1), "pid", json!({})).await.messages()[0])
        .parse()
        .unwrap();
    assert_eq!(c.delete().await, 200);
    let r = c.call(json!(2), "echo", json!({"text":"x"})).await;
    assert_eq!(r.status, 404);
    eventually("child reaped", || !crate::support::alive(pid)).await;
    let h = relay.health().await;
    assert_eq!(h["sessions"], 0);
    eventually("no children", || relay.children().is_empty()).await;
}

#[tokio::test]
async fn d4_idle_sessions_expire_and_their_children_stop() {
    let relay = Relay::start(&["--session-ttl", "300ms"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    eventually("child spawned", || !relay.children().is_empty()).await;
    eventually("child stopped", || relay.children().is_empty()).await;
    let r = c.call(json!(1), "echo", json!({"text":"late"})).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn json_response_mode_answers_application_json() {
    let relay = Relay::start(&["--response-mode", "json"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c.call(json!(1), "echo", json!({"text":"j"})).await;
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(text_of(&r.json()), "j");
    // A call with progress first still streams.
    let r = c
        .post(
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"progress",
            "arguments":{"steps":2,"interval_ms":5},"_meta":{"progressToken":1}}}),
        )
        .await;
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.messages().len(), 3);
}

#[tokio::test]
async fn modern_request_refused_by_era_policy_gets_a_non_modern_400_then_initialize_works() {
    let relay = Relay::start(&["--era", "legacy-only"], &[]);
    let mut c = relay.client();
    // What a dual-era client sends first (2026-07-28 basic/versioning).
    let probe = c
        .post_builder()
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover")
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{},
            "io.modelcontextprotocol/clientInfo":{"name":"dual","version":"1"}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let r = read_reply(probe).await;
    assert_eq!(r.status, 400);
    let code = r.json()["error"]["code"].as_i64().unwrap();
    assert!(
        !(-32022..=-32020).contains(&code),
        "must not look modern: {code}"
    );
    // The fallback: a plain initialize on the same endpoint.
    c.initialize("2025-11-25").await;
    let r = c.call(json!(2), "echo", json!({"text":"fell back"})).await;
    assert_eq!(text_of(&r.messages()[0]), "fell back");
}

#[tokio::test]
async fn health_and_ready_report_state() {
    let relay = Relay::start(&[], &[]);
    let h = relay.health().await;
    assert_eq!(
        (h["status"].as_str(), h["sessions"].as_u64()),
        (Some("ok"), Some(0))
    );
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let h = relay.health().await;
    assert_eq!(
        (h["sessions"].as_u64(), h["children"].as_u64()),
        (Some(1), Some(1))
    );
    let r = reqwest::get(format!("{}/ready", relay.base)).await.unwrap();
    assert_eq!(r.status(), 200);
}
