//! Remote upstreams: a front relay whose server is another relay reached over TCP, WebSocket,
//! Streamable HTTP (`http://…/mcp`, also answering JSON, also polling) or legacy HTTP+SSE
//! (`http://…/sse` through the automatic fallback). Every front (Streamable HTTP, WebSocket,
//! TCP, legacy SSE, the stdio front) runs the same scenario against every remote kind, in per-session and shared mode.
//! Plus what the HTTP client owes the server (headers, session, DELETE, never a client's
//! credentials), checked against a recording mock, and a remote session lost mid-way.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use eventsource_stream::Eventsource;
use serde_json::{json, Value};

use crate::support::conn::scenario;
use crate::support::lines::Lines;
use crate::support::sse::Legacy;
use crate::support::ws::Ws;
use crate::support::{eventually, patience, text_of, wait_event, Client as HttpClient, Relay};
use crate::support::{tcp_addr, ws_url};

/// A relay around the fixture with a TCP front.
fn back() -> Relay {
    Relay::start(&["--tcp-listen", "127.0.0.1:0"], &[])
}

async fn front(upstream: &str, extra: &[&str]) -> Relay {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tcp-listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
    ];
    args.extend_from_slice(extra);
    let relay = Relay::start_raw(&args);
    eventually("front tcp listening", || {
        relay.logs().contains("url=tcp://")
    })
    .await;
    relay
}

