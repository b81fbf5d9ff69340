//! Forged and misused ids (SECURITY.md §8 C3, issue 19): an id naming an unknown node, an
//! address, or another epoch connects to nothing but configured peers and answers 404; a
//! request that says it was forwarded is not forwarded again; only the owner authenticates,
//! and a session stays its principal's across nodes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::support::{mint_api_key, tempdir};

const RESOURCE: &str = "http://relay.test/mcp";

/// A TCP listener that counts the connections it accepts.
async fn canary() -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (port, seen, task)
}

/// The epoch part of an id (`r1.0a0b0c0d.…` → `0a0b0c0d`).
fn epoch_of(id: &str) -> &str {
    id.split('.').nth(1).unwrap()
}

#[tokio::test]
async fn c3_forged_owner_tags_connect_to_nothing_and_answer_404() {
    let (port, seen, task) = canary().await;
    let fleet = Fleet::start(2, |_| vec![], &[]);
    let mut real = Client::new(&fleet.url(1));
    real.initialize(VERSION).await;
    let real_id = real.session.clone().unwrap();
    let rest = "5".repeat(32);
    let other_epoch = if epoch_of(&real_id) == "00000001" {
        "00000002"
    } else {
        "00000001"
    };
    let forged = [
        // A node no configuration knows.
        format!("r9.0000abcd.{rest}"),
        // Addresses where the node name goes.
        format!("127.0.0.1:{port}.0000abcd.{rest}"),
        format!("localhost:{port}.0000abcd.{rest}"),
        format!("http://127.0.0.1:{port}/.0000abcd.{rest}"),
        format!("[::1]:{port}.0000abcd.{rest}"),
        // A configured peer, but an earlier process of it.
        format!("r1.{other_epoch}.{}", real_id.rsplit('.').next().unwrap()),
        // This node, another epoch.
        format!("r0.{other_epoch}.{rest}"),
    ];
    for id in &forged {
        let mut c = Client::new(&fleet.url(0));
        c.session = Some(id.clone());
        c.version = Some(VERSION.into());
        let r = c.call(json!(1), "echo", json!({"text": "x"})).await;
        assert_eq!(r.status, 404, "{id}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -31003, "{id}");
        // The legacy front's query parameter too.
        let res = reqwest::Client::new()
            .post(format!("{}/message", fleet.base(0)))
            .query(&[("sessionId", id)])
            .header("content-type", "application/json")
            .body(json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{id}");
    }
    // Only the id naming a configured peer (r1) was carried there; r1 did not know it.
    assert_eq!(forwarded(&fleet, 0, "unknown").await, 2.0);
    assert_eq!(forwarded(&fleet, 0, "ok").await, 0.0);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a forged id caused a connection"
    );
    // The real session is untouched.
    assert_eq!(echo(&client_at(&fleet, 0, &real), 2, "ok").await.0, 200);
    task.abort();
}

#[tokio::test]
async fn a_request_marked_forwarded_is_never_forwarded_again() {
    let fleet = Fleet::start(3, |_| vec![], &[]);
    let mut owner = Client::new(&fleet.url(1));
    owner.initialize(VERSION).await;
    let mut c = client_at(&fleet, 0, &owner);
    c.extra.push(("mcp-relay-forwarded-by".into(), "r2".into()));
    let r = c.call(json!(1), "echo", json!({"text": "loop"})).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.header("mcp-relay-node").as_deref(), Some("r0"));
    for i in 0..3 {
        assert_eq!(forwarded(&fleet, i, "ok").await, 0.0);
        assert_eq!(forwarded(&fleet, i, "unknown").await, 0.0);
    }
    // Straight to the owner, the session is there.
    assert!(crate::support::alive(fleet.relay(1).pid()));
    assert_eq!(echo(&owner, 2, "here").await.0, 200);
}

/// Two API keys (alice, bob) in a config every node of the fleet reads.
fn keyed_fleet() -> (Fleet, String, String) {
    let (alice, a_block) = mint_api_key(&["--id", "alice", "--principal", "alice"]);
    let (bob, b_block) = mint_api_key(&["--id", "bob", "--principal", "bob"]);
    let config = tempdir().join("relay.toml");
    std::fs::write(
        &config,
        format!("[auth]\nresource = \"{RESOURCE}\"\n{a_block}\n{b_block}\n"),
    )
    .unwrap();
    let path = config.to_str().unwrap().to_owned();
    let fleet = Fleet::start(
        3,
        move |_| {
            vec![
                "--config".into(),
                path.clone(),
                "--resource".into(),
                RESOURCE.into(),
            ]
        },
        &[],
    );
    (fleet, alice, bob)
}

