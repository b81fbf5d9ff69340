//! Legacy HTTP+SSE (2024-11-05, PROTOCOL.md §3): `GET /sse` + `POST /message?sessionId=`.
//! The scenario every front runs (initialize, tools/list, progress, a server→client request,
//! notifications), the refusals and their status codes, connection isolation, the identity
//! binding, the guard, and the connection's end (stream closed, relay draining).

use serde_json::{json, Value};

use crate::support::conn::{scenario, Conn};
use crate::support::sse::Legacy;
use crate::support::{eventually, init_request, text_of, Relay};

/// `initialize` as a 2024-11-05 client, and `notifications/initialized`.
async fn initialize(c: &mut Legacy) -> Value {
    let params = init_request(json!(0), "2024-11-05")["params"].clone();
    let init = c.request(json!(0), "initialize", params).await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05", "{init}");
    c.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    init
}

#[tokio::test]
async fn sse_front_runs_the_scenario() {
    let relay = Relay::start(&[], &[]);
    let mut c = Legacy::open(&relay).await;
    scenario(&mut c).await;
    assert_eq!(relay.children().len(), 1);
    drop(c);
    eventually("child stopped with the stream", || {
        relay.children().is_empty()
    })
    .await;
}

#[tokio::test]
async fn sse_refusals_have_their_status_codes_and_the_connection_survives() {
    let relay = Relay::start(&["--max-body", "1KiB"], &[]);
    let mut c = Legacy::open(&relay).await;
    initialize(&mut c).await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let json_ct = "application/json";
    let unknown = format!("{}/message?sessionId={}", relay.base, "0".repeat(32));
    assert_eq!(c.post_to(&unknown, json_ct, ping.clone()).await, 404);
    let missing = format!("{}/message", relay.base);
    assert_eq!(c.post_to(&missing, json_ct, ping.clone()).await, 400);
    let empty = format!("{}/message?sessionId=", relay.base);
    assert_eq!(c.post_to(&empty, json_ct, ping.clone()).await, 400);
    let twice = format!("{}&sessionId={}", c.endpoint, "0".repeat(32));
    assert_eq!(c.post_to(&twice, json_ct, ping.clone()).await, 400);
    assert_eq!(
        c.post_to(&c.endpoint, "text/plain", ping.clone()).await,
        415
    );
    let big = json!({"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"x".repeat(4096)}});
    assert_eq!(c.post_to(&c.endpoint, json_ct, big.to_string()).await, 413);
    // The refused 404 body is the relay's error (error.rs).
    let r = c
        .http
        .post(&unknown)
        .header("content-type", json_ct)
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31003);
    // GET must accept SSE; each route has one method.
    let sse = format!("{}/sse", relay.base);
    let r = c.http.get(&sse).header("accept", "application/json");
    assert_eq!(r.send().await.unwrap().status(), 406);
    let r = c.http.put(&sse).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    let r = c.http.get(&missing).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    // None of it reached the connection, which still works.
    assert_eq!(c.echo(json!(5), "still here").await, "still here");
    assert!(c.backlog.is_empty(), "{:?}", c.backlog);
}

#[tokio::test]
async fn sse_junk_body_is_a_parse_error_event_and_no_connection_is_disturbed() {
    let relay = Relay::start(&[], &[]);
    let mut a = Legacy::open(&relay).await;
    let mut b = Legacy::open(&relay).await;
    initialize(&mut a).await;
    initialize(&mut b).await;
    a.send_raw("this is not json").await;
    let err = a.next().await.unwrap();
    assert_eq!(err["error"]["code"], -32700, "{err}");
    a.send_raw(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","#)
        .await;
    assert_eq!(a.next().await.unwrap()["error"]["code"], -32700);
    assert_eq!(a.echo(json!(2), "a").await, "a");
    assert_eq!(b.echo(json!(2), "b").await, "b");
    assert!(b.backlog.is_empty(), "{:?}", b.backlog);
}

#[tokio::test]
async fn sse_first_message_must_be_initialize() {
    let relay = Relay::start(&[], &[]);
    let mut c = Legacy::open(&relay).await;
    c.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    let err = c.next().await.unwrap();
    assert_eq!(err["id"], 1);
    assert_eq!(err["error"]["data"]["reason"], "not_initialized");
    assert!(relay.children().is_empty());
    initialize(&mut c).await;
    assert_eq!(c.echo(json!(2), "ok").await, "ok");
}

#[tokio::test]
async fn sse_closing_one_stream_stops_only_its_child() {
    let relay = Relay::start(&[], &[]);
    let mut a = Legacy::open(&relay).await;
    let mut b = Legacy::open(&relay).await;
    initialize(&mut a).await;
    initialize(&mut b).await;
    assert_eq!(relay.children().len(), 2);
    let endpoint = a.endpoint.clone();
    drop(a);
    eventually("a's child stopped", || relay.children().len() == 1).await;
    // The closed connection's endpoint is gone; the other one works.
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    assert_eq!(b.post_to(&endpoint, "application/json", ping).await, 404);
    assert_eq!(b.echo(json!(3), "b").await, "b");
    drop(b);
    eventually("every child stopped", || relay.children().is_empty()).await;
}

#[tokio::test]
async fn sse_concurrent_posts_on_one_connection_each_get_their_answer() {
    let relay = Relay::start(&[], &[]);
    let mut c = Legacy::open(&relay).await;
    initialize(&mut c).await;
    let posts = (0..20).map(|i| {
        let body = json!({"jsonrpc":"2.0","id":i,"method":"tools/call",
            "params":{"name":"echo","arguments":{"text":format!("n{i}")}}});
        c.post_to(&c.endpoint, "application/json", body.to_string())
    });
    let statuses = futures_util::future::join_all(posts).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    for i in 0..20 {
        let r = c.until(|v| v["id"] == i).await;
        assert_eq!(text_of(&r), format!("n{i}"));
    }
}

#[tokio::test]
async fn sse_identity_header_binds_the_connection_to_its_identity() {
    let relay = Relay::start(&["--identity-header", "x-user"], &[]);
    let bare = reqwest::Client::new();
    let sse = format!("{}/sse", relay.base);
    let r = bare.get(&sse).header("accept", "text/event-stream");
    assert_eq!(r.send().await.unwrap().status(), 400, "missing identity");
    let mut c = Legacy::open_with(&relay, &[("x-user", "alice")]).await;
    initialize(&mut c).await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let post = |user: Option<&str>| {
        let mut b = bare
            .post(&c.endpoint)
            .header("content-type", "application/json")
            .body(ping.clone());
        if let Some(u) = user {
            b = b.header("x-user", u);
        }
        b.send()
    };
    assert_eq!(post(Some("bob")).await.unwrap().status(), 404);
    assert_eq!(post(None).await.unwrap().status(), 400);
    assert_eq!(post(Some("alice")).await.unwrap().status(), 202);
    assert_eq!(c.until(|v| v["id"] == 1).await["result"], json!({}));
    assert!(c.backlog.is_empty(), "{:?}", c.backlog);
}

#[tokio::test]
async fn c1_c2_sse_routes_are_behind_the_host_and_origin_guard() {
    let relay = Relay::start(&[], &[]);
    let c = Legacy::open(&relay).await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    let sse = format!("{}/sse", relay.base);
    for (name, value) in [
        ("host", "evil.example.com"),
        ("origin", "http://evil.example"),
    ] {
        let r = c
            .http
            .get(&sse)
            .header("accept", "text/event-stream")
            .header(name, value);
        assert_eq!(r.send().await.unwrap().status(), 403, "GET {name}");
        let r = c
            .http
            .post(&c.endpoint)
            .header("content-type", "application/json")
            .header(name, value)
            .body(ping.clone());
        assert_eq!(r.send().await.unwrap().status(), 403, "POST {name}");
    }
}

#[tokio::test]
async fn c4_message_probes_without_or_with_a_foreign_session_id_are_never_routed() {
    let relay = Relay::start(&[], &[]);
    let mut victim = Legacy::open(&relay).await;
    initialize(&mut victim).await;
    let probe = json!({"jsonrpc":"2.0","id":"probe","method":"tools/call",
        "params":{"name":"echo","arguments":{"text":"stolen"}}})
    .to_string();
    let http = reqwest::Client::new();
    let flipped = {
        // The victim's id with its last hex digit changed.
        let mut s = victim.endpoint.clone();
        let last = s.pop().unwrap();
        s.push(if last == '0' { '1' } else { '0' });
        s
    };
    let urls = [format!("{}/message", relay.base), flipped];
    for i in 0..1000 {
        let url = &urls[i % 2];
        let r = http
            .post(url)
            .header("content-type", "application/json")
            .body(probe.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), if i % 2 == 0 { 400 } else { 404 });
    }
    // The victim saw nothing but its own answer.
    assert_eq!(victim.echo(json!(9), "mine").await, "mine");
    assert!(victim.backlog.is_empty(), "{:?}", victim.backlog);
    assert_eq!(relay.health().await["status"], "ok");
}

// SIGTERM: Unix only (docs/platforms.md).
#[cfg(all(unix, not(feature = "portable")))]
#[tokio::test]
async fn sse_stream_ends_when_the_relay_drains() {
    let (relay, record) = Relay::start_recorded(&["--shutdown-grace", "60s"], &[]);
    let mut c = Legacy::open(&relay).await;
    initialize(&mut c).await;
    // A Streamable HTTP call still running keeps the relay in its drain after SIGTERM.
    let mut busy = relay.client();
    busy.initialize("2025-11-25").await;
    let slow = tokio::spawn(async move { busy.call(json!(1), "slow", json!({"ms": 60000})).await });
    crate::support::wait_recorded(&record, r#""name":"slow""#, 1).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(relay.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(c.next().await.is_none(), "the stream should have ended");
    let mut relay = relay;
    assert!(
        relay.child.try_wait().unwrap().is_none(),
        "ended by the drain, not the exit"
    );
    slow.abort();
}

#[tokio::test]
async fn sse_stream_ends_after_its_child_dies_so_the_client_reconnects() {
    let relay = Relay::start(&[], &[]);
    let mut c = Legacy::open(&relay).await;
    initialize(&mut c).await;
    c.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"crash","arguments":{"code":3}}}))
        .await;
    let err = c.until(|v| v["id"] == 1).await;
    assert_eq!(err["error"]["code"], -31007, "{err}");
    assert!(c.next().await.is_none(), "the stream should end");
}

