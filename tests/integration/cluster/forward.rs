//! Forwarding: requests for another node's session reach the owner and are answered there
//! (POST and its stream, GET streams and their resumption, server→client requests, DELETE,
//! legacy SSE `/message`); a dead owner's sessions answer 404 at once, a silent one 503.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;

use super::*;
use crate::support::{mint_api_key, patience, read_reply, wait_event, wait_recorded};

#[tokio::test]
async fn sessions_are_tagged_with_the_node_that_minted_them() {
    let fleet = Fleet::start(3, |_| vec![], &[]);
    for i in 0..3 {
        let mut c = Client::new(&fleet.url(i));
        c.initialize(VERSION).await;
        let id = c.session.clone().unwrap();
        assert_eq!(node_of(&id), Fleet::node(i), "{id}");
        let (status, node, answer) = echo(&c, 1, "hi").await;
        assert_eq!(status, 200);
        assert_eq!(node.as_deref(), Some(Fleet::node(i).as_str()));
        assert_eq!(answer["text"], "hi");
    }
}

#[tokio::test]
async fn calls_sent_round_robin_run_on_the_sessions_owner() {
    let fleet = Fleet::start(3, |_| vec![], &[]);
    let mut sessions = Vec::new();
    for s in 0..30 {
        let mut c = Client::new(&fleet.url(s % 3));
        c.initialize(VERSION).await;
        sessions.push(c);
    }
    let mut calls = Vec::new();
    for (s, c) in sessions.iter().enumerate() {
        for k in 0..3 {
            let at = client_at(&fleet, (s + k) % 3, c);
            calls.push(tokio::spawn(async move {
                let text = format!("s{s}k{k}");
                let (status, node, answer) = echo(&at, k as i64, &text).await;
                (at.session.unwrap(), status, node, answer["text"] == text)
            }));
        }
    }
    for call in calls {
        let (session, status, node, echoed) = call.await.unwrap();
        assert_eq!(status, 200, "{session}");
        assert!(echoed, "{session}");
        assert_eq!(node.as_deref(), Some(node_of(&session)), "ran elsewhere");
    }
    // Each session's calls went once to each node: two of its three were forwarded.
    let mut ok = 0.0;
    for i in 0..3 {
        ok += forwarded(&fleet, i, "ok").await;
        assert_eq!(forwarded(&fleet, i, "unknown").await, 0.0);
    }
    assert_eq!(ok, 60.0);
}

#[tokio::test]
async fn a_get_stream_through_another_node_carries_the_owners_notifications() {
    let record = crate::support::tempdir().join("stdin.log");
    let fleet = Fleet::start(3, |_| vec![], &["--record", record.to_str().unwrap()]);
    let mut owner = Client::new(&fleet.url(0));
    owner.initialize(VERSION).await;
    let b = client_at(&fleet, 1, &owner);
    let c = client_at(&fleet, 2, &owner);
    let get = b.get(None).await;
    assert_eq!(get.status(), 200);
    assert_eq!(get.headers()["mcp-relay-node"], "r0");
    // A second standalone stream, through C: the owner says it is a conflict.
    assert_eq!(c.get(None).await.status(), 409);
    let mut events = get.bytes_stream().eventsource();
    // Two calls in flight: the notifications of `notify` go to the standalone stream.
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call(json!(1), "slow", json!({"ms": 600})).await })
    };
    wait_recorded(&record, "\"slow\"", 1).await;
    let r = owner.call(json!(2), "notify", json!({})).await;
    assert_eq!(text_of(r.messages().last().unwrap()), "notified");
    wait_event(&mut events, |v| {
        v["method"] == "notifications/tools/list_changed"
    })
    .await;
    slow.await.unwrap();
}

