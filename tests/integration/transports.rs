//! The connection-oriented fronts (TCP, WebSocket, the stdio front) run the same scenario as
//! Streamable HTTP: initialize, tools/list, a call with progress, a server→client request, a
//! notification. Plus their abuse cases: junk, oversize lines/messages, binary frames, idle.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::support::conn::{scenario, Conn};
use crate::support::lines::Lines;
use crate::support::ws::Ws;
use crate::support::{
    eventually, init_request, patience, tcp_addr, text_of, ws_url, Relay, FIXTURE, RELAY,
};

#[tokio::test]
async fn tcp_front_runs_the_scenario() {
    let relay = Relay::start(&["--tcp-listen", "127.0.0.1:0"], &[]);
    eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    let mut c = Lines::tcp(&tcp_addr(&relay)).await;
    scenario(&mut c).await;
    drop(c);
    eventually("child stopped with the connection", || {
        relay.children().is_empty()
    })
    .await;
}

#[tokio::test]
async fn websocket_front_runs_the_scenario() {
    let relay = Relay::start(&[], &[]);
    let mut c = Ws::connect(&ws_url(&relay)).await;
    scenario(&mut c).await;
    drop(c);
    eventually("child stopped with the connection", || {
        relay.children().is_empty()
    })
    .await;
}

