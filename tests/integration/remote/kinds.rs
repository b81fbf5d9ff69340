//! Every front (Streamable HTTP, WebSocket, TCP, legacy SSE, the stdio front) runs the same
//! scenario against every remote kind (TCP, WebSocket, Streamable HTTP answering SSE or JSON,
//! legacy HTTP+SSE through the automatic fallback), in per-session and shared mode; a polling
//! upstream resumed with `Last-Event-ID`; a remote session lost mid-way.

use super::*;
use crate::support::{poll_until, settles};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_over_a_remote_tcp_upstream() {
    let back = back();
    eventually("back tcp listening", || back.logs().contains("url=tcp://")).await;
    let upstream = format!("tcp://{}", tcp_addr(&back));
    let per_session = front(&upstream, &[]).await;
    all_fronts(&per_session, &upstream).await;
    let shared = front(&upstream, &["--session-mode", "shared"]).await;
    all_fronts(&shared, &upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_over_a_remote_websocket_upstream() {
    let back = back();
    let upstream = ws_url(&back);
    let per_session = front(&upstream, &[]).await;
    all_fronts(&per_session, &upstream).await;
    let shared = front(&upstream, &["--session-mode", "shared"]).await;
    all_fronts(&shared, &upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_over_a_remote_streamable_http_upstream() {
    let back = Relay::start(&[], &[]);
    let upstream = back.url.clone();
    let per_session = front(&upstream, &[]).await;
    all_fronts(&per_session, &upstream).await;
    // Each front session was its own remote session, deleted when it ended.
    assert!(
        settles(|| back.children().is_empty()).await,
        "remote sessions left: {}\n--- back ---\n{}\n--- front ---\n{}",
        back.children().len(),
        back.logs(),
        per_session.logs()
    );
    let shared = front(&back.url, &["--session-mode", "shared"]).await;
    all_fronts(&shared, &upstream).await;
    assert!(!per_session.logs().contains("upstream connection failed"));
    assert!(!shared.logs().contains("upstream connection failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_over_a_remote_upstream_answering_json() {
    let back = Relay::start(&["--response-mode", "json"], &[]);
    let upstream = back.url.clone();
    let per_session = front(&upstream, &[]).await;
    all_fronts(&per_session, &upstream).await;
    let shared = front(&back.url, &["--session-mode", "shared"]).await;
    all_fronts(&shared, &upstream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_remote_upstream_is_resumed_with_last_event_id() {
    // Every POST stream of the back relay is cut after 200 ms (2025-11-25 polling).
    let back = Relay::start(&["--sse-close-after", "200ms", "--sse-retry", "50ms"], &[]);
    for mode in ["per-session", "shared"] {
        let front = front(&back.url, &["--session-mode", mode]).await;
        let mut c = HttpClient::new(&front.url);
        c.initialize("2025-11-25").await;
        // Longer than a connection lives: the answer comes on the resumed stream.
        let started = Instant::now();
        let r = c.call(json!(1), "slow", json!({"ms": 700})).await;
        assert_eq!(text_of(&r.messages()[0]), "slept 700", "{mode}: {r:?}");
        assert!(started.elapsed() >= Duration::from_millis(700));
        // Progress spread over several cuts: nothing lost, nothing twice, in order.
        let r = c
            .post(
                json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
                "name":"progress","arguments":{"steps":6,"interval_ms":100},
                "_meta":{"progressToken":"p"}}}),
            )
            .await;
        let m = r.messages();
        let progress: Vec<Value> = m
            .iter()
            .filter(|v| v["method"] == "notifications/progress")
            .map(|v| v["params"]["progress"].clone())
            .collect();
        assert_eq!(
            progress,
            (1..=6).map(|n| json!(n)).collect::<Vec<_>>(),
            "{mode}: {m:?}"
        );
        assert_eq!(text_of(m.last().unwrap()), "done", "{mode}");
        assert_eq!(c.delete().await, 200);
        all_fronts(&front, &back.url).await;
        assert!(
            !front.logs().contains("upstream connection failed"),
            "{mode}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_over_a_remote_legacy_sse_upstream() {
    let back = Relay::start(&[], &[]);
    // `POST /sse` is refused (405): the link falls back to `GET /sse` and its endpoint.
    let upstream = format!("{}/sse", back.base);
    let per_session = front(&upstream, &[]).await;
    all_fronts(&per_session, &upstream).await;
    assert!(
        linked_over_sse(&per_session.logs()),
        "{}",
        per_session.logs()
    );
    let shared = front(&upstream, &["--session-mode", "shared"]).await;
    all_fronts(&shared, &upstream).await;
    // Closing the legacy stream ends the remote session: no child outlives it.
    drop((per_session, shared));
    eventually("remote children stopped", || back.children().is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_initialize_falls_back_to_the_sse_sibling_of_the_url() {
    let back = Relay::start(&[], &[]);
    // `POST /message` without a connection is refused, `GET /message` too: then `GET /sse`.
    let upstream = format!("{}/message", back.base);
    let front = front(&upstream, &[]).await;
    all_fronts(&front, &upstream).await;
    assert!(
        front.logs().contains("initialize refused"),
        "{}",
        front.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_remote_session_is_a_crash_and_shared_mode_reinitializes() {
    let back = Relay::start(&[], &[]);
    let addr = back.base.trim_start_matches("http://").to_owned();
    let front = front(&back.url, &["--session-mode", "shared"]).await;
    let mut c = HttpClient::new(&front.url);
    c.initialize("2025-11-25").await;
    let r = c.call(json!(1), "echo", json!({"text": "before"})).await;
    assert_eq!(text_of(&r.messages()[0]), "before");
    // The remote relay restarts on the same address: it knows no session any more.
    drop(back);
    let _back = Relay::start_raw(&["serve", "--listen", &addr, "--", crate::support::FIXTURE]);
    poll_until(
        "the session recovered on the restarted remote",
        || c.call(json!(2), "echo", json!({"text": "after"})),
        |r| r.status == 200 && text_of(&r.messages()[0]) == "after",
    )
    .await;
    assert!(front.logs().contains("upstream connection failed"));
}