fn with_key(c: &Client, key: &str) -> Client {
    let mut c = c.clone();
    c.extra = vec![("authorization".into(), format!("Bearer {key}"))];
    c
}

#[tokio::test]
async fn a6_another_principal_cannot_use_a_session_through_another_node() {
    let (fleet, alice, bob) = keyed_fleet();
    let mut a = with_key(&Client::new(&fleet.url(0)), &alice);
    a.initialize(VERSION).await;
    let (status, node, _) = echo(&client_at(&fleet, 1, &a), 1, "mine").await;
    assert_eq!((status, node.as_deref()), (200, Some("r0")));
    let stolen = with_key(&client_at(&fleet, 2, &a), &bob);
    let (status, node, _) = echo(&stolen, 2, "stolen").await;
    assert_eq!((status, node.as_deref()), (404, Some("r0")));
}

#[tokio::test]
async fn only_the_owner_authenticates_a_forwarded_request() {
    let (fleet, alice, _) = keyed_fleet();
    let mut a = with_key(&Client::new(&fleet.url(0)), &alice);
    a.initialize(VERSION).await;
    let wrong = "mcpr_x7Qm2LpZ9vKc4RtY8nBw3JdF6sGh1AeU5oIqTzXyVbN";
    for c in [with_key(&client_at(&fleet, 1, &a), wrong), {
        let mut c = client_at(&fleet, 2, &a);
        c.extra.clear();
        c
    }] {
        let r = c.call(json!(1), "echo", json!({"text": "x"})).await;
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(
            r.header("mcp-relay-node").as_deref(),
            Some("r0"),
            "the owner's 401"
        );
        assert!(r.header("www-authenticate").is_some());
    }
    assert_eq!(forwarded(&fleet, 1, "ok").await, 1.0);
    assert_eq!(forwarded(&fleet, 2, "ok").await, 1.0);
}

#[tokio::test]
async fn a6_with_tokens_the_owner_judges_each_request_whatever_node_it_came_through() {
    const VAR: &str = "FLEET_JWT_KEY";
    const KEY: &str = "Zt4pW9qLx2Vn7RkD3mYb8HsJc1GfUe6A0oPiNxQyTwE";
    let fleet = Fleet::start_with_env(
        3,
        |_| {
            let args = [
                "--resource",
                RESOURCE,
                "--jwt-secret",
                &format!("env:{VAR}"),
            ];
            args.iter().map(|s| (*s).to_owned()).collect()
        },
        vec![crate::support::FIXTURE.to_owned()],
        vec![(VAR.into(), KEY.into())],
    );
    let alice = crate::support::mint_jwt(VAR, KEY, "alice", "user", RESOURCE);
    let bob = crate::support::mint_jwt(VAR, KEY, "bob", "user", RESOURCE);
    let mut a = with_key(&Client::new(&fleet.url(1)), &alice);
    a.initialize(VERSION).await;
    let (status, node, _) = echo(&with_key(&client_at(&fleet, 0, &a), &alice), 1, "a").await;
    assert_eq!((status, node.as_deref()), (200, Some("r1")));
    let (status, node, _) = echo(&with_key(&client_at(&fleet, 2, &a), &bob), 2, "b").await;
    assert_eq!((status, node.as_deref()), (404, Some("r1")));
}

/// A peer that records the request line of every request it gets and answers 200.
async fn recording_peer() -> (
    u16,
    Arc<std::sync::Mutex<Vec<String>>>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            lines
                .lock()
                .unwrap()
                .push(text.lines().next().unwrap_or("").to_owned());
            let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (port, seen, task)
}