#[tokio::test]
async fn a_stream_closed_through_one_node_resumes_through_another() {
    let fleet = Fleet::start(3, |_| vec!["--sse-close-after".into(), "300ms".into()], &[]);
    let mut owner = Client::new(&fleet.url(0));
    owner.initialize(VERSION).await;
    let b = client_at(&fleet, 1, &owner);
    let c = client_at(&fleet, 2, &owner);
    let res = b
        .post_builder()
        .body(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"slow","arguments":{"ms":900}}}).to_string())
        .send()
        .await
        .unwrap();
    let first = read_reply(res).await;
    assert!(first.messages().is_empty(), "closed before the answer");
    let last_id = first.events.last().unwrap().id.clone();
    let resumed = c.get(Some(&last_id)).await;
    assert_eq!(resumed.status(), 200);
    assert_eq!(resumed.headers()["mcp-relay-node"], "r0");
    let resumed = read_reply(resumed).await;
    assert_eq!(text_of(&resumed.messages()[0]), "slept 900");
}

#[tokio::test]
async fn a_sampling_request_on_a_forwarded_post_is_answered_through_a_third_node() {
    let fleet = Fleet::start(3, |_| vec![], &[]);
    let mut owner = Client::new(&fleet.url(0));
    owner.initialize(VERSION).await;
    let b = client_at(&fleet, 1, &owner);
    let c = client_at(&fleet, 2, &owner);
    let res = b
        .post_builder()
        .body(json!({"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"sample","arguments":{}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["mcp-relay-node"], "r0");
    let mut events = res.bytes_stream().eventsource();
    let req = wait_event(&mut events, |v| v["method"] == "sampling/createMessage").await;
    let answer = json!({"jsonrpc":"2.0","id":req["id"],"result":{"role":"assistant","model":"m",
        "content":{"type":"text","text":"hello via r2"}}});
    let r = c.post(answer).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.header("mcp-relay-node").as_deref(), Some("r0"));
    let done = wait_event(&mut events, |v| v["id"] == "call-1").await;
    assert!(text_of(&done).contains("hello via r2"), "{done}");
}

#[tokio::test]
async fn delete_through_another_node_ends_the_session_on_its_owner() {
    let fleet = Fleet::start(3, |_| vec![], &[]);
    let mut owner = Client::new(&fleet.url(1));
    owner.initialize(VERSION).await;
    let other = client_at(&fleet, 2, &owner);
    assert_eq!(other.delete().await, 200);
    let (status, node, _) = echo(&owner, 1, "after").await;
    assert_eq!(status, 404);
    assert_eq!(node.as_deref(), Some("r1"));
    assert_eq!(echo(&other, 2, "after").await.0, 404);
}

#[tokio::test]
async fn legacy_sse_messages_posted_to_another_node_reach_the_owners_stream() {
    let fleet = Fleet::start(3, |_| vec![], &[]);
    let http = reqwest::Client::new();
    let res = http
        .get(format!("{}/sse", fleet.base(0)))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut events = res.bytes_stream().eventsource();
    let endpoint = tokio::time::timeout(patience(), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(endpoint.event, "endpoint");
    let session = endpoint.data.split("sessionId=").nth(1).unwrap().to_owned();
    assert_eq!(node_of(&session), "r0", "{}", endpoint.data);
    for (i, msg) in [
        crate::support::init_request(json!(1), "2024-11-05"),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"legacy"}}}),
    ]
    .into_iter()
    .enumerate()
    {
        let res = http
            .post(format!("{}{}", fleet.base(1 + i % 2), endpoint.data))
            .header("content-type", "application/json")
            .body(msg.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        assert_eq!(res.headers()["mcp-relay-node"], "r0");
    }
    let answer = wait_event(&mut events, |v| v["id"] == 2).await;
    assert_eq!(text_of(&answer), "legacy");
    assert_eq!(
        forwarded(&fleet, 1, "ok").await + forwarded(&fleet, 2, "ok").await,
        3.0
    );
}