#[tokio::test]
async fn sse_connections_and_http_sessions_share_one_session_cap() {
    let relay = Relay::start(&["--max-sessions", "2"], &[]);
    // A connection holds its place from its GET on, before its `initialize`.
    let mut legacy = Legacy::open(&relay).await;
    let mut http = relay.client();
    http.initialize("2025-11-25").await;
    let r = relay
        .client()
        .post(init_request(json!(1), "2025-11-25"))
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], -31005);
    let full = reqwest::Client::new()
        .get(format!("{}/sse", relay.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(full.status(), 503);
    // Its `initialize` fills the place it holds.
    legacy.initialize("2024-11-05").await;
    assert_eq!(legacy.echo(json!(1), "legacy").await, "legacy");
    // Its id names a session of the legacy front only.
    let (_, id) = legacy.endpoint.split_once("sessionId=").unwrap();
    let mut stranger = relay.client();
    stranger.session = Some(id.to_owned());
    stranger.version = Some("2024-11-05".to_owned());
    let r = stranger
        .post(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
        .await;
    assert_eq!(r.status, 404);
    // Its stream gone, the place is free again.
    drop(legacy);
    let late = relay.client();
    let mut opened = false;
    for _ in 0..50 {
        let r = late.post(init_request(json!(1), "2025-11-25")).await;
        if r.status == 200 {
            opened = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(opened, "the closed connection's place was not freed");
}
