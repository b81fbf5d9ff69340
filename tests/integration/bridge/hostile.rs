//! Hostile servers (SECURITY.md §8.F6), written on a bare `TcpListener`: a legacy SSE endpoint
//! on another origin, junk and non-JSON events, extra endpoints, a cross-origin redirect, an
//! endless SSE data line, and `--transport sse` never POSTing to the SSE URL.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_refuses_a_legacy_sse_endpoint_on_another_origin() {
    // The other origin: any connection to it is a failure.
    let (other, other_seen, other_conns) =
        raw_server(Arc::new(|_| (http_response("200 OK", &[], b""), false))).await;
    let endpoint = format!("http://{other}/message?sessionId=stolen");
    let (addr, seen, _) = raw_server(Arc::new(move |req: &RawRequest| {
        if req.method == "GET" && req.path.starts_with("/sse") {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n\
                 event: endpoint\ndata: {endpoint}\n\n"
            );
            (head.into_bytes(), true)
        } else {
            (http_response("405 Method Not Allowed", &[], b""), false)
        }
    }))
    .await;
    let url = format!("http://{addr}/sse");
    let secret = "Bearer sse-origin-secret";
    let mut b = Bridge::spawn(&[
        "--transport",
        "sse",
        "--header",
        &format!("Authorization: {secret}"),
        &url,
    ]);
    let init = tokio::time::timeout(patience(), b.initialize_raw())
        .await
        .expect("the host's initialize hung");
    eprintln!("cross-origin endpoint: {init}");
    assert!(init.get("error").is_some(), "{init}");
    assert!(b.alive());
    // Let any retry happen; still nothing at the other origin. Not a race guard: a window in
    // which no connection may arrive, then the check.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        other_conns.load(Ordering::SeqCst),
        0,
        "{:?}",
        other_seen.lock().unwrap()
    );
    assert!(seen.lock().unwrap().iter().any(|r| r.method == "GET"));
    let logs = b.stderr();
    assert!(
        logs.contains("origin") || logs.contains("endpoint"),
        "the refusal is logged: {logs}"
    );
    assert!(!logs.contains("sse-origin-secret"));
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    b.assert_clean();
}

/// A Streamable HTTP server, JSON answers, whose tools misbehave: `junk` answers a 20 MB line
/// of garbage, `badsse` an SSE event whose data is not JSON; `echo` works.
async fn hostile_streamable() -> (String, Arc<Mutex<Vec<RawRequest>>>) {
    let junk: Arc<Vec<u8>> = Arc::new(vec![b'x'; 20 * 1024 * 1024]);
    let (addr, seen, _) = raw_server(Arc::new(move |req: &RawRequest| {
        let json_headers = [
            ("content-type", "application/json"),
            ("mcp-session-id", "h-1"),
        ];
        if req.method == "GET" || req.method == "DELETE" {
            return (http_response("405 Method Not Allowed", &[], b""), false);
        }
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let id = v["id"].clone();
        let answer = |result: Value| {
            let body = json!({"jsonrpc":"2.0","id":id,"result":result}).to_string();
            (
                http_response("200 OK", &json_headers, body.as_bytes()),
                false,
            )
        };
        match v["method"].as_str().unwrap_or_default() {
            "initialize" => answer(json!({"protocolVersion":"2025-06-18",
                "capabilities":{"tools":{}},"serverInfo":{"name":"hostile","version":"1"}})),
            _ if v.get("id").is_none() => (http_response("202 Accepted", &[], b""), false),
            "tools/call" => match v["params"]["name"].as_str().unwrap_or_default() {
                "junk" => {
                    let mut body = junk.to_vec();
                    body.push(b'\n');
                    (http_response("200 OK", &json_headers, &body), false)
                }
                "badsse" => {
                    let body = b"event: message\ndata: this is not json {\n\n";
                    (
                        http_response(
                            "200 OK",
                            &[
                                ("content-type", "text/event-stream"),
                                ("mcp-session-id", "h-1"),
                            ],
                            body,
                        ),
                        false,
                    )
                }
                _ => answer(json!({"content":[{"type":"text",
                    "text": v["params"]["arguments"]["text"]}]})),
            },
            _ => answer(json!({})),
        }
    }))
    .await;
    (format!("http://{addr}/mcp"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_survives_a_streamable_server_sending_junk() {
    let (url, _seen) = hostile_streamable().await;
    let mut b = Bridge::spawn(&[&url]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "hostile", "{init}");
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    for (id, tool) in [(1, "junk"), (2, "badsse")] {
        b.send(json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
            "params":{"name":tool,"arguments":{}}}))
            .await;
        // An error for that id, or nothing: never a result, never junk on stdout.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match b.next_within(Duration::from_millis(200)).await {
                Some(v) if v["id"] == id => {
                    eprintln!("{tool}: {v}");
                    assert!(v.get("error").is_some(), "{tool}: {v}");
                    break;
                }
                Some(_) | None => {}
            }
        }
        assert!(b.alive(), "{tool} killed the bridge\n{}", b.stderr());
        b.assert_clean();
        let r = b
            .call(
                json!(100 + id),
                "echo",
                json!({"text": format!("after {tool}")}),
            )
            .await;
        assert_eq!(text_of(&r), format!("after {tool}"), "{r}\n{}", b.stderr());
    }
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    b.assert_clean();
}

