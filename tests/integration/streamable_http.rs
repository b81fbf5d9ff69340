//! Streamable HTTP: status codes, headers, session lifecycle, streams, resumability,
//! server→client requests, cancellation, guards and limits (PROTOCOL.md §2, SECURITY.md §3).

use std::time::Duration;

use eventsource_stream::Eventsource;
use serde_json::{json, Value};

use crate::support::{
    collect_events, eventually, init_request, read_reply, text_of, wait_event, Client, Relay,
};

fn code(reply: &crate::support::Reply) -> i64 {
    reply.json()["error"]["code"].as_i64().unwrap_or(0)
}

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
async fn sampling_round_trip_goes_to_the_caller_and_back_to_the_child() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let res = c.post_builder()
        .body(json!({"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"sample","arguments":{}}}).to_string())
        .send()
        .await
        .unwrap();
    let mut events = res.bytes_stream().eventsource();
    let req = wait_event(&mut events, |v| v["method"] == "sampling/createMessage").await;
    let child_id = req["id"].clone();

    // Another session may not answer it.
    let mut other = relay.client();
    other.initialize("2025-11-25").await;
    let r = other.post(json!({"jsonrpc":"2.0","id":child_id,"result":{"role":"assistant","content":{"type":"text","text":"stolen"}}})).await;
    assert_eq!(r.status, 400);

    let r = c.post(json!({"jsonrpc":"2.0","id":child_id,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"hello from client"}}})).await;
    assert_eq!(r.status, 202);
    let done = wait_event(&mut events, |v| v["id"] == "call-1").await;
    assert!(text_of(&done).contains("hello from client"), "{done}");
}

#[tokio::test]
async fn child_messages_without_a_single_request_go_to_the_get_stream() {
    let (relay, record) = Relay::start_recorded(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-06-18").await;
    let get = c.get(None).await;
    assert_eq!(get.status(), 200);
    // A second standalone stream is a conflict.
    assert_eq!(c.get(None).await.status(), 409);
    let mut events = get.bytes_stream().eventsource();
    // Two calls in flight: the notifications of `notify` cannot be tied to one of them.
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(json!(1), "slow", json!({"ms": 600})).await })
    };
    crate::support::wait_recorded(&record, "\"slow\"", 1).await;
    let r = c.call(json!(2), "notify", json!({})).await;
    assert_eq!(text_of(r.messages().last().unwrap()), "notified");
    let n = wait_event(&mut events, |v| {
        v["method"] == "notifications/tools/list_changed"
    })
    .await;
    assert_eq!(n["jsonrpc"], "2.0");
    slow.await.unwrap();
}

#[tokio::test]
async fn progress_travels_on_the_request_stream_with_the_clients_token() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c
        .post(
            json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"progress",
            "arguments":{"steps":3,"interval_ms":5},"_meta":{"progressToken":"p-1"}}}),
        )
        .await;
    let msgs = r.messages();
    assert_eq!(msgs.len(), 4);
    for (i, m) in msgs[..3].iter().enumerate() {
        assert_eq!(m["params"]["progressToken"], "p-1");
        assert_eq!(m["params"]["progress"], i + 1);
    }
    assert_eq!(msgs[3]["id"], 7);
}

#[tokio::test]
async fn cancellation_is_forwarded_with_the_relay_id_and_ends_the_stream() {
    let (relay, record) = Relay::start_recorded(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(json!("slow-1"), "slow", json!({"ms": 20000})).await })
    };
    eventually("call reached child", || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains("\"slow\"")
    })
    .await;
    // A cancel for an unknown id is dropped; the real one is translated.
    let r = c.post(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"nope"}})).await;
    assert_eq!(r.status, 202);
    let r = c.post(json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow-1","reason":"user"}})).await;
    assert_eq!(r.status, 202);
    let reply = tokio::time::timeout(Duration::from_secs(5), slow)
        .await
        .unwrap()
        .unwrap();
    assert!(reply.messages().is_empty(), "{reply:?}");
    // The stream ends when the relay handles the cancel; the child records it a moment later.
    eventually("cancel reached child", || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains("notifications/cancelled")
    })
    .await;
    let log = std::fs::read_to_string(&record).unwrap();
    let cancels: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("notifications/cancelled"))
        .collect();
    assert_eq!(cancels.len(), 1, "{log}");
    let call_line: Value =
        serde_json::from_str(log.lines().find(|l| l.contains("\"slow\"")).unwrap()).unwrap();
    let cancel: Value = serde_json::from_str(cancels[0]).unwrap();
    assert_eq!(cancel["params"]["requestId"], call_line["id"]);
    assert!(call_line["id"].is_u64());
}

