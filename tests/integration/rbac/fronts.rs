//! TCP, WebSocket and legacy SSE apply the same roles and audit.

use super::*;

// === connection fronts ===

/// A newline- or message-delimited JSON-RPC connection: TCP lines or WebSocket text frames.
enum Front {
    Tcp(tokio::io::BufReader<tokio::net::TcpStream>),
    Ws(Box<crate::transports::WsStream>),
}

impl Front {
    async fn tcp(relay: &Relay, token: &str) -> Front {
        use tokio::io::AsyncWriteExt as _;
        let addr = crate::transports::tcp_addr(relay);
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let hello = json!({"authorization": format!("Bearer {token}")}).to_string() + "\n";
        tcp.write_all(hello.as_bytes()).await.unwrap();
        Front::Tcp(tokio::io::BufReader::new(tcp))
    }

    async fn ws(relay: &Relay, token: &str) -> Front {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut req = crate::transports::ws_url(relay)
            .into_client_request()
            .unwrap();
        let h = req.headers_mut();
        h.insert("sec-websocket-protocol", "mcp".parse().unwrap());
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Front::Ws(Box::new(ws))
    }

    async fn send(&mut self, v: &Value) {
        use futures_util::SinkExt as _;
        use tokio::io::AsyncWriteExt as _;
        match self {
            Front::Tcp(s) => {
                let line = v.to_string() + "\n";
                s.get_mut().write_all(line.as_bytes()).await.unwrap();
            }
            Front::Ws(ws) => ws
                .send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
                .await
                .unwrap(),
        }
    }

    /// The answer to request `id` (notifications in between are skipped).
    async fn answer(&mut self, id: &Value) -> Value {
        use futures_util::StreamExt as _;
        use tokio::io::AsyncBufReadExt as _;
        let read = async {
            loop {
                let v: Value = match self {
                    Front::Tcp(s) => {
                        let mut line = String::new();
                        assert!(s.read_line(&mut line).await.unwrap() > 0, "closed");
                        serde_json::from_str(&line).unwrap()
                    }
                    Front::Ws(ws) => match ws.next().await {
                        Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) => {
                            serde_json::from_str(&t).unwrap()
                        }
                        Some(Ok(_)) => continue,
                        other => panic!("websocket ended: {other:?}"),
                    },
                };
                if &v["id"] == id && v.get("method").is_none() {
                    return v;
                }
            }
        };
        tokio::time::timeout(patience(), read)
            .await
            .expect("answer timeout")
    }

    async fn request(&mut self, v: Value) -> Value {
        self.send(&v).await;
        self.answer(&v["id"]).await
    }
}

#[tokio::test]
async fn b1_tcp_and_websocket_fronts_apply_the_same_roles_and_audit() {
    let rig = rig(Opts {
        relay: &["--tcp-listen", "127.0.0.1:0"],
        ..Opts::default()
    });
    let token = mint("ursula", "user");
    for (transport, mut f) in [
        ("tcp", Front::tcp(&rig.relay, &token).await),
        ("websocket", Front::ws(&rig.relay, &token).await),
    ] {
        let init = f
            .request(crate::support::init_request(json!(0), "2025-11-25"))
            .await;
        assert!(init.get("result").is_some(), "{transport}: {init}");
        f.send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
            .await;
        let list = f.request(req(json!(1), "tools/list", json!({}))).await;
        let tools = tool_names(&list);
        assert!(tools.contains(&"echo".to_owned()), "{transport}");
        assert!(
            !tools.contains(&"delete_everything".to_owned()),
            "{transport}"
        );
        let ok = f.request(call(json!(2), "echo")).await;
        assert_eq!(text_of(&ok), "hi", "{transport}");
        let denied = f.request(call(json!(3), "delete_everything")).await;
        assert_unknown(&denied, json!(3), -32602, "Unknown tool: delete_everything");
        let m = f.request(req(json!(4), "foo/bar", json!({}))).await;
        assert_unknown(&m, json!(4), -32601, "Method not found");
        let rec = rig
            .audited(json!({"transport": transport, "name": "delete_everything"}))
            .await;
        assert_eq!(rec["decision"], "deny", "{rec}");
        assert_eq!(rec["principal"], "ursula");
        assert_eq!(rec["auth"], "jwt");
    }
    // Both connections' echo calls reached the child; neither denied request did.
    wait_recorded(&rig.record, "\"echo\"", 2).await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("foo/bar"), 0);
}