#[tokio::test]
async fn a_killed_owners_sessions_answer_404_at_once_and_the_others_are_untouched() {
    let mut fleet = Fleet::start(3, |_| vec![], &[]);
    let mut on_r0 = Client::new(&fleet.url(0));
    on_r0.initialize(VERSION).await;
    let mut on_r1 = Client::new(&fleet.url(1));
    on_r1.initialize(VERSION).await;
    // Warm the pooled connections from r2 to both owners.
    assert_eq!(echo(&client_at(&fleet, 2, &on_r0), 1, "x").await.0, 200);
    assert_eq!(echo(&client_at(&fleet, 2, &on_r1), 1, "x").await.0, 200);
    fleet.kill(0);
    let started = Instant::now();
    let r = client_at(&fleet, 2, &on_r0)
        .call(json!(2), "echo", json!({"text": "gone"}))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.json()["error"]["code"], -31003);
    assert_eq!(r.header("mcp-relay-node").as_deref(), Some("r2"));
    assert_eq!(forwarded(&fleet, 2, "unknown").await, 1.0);
    // Restarted on the same port, r0 is another process (epoch): the old session stays gone.
    fleet.restart(0);
    let r = client_at(&fleet, 2, &on_r0)
        .call(json!(5), "echo", json!({"text": "gone"}))
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        r.header("mcp-relay-node").as_deref(),
        Some("r0"),
        "r0's own 404"
    );
    assert_eq!(echo(&client_at(&fleet, 0, &on_r0), 6, "gone").await.0, 404);
    // r0's sessions are gone through r1 too; r1's are served through r2.
    assert_eq!(echo(&client_at(&fleet, 1, &on_r0), 3, "gone").await.0, 404);
    let (status, node, answer) = echo(&client_at(&fleet, 2, &on_r1), 4, "still").await;
    assert_eq!((status, node.as_deref()), (200, Some("r1")));
    assert_eq!(answer["text"], "still");
}

#[tokio::test]
async fn an_owner_that_never_answers_gets_503_with_retry_after() {
    // r3 accepts connections and says nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let config = crate::support::tempdir().join("fleet.toml");
    std::fs::write(
        &config,
        format!("[cluster]\nforward_timeout = \"500ms\"\npeers = {{ r3 = \"http://127.0.0.1:{port}\" }}\n"),
    )
    .unwrap();
    let path = config.to_str().unwrap().to_owned();
    let fleet = Fleet::start(2, move |_| vec!["--config".into(), path.clone()], &[]);
    let mut c = Client::new(&fleet.url(0));
    c.session = Some(format!("r3.0000abcd.{}", "5".repeat(32)));
    c.version = Some(VERSION.into());
    let r = c.call(json!(1), "echo", json!({"text": "x"})).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert_eq!(r.json()["error"]["data"]["reason"], "owner_unavailable");
    assert_eq!(forwarded(&fleet, 0, "unavailable").await, 1.0);
    held.abort();
}

#[tokio::test]
async fn forwarding_is_audited_once_on_the_forwarding_node() {
    let dir = crate::support::tempdir();
    let log = |i: usize| dir.join(format!("audit{i}.log"));
    let logs: Vec<String> = (0..2)
        .map(|i| log(i).to_str().unwrap().to_owned())
        .collect();
    let fleet = Fleet::start(2, move |i| vec!["--audit-log".into(), logs[i].clone()], &[]);
    let mut owner = Client::new(&fleet.url(0));
    owner.initialize(VERSION).await;
    let via = client_at(&fleet, 1, &owner);
    assert_eq!(echo(&via, 7, "audited").await.0, 200);
    let session = owner.session.clone().unwrap();
    let record = |i: usize, needle: &'static str| {
        let path = log(i);
        let session = session.clone();
        move || {
            std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(needle) && l.contains(&session))
                .count()
        }
    };
    let forwarded_here = record(1, "\"reason\":\"forwarded\"");
    let executed_there = record(0, "\"method\":\"tools/call\"");
    crate::support::eventually("both records written", || {
        forwarded_here() == 1 && executed_there() == 1
    })
    .await;
    // The forwarding node recorded no tools/call of its own.
    assert_eq!(record(1, "\"method\":\"tools/call\"")(), 0);
}

