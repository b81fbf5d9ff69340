//! Each named server on every front of the one listener: Streamable HTTP, legacy SSE (whose
//! endpoint event names the mounted message path), WebSocket, its own TCP front; unknown names
//! are a 404 only after authentication; `/health` reports each server.

use serde_json::json;

use super::{client_at, server, start, tool_names, write_config};
use crate::support::conn::Conn;
use crate::support::lines::Lines;
use crate::support::relay::tcp_listening;
use crate::support::sse::Legacy;
use crate::support::ws::Ws;
use crate::support::{text_of, Relay};

fn two_servers(extra_serve: &str) -> Relay {
    let toml = format!(
        "[serve]\n{extra_serve}\n{}{}",
        server("echo", "echo", "tcp_listen = \"127.0.0.1:0\""),
        server("conf", "conformance", "session_mode = \"shared\"")
    );
    start(&write_config(&toml))
}

#[tokio::test]
async fn each_server_answers_at_its_own_path_over_streamable_http() {
    let relay = two_servers("");
    let mut echo = client_at(&relay, "/servers/echo/mcp");
    echo.initialize("2025-11-25").await;
    let r = echo
        .call(json!(1), "echo", json!({"text": "via echo"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "via echo");

    let mut conf = client_at(&relay, "/servers/conf/mcp");
    conf.initialize("2025-11-25").await;
    let list = conf
        .post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    let names = tool_names(&list.messages()[0]);
    assert!(names.contains(&"test_simple_text".to_owned()), "{names:?}");
    assert!(!names.contains(&"echo".to_owned()), "{names:?}");

    // A session of one server is unknown at the other.
    let mut stray = client_at(&relay, "/servers/conf/mcp");
    stray.session = echo.session.clone();
    stray.version = echo.version.clone();
    let r = stray.call(json!(3), "echo", json!({"text": "x"})).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn legacy_sse_websocket_and_tcp_reach_one_server() {
    let relay = two_servers("");
    let mut sse = Legacy::open_at(&relay, "/servers/echo", &[]).await;
    sse.initialize("2024-11-05").await;
    assert_eq!(sse.echo(json!(1), "over sse").await, "over sse");

    let ws_url = relay.base.replacen("http://", "ws://", 1) + "/servers/echo/ws";
    let mut ws = Ws::connect(&ws_url).await;
    ws.initialize("2025-11-25").await;
    assert_eq!(ws.echo(json!(1), "over ws").await, "over ws");

    let mut tcp = Lines::tcp(&tcp_listening(&relay).await).await;
    tcp.initialize("2025-11-25").await;
    assert_eq!(tcp.echo(json!(1), "over tcp").await, "over tcp");
    let logs = relay.logs();
    assert!(logs.contains("server=echo"), "{logs}");
}

#[tokio::test]
async fn unknown_names_are_404_and_only_after_authentication() {
    let (key, block) = crate::support::mint_api_key(&["--id", "ops", "--principal", "ops"]);
    let relay = two_servers(&format!(
        "\n[auth]\nresource = \"http://relay.test/mcp\"\n{block}\n"
    ));
    let status = |path: &'static str, key: Option<String>| {
        let relay_base = relay.base.clone();
        async move {
            let mut c = crate::support::Client::new(&format!("{relay_base}{path}"));
            if let Some(k) = key {
                c.extra = vec![("x-api-key".into(), k)];
            }
            c.post(crate::support::init_request(json!(1), "2025-11-25"))
                .await
                .status
        }
    };
    // Without a credential every name is the same 401: nothing says which exist.
    assert_eq!(status("/servers/echo/mcp", None).await, 401);
    assert_eq!(status("/servers/nope/mcp", None).await, 401);
    assert_eq!(status("/endpoints/nope/mcp", None).await, 401);
    // With one, an unknown name is a 404 and a known one works.
    assert_eq!(status("/servers/nope/mcp", Some(key.clone())).await, 404);
    assert_eq!(status("/servers/echo", Some(key.clone())).await, 404);
    assert_eq!(status("/endpoints/nope/mcp", Some(key.clone())).await, 404);
    assert_eq!(status("/servers/echo/mcp", Some(key)).await, 200);
}

#[tokio::test]
async fn health_reports_every_server() {
    let relay = two_servers("");
    let mut conf = client_at(&relay, "/servers/conf/mcp");
    conf.initialize("2025-11-25").await;
    let health = relay.health().await;
    assert_eq!(
        health["servers"]["conf"]["session_mode"], "shared",
        "{health}"
    );
    assert_eq!(health["servers"]["conf"]["sessions"], 1, "{health}");
    assert_eq!(
        health["servers"]["echo"]["session_mode"], "per-session",
        "{health}"
    );
    assert_eq!(health["upstream"]["kind"], "aggregate", "{health}");
}

#[tokio::test]
async fn metrics_count_per_server() {
    let relay = two_servers("admin_listen = \"127.0.0.1:0\"");
    let mut echo = client_at(&relay, "/servers/echo/mcp");
    echo.initialize("2025-11-25").await;
    echo.call(json!(1), "echo", json!({"text": "counted"}))
        .await;
    let mut agg = relay.client();
    agg.initialize("2025-11-25").await;
    agg.call(json!(2), "echo__echo", json!({"text": "counted"}))
        .await;
    let text = reqwest::get(format!("{}/metrics", relay.admin_base().await))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "mcp_relay_server_sessions_active{server=\"echo\"} 2",
        "mcp_relay_server_sessions_active{server=\"conf\"} 1",
        "mcp_relay_server_ready{server=\"echo\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("mcp_relay_requests_total{") && l.contains("tools/call"))
        .collect();
    assert!(
        calls
            .iter()
            .any(|l| l.contains("server=\"echo\"") && l.contains("transport=\"streamable_http\"")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|l| l.contains("server=\"echo\"") && l.contains("transport=\"aggregate\"")),
        "{calls:?}"
    );
}