#[tokio::test]
async fn a6_role_change_applies_on_the_next_request_of_the_same_session() {
    let rig = rig(Opts::default());
    let mut c = rig.session("ursula", "admin", "2025-11-25").await;
    let del = one(&c.post(call(json!(1), "delete_everything")).await);
    assert_eq!(text_of(&del), "deleted");
    // Same principal, same session, a new token with fewer roles: the new roles apply.
    c.extra = vec![(
        "authorization".to_owned(),
        format!("Bearer {}", mint("ursula", "user")),
    )];
    let r = c.post(call(json!(2), "delete_everything")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_unknown(
        &one(&r),
        json!(2),
        -32602,
        "Unknown tool: delete_everything",
    );
    let tools = tool_names(&one(&c.post(req(json!(3), "tools/list", json!({}))).await));
    assert!(!tools.contains(&"delete_everything".to_owned()));
    rig.barrier(&c, "a6").await;
    assert_eq!(rig.recorded_with("delete_everything"), 1);
    // Another principal's token on this session: 404, not a role switch.
    c.extra = vec![(
        "authorization".to_owned(),
        format!("Bearer {}", mint("alice", "admin")),
    )];
    let r = c.post(call(json!(4), "delete_everything")).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(rig.recorded_with("delete_everything"), 1);
}

#[tokio::test]
async fn b1_legacy_sse_front_applies_roles_per_message() {
    use futures_util::StreamExt as _;
    let rig = rig(Opts::default());
    let token = mint("ursula", "user");
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/sse", rig.relay.base))
        .header("accept", "text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut events = Box::pin(eventsource_stream::Eventsource::eventsource(
        res.bytes_stream(),
    ));
    let first = tokio::time::timeout(patience(), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.event, "endpoint");
    let endpoint = format!("{}{}", rig.relay.base, first.data);
    let post = |body: Value, token: String| {
        let http = http.clone();
        let endpoint = endpoint.clone();
        async move {
            http.post(&endpoint)
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {token}"))
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Without a credential the POST is refused even though the stream is open.
    let status = http
        .post(&endpoint)
        .header("content-type", "application/json")
        .body(call(json!(9), "echo").to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401);
    let init = crate::support::init_request(json!(0), "2025-11-25");
    assert_eq!(post(init, token.clone()).await, 202);
    wait_event(&mut events, |v| v["id"] == 0).await;
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    assert_eq!(post(note, token.clone()).await, 202);
    assert_eq!(
        post(req(json!(1), "tools/list", json!({})), token.clone()).await,
        202
    );
    let list = wait_event(&mut events, |v| v["id"] == 1).await;
    assert!(!tool_names(&list).contains(&"delete_everything".to_owned()));
    assert_eq!(
        post(call(json!(2), "delete_everything"), token.clone()).await,
        202
    );
    let denied = wait_event(&mut events, |v| v["id"] == 2).await;
    assert_unknown(&denied, json!(2), -32602, "Unknown tool: delete_everything");
    assert_eq!(post(call(json!(3), "echo"), token.clone()).await, 202);
    let ok = wait_event(&mut events, |v| v["id"] == 3).await;
    assert_eq!(text_of(&ok), "hi");
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    let rec = rig
        .audited(json!({"transport": "sse", "name": "delete_everything"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["principal"], "ursula");
}