#[tokio::test]
async fn named_servers_mounts_are_kept_across_the_hop() {
    let fixture = crate::support::FIXTURE;
    let config = crate::support::tempdir().join("servers.toml");
    std::fs::write(
        &config,
        format!(
            "[servers.alpha]\ncommand = [{fixture:?}, \"echo\"]\n\n\
             [servers.beta]\ncommand = [{fixture:?}, \"echo\"]\n"
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap().to_owned();
    let fleet = Fleet::start_with_child(3, move |_| vec!["--config".into(), path.clone()], vec![]);
    let mut owner = Client::new(&format!("{}/servers/beta/mcp", fleet.base(2)));
    owner.initialize(VERSION).await;
    assert_eq!(node_of(owner.session.as_deref().unwrap()), "r2");
    let mut via = owner.clone();
    via.url = format!("{}/servers/beta/mcp", fleet.base(0));
    let (status, node, answer) = echo(&via, 1, "mounted").await;
    assert_eq!((status, node.as_deref()), (200, Some("r2")));
    assert_eq!(answer["text"], "mounted");
    // The same session under another server's mount is not that server's.
    via.url = format!("{}/servers/alpha/mcp", fleet.base(1));
    let (status, node, _) = echo(&via, 2, "elsewhere").await;
    assert_eq!((status, node.as_deref()), (404, Some("r2")));
}

#[tokio::test]
async fn request_bodies_travel_whole_and_only_the_owner_applies_its_body_limit() {
    // r0 takes bodies up to 1 MiB, r1 up to 64 KiB: a forwarded body is judged by its owner.
    let fleet = Fleet::start(
        2,
        |i| vec!["--max-body".into(), ["1MiB", "64KiB"][i].into()],
        &[],
    );
    let mut owner = Client::new(&fleet.url(0));
    owner.initialize(VERSION).await;
    let via = client_at(&fleet, 1, &owner);
    let big = "x".repeat(300 * 1024);
    let (status, node, answer) = echo(&via, 1, &big).await;
    assert_eq!((status, node.as_deref()), (200, Some("r0")));
    assert_eq!(answer["text"].as_str().map(str::len), Some(big.len()));
    // Just over the owner's limit, sent chunked (no Content-Length): the owner's 413. (Far
    // over it, the owner's close with unread bytes may reset the connection before the 413
    // is read, forwarded or not.)
    let huge = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"echo","arguments":{"text":"y".repeat(1024 * 1024 + 2000)}}})
    .to_string();
    let chunks: Vec<Result<String, std::io::Error>> = huge
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let res = via
        .post_builder()
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.headers()["mcp-relay-node"], "r0");
}

#[tokio::test]
async fn the_owner_sees_the_clients_host_the_forwarder_and_the_client_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // r3 is a stand-in owner that records the request head it gets and answers it.
    let owner = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = owner.local_addr().unwrap().port();
    let seen = tokio::spawn(async move {
        let (mut s, _) = owner.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "no request head");
            head.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let res = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             keep-alive: timeout=5\r\nx-owner: r3\r\nmcp-relay-node: r3\r\n\r\n{body}",
            body.len()
        );
        s.write_all(res.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&head).to_lowercase()
    });
    let fleet = Fleet::start(
        1,
        move |_| {
            let peer = format!("r3=http://127.0.0.1:{port}");
            vec![
                "--peer".into(),
                peer,
                "--allowed-host".into(),
                "relay.example.com".into(),
            ]
        },
        &[],
    );
    let res = reqwest::Client::new()
        .post(format!("{}/mcp?x=1", fleet.base(0)))
        .header("host", "relay.example.com")
        .header("mcp-session-id", format!("r3.0000abcd.{}", "7".repeat(32)))
        .header("connection", "x-private")
        .header("x-private", "hop")
        .header("content-type", "application/json")
        .header("accept", crate::support::ACCEPT_BOTH)
        .body(json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-owner"], "r3");
    assert_eq!(res.headers()["mcp-relay-node"], "r3");
    let head = seen.await.unwrap();
    assert!(head.starts_with("post /mcp?x=1 http/1.1\r\n"), "{head}");
    for line in [
        "host: relay.example.com",
        "mcp-relay-forwarded-by: r0",
        "x-forwarded-for: 127.0.0.1",
    ] {
        assert!(
            head.contains(&format!("\r\n{line}\r\n")),
            "{line} in {head}"
        );
    }
    assert!(!head.contains("x-private"), "{head}");
}