/// The scenario over Streamable HTTP.
async fn http_scenario(relay: &Relay) {
    let mut c = HttpClient::new(&relay.url);
    let init = c.initialize("2025-11-25").await;
    assert_eq!(
        init.messages()[0]["result"]["serverInfo"]["name"],
        "mcp-relay-fixture"
    );
    let list = c
        .post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await;
    assert!(
        list.messages()[0]["result"]["tools"]
            .as_array()
            .unwrap()
            .len()
            > 5
    );
    let r = c
        .post(
            json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
            "name":"progress","arguments":{"steps":3},"_meta":{"progressToken":"p"}}}),
        )
        .await;
    let m = r.messages();
    assert_eq!(m.len(), 4, "{m:?}");
    assert_eq!(text_of(&m[3]), "done");
    let res = c
        .post_builder()
        .body(
            json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
                "params":{"name":"sample","arguments":{}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let mut events = Box::pin(res.bytes_stream().eventsource());
    let ask = wait_event(&mut events, |v| v["method"] == "sampling/createMessage").await;
    let answer = json!({"jsonrpc":"2.0","id":ask["id"],"result":{"role":"assistant",
        "content":{"type":"text","text":"sampled"},"model":"m"}});
    assert_eq!(c.post(answer).await.status, 202);
    let done = wait_event(&mut events, |v| v["id"] == 3).await;
    assert!(text_of(&done).contains("sampled"));
    // Unclaimed notifications may also travel on the GET stream: listen there too.
    let mut get = Box::pin(c.get(None).await.bytes_stream().eventsource());
    let r = c.call(json!(4), "notify", json!({})).await;
    let on_post = |method: &str| r.messages().iter().any(|v| v["method"] == method);
    assert!(on_post("notifications/message"), "{:?}", r.messages());
    if !on_post("notifications/tools/list_changed") {
        wait_event(&mut get, |v| {
            v["method"] == "notifications/tools/list_changed"
        })
        .await;
    }
    assert_eq!(c.delete().await, 200);
}

/// `mcp-relay stdio --upstream <the front's own upstream>`: the stdio front over the same
/// remote kind.
async fn stdio_scenario(upstream: &str) {
    let mut child = tokio::process::Command::new(crate::support::RELAY)
        .args(["stdio", "--upstream", upstream])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut c = Lines::new(stdout, stdin);
    scenario(&mut c).await;
    drop(c);
    let status = tokio::time::timeout(crate::support::patience(), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

async fn all_fronts(front: &Relay, upstream: &str) {
    http_scenario(front).await;
    scenario(&mut Legacy::open(front).await).await;
    stdio_scenario(upstream).await;
    let mut ws = Ws::connect(&ws_url(front)).await;
    scenario(&mut ws).await;
    let mut tcp = Lines::tcp(&tcp_addr(front)).await;
    scenario(&mut tcp).await;
}

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
    let deadline = std::time::Instant::now() + crate::support::patience();
    while !back.children().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "remote sessions left: {}\n--- back ---\n{}\n--- front ---\n{}",
            back.children().len(),
            back.logs(),
            per_session.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
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

/// Whether the relay logged its upstream link as legacy SSE (not its own `/sse` listener).
fn linked_over_sse(logs: &str) -> bool {
    logs.lines()
        .any(|l| l.contains("upstream connected") && l.contains("transport=\"sse\""))
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
    let deadline = Instant::now() + patience();
    loop {
        let r = c.call(json!(2), "echo", json!({"text": "after"})).await;
        if r.status == 200 && text_of(&r.messages()[0]) == "after" {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(front.logs().contains("upstream connection failed"));
}

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

// === TLS upstreams (`https://`, `wss://`, `tls://`) ===

/// `mcp-relay cert generate` into a fresh directory (`extra`: `--san …`); returns (cert, key).
fn cert_generate(extra: &[&str]) -> (PathBuf, PathBuf) {
    let dir = crate::support::tempdir();
    let out = std::process::Command::new(crate::support::RELAY)
        .args(["cert", "generate", "--out-dir", dir.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// A relay around the fixture serving HTTPS, WSS and TLS over TCP with `cert`.
async fn tls_back(cert: &Path, key: &Path) -> Relay {
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tcp-listen",
        "127.0.0.1:0",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--",
        crate::support::FIXTURE,
    ]);
    assert!(relay.url.starts_with("https://"), "{}", relay.url);
    eventually("back tls listening", || relay.logs().contains("url=tls://")).await;
    relay
}

fn wss_url(relay: &Relay) -> String {
    relay.base.replacen("https://", "wss://", 1) + "/ws"
}

fn tls_url(relay: &Relay) -> String {
    let logs = relay.logs();
    let at = logs.find("url=tls://").expect("no tls listener logged") + 4;
    logs[at..].split_whitespace().next().unwrap().to_owned()
}

/// A client of `front` initializes and calls `echo`.
async fn echo_through(front: &Relay) {
    let mut c = HttpClient::new(&front.url);
    let init = c.initialize("2025-11-25").await;
    assert_eq!(
        init.messages()[0]["result"]["serverInfo"]["name"],
        "mcp-relay-fixture",
        "{}",
        front.logs()
    );
    let r = c
        .call(json!(1), "echo", json!({"text": "through tls"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "through tls");
    assert_eq!(c.delete().await, 200);
}

/// The front's client is refused (the upstream is unavailable) and the front logs `cause`
/// on its `upstream connection failed` line.
async fn refused(front: &Relay, cause: &str) {
    let r = HttpClient::new(&front.url)
        .post(crate::support::init_request(json!(0), "2025-11-25"))
        .await;
    let m = r.messages();
    let code = m[0]["error"]["code"].as_i64();
    assert!(matches!(code, Some(-31006 | -31007)), "{r:?}");
    eventually("the certificate error is logged", || {
        front
            .logs()
            .lines()
            .any(|l| l.contains("upstream connection failed") && l.contains(cause))
    })
    .await;
    assert_eq!(front.health().await["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_wss_and_tls_upstreams_work_with_their_ca_configured() {
    let (cert, key) = cert_generate(&[]);
    let back = tls_back(&cert, &key).await;
    let ca = cert.to_str().unwrap();
    // Streamable HTTP over TLS, the whole scenario.
    let front_https = front(&back.url, &["--upstream-ca", ca]).await;
    echo_through(&front_https).await;
    http_scenario(&front_https).await;
    // Legacy SSE over TLS, through the fallback.
    let sse = format!("{}/sse", back.base);
    let front_sse = front(&sse, &["--upstream-ca", ca]).await;
    echo_through(&front_sse).await;
    assert!(linked_over_sse(&front_sse.logs()));
    // WebSocket and TCP over TLS.
    let front_wss = front(&wss_url(&back), &["--upstream-ca", ca]).await;
    echo_through(&front_wss).await;
    let front_tls = front(&tls_url(&back), &["--upstream-ca", ca]).await;
    echo_through(&front_tls).await;
    let mut tcp = Lines::tcp(&tcp_addr(&front_tls)).await;
    scenario(&mut tcp).await;
    for f in [&front_https, &front_sse, &front_wss, &front_tls] {
        assert!(
            !f.logs().contains("upstream connection failed"),
            "{}",
            f.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_upstream_is_refused_with_the_default_roots() {
    let (cert, key) = cert_generate(&[]);
    let back = tls_back(&cert, &key).await;
    for upstream in [back.url.clone(), wss_url(&back), tls_url(&back)] {
        let front = front(&upstream, &[]).await;
        refused(&front, "UnknownIssuer").await;
        // The line says what to do, once: the cause is not repeated.
        let logs = front.logs();
        let line = logs
            .lines()
            .find(|l| l.contains("upstream connection failed"))
            .unwrap();
        assert!(line.contains("--upstream-ca"), "{line}");
        assert_eq!(line.matches("UnknownIssuer").count(), 1, "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused_even_when_trusted() {
    let (cert, key) = cert_generate(&["--san", "other.example"]);
    let back = tls_back(&cert, &key).await;
    let ca = cert.to_str().unwrap();
    for upstream in [back.url.clone(), wss_url(&back), tls_url(&back)] {
        let front = front(&upstream, &["--upstream-ca", ca]).await;
        refused(&front, "certificate not valid for name").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused_even_when_trusted() {
    let dir = crate::support::tempdir();
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now - time::Duration::days(1);
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let issued = params.self_signed(&key_pair).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.pem()).unwrap();
    std::fs::write(&key, key_pair.serialize_pem()).unwrap();
    let back = tls_back(&cert, &key).await;
    let front = front(&back.url, &["--upstream-ca", cert.to_str().unwrap()]).await;
    refused(&front, "certificate expired").await;
}

#[tokio::test]
async fn upstream_ca_is_for_tls_upstreams_and_must_be_readable() {
    let (cert, _) = cert_generate(&[]);
    let cases = [
        (
            "http://127.0.0.1:9/mcp",
            cert.to_str().unwrap(),
            "applies only",
        ),
        ("https://127.0.0.1:9/mcp", "/nonexistent/ca.pem", "ca.pem"),
    ];
    for (upstream, ca, says) in cases {
        let out = std::process::Command::new(crate::support::RELAY)
            .args(["serve", "--upstream", upstream, "--upstream-ca", ca])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

// === TLS options of `connect` (`TlsOptions`: --insecure, mTLS, system roots), at the lib ===

use mcp_relay::upstream::remote::{Alpn, RemoteSpec, Roots, TlsClient, TlsOptions, Trust};

/// `host:port` of an `https://` relay.
fn tls_addr(relay: &Relay) -> String {
    relay.base.trim_start_matches("https://").to_owned()
}

/// A rustls handshake with `client` against `addr`, verifying the name `127.0.0.1`.
async fn handshake(client: &TlsClient, addr: &str) -> std::io::Result<()> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client.config())
        .connect(name, tcp)
        .await?;
    tokio::io::AsyncWriteExt::shutdown(&mut tls).await
}

/// reqwest over `client`'s configuration, as `remote/http/link.rs` builds it.
fn http_over(client: &TlsClient) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(&client.config()))
        .build()
        .unwrap()
}

fn insecure() -> TlsOptions {
    TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g4_insecure_accepts_a_self_signed_or_misnamed_server_and_the_defaults_refuse_it() {
    // Self-signed, and for another host: only --insecure gets through.
    let (cert, key) = cert_generate(&["--san", "other.example"]);
    let back = tls_back(&cert, &key).await;
    let addr = tls_addr(&back);
    let open = TlsClient::with_options(&insecure(), Alpn::Http).unwrap();
    assert_eq!(open.trust(), &Trust::Any);
    handshake(&open, &addr).await.unwrap();
    let health: Value = http_over(&open)
        .get(format!("{}/health", back.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    for roots in [Roots::Mozilla, Roots::System] {
        let opts = TlsOptions {
            roots,
            ..TlsOptions::default()
        };
        let strict = TlsClient::with_options(&opts, Alpn::Http).unwrap();
        let err = handshake(&strict, &addr).await.unwrap_err();
        assert!(
            err.to_string().contains("UnknownIssuer"),
            "{roots:?}: {err}"
        );
    }
    // Trusting the CA is not enough for the wrong name.
    let trusted = TlsClient::with_options(&TlsOptions::with_ca(Some(&cert)), Alpn::Http).unwrap();
    let err = handshake(&trusted, &addr).await.unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    // --insecure with a CA bundle is a usage error, whatever the URL.
    let both = TlsOptions {
        ca: Some(cert.clone()),
        ..insecure()
    };
    let err = RemoteSpec::parse_with(&back.url, 1 << 20, &both).unwrap_err();
    assert!(err.contains("pick one"), "{err}");
    let err = RemoteSpec::parse_with("http://127.0.0.1:9/mcp", 1 << 20, &insecure()).unwrap_err();
    assert!(err.contains("apply only"), "{err}");
    assert!(RemoteSpec::parse_with(&back.url, 1 << 20, &insecure()).is_ok());
}

/// A TLS relay whose `[auth.mtls]` maps `dns:client.example.com` to `svc`; returns it, its
/// server certificate and the client CA `(cert_pem, key_pem)`.
fn mtls_back() -> (Relay, PathBuf, (String, String)) {
    use mcp_relay::tls::client::testing::make_ca;
    let (cert, key) = cert_generate(&[]);
    let dir = cert.parent().unwrap().to_path_buf();
    let ca = make_ca("remote-it client CA").unwrap();
    std::fs::write(dir.join("clients-ca.pem"), &ca.0).unwrap();
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        "[auth]\nresource = \"http://relay.test/mcp\"\n\n[auth.mtls]\nca = \"clients-ca.pem\"\n\n\
         [[auth.mtls.clients]]\nmatch = \"dns:client.example.com\"\nprincipal = \"svc\"\n\
         roles = [\"user\"]\n",
    )
    .unwrap();
    let roles = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/permissions.json");
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--resource",
        "http://relay.test/mcp",
        "--config",
        config.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--roles",
        roles.to_str().unwrap(),
        "--",
        crate::support::FIXTURE,
    ]);
    assert!(relay.url.starts_with("https://"), "{}", relay.url);
    (relay, cert, ca)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g3_a_client_certificate_from_tls_options_is_accepted_by_an_mtls_relay() {
    use mcp_relay::tls::client::testing::make_client;
    let (back, server_cert, ca) = mtls_back();
    let dir = server_cert.parent().unwrap().to_path_buf();
    let (client_pem, key_pem) =
        make_client(&ca.0, &ca.1, &["dns:client.example.com"], None).unwrap();
    let (client_cert, client_key) = (dir.join("client.pem"), dir.join("client-key.pem"));
    std::fs::write(&client_cert, client_pem).unwrap();
    std::fs::write(&client_key, key_pem).unwrap();
    let with_id = TlsOptions {
        ca: Some(server_cert.clone()),
        client_cert: Some(client_cert.clone()),
        client_key: Some(client_key.clone()),
        ..TlsOptions::default()
    };
    let initialize = |client: &TlsClient| {
        http_over(client)
            .post(&back.url)
            .header("content-type", "application/json")
            .header("accept", crate::support::ACCEPT_BOTH)
            .body(crate::support::init_request(json!(0), "2025-11-25").to_string())
            .send()
    };
    let mutual = TlsClient::with_options(&with_id, Alpn::Http).unwrap();
    handshake(&mutual, &tls_addr(&back)).await.unwrap();
    let res = initialize(&mutual).await.unwrap();
    assert_eq!(res.status(), 200, "{}", back.logs());
    let body = res.text().await.unwrap();
    assert!(body.contains("mcp-relay-fixture"), "{body}");
    // The same trust without the certificate: refused (TLS 1.3 reports it on first use).
    let anonymous =
        TlsClient::with_options(&TlsOptions::with_ca(Some(&server_cert)), Alpn::Http).unwrap();
    let res = initialize(&anonymous).await;
    assert!(res.is_err(), "no client certificate: {res:?}");
    // A key that is not the certificate's is refused before any connection.
    let (_, other_key) = make_client(&ca.0, &ca.1, &["dns:client.example.com"], None).unwrap();
    let wrong = dir.join("other-key.pem");
    std::fs::write(&wrong, other_key).unwrap();
    let mismatched = TlsOptions {
        client_key: Some(wrong),
        ..with_id
    };
    let err = TlsClient::with_options(&mismatched, Alpn::Http).unwrap_err();
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn system_roots_load_on_this_machine() {
    let opts = TlsOptions {
        roots: Roots::System,
        ..TlsOptions::default()
    };
    let client = TlsClient::with_options(&opts, Alpn::Http).unwrap();
    // Debian-style store present: it is used, not the fallback.
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        assert_eq!(client.trust(), &Trust::System);
    }
    let spec = RemoteSpec::parse_with("https://example.com/mcp", 1 << 20, &opts).unwrap();
    assert!(matches!(spec, RemoteSpec::Http { tls: Some(_), .. }));
    assert!(RemoteSpec::parse_with("http://127.0.0.1:9/mcp", 1 << 20, &opts).is_ok());
}

mod credentials;