/// A working legacy SSE server whose stream announces its endpoint, then a second endpoint on
/// the same origin and a third on another origin: only the first is ever used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_uses_only_the_first_legacy_sse_endpoint() {
    let (other, other_seen, other_conns) = raw_server(Arc::new(|_| {
        (http_response("202 Accepted", &[], b""), false)
    }))
    .await;
    let (push, pushes) = mpsc::unbounded_channel::<Vec<u8>>();
    let (addr, seen, _) = raw_server_with(
        Arc::new(move |req: &RawRequest| {
            if req.method == "GET" && req.path.starts_with("/sse") {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n\
                     event: endpoint\ndata: /message?s=1\n\n\
                     event: endpoint\ndata: /hijack?s=2\n\n\
                     event: endpoint\ndata: http://{other}/message?s=3\n\n"
                );
                return (head.into_bytes(), true);
            }
            if req.method != "POST" || !req.path.starts_with("/message") {
                return (http_response("404 Not Found", &[], b""), false);
            }
            let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            if v.get("id").is_some() && v.get("method").is_some() {
                let result = match v["method"].as_str().unwrap_or_default() {
                    "initialize" => json!({"protocolVersion":"2024-11-05",
                        "capabilities":{"tools":{}},"serverInfo":{"name":"legacy","version":"1"}}),
                    "tools/call" => json!({"content":[{"type":"text",
                        "text": v["params"]["arguments"]["text"]}]}),
                    _ => json!({}),
                };
                let msg = json!({"jsonrpc":"2.0","id":v["id"],"result":result});
                let _ = push.send(format!("event: message\ndata: {msg}\n\n").into_bytes());
            }
            (http_response("202 Accepted", &[], b""), false)
        }),
        Some(pushes),
    )
    .await;
    let mut b = Bridge::spawn(&[
        "--transport",
        "sse",
        "--header",
        "X-API-Key: legacy-origin-secret",
        &format!("http://{addr}/sse"),
    ]);
    let init = b.initialize_raw().await;
    assert_eq!(
        init["result"]["serverInfo"]["name"],
        "legacy",
        "{init}\n{}",
        b.stderr()
    );
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    for n in 1..=3 {
        let r = b
            .call(json!(n), "echo", json!({"text": format!("legacy {n}")}))
            .await;
        assert_eq!(text_of(&r), format!("legacy {n}"), "{r}");
    }
    let posts: Vec<String> = seen_requests(&seen)
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.path.clone())
        .collect();
    let messages: Vec<&String> = posts.iter().filter(|p| *p != "/sse").collect();
    assert!(messages.len() >= 5, "{posts:?}");
    assert!(messages.iter().all(|p| *p == "/message?s=1"), "{posts:?}");
    assert_eq!(
        other_conns.load(Ordering::SeqCst),
        0,
        "{:?}",
        other_seen.lock().unwrap()
    );
    assert!(!b.stderr().contains("legacy-origin-secret"));
    b.assert_clean();
}

/// A Streamable HTTP server that redirects every POST to another origin: the configured
/// credentials (an `X-API-Key` from the header file, a bearer token) never reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_never_sends_credentials_across_an_origin_redirect() {
    let (other, other_seen, _) = raw_server(Arc::new(|req: &RawRequest| {
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let body = json!({"jsonrpc":"2.0","id":v["id"],"result":{"protocolVersion":"2025-06-18",
            "capabilities":{},"serverInfo":{"name":"thief","version":"1"}}})
        .to_string();
        (
            http_response(
                "200 OK",
                &[
                    ("content-type", "application/json"),
                    ("mcp-session-id", "t"),
                ],
                body.as_bytes(),
            ),
            false,
        )
    }))
    .await;
    let target = format!("http://{other}/mcp");
    let (addr, _seen, _) = raw_server(Arc::new(move |_req: &RawRequest| {
        (
            http_response("307 Temporary Redirect", &[("location", &target)], b""),
            false,
        )
    }))
    .await;
    let dir = tempdir();
    let headers = dir.join("headers");
    std::fs::write(&headers, "X-API-Key: redirect-key-secret\n").unwrap();
    let env = "MCP_RELAY_BRIDGE_IT_REDIRECT";
    let mut b = Bridge::spawn_env(
        &[
            "--header-file",
            headers.to_str().unwrap(),
            "--bearer-env",
            env,
            "--oauth",
            "off",
            &format!("http://{addr}/mcp"),
        ],
        &[(env, "redirect-bearer-secret")],
        "info",
    );
    let init = b.initialize_raw().await;
    eprintln!("cross-origin redirect: {init}");
    let leaked: Vec<String> = seen_requests(&other_seen)
        .iter()
        .filter(|r| {
            r.head.contains("redirect-key-secret") || r.head.contains("redirect-bearer-secret")
        })
        .map(|r| r.head.clone())
        .collect();
    assert!(
        leaked.is_empty(),
        "credentials sent to another origin: {leaked:?}"
    );
    assert!(b.alive());
    b.assert_clean();
}