/// `mcp-relay stdio -- fixture`, its stdin and stdout piped.
fn stdio_relay() -> tokio::process::Child {
    tokio::process::Command::new(RELAY)
        .args(["stdio", "--", FIXTURE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn stdio_front_runs_the_scenario() {
    let mut child = stdio_relay();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut c = Lines::new(stdout, stdin);
    scenario(&mut c).await;
    drop(c);
    let status = tokio::time::timeout(patience(), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// A script that pipes its requests into `mcp-relay stdio` (or `connect`) and closes its end
/// still reads every answer: stdin EOF lets the requests already sent finish (up to
/// --shutdown-grace) before the session ends. They used to get -31003 `session_ended`.
#[tokio::test]
async fn stdio_front_answers_what_was_asked_before_stdin_ended() {
    let mut child = stdio_relay();
    let mut stdin = child.stdin.take().unwrap();
    let mut input = String::new();
    for msg in [
        init_request(json!(1), "2025-11-25"),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
            "params":{"name":"slow","arguments":{"ms":700}}}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
            "params":{"name":"echo","arguments":{"text":"after"}}}),
    ] {
        input.push_str(&msg.to_string());
        input.push('\n');
    }
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut answers = std::collections::BTreeMap::new();
    while let Some(line) = tokio::time::timeout(patience(), lines.next_line())
        .await
        .unwrap()
        .unwrap()
    {
        let v: Value = serde_json::from_str(&line).unwrap();
        answers.insert(v["id"].to_string(), v);
    }
    assert!(
        answers["1"]["result"]["protocolVersion"].is_string(),
        "{answers:?}"
    );
    assert!(answers["2"]["result"].is_object(), "{answers:?}");
    assert_eq!(text_of(&answers["3"]), "after");
    let status = tokio::time::timeout(patience(), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn shared_mode_over_tcp_and_websocket_uses_one_child() {
    let relay = Relay::start(
        &["--session-mode", "shared", "--tcp-listen", "127.0.0.1:0"],
        &[],
    );
    eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    let mut a = Lines::tcp(&tcp_addr(&relay)).await;
    let mut b = Ws::connect(&ws_url(&relay)).await;
    scenario(&mut a).await;
    scenario(&mut b).await;
    assert_eq!(relay.children().len(), 1);
}

#[tokio::test]
async fn tcp_junk_is_answered_and_an_oversize_line_closes_only_that_connection() {
    let relay = Relay::start(
        &["--tcp-listen", "127.0.0.1:0", "--tcp-max-line", "1KiB"],
        &[],
    );
    eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    let addr = tcp_addr(&relay);
    let mut good = Lines::tcp(&addr).await;
    good.request(
        json!(0),
        "initialize",
        init_request(json!(0), "2025-11-25")["params"].clone(),
    )
    .await;
    let mut bad = Lines::tcp(&addr).await;
    bad.send_raw("not json").await;
    assert_eq!(bad.next().await.unwrap()["error"]["code"], -32700);
    bad.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    assert_eq!(
        bad.next().await.unwrap()["error"]["data"]["reason"],
        "not_initialized"
    );
    bad.send_raw(&"x".repeat(4096)).await;
    assert_eq!(bad.next().await.unwrap()["error"]["code"], -31009);
    assert!(bad.next().await.is_none(), "connection should close");
    let r = good
        .request(
            json!(1),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"still"}}),
        )
        .await;
    assert_eq!(text_of(&r), "still");
}

#[tokio::test]
async fn tcp_idle_connection_is_closed() {
    let relay = Relay::start(&["--tcp-listen", "127.0.0.1:0", "--tcp-idle", "300ms"], &[]);
    eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    let mut c = Lines::tcp(&tcp_addr(&relay)).await;
    let start = std::time::Instant::now();
    assert!(c.next().await.is_none());
    assert!(start.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn websocket_binary_and_oversize_messages_close_with_their_codes() {
    let relay = Relay::start(&["--ws-max-message", "1KiB"], &[]);
    let close_code = |m: Option<Result<Message, _>>| match m {
        Some(Ok(Message::Close(Some(f)))) => u16::from(f.code),
        other => panic!("expected a close frame, got {other:?}"),
    };
    let mut ws = Ws::connect(&ws_url(&relay)).await.stream;
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(close_code(ws.next().await), 1008);
    let mut ws = Ws::connect(&ws_url(&relay)).await.stream;
    ws.send(Message::text("y".repeat(4096))).await.unwrap();
    assert_eq!(close_code(ws.next().await), 1009);
}

#[tokio::test]
async fn websocket_from_a_foreign_origin_is_refused_before_the_upgrade() {
    let relay = Relay::start(&[], &[]);
    let mut req = ws_url(&relay).into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn a_connection_whose_child_dies_gets_the_error_then_closes() {
    let relay = Relay::start(&["--tcp-listen", "127.0.0.1:0"], &[]);
    eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    let tcp = Lines::tcp(&tcp_addr(&relay)).await;
    let ws = Ws::connect(&ws_url(&relay)).await;
    gets_the_error_then_closes(tcp).await;
    gets_the_error_then_closes(ws).await;
}

async fn gets_the_error_then_closes(mut c: impl Conn) {
    c.request(
        json!(0),
        "initialize",
        init_request(json!(0), "2025-11-25")["params"].clone(),
    )
    .await;
    c.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"crash","arguments":{"code":3}}}))
        .await;
    let err = c.until(|v| v["id"] == 1).await;
    assert_eq!(err["error"]["code"], -31007, "{err}");
    assert!(c.next().await.is_none(), "the connection should close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5_a_tcp_client_that_stops_reading_is_dropped_and_others_carry_on() {
    let relay = Relay::start(&["--tcp-listen", "127.0.0.1:0"], &[]);
    eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    let addr = tcp_addr(&relay);
    // A small receive window, so the relay's writes back up quickly.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(addr.parse().unwrap()).await.unwrap();
    let (r, w) = tcp.into_split();
    let mut slow = Lines::new(r, w);
    slow.request(
        json!(0),
        "initialize",
        init_request(json!(0), "2025-11-25")["params"].clone(),
    )
    .await;
    // 200,000 progress events (about 20 MB) that nobody reads for a while.
    slow.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
        "name":"progress","arguments":{"steps":200000,"interval_ms":0},"_meta":{"progressToken":1}}}))
        .await;
    let mut other = Lines::tcp(&addr).await;
    other
        .request(
            json!(0),
            "initialize",
            init_request(json!(0), "2025-11-25")["params"].clone(),
        )
        .await;
    for i in 0..20 {
        let r = other
            .request(
                json!(i + 1),
                "tools/call",
                json!({"name":"echo","arguments":{"text":"ok"}}),
            )
            .await;
        assert_eq!(text_of(&r), "ok");
    }
    eventually("the slow connection overflowed", || {
        relay.logs().contains("too slow")
    })
    .await;
    // The slow connection was closed before it got everything.
    let mut seen = 0;
    while let Some(v) = slow.next().await {
        seen += 1;
        assert_ne!(
            v["id"], 1,
            "the flooded call should not complete on a dropped connection"
        );
    }
    assert!(seen < 200_000, "{seen}");
}

#[tokio::test]
async fn websocket_junk_is_answered_and_a_full_relay_closes_with_try_later() {
    let relay = Relay::start(&["--max-sessions", "1"], &[]);
    let mut first = Ws::connect(&ws_url(&relay)).await;
    first.send_raw("{not json").await;
    assert_eq!(first.next().await.unwrap()["error"]["code"], -32700);
    first
        .request(
            json!(0),
            "initialize",
            init_request(json!(0), "2025-11-25")["params"].clone(),
        )
        .await;
    let mut ws = Ws::connect(&ws_url(&relay)).await.stream;
    ws.send(Message::text(
        init_request(json!(0), "2025-11-25").to_string(),
    ))
    .await
    .unwrap();
    let refusal = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => break serde_json::from_str::<Value>(&t).unwrap(),
            Some(Ok(_)) => {}
            other => panic!("expected the refusal, got {other:?}"),
        }
    };
    assert_eq!(refusal["error"]["code"], -31005, "{refusal}");
    match ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1013),
        other => panic!("expected close 1013, got {other:?}"),
    }
    let r = first
        .request(
            json!(1),
            "tools/call",
            json!({"name":"echo","arguments":{"text":"fine"}}),
        )
        .await;
    assert_eq!(text_of(&r), "fine");
}