#[tokio::test]
async fn request_timeout_answers_31008_and_cancels_in_the_child() {
    let relay = Relay::start(
        &["--request-timeout", "300ms", "--request-timeout-max", "1s"],
        &[],
    );
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c.call(json!("t"), "slow", json!({"ms": 5000})).await;
    let m = &r.messages()[0];
    assert_eq!(
        (m["id"].clone(), m["error"]["code"].clone()),
        (json!("t"), json!(-31008))
    );
    eventually("child cancelled", || relay.logs().contains("cancelled")).await;
}

#[tokio::test]
async fn sse_polling_close_then_resume_with_last_event_id() {
    let relay = Relay::start(&["--sse-close-after", "300ms"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    // The standalone stream is open too: a resume must not be taken for a second one.
    let _standalone = c.get(None).await;
    let res = c.post_builder()
        .body(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"slow","arguments":{"ms":900}}}).to_string())
        .send()
        .await
        .unwrap();
    let first = read_reply(res).await;
    assert!(first.messages().is_empty(), "closed before the answer");
    let last_id = first.events.last().unwrap().id.clone();
    let resumed = c.get(Some(&last_id)).await;
    assert_eq!(resumed.status(), 200);
    let resumed = read_reply(resumed).await;
    // A resume replays what followed, with no new priming event (ids stay unique).
    assert!(
        resumed.events.iter().all(|e| !e.data.is_empty()),
        "{resumed:?}"
    );
    assert!(resumed.events.iter().all(|e| e.id != last_id));
    let answer = resumed.messages()[0].clone();
    assert_eq!(text_of(&answer), "slept 900");

    // Resuming again after the answer replays it (buffered), and only this stream's events.
    let again = c.get(Some(&last_id)).await;
    let evs = collect_events(again, 5).await;
    let data: Vec<&str> = evs
        .iter()
        .map(|e| e.data.as_str())
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(data.len(), 1);
    // An id of another session's stream replays nothing of it.
    let mut other = relay.client();
    other.initialize("2025-11-25").await;
    let foreign = other.get(Some(&last_id)).await;
    let evs = tokio::time::timeout(Duration::from_millis(500), collect_events(foreign, 3)).await;
    if let Ok(evs) = evs {
        assert!(evs.iter().all(|e| e.data.is_empty()));
    }
}