/// A Streamable server whose answer is an SSE event with a 64 MB data line and no end: the
/// bridge bounds it by --max-message (memory stays bounded), stdout stays clean, and it stays
/// up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_bounds_an_endless_sse_data_line() {
    let mut flood = b"event: message\ndata: ".to_vec();
    flood.resize(64 * 1024 * 1024, b'x');
    let flood = Arc::new(flood);
    let (addr, _seen, _) = raw_server(Arc::new(move |req: &RawRequest| {
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let json_headers = [("content-type", "application/json"), ("mcp-session-id", "f-1")];
        if req.method != "POST" {
            return (http_response("405 Method Not Allowed", &[], b""), false);
        }
        if v.get("id").is_none() {
            return (http_response("202 Accepted", &[], b""), false);
        }
        let result = match v["method"].as_str().unwrap_or_default() {
            "initialize" => json!({"protocolVersion":"2025-06-18","capabilities":{"tools":{}},
                "serverInfo":{"name":"flood","version":"1"}}),
            "tools/call" if v["params"]["name"] == "flood" => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nmcp-session-id: f-1\r\n\r\n";
                let mut bytes = head.as_bytes().to_vec();
                bytes.extend_from_slice(&flood);
                return (bytes, true);
            }
            "tools/call" => json!({"content":[{"type":"text","text": v["params"]["arguments"]["text"]}]}),
            _ => json!({}),
        };
        let body = json!({"jsonrpc":"2.0","id":v["id"],"result":result}).to_string();
        (http_response("200 OK", &json_headers, body.as_bytes()), false)
    }))
    .await;
    let mut b = Bridge::spawn(&["--max-message", "1MiB", &format!("http://{addr}/mcp")]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "flood", "{init}");
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let pid = b.child.id().unwrap();
    let hwm = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let before = hwm();
    b.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"flood","arguments":{}}}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut flood_answer = None;
    while Instant::now() < deadline && flood_answer.is_none() {
        if let Some(v) = b.next_within(Duration::from_millis(200)).await {
            if v["id"] == 1 {
                flood_answer = Some(v);
            }
        }
    }
    eprintln!("endless data line: {flood_answer:?}");
    if let Some(v) = &flood_answer {
        assert!(v.get("error").is_some(), "{v}");
    }
    assert!(b.alive(), "{}", b.stderr());
    // The high-water mark is read from /proc: Linux only.
    let grew_kb = hwm().saturating_sub(before);
    assert!(
        !cfg!(target_os = "linux") || before > 0,
        "no VmHWM for the bridge"
    );
    assert!(
        grew_kb < 48 * 1024,
        "the bridge grew by {grew_kb} kB reading one 64 MB line with --max-message 1MiB"
    );
    let r = b
        .call(json!(2), "echo", json!({"text": "after the flood"}))
        .await;
    assert_eq!(text_of(&r), "after the flood", "{r}\n{}", b.stderr());
    b.assert_clean();
}

/// `--transport sse` forces legacy SSE: the SSE URL is only ever opened with GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_transport_sse_never_posts_to_the_sse_url() {
    let (push, pushes) = mpsc::unbounded_channel::<Vec<u8>>();
    let (addr, seen, _) = raw_server_with(
        Arc::new(move |req: &RawRequest| {
            if req.method == "GET" && req.path.starts_with("/sse") {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n\
                            event: endpoint\ndata: /message?s=1\n\n";
                return (head.as_bytes().to_vec(), true);
            }
            if req.method != "POST" || !req.path.starts_with("/message") {
                return (http_response("405 Method Not Allowed", &[], b""), false);
            }
            let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
            if v["method"] == "initialize" {
                let msg = json!({"jsonrpc":"2.0","id":v["id"],"result":{
                    "protocolVersion":"2024-11-05","capabilities":{},
                    "serverInfo":{"name":"legacy","version":"1"}}});
                let _ = push.send(format!("event: message\ndata: {msg}\n\n").into_bytes());
            }
            (http_response("202 Accepted", &[], b""), false)
        }),
        Some(pushes),
    )
    .await;
    let mut b = Bridge::spawn(&["--transport", "sse", &format!("http://{addr}/sse")]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "legacy", "{init}");
    let to_sse: Vec<String> = seen_requests(&seen)
        .iter()
        .filter(|r| r.path.starts_with("/sse"))
        .map(|r| r.method.clone())
        .collect();
    assert_eq!(to_sse, ["GET"], "{}", b.stderr());
}