/// Pings of `c` until one is refused (429): how many were admitted (at most 20).
async fn pings_until_limited(c: &Client) -> usize {
    for n in 0..20 {
        let r = c
            .post(json!({"jsonrpc":"2.0","id":100 + n,"method":"ping"}))
            .await;
        match r.status {
            200 => {}
            429 => return n as usize,
            other => panic!("ping {n}: {other} {r:?}"),
        }
    }
    20
}

/// Alice's session on r0 with a burst of 8 requests a minute: 2 for the session, 3 pings
/// through r1, then pings straight to r0 until refused: how many were left.
async fn left_after_forwarded_pings(store: Option<&str>) -> usize {
    let (key, block) = mint_api_key(&["--id", "a", "--principal", "alice"]);
    let mut text =
        format!("{block}\n[limits]\nper_principal = \"1/min\"\nper_principal_burst = 8\n");
    if let Some(url) = store {
        text.push_str(&format!(
            "\n[cluster.store]\nurl = \"{url}\"\ntimeout = \"1s\"\n"
        ));
    }
    let config = crate::support::tempdir().join("relay.toml");
    std::fs::write(&config, text).unwrap();
    let path = config.to_str().unwrap().to_owned();
    let fleet = Fleet::start(2, move |_| vec!["--config".into(), path.clone()], &[]);
    let mut owner = Client::new(&fleet.url(0));
    owner.extra = vec![("x-api-key".into(), key)];
    owner.initialize(VERSION).await;
    let via = client_at(&fleet, 1, &owner);
    for n in 0..3 {
        let r = via
            .post(json!({"jsonrpc":"2.0","id":n,"method":"ping"}))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(forwarded(&fleet, 1, "ok").await, 3.0);
    pings_until_limited(&owner).await
}

#[tokio::test]
async fn a_forwarded_request_counts_once_against_its_principal_on_the_owner() {
    // 8 − 2 (initialize, initialized) − 3 forwarded pings: each counted once, by the owner.
    assert_eq!(left_after_forwarded_pings(None).await, 3);
    // The same through the fleet's shared buckets: the forwarding node takes nothing.
    if let Some(redis) = crate::support::redis::Redis::start("forwarded_counts_once") {
        assert_eq!(left_after_forwarded_pings(Some(&redis.url)).await, 3);
    }
}

#[tokio::test]
async fn an_owner_that_does_not_accept_the_connection_gets_503_at_the_connect_timeout() {
    // r3's listen queue is full (backlog 0, filled): connecting to it hangs.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let full = socket.listen(0).unwrap();
    let mut queued = Vec::new();
    for _ in 0..4 {
        let attempt = tokio::net::TcpStream::connect(("127.0.0.1", port));
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), attempt).await {
            queued.push(s);
        }
    }
    let config = crate::support::tempdir().join("fleet.toml");
    std::fs::write(
        &config,
        format!(
            "[cluster]\nforward_connect_timeout = \"300ms\"\nforward_timeout = \"30s\"\n\
             peers = {{ r3 = \"http://127.0.0.1:{port}\" }}\n"
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap().to_owned();
    let fleet = Fleet::start(1, move |_| vec!["--config".into(), path.clone()], &[]);
    let mut c = Client::new(&fleet.url(0));
    c.session = Some(format!("r3.0000abcd.{}", "6".repeat(32)));
    c.version = Some(VERSION.into());
    let started = Instant::now();
    let r = c.call(json!(1), "echo", json!({"text": "x"})).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.json()["error"]["data"]["reason"], "owner_unavailable");
    drop((full, queued));
}

#[tokio::test]
async fn a_legacy_connection_opened_on_a_fleet_node_posts_through_another() {
    let fleet = Fleet::start(2, |_| vec![], &[]);
    let legacy = crate::support::sse::Legacy::open(fleet.relay(1)).await;
    let query = legacy.endpoint.split_once('?').unwrap().1.to_owned();
    assert!(query.starts_with("sessionId=r1."), "{query}");
    let via = format!("{}/message?{query}", fleet.base(0));
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string();
    assert_eq!(legacy.post_to(&via, "application/json", ping).await, 202);
    assert_eq!(forwarded(&fleet, 0, "ok").await, 1.0);
}
