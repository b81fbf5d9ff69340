//! The host's scenario (initialize with the host's clientInfo, tools/list, echo, progress,
//! sampling, EOF) over Streamable HTTP, legacy SSE, WebSocket and TCP, with and without
//! `--transport`; and malformed host input answered without ending the bridge.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_streamable_http() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    scenario(&[&s.url], &record).await;
    // `--transport http` says the same.
    scenario(&["--transport", "http", &s.url], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_legacy_sse() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    let sse = format!("{}/sse", s.base);
    scenario(&["--transport", "sse", &sse], &record).await;
    // Without --transport: the automatic fallback from Streamable HTTP.
    scenario(&[&sse], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_websocket() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    scenario(&[&s.ws_url()], &record).await;
    scenario(&["--transport", "ws", &s.ws_url()], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_runs_the_scenario_over_tcp() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    let tcp = s.tcp_url().await;
    assert!(tcp.starts_with("tcp://"), "{tcp}");
    scenario(&[&tcp], &record).await;
    scenario(&["--transport", "tcp", &tcp], &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_answers_malformed_host_input_and_exits_on_eof() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    let mut b = Bridge::spawn(&[&s.url]);
    b.send_raw("not json").await;
    let e = b.until("parse error", |v| v.get("error").is_some()).await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    assert_eq!(e["id"], Value::Null, "{e}");
    b.initialize().await;
    b.send_raw("{}").await;
    let e = b
        .until("invalid request", |v| v.get("error").is_some())
        .await;
    assert_eq!(e["error"]["code"], -32600, "{e}");
    b.send_raw("{\"jsonrpc\":\"2.0\",\"id\":9,").await;
    let e = b.until("parse error", |v| v.get("error").is_some()).await;
    assert_eq!(e["error"]["code"], -32700, "{e}");
    let r = b
        .call(json!(1), "echo", json!({"text": "still here"}))
        .await;
    assert_eq!(text_of(&r), "still here");
    let pid: u32 = text_of(&b.call(json!(2), "pid", json!({})).await)
        .parse()
        .unwrap();
    // stdin EOF: exit 0 within 2 s, and the remote session is ended.
    let (code, took) = b.eof().await;
    assert_eq!(code, Some(0), "{}", b.stderr());
    assert!(took < Duration::from_secs(2), "{took:?}");
    b.assert_clean();
    eprintln!("--- server log ---\n{}", s.logs());
    // The server's session (and its child) is gone: DELETE or the connection's end. (The
    // bridge's `server/discover` probe may have started the relay's pool for 2026-07-28
    // requests; that child stays.)
    eventually("the remote session ended", || {
        !crate::support::children_of(s.child.id()).contains(&pid)
    })
    .await;
}
