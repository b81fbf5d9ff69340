//! What the relay's HTTP client owes a remote server (session and version headers, DELETE at
//! the end, never a client's credentials), checked against a recording mock; an unreachable
//! upstream fails the session, not the relay; `--upstream` usage errors.

use super::*;

/// What reached the mock: (HTTP method, JSON-RPC method, headers).
type Seen = Arc<Mutex<Vec<(String, String, HeaderMap)>>>;

/// A Streamable HTTP server that answers with JSON, names session `s-1`, has no GET stream
/// (405) and records every request.
async fn mock() -> (String, Seen) {
    let seen = Seen::default();
    let app = axum::Router::new()
        .route(
            "/mcp",
            post(mock_post)
                .get(|State(seen): State<Seen>, h: HeaderMap| async move {
                    seen.lock().unwrap().push(("GET".into(), String::new(), h));
                    StatusCode::METHOD_NOT_ALLOWED
                })
                .delete(|State(seen): State<Seen>, h: HeaderMap| async move {
                    seen.lock()
                        .unwrap()
                        .push(("DELETE".into(), String::new(), h));
                    StatusCode::OK
                }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/mcp"), seen)
}

async fn mock_post(State(seen): State<Seen>, h: HeaderMap, body: String) -> Response {
    let v: Value = serde_json::from_str(&body).unwrap();
    let method = v["method"].as_str().unwrap_or_default().to_owned();
    seen.lock()
        .unwrap()
        .push(("POST".into(), method.clone(), h));
    let json = |v: Value| ([("content-type", "application/json")], v.to_string());
    match method.as_str() {
        "initialize" => (
            [("mcp-session-id", "s-1")],
            json(
                json!({"jsonrpc":"2.0","id":v["id"],"result":{"protocolVersion":"2025-06-18",
                "capabilities":{"tools":{}},"serverInfo":{"name":"mock","version":"1"}}}),
            ),
        )
            .into_response(),
        _ if v.get("id").is_none() => StatusCode::ACCEPTED.into_response(),
        // A batch answer: the relay gets each element.
        "tools/call" => json(json!([
            {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}},
            {"jsonrpc":"2.0","id":v["id"],"result":{"content":[{"type":"text","text":"mocked"}]}}
        ]))
        .into_response(),
        // Refused without a JSON-RPC answer: the caller gets the relay's -31006 at once.
        "tools/list" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        _ => json(json!({"jsonrpc":"2.0","id":v["id"],"error":{"code":-32601,"message":"no"}}))
            .into_response(),
    }
}

#[tokio::test]
async fn the_http_upstream_gets_session_headers_and_never_a_clients_credentials() {
    let (url, seen) = mock().await;
    let front = front(&url, &[]).await;
    let mut c = HttpClient::new(&front.url);
    c.extra = vec![
        ("authorization".into(), "Bearer client-secret".into()),
        ("cookie".into(), "sid=client-cookie".into()),
    ];
    let init = c.initialize("2025-06-18").await;
    assert_eq!(init.messages()[0]["result"]["serverInfo"]["name"], "mock");
    let r = c.call(json!("a"), "anything", json!({})).await;
    let m = r.messages();
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0]["method"], "notifications/message");
    assert_eq!(text_of(&m[1]), "mocked");
    assert_eq!(m[1]["id"], "a");
    let r = c
        .post(json!({"jsonrpc":"2.0","id":7,"method":"tools/list"}))
        .await;
    let m = r.messages();
    assert_eq!(m[0]["id"], 7, "{m:?}");
    assert_eq!(m[0]["error"]["code"], -31006, "{m:?}");
    eventually("standalone stream tried", || {
        seen.lock().unwrap().iter().any(|(verb, ..)| verb == "GET")
    })
    .await;
    assert_eq!(c.delete().await, 200);
    eventually("remote session deleted", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|(verb, ..)| verb == "DELETE")
    })
    .await;

    let seen = seen.lock().unwrap();
    let header = |h: &HeaderMap, name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
    for (verb, method, h) in seen.iter() {
        for name in ["authorization", "cookie"] {
            assert!(h.get(name).is_none(), "{verb} {method} carried {name}");
        }
        if verb == "POST" {
            assert_eq!(
                header(h, "content-type").as_deref(),
                Some("application/json")
            );
            let accept = header(h, "accept").unwrap();
            assert!(accept.contains("application/json") && accept.contains("text/event-stream"));
        }
        if method == "initialize" {
            assert!(h.get("mcp-session-id").is_none() && h.get("mcp-protocol-version").is_none());
        } else {
            assert_eq!(
                header(h, "mcp-session-id").as_deref(),
                Some("s-1"),
                "{verb} {method}"
            );
            assert_eq!(
                header(h, "mcp-protocol-version").as_deref(),
                Some("2025-06-18"),
                "{verb} {method}"
            );
        }
    }
    let order: Vec<&str> = seen.iter().map(|(_, m, _)| m.as_str()).take(2).collect();
    assert_eq!(order, ["initialize", "notifications/initialized"]);
    // The mock has no GET stream (405): never retried.
    assert_eq!(seen.iter().filter(|(verb, ..)| verb == "GET").count(), 1);
    drop(seen);
    assert!(!front.logs().contains("client-secret"));
}

#[tokio::test]
async fn an_unreachable_remote_upstream_fails_the_session_not_the_relay() {
    let front = front("tcp://127.0.0.1:1", &[]).await;
    let c = HttpClient::new(&front.url);
    let r = c
        .post(crate::support::init_request(json!(0), "2025-11-25"))
        .await;
    let m = r.messages();
    assert_eq!(m[0]["error"]["code"], -31007, "{m:?}");
    // The relay is still up.
    assert_eq!(front.health().await["status"], "ok");
    // Likewise over HTTP.
    let front = self::front("http://127.0.0.1:1/mcp", &[]).await;
    let r = HttpClient::new(&front.url)
        .post(crate::support::init_request(json!(0), "2025-11-25"))
        .await;
    let m = r.messages();
    assert_eq!(m[0]["error"]["code"], -31007, "{m:?}");
    // The warning may be written just after the answer left.
    eventually("the failure is logged", || {
        front.logs().contains("upstream connection failed")
    })
    .await;
}

#[tokio::test]
async fn upstream_and_command_are_exclusive_and_unknown_schemes_are_usage_errors() {
    let out = std::process::Command::new(crate::support::RELAY)
        .args(["serve", "--upstream", "ftp://x.example/mcp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("supported schemes") && stderr.contains("https://"),
        "{stderr}"
    );
    let out = std::process::Command::new(crate::support::RELAY)
        .args(["serve", "--upstream", "tcp://127.0.0.1:9", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}
