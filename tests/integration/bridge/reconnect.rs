//! Reconnects: the server SIGKILLed and restarted under load (every request answered once,
//! none delivered twice), a session lost to a restart or a 404 (re-initialized with the host's
//! own `initialize`, log level and subscriptions replayed), and outages longer than the backoff.

use super::*;

/// Echo texts of every `tools/call echo` in these record files.
fn echo_texts(records: &[&Path]) -> Vec<String> {
    records
        .iter()
        .flat_map(|r| recorded(r))
        .filter(|v| v["method"] == "tools/call" && v["params"]["name"] == "echo")
        .filter_map(|v| v["params"]["arguments"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// The host sends one echo every 50 ms (id = text = n) while the server is SIGKILLed (whole
/// process group) and restarted on the same port.
async fn reconnect_under_load(url_of: impl Fn(&Server) -> String, extra: &[&str]) {
    let dir = tempdir();
    let (rec1, rec2) = (dir.join("rec1.log"), dir.join("rec2.log"));
    let mut s1 = Server::fixture("127.0.0.1:0", &[], &rec1);
    let addr = s1.addr();
    let url = url_of(&s1);
    let mut args = extra.to_vec();
    args.push(&url);
    let mut b = Bridge::spawn(&args);
    b.initialize().await;

    const N: u64 = 80;
    const KILL_AT: u64 = 20;
    const RESTART_AT: u64 = 40;
    let mut sent_at: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut answers: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut killed_at = None;
    let mut restarted_at = None;
    let mut s2 = None;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for n in 1..=N {
        tick.tick().await;
        if n == KILL_AT {
            s1.kill_group();
            killed_at = Some(Instant::now());
        }
        if n == RESTART_AT {
            s2 = Some(Server::fixture(&addr, &[], &rec2));
            restarted_at = Some(Instant::now());
        }
        b.send(json!({"jsonrpc":"2.0","id":n,"method":"tools/call",
            "params":{"name":"echo","arguments":{"text": n.to_string()}}}))
            .await;
        sent_at.insert(n, Instant::now());
        // Collect whatever came back meanwhile.
        while let Some(v) = b.next_within(Duration::from_millis(1)).await {
            if let Some(id) = v["id"].as_u64().filter(|_| v.get("method").is_none()) {
                answers.entry(id).or_default().push(v);
            }
        }
    }
    let s2 = s2.unwrap();
    let deadline = Instant::now() + patience();
    while answers.len() < N as usize && Instant::now() < deadline {
        if let Some(v) = b.next_within(Duration::from_millis(100)).await {
            if let Some(id) = v["id"].as_u64().filter(|_| v.get("method").is_none()) {
                answers.entry(id).or_default().push(v);
            }
        }
    }
    // A little longer: nothing answered twice.
    while let Some(v) = b.next_within(Duration::from_millis(300)).await {
        if let Some(id) = v["id"].as_u64().filter(|_| v.get("method").is_none()) {
            answers.entry(id).or_default().push(v);
        }
    }
    let (killed_at, restarted_at) = (killed_at.unwrap(), restarted_at.unwrap());
    let summary = || {
        answers
            .iter()
            .map(|(id, a)| {
                let s: Vec<String> = a
                    .iter()
                    .map(|v| {
                        if v.get("error").is_some() {
                            format!("E{}", v["error"]["code"])
                        } else {
                            text_of(v)
                        }
                    })
                    .collect();
                format!("{id}:{}", s.join("|"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for n in 1..=N {
        let a = answers.get(&n).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            a.len(),
            1,
            "id {n} got {} answers\n{}\n--- bridge ---\n{}",
            a.len(),
            summary(),
            b.stderr()
        );
        let v = &a[0];
        if v.get("error").is_some() {
            // Only a request on the wire when the link broke may fail, with -31007.
            assert_eq!(
                v["error"]["code"],
                -31007,
                "id {n}: {v}\n{}\n--- bridge ---\n{}",
                summary(),
                b.stderr()
            );
            assert!(
                sent_at[&n] < killed_at + Duration::from_millis(250),
                "id {n} sent {:?} after the kill failed: {v}\n{}\n--- bridge ---\n{}",
                sent_at[&n] - killed_at,
                summary(),
                b.stderr()
            );
        } else {
            assert_eq!(text_of(v), n.to_string(), "id {n}: {v}");
        }
    }
    // Requests sent while the server was down were answered with results once it was back.
    let while_down: Vec<u64> = (1..=N)
        .filter(|n| {
            sent_at[n] > killed_at + Duration::from_millis(250) && sent_at[n] < restarted_at
        })
        .collect();
    assert!(while_down.len() >= 10, "{while_down:?}");
    for n in &while_down {
        assert!(
            answers[n][0].get("result").is_some(),
            "id {n} sent while down: {}\n{}",
            answers[n][0],
            summary()
        );
    }
    // No echo reached a server twice (the two runs' records together).
    let texts = echo_texts(&[&rec1, &rec2]);
    let mut seen = HashSet::new();
    for t in &texts {
        assert!(seen.insert(t.clone()), "echo {t} reached the server twice");
    }
    // The new server was initialized with the host's own initialize.
    assert!(host_inits(&rec2) >= 1, "{:?}", recorded(&rec2));
    assert!(b.alive(), "the bridge died\n{}", b.stderr());
    b.assert_clean();
    let (code, _) = b.eof().await;
    assert_eq!(code, Some(0));
    drop(s2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reconnects_over_streamable_http_when_the_server_is_killed_and_restarted() {
    reconnect_under_load(|s| s.url.clone(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reconnects_over_websocket_when_the_server_is_killed_and_restarted() {
    reconnect_under_load(Server::ws_url, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reconnects_over_legacy_sse_when_the_server_is_killed_and_restarted() {
    reconnect_under_load(|s| format!("{}/sse", s.base), &["--transport", "sse"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reinitializes_after_a_404_for_its_session() {
    let dir = tempdir();
    let (rec1, rec2) = (dir.join("rec1.log"), dir.join("rec2.log"));
    let mut s1 = Server::fixture("127.0.0.1:0", &[], &rec1);
    let addr = s1.addr();
    let mut b = Bridge::spawn(&[&s1.url]);
    b.initialize().await;
    let r = b.call(json!(1), "echo", json!({"text": "one"})).await;
    assert_eq!(text_of(&r), "one");
    let r = b
        .request(json!("lvl"), "logging/setLevel", json!({"level": "debug"}))
        .await;
    assert!(r.get("result").is_some(), "{r}");
    let r = b
        .request(
            json!("sub"),
            "resources/subscribe",
            json!({"uri": "file:///public/bridge-it.txt"}),
        )
        .await;
    assert!(r.get("result").is_some(), "{r}");
    // The server restarts while idle: the old session id is unknown to the new process.
    s1.kill_group();
    let s2 = Server::fixture(&addr, &[], &rec2);
    // The request that met the 404 (or the broken stream) was on the wire: a result or -31007.
    let r2 = b.call(json!(2), "echo", json!({"text": "two"})).await;
    if r2.get("error").is_some() {
        assert_eq!(r2["error"]["code"], -31007, "{r2}\n{}", b.stderr());
    } else {
        assert_eq!(text_of(&r2), "two", "{r2}\n{}", b.stderr());
    }
    // The next one is answered by the new server, initialized with the host's initialize.
    let r = b.call(json!(3), "echo", json!({"text": "three"})).await;
    assert_eq!(text_of(&r), "three", "{r}\n{}", b.stderr());
    assert_eq!(host_inits(&rec2), 1, "{:?}", recorded(&rec2));
    // Log level and subscriptions were replayed on the new session.
    // The replays are sent without waiting for their answers: they may land after the call.
    eventually("log level and subscription replayed", || {
        let replayed = recorded(&rec2);
        replayed
            .iter()
            .any(|v| v["method"] == "logging/setLevel" && v["params"]["level"] == "debug")
            && replayed.iter().any(|v| {
                v["method"] == "resources/subscribe"
                    && v["params"]["uri"] == "file:///public/bridge-it.txt"
            })
    })
    .await;
    let texts = echo_texts(&[&rec1, &rec2]);
    assert!(
        texts.iter().filter(|t| *t == "two").count() <= 1,
        "{texts:?}"
    );
    assert!(texts.ends_with(&["three".to_owned()]), "{texts:?}");
    assert!(b.alive());
    b.assert_clean();
    drop(s2);
}

/// A Streamable HTTP server that forgets session `s-1` after its first `tools/call` (404 from
/// then on), as a server does whose session expired; a new `initialize` gets `s-2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reinitializes_with_the_hosts_initialize_after_a_pure_404() {
    let sessions = Arc::new(AtomicUsize::new(0));
    let expired = Arc::new(AtomicUsize::new(0));
    let (addr, seen, _) = raw_server(Arc::new(move |req: &RawRequest| {
        if req.method == "GET" {
            return (http_response("405 Method Not Allowed", &[], b""), false);
        }
        if req.method == "DELETE" {
            return (http_response("200 OK", &[], b""), false);
        }
        let v: Value = serde_json::from_str(&req.body).unwrap_or(Value::Null);
        let json_headers = [("content-type", "application/json")];
        if v["method"] == "initialize" {
            let n = sessions.fetch_add(1, Ordering::SeqCst) + 1;
            let sid = format!("s-{n}");
            let body = json!({"jsonrpc":"2.0","id":v["id"],"result":{
                "protocolVersion":"2025-06-18","capabilities":{"tools":{}},
                "serverInfo":{"name":"forgetful","version":"1"}}})
            .to_string();
            let headers = [("content-type", "application/json"), ("mcp-session-id", &sid)];
            return (http_response("200 OK", &headers, body.as_bytes()), false);
        }
        let sid = req.header("mcp-session-id").unwrap_or_default();
        if sid == "s-1" && expired.load(Ordering::SeqCst) > 0 {
            return (http_response("404 Not Found", &[], b""), false);
        }
        if v.get("id").is_none() {
            return (http_response("202 Accepted", &[], b""), false);
        }
        if sid == "s-1" && v["method"] == "tools/call" {
            expired.fetch_add(1, Ordering::SeqCst);
        }
        let body = json!({"jsonrpc":"2.0","id":v["id"],"result":{"content":[{"type":"text",
            "text": format!("{}@{sid}", v["params"]["arguments"]["text"].as_str().unwrap_or(""))}]}})
        .to_string();
        (http_response("200 OK", &json_headers, body.as_bytes()), false)
    }))
    .await;
    let mut b = Bridge::spawn(&[&format!("http://{addr}/mcp")]);
    let init = b.initialize_raw().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "forgetful", "{init}");
    b.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let r = b.call(json!(1), "echo", json!({"text": "a"})).await;
    assert_eq!(text_of(&r), "a@s-1", "{r}");
    // The server has forgotten s-1: this POST gets 404.
    let r2 = b.call(json!(2), "echo", json!({"text": "b"})).await;
    if r2.get("error").is_some() {
        assert_eq!(r2["error"]["code"], -31007, "{r2}\n{}", b.stderr());
    } else {
        assert_eq!(text_of(&r2), "b@s-2", "{r2}\n{}", b.stderr());
    }
    let r3 = b.call(json!(3), "echo", json!({"text": "c"})).await;
    assert_eq!(text_of(&r3), "c@s-2", "{r3}\n{}", b.stderr());
    let requests = seen_requests(&seen);
    let bodies: Vec<Value> = requests
        .iter()
        .filter(|r| r.method == "POST")
        .filter_map(|r| serde_json::from_str(&r.body).ok())
        .collect();
    let inits: Vec<&Value> = bodies
        .iter()
        .filter(|v| v["method"] == "initialize")
        .collect();
    assert_eq!(inits.len(), 2, "{bodies:?}");
    for i in &inits {
        assert_eq!(i["params"]["clientInfo"]["name"], HOST, "{i}");
    }
    // The new session got `notifications/initialized` before the host's next request.
    let after: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.header("mcp-session-id").as_deref() == Some("s-2"))
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .map(|v| v["method"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        after.first().map(String::as_str),
        Some("notifications/initialized"),
        "{after:?}"
    );
    eprintln!("the request that met the 404: {r2}");
    assert!(b.stderr().contains("404"), "{}", b.stderr());
    assert!(b.alive());
    b.assert_clean();
    // stdin EOF: the live session (s-2) is deleted, then the bridge exits 0 within 2 s.
    let (code, took) = b.eof().await;
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(2), "{took:?}");
    let deletes: Vec<Option<String>> = seen_requests(&seen)
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.header("mcp-session-id"))
        .collect();
    assert_eq!(deletes, [Some("s-2".to_owned())], "{}", b.stderr());
}

/// The Streamable HTTP server dies while the link is idle; the host's next request finds it
/// gone (connection refused: it never reached any server). It was not on the wire when the
/// link broke, so it must wait for the reconnect and be delivered, not fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "bug: over Streamable HTTP a server death is noticed only by the next POST; that \
            request, refused at connect (never delivered), is answered -31007 `server exited` \
            instead of waiting for the reconnect (same for the request that meets a 404)"]
async fn bridge_holds_a_request_that_never_reached_a_dead_server() {
    let dir = tempdir();
    let (rec1, rec2) = (dir.join("rec1.log"), dir.join("rec2.log"));
    let mut s1 = Server::fixture("127.0.0.1:0", &[], &rec1);
    let addr = s1.addr();
    let mut b = Bridge::spawn(&[&s1.url]);
    b.initialize().await;
    let r = b.call(json!(1), "echo", json!({"text": "before"})).await;
    assert_eq!(text_of(&r), "before");
    s1.kill_group();
    // Not a race guard: the request must be sent well after the death (the case under test).
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Sent 500 ms after the server died: nothing of it can be on the wire.
    b.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"echo","arguments":{"text":"while down"}}}))
        .await;
    // Not a race guard: the request waits while the server stays down (the case under test).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _s2 = Server::fixture(&addr, &[], &rec2);
    let r = b.answer(&json!(2)).await;
    assert_eq!(text_of(&r), "while down", "{r}\n{}", b.stderr());
    assert_eq!(echo_texts(&[&rec1, &rec2]), ["before", "while down"]);
    assert!(b.alive());
    b.assert_clean();
}

/// A server down for longer than the backoff takes to fail five times (an ordinary redeploy):
/// requests sent meanwhile must still wait and be delivered once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_delivers_requests_across_a_long_outage() {
    let dir = tempdir();
    let (rec1, rec2) = (dir.join("rec1.log"), dir.join("rec2.log"));
    let mut s1 = Server::fixture("127.0.0.1:0", &[], &rec1);
    let addr = s1.addr();
    // WebSocket: the link notices the death at once (no request is sacrificed to find out).
    let mut b = Bridge::spawn(&[&s1.ws_url()]);
    b.initialize().await;
    let r = b.call(json!(1), "echo", json!({"text": "before"})).await;
    assert_eq!(text_of(&r), "before");
    s1.kill_group();
    // Not a race guard: the request must be sent while the server is down (the case under test).
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Sent while the server is down.
    b.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"echo","arguments":{"text":"while down"}}}))
        .await;
    // Not a race guard: an outage longer than five failed reconnects is the case under test.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let _s2 = Server::fixture(&addr, &[], &rec2);
    let back = Instant::now();
    let r = b.answer(&json!(2)).await;
    assert_eq!(text_of(&r), "while down", "{r}\n{}", b.stderr());
    // Sent after the server is back: answered.
    let r = b.call(json!(3), "echo", json!({"text": "after"})).await;
    assert_eq!(text_of(&r), "after", "{r}\n{}", b.stderr());
    assert!(
        back.elapsed() < Duration::from_secs(10),
        "{:?}\n{}",
        back.elapsed(),
        b.stderr()
    );
    assert!(b.alive());
    b.assert_clean();
}