/// `METHOD target` sent as is (no client-side normalisation) with `id` as the session; the
/// status code of the answer.
async fn raw_request(base: &str, method: &str, target: &str, id: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\nmcp-session-id: {id}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // The status line only (`GET /sse` answers with a stream that does not end).
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    while !out.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout(crate::support::patience(), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn c3_only_front_paths_and_methods_are_forwarded_and_never_above_the_peer_base() {
    let (port, seen, task) = recording_peer().await;
    let peer = format!("r1=http://127.0.0.1:{port}/r1/");
    let relay = crate::support::Relay::start(&["--node", "r0", "--peer", &peer], &[]);
    let id = format!("r1.0000abcd.{}", "7".repeat(32));
    let refused = [
        ("POST", "/%2e%2e/admin/secret"),
        ("POST", "/../x"),
        ("POST", "/.%2E/x"),
        ("POST", "/a\\..\\..\\b"),
        ("POST", "/anything"),
        ("GET", "/ws"),
        ("GET", "/sse"),
        ("GET", "/health"),
        ("PUT", "/mcp"),
        ("PATCH", "/mcp"),
        ("OPTIONS", "/mcp"),
        ("POST", "/servers/a/../../admin"),
        ("POST", "/servers/a/%2e%2e/mcp"),
        ("POST", "/servers/a/other"),
    ];
    // Judged here, as for any client (`/sse` and `/health` are served, the rest 404 or 405).
    for (method, target) in refused {
        let status = raw_request(&relay.base, method, target, &id).await;
        assert_ne!(status, 0, "{method} {target}: no answer");
    }
    assert_eq!(
        seen.lock().unwrap().clone(),
        Vec::<String>::new(),
        "a request that is not for a front reached the peer"
    );
    // The fronts are forwarded, under the peer's base path.
    for (method, target) in [
        ("POST", "/mcp"),
        ("GET", "/mcp"),
        ("DELETE", "/mcp"),
        ("POST", "/message"),
        ("POST", "/servers/a/mcp"),
        ("POST", "/endpoints/b/message"),
    ] {
        assert_eq!(raw_request(&relay.base, method, target, &id).await, 200);
    }
    let lines = seen.lock().unwrap().clone();
    assert_eq!(
        lines,
        [
            "POST /r1/mcp HTTP/1.1",
            "GET /r1/mcp HTTP/1.1",
            "DELETE /r1/mcp HTTP/1.1",
            "POST /r1/message HTTP/1.1",
            "POST /r1/servers/a/mcp HTTP/1.1",
            "POST /r1/endpoints/b/message HTTP/1.1",
        ]
    );
    task.abort();
}

/// A client of `url` whose connections come from `from` (a loopback address).
fn from_address(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// A `ping` in `session` to `url`, from `http`; the status.
async fn ping_in(http: &reqwest::Client, url: &str, session: &str) -> u16 {
    http.post(url)
        .header("content-type", "application/json")
        .header("accept", crate::support::ACCEPT_BOTH)
        .header("mcp-protocol-version", VERSION)
        .header("mcp-session-id", session)
        .header("x-forwarded-for", "198.51.100.99")
        .body(json!({"jsonrpc":"2.0","id":1,"method":"ping"}).to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn one_client_forging_ids_through_a_peer_spends_only_its_own_per_ip_quota_at_the_owner() {
    let config = tempdir().join("limits.toml");
    std::fs::write(&config, "[limits]\nper_ip = \"4/m\"\nper_ip_burst = 4\n").unwrap();
    let path = config.to_str().unwrap().to_owned();
    let fleet = Fleet::start(2, move |_| vec!["--config".into(), path.clone()], &[]);
    // A session on r1, used through r0 by a well-behaved client at 127.0.0.3.
    let mut owner = Client::new(&fleet.url(1));
    owner.initialize(VERSION).await;
    let session = owner.session.clone().unwrap();
    // 127.0.0.2 sends r1-tagged ids through r0 until r0 stops it; each one that r0 lets
    // through is counted by r1 against 127.0.0.2 (r0's address is a configured peer, so r1
    // believes the address r0 sends, and only that: not the client's own forged header).
    let attacker = from_address("127.0.0.2");
    let forged = format!("r1.{}.{}", epoch_of(&session), "6".repeat(32));
    for _ in 0..6 {
        ping_in(&attacker, &fleet.url(0), &forged).await;
    }
    let legit = from_address("127.0.0.3");
    for _ in 0..3 {
        assert_eq!(ping_in(&legit, &fleet.url(0), &session).await, 200);
    }
}
