//! Guards and limits: Host and Origin on every route (C1, C2), the body cap (D1), the session
//! cap (D3), parser bombs (C6), and relay errors echoing a read id.

use super::*;

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
