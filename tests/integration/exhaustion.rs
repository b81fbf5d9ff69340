//! Resource exhaustion at the HTTP layer (SECURITY.md §8.D1–D3): slow heads and bodies are cut
//! off at their timeouts, header floods get 431, the connection cap refuses the surplus, and a
//! well-behaved client is served throughout.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{init_request, poll_until, Relay};

fn addr(relay: &Relay) -> String {
    relay.base.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes (or `limit` passes); returns what arrived and when it closed.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(tokio::time::Instant::now() + limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&got).into_owned(),
                    Some(start.elapsed()),
                )
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), None),
        }
        if start.elapsed() > limit {
            return (String::from_utf8_lossy(&got).into_owned(), None);
        }
    }
}

async fn well_behaved(relay: &Relay) {
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c
        .call(json!(1), "echo", json!({"text": "still here"}))
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn d2_slow_head_is_closed_at_the_header_timeout_while_others_are_served() {
    let relay = Relay::start(&[], &[]);
    let mut slow = TcpStream::connect(addr(&relay)).await.unwrap();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    well_behaved(&relay).await;
    let (_, closed) = until_closed(&mut slow, Duration::from_secs(20)).await;
    let closed = closed.expect("a half-sent head was never closed");
    assert!(closed <= Duration::from_secs(15), "{closed:?}");
    well_behaved(&relay).await;
}

#[tokio::test]
async fn d2_slow_body_gets_408_at_the_body_timeout() {
    let relay = Relay::start(&["--body-idle-timeout", "1s"], &[]);
    let mut s = TcpStream::connect(addr(&relay)).await.unwrap();
    let head = "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                Accept: application/json, text/event-stream\r\nContent-Length: 200\r\n\r\n{\"jsonrpc\":";
    s.write_all(head.as_bytes()).await.unwrap();
    let (answer, _) = until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    well_behaved(&relay).await;
}

#[tokio::test]
async fn header_flood_and_oversized_heads_get_431() {
    let relay = Relay::start(&[], &[]);
    let body = init_request(json!(1), "2025-11-25").to_string();
    for (what, extra) in [
        (
            "150 fields",
            (0..150)
                .map(|i| format!("X-F{i}: v\r\n"))
                .collect::<String>(),
        ),
        (
            "a 40 KiB field",
            format!("X-Big: {}\r\n", "a".repeat(40 * 1024)),
        ),
    ] {
        let mut s = TcpStream::connect(addr(&relay)).await.unwrap();
        let req = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(req.as_bytes()).await;
        let (answer, _) = until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{what}: {answer:.200}");
    }
    well_behaved(&relay).await;
}

#[tokio::test]
async fn d3_connections_over_the_cap_are_closed_and_the_held_ones_still_work() {
    let relay = Relay::start(
        &["--max-connections", "3", "--admin-listen", "127.0.0.1:0"],
        &[],
    );
    // The admin listener's /health counts the main listener's open connections.
    let admin = relay.admin_base().await;
    let open_http = || async {
        let health: Value = reqwest::get(format!("{admin}/health"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["connections"]["http"].as_u64()
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr(&relay)).await.unwrap());
    }
    // The relay has accepted them before the surplus arrives.
    poll_until("the held connections accepted", open_http, |n| {
        *n == Some(3)
    })
    .await;
    let mut surplus = TcpStream::connect(addr(&relay)).await.unwrap();
    let (_, closed) = until_closed(&mut surplus, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "the fourth connection was kept open");
    // A held connection is served.
    let body = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let s = &mut held[0];
    s.write_all(req.as_bytes()).await.unwrap();
    let (answer, _) = until_closed(s, Duration::from_secs(10)).await;
    // No session: 400, but served.
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:.200}");
    // Freed slots take new clients, once the relay has seen them close.
    held.clear();
    poll_until("the held connections closed", open_http, |n| *n == Some(0)).await;
    well_behaved(&relay).await;
}

/// A long tool call outlives the request timeout while it reports progress, up to the hard
/// maximum; without progress the same length of call times out.
#[tokio::test]
async fn long_call_with_progress_outlives_the_timeout_up_to_the_hard_maximum() {
    let relay = Relay::start(
        &["--request-timeout", "600ms", "--request-timeout-max", "3s"],
        &[],
    );
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let call = |id: i64, steps: u64, token: bool| {
        let mut params =
            json!({"name": "progress", "arguments": {"steps": steps, "interval_ms": 200}});
        if token {
            params["_meta"] = json!({"progressToken": format!("p{id}")});
        }
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params})
    };
    // 2 s of work, progress every 200 ms: longer than 600 ms, answered.
    let started = Instant::now();
    let r = c.post(call(1, 10, true)).await;
    let last = r.messages().pop().unwrap();
    assert!(last.get("result").is_some(), "{last}");
    assert!(started.elapsed() >= Duration::from_millis(1800));
    // The same call without a progress token: timed out.
    let r = c.post(call(2, 10, false)).await;
    assert_eq!(r.messages().pop().unwrap()["error"]["code"], -31008);
    // Progress for 6 s: cut at the 3 s hard maximum.
    let started = Instant::now();
    let r = c.post(call(3, 30, true)).await;
    assert_eq!(r.messages().pop().unwrap()["error"]["code"], -31008);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// `--method-timeout` gives one method its own timeout: a slow `tools/call` outlives the
/// default (300 ms) and is still cut at its own (3 s).
#[tokio::test]
async fn a_method_timeout_lets_long_tool_calls_finish() {
    let relay = Relay::start(
        &[
            "--request-timeout",
            "300ms",
            "--method-timeout",
            "tools/call=3s",
        ],
        &[],
    );
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c.call(json!(1), "slow", json!({"ms": 1200})).await;
    let m = r.messages().pop().unwrap();
    assert!(m.get("result").is_some(), "{m}");
    let r = c.call(json!(2), "slow", json!({"ms": 5000})).await;
    assert_eq!(r.messages().pop().unwrap()["error"]["code"], -31008);
}