#[tokio::test]
async fn c1_c2_host_and_origin_guard_on_every_route() {
    let relay = Relay::start(&["--allowed-origin", "https://app.example.com"], &[]);
    let http = reqwest::Client::new();
    for path in ["/mcp", "/health", "/ready", "/nope"] {
        let url = format!("{}{}", relay.base, path);
        let r = http
            .get(&url)
            .header("host", "evil.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let r = http
            .get(&url)
            .header("origin", "http://evil.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let init = init_request(json!(1), "2025-11-25").to_string();
    let post = |origin: &'static str| {
        http.post(&relay.url)
            .header("content-type", "application/json")
            .header("accept", crate::support::ACCEPT_BOTH)
            .header("origin", origin)
            .body(init.clone())
            .send()
    };
    assert_eq!(post("https://app.example.com").await.unwrap().status(), 200);
    assert_eq!(post("http://localhost:5173").await.unwrap().status(), 200);
    assert_eq!(post("null").await.unwrap().status(), 403);
    assert_eq!(
        post("https://app.example.com.evil.net")
            .await
            .unwrap()
            .status(),
        403
    );
    let r = post("http://evil.example.com").await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31002);
}

#[tokio::test]
async fn d1_body_cap_answers_413_with_the_limit() {
    let relay = Relay::start(&["--max-body", "1KiB"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x".repeat(2000)}}});
    let r = c.post(big.clone()).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], -31009);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1024"));
    // Chunked (no Content-Length) is cut at the limit too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .to_string()
        .into_bytes()
        .chunks(100)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = c
        .post_builder()
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // The session is untouched.
    let r = c.call(json!(2), "echo", json!({"text":"small"})).await;
    assert_eq!(text_of(&r.messages()[0]), "small");
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
async fn modern_request_to_a_legacy_child_gets_a_non_modern_400_then_initialize_works() {
    let relay = Relay::start(&[], &[]);
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

#[tokio::test]
async fn d3_session_cap_answers_503_with_retry_after() {
    let relay = Relay::start(&["--max-sessions", "2"], &[]);
    let (mut a, mut b, mut c) = (relay.client(), relay.client(), relay.client());
    a.initialize("2025-11-25").await;
    b.initialize("2025-11-25").await;
    let r = c.post(init_request(json!(1), "2025-11-25")).await;
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["error"]["code"], -31005);
    // Existing sessions are unaffected; a freed slot is usable again.
    assert_eq!(a.delete().await, 200);
    c.initialize("2025-11-25").await;
    let r = b.call(json!(1), "echo", json!({"text":"b"})).await;
    assert_eq!(text_of(&r.messages()[0]), "b");
}

#[tokio::test]
async fn c6_parser_bombs_get_400_and_the_session_survives() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-06-18").await;
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"echo/raw","params":{{"x":{}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let bombs = [
        deep,
        r#"{"jsonrpc":"2.0","id":1,"method":"echo/raw","params":{"x":1e999999}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":1,"method":"echo/raw","params":{"x":"\ud800"}}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#.to_owned(),
        r#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#.to_owned(),
    ];
    for bomb in bombs {
        let r = c.post_raw(bomb.clone()).await;
        assert_eq!(r.status, 400, "{}", &bomb[..bomb.len().min(80)]);
        assert!([-32700, -32600].contains(&code(&r)));
    }
    let raw = c
        .post_builder()
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    let r = read_reply(raw).await;
    assert_eq!((r.status, code(&r)), (400, -32700));
    let r = c.call(json!(2), "echo", json!({"text":"ok"})).await;
    assert_eq!(text_of(&r.messages()[0]), "ok");
}

#[tokio::test]
async fn relay_errors_echo_a_read_id_and_omit_an_unknown_one() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c.post(init_request(json!("second"), "2025-11-25")).await;
    assert_eq!((r.status, r.json()["id"].clone()), (400, json!("second")));
    let anon = Client::new(&relay.url);
    let r = anon
        .post(json!({"jsonrpc":"2.0","id":41,"method":"ping"}))
        .await;
    assert_eq!((r.status, r.json()["id"].clone()), (400, json!(41)));
    for body in [
        "{oops",
        r#"{"jsonrpc":"2.0","method":"notifications/x","id":{}}"#,
    ] {
        let r = c.post_raw(body.to_owned()).await;
        assert_eq!(r.status, 400);
        assert!(r.json().get("id").is_none(), "{}", r.body);
    }
}

#[tokio::test]
async fn replay_buffer_is_bounded_per_session_oldest_finished_streams_first() {
    let relay = Relay::start(&["--replay-events", "3"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let mut last_ids = Vec::new();
    for i in 0..5 {
        let r = c
            .call(json!(i), "echo", json!({"text": format!("n{i}")}))
            .await;
        last_ids.push(r.events.last().unwrap().id.clone());
    }
    // The newest stream still replays its answer (resume from its priming event).
    let newest = last_ids[4].split('-').next().unwrap().to_owned();
    let r = c.get(Some(&format!("{newest}-0"))).await;
    let evs = collect_events(r, 1).await;
    assert_eq!(
        serde_json::from_str::<Value>(&evs[0].data).unwrap()["id"],
        4
    );
    // The oldest was dropped to keep the session within 3 buffered events.
    let oldest = last_ids[0].split('-').next().unwrap().to_owned();
    let r = c.get(Some(&format!("{oldest}-0"))).await;
    let evs = tokio::time::timeout(Duration::from_millis(400), collect_events(r, 2)).await;
    if let Ok(evs) = evs {
        assert!(evs.iter().all(|e| e.data.is_empty()), "{evs:?}");
    }
}
