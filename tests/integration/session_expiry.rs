//! Issue 14, bug 7: per-session children of clients that leave without DELETE are reaped after
//! `--session-idle-timeout`, while a session with an open stream or a request in flight stays.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    alive, collect_events, eventually, read_reply, tempdir, text_of, Client, Relay,
};

/// Longer than the 1 s idle timeout plus a sweep, short enough for a test.
const PAST_TIMEOUT: Duration = Duration::from_millis(2500);

/// A relay with a 1 s idle timeout, and an initialized client with its child's pid.
async fn started() -> (Relay, Client, u32) {
    with_relay(Relay::start(&["--session-idle-timeout", "1s"], &[])).await
}

async fn with_relay(relay: Relay) -> (Relay, Client, u32) {
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let pid = child_pid(&c).await;
    assert!(relay.children().contains(&pid), "{pid}");
    (relay, c, pid)
}

async fn child_pid(c: &Client) -> u32 {
    let r = c.call(json!("pid"), "pid", json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    text_of(&r.messages()[0]).parse().unwrap()
}

#[tokio::test]
async fn a_session_left_without_delete_is_reaped_with_its_child() {
    // Set in the config file, as `[serve] session_idle_timeout`.
    let config = tempdir().join("relay.toml");
    std::fs::write(&config, "[serve]\nsession_idle_timeout = \"1s\"\n").unwrap();
    let config = config.to_str().unwrap();
    let (relay, c, pid) = with_relay(Relay::start(&["--config", config], &[])).await;
    // The client goes away without DELETE (the TypeScript SDK's close(), the Inspector CLI).
    eventually("the idle session's child stopped", || !alive(pid)).await;
    let r = c.call(json!(2), "echo", json!({"text": "late"})).await;
    assert_eq!(r.status, 404, "{r:?}");
    let logs = relay.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("idle session expired"))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("idle_timeout"), "{line}");
    assert!(line.contains(&pid.to_string()), "{line}");
}

#[tokio::test]
async fn a_session_with_an_open_get_stream_is_never_idle() {
    let (_relay, c, pid) = started().await;
    let stream = c.get(None).await;
    assert_eq!(stream.status(), 200);
    // Not a race guard: outliving the idle timeout is the behaviour under test.
    tokio::time::sleep(PAST_TIMEOUT).await;
    assert!(alive(pid), "reaped while its GET stream was open");
    let r = c
        .call(json!(2), "echo", json!({"text": "still here"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "still here");
    // Once the stream closes, the idle clock runs from then.
    drop(stream);
    eventually("the child stopped after the stream closed", || !alive(pid)).await;
}

#[tokio::test]
async fn a_request_in_flight_keeps_its_session_and_its_answer_waits_a_whole_timeout() {
    let (_relay, c, pid) = with_relay(Relay::start(&["--session-idle-timeout", "3s"], &[])).await;
    let t0 = tokio::time::Instant::now();
    // A 6 s call whose response stream the client drops after the priming event.
    let res = c
        .post_builder()
        .body(
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
                "params":{"name":"slow","arguments":{"ms": 6000}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let primed = collect_events(res, 1).await;
    let last_id = primed[0].id.clone();
    // 4 s without a connection, past the timeout, but the call is in flight.
    tokio::time::sleep_until(t0 + Duration::from_secs(4)).await;
    assert!(alive(pid), "reaped with a request in flight");
    // Answered at 6 s: the client has until 9 s to come back for it.
    tokio::time::sleep_until(t0 + Duration::from_secs(7)).await;
    let resumed = read_reply(c.get(Some(&last_id)).await).await;
    assert_eq!(resumed.status, 200, "{resumed:?}");
    assert_eq!(text_of(&resumed.messages()[0]), "slept 6000");
    drop(resumed);
    eventually("the child stopped once idle", || !alive(pid)).await;
}

#[test]
fn a_zero_idle_timeout_is_a_usage_error() {
    let out = std::process::Command::new(crate::support::RELAY)
        .args([
            "serve",
            "--session-idle-timeout",
            "0s",
            "--",
            crate::support::FIXTURE,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--session-idle-timeout"), "{err}");
}

#[tokio::test]
async fn websocket_and_tcp_sessions_are_never_idle_while_connected() {
    use crate::support::conn::scenario;
    use crate::support::lines::Lines;
    use crate::support::ws::Ws;
    use crate::support::{tcp_addr, ws_url};
    let relay = Relay::start(
        &[
            "--session-idle-timeout",
            "1s",
            "--tcp-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    let mut ws = Ws::connect(&ws_url(&relay)).await;
    scenario(&mut ws).await;
    let mut tcp = Lines::tcp(&tcp_addr(&relay)).await;
    scenario(&mut tcp).await;
    let children = relay.children();
    assert_eq!(children.len(), 2, "{children:?}");
    // Not a race guard: outliving the idle timeout is the behaviour under test.
    tokio::time::sleep(PAST_TIMEOUT).await;
    assert!(
        children.iter().all(|&pid| alive(pid)),
        "reaped while connected"
    );
    drop((ws, tcp));
    eventually("both children stopped with their connections", || {
        children.iter().all(|&pid| !alive(pid))
    })
    .await;
    assert!(!relay.logs().contains("idle session expired"));
}
