//! WebSocket and TCP with credentials: end to end, closed at expiry, the TCP credential line.

use super::*;
// === WebSocket and TCP ===

#[tokio::test]
async fn websocket_and_tcp_with_a_valid_credential_work_end_to_end() {
    let (key, block) = api_key(&["--id", "t", "--principal", "tcp-bot", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let token = setup.mint("alice", "user", &[]);
    let addr = tcp_listening(&relay).await;

    let (ws, res) = tokio_tungstenite::connect_async(ws_request(&ws_url(&relay), &[auth(&token)]))
        .await
        .unwrap();
    assert_eq!(res.status(), 101);
    let mut ws = Ws::from(ws);
    assert_eq!(echo_over(&mut ws, "over ws").await, "over ws");
    let mut ws = Ws::connect_with(&ws_url(&relay), &[("x-api-key", key.clone())]).await;
    assert_eq!(echo_over(&mut ws, "ws key").await, "ws key");
    // A bad token on the upgrade: 401 invalid_token, no 101.
    let err = tokio_tungstenite::connect_async(ws_request(&ws_url(&relay), &[auth("x.y.z")]))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(res) = err else {
        panic!("{err}")
    };
    assert_eq!(res.status(), 401);

    for first in [
        json!({"authorization": format!("Bearer {token}")}),
        json!({"Authorization": format!("bearer {token}")}),
        json!({"x-api-key": key}),
    ] {
        let mut tcp = Lines::tcp(&addr).await;
        tcp.send(first.clone()).await;
        assert_eq!(echo_over(&mut tcp, "over tcp").await, "over tcp", "{first}");
    }
    // The full transport scenario after the credential line.
    let mut c = Lines::tcp_with(&addr, &json!({"authorization": format!("Bearer {token}")})).await;
    scenario(&mut c).await;
}

#[tokio::test]
async fn websocket_connection_is_closed_when_its_token_expires() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let token = setup.mint("alice", "user", &["--expires-in", "3s"]);
    let exp = claim_exp(&token);
    let mut ws = Ws::connect_with(&ws_url(&relay), &[auth(&token)]).await;
    assert_eq!(echo_over(&mut ws, "before expiry").await, "before expiry");
    let ended = loop {
        match ws.next().await {
            Some(_) => continue,
            None => break now(),
        }
    };
    assert!(ended >= exp, "closed at {ended}, before exp {exp}");
    assert!(ended <= exp + 5, "closed at {ended}, long after exp {exp}");
}

#[tokio::test]
async fn tcp_connection_is_closed_when_its_token_expires() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let addr = tcp_listening(&relay).await;
    let token = setup.mint("alice", "user", &["--expires-in", "3s"]);
    let exp = claim_exp(&token);
    let mut tcp = Lines::tcp(&addr).await;
    tcp.send(json!({"authorization": format!("Bearer {token}")}))
        .await;
    assert_eq!(echo_over(&mut tcp, "before expiry").await, "before expiry");
    while tcp.next().await.is_some() {}
    let ended = now();
    assert!(ended >= exp, "closed at {ended}, before exp {exp}");
    assert!(ended <= exp + 5, "closed at {ended}, long after exp {exp}");
}

#[tokio::test]
async fn api_key_expiring_during_a_tcp_connection_closes_it() {
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(4);
    let soon = soon
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let exp = time::OffsetDateTime::parse(&soon, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp() as u64;
    let (key, block) = api_key(&["--id", "soon", "--principal", "p", "--expires", &soon]);
    let setup = Setup::new("", &block);
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let addr = tcp_listening(&relay).await;
    let mut tcp = Lines::tcp(&addr).await;
    tcp.send(json!({"x-api-key": key})).await;
    assert_eq!(
        echo_over(&mut tcp, "key before expiry").await,
        "key before expiry"
    );
    while tcp.next().await.is_some() {}
    let ended = now();
    assert!(ended >= exp, "closed at {ended}, before expiry {exp}");
    assert!(
        ended <= exp + 5,
        "closed at {ended}, long after expiry {exp}"
    );
    expect_401(
        post_init(&relay.url, &[("x-api-key", key.clone())]).await,
        true,
        "expired key over http",
    )
    .await;
}

/// The first TCP line's verdict for `line`: the first message back and whether it closed.
async fn tcp_first_line(addr: &str, line: &str) -> (Value, bool) {
    let mut tcp = Lines::tcp(addr).await;
    tcp.send_raw(line).await;
    tcp.try_send(&init_request(json!(0), VERSION).to_string())
        .await;
    let first = tcp.next().await.expect("no answer");
    let closed = first.get("error").is_some() && tcp.next().await.is_none();
    (first, closed)
}

#[tokio::test]
async fn a6_tcp_credential_line_with_two_disagreeing_credentials_is_refused() {
    let (key, block) = api_key(&["--id", "k", "--principal", "alice", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let addr = tcp_listening(&relay).await;
    let alice = setup.mint("alice", "user", &[]);
    let line = json!({"authorization": format!("Bearer {alice}"), "x-api-key": key}).to_string();
    let (first, closed) = tcp_first_line(&addr, &line).await;
    assert_eq!(first["error"]["code"], -31001, "{first}");
    assert!(closed);
}

#[tokio::test]
async fn a6_tcp_credential_line_with_duplicate_authorization_keys_is_refused() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&["--tcp-listen", "127.0.0.1:0"], None);
    let addr = tcp_listening(&relay).await;
    let alice = setup.mint("alice", "user", &[]);
    let bob = setup.mint("bob", "user", &[]);
    let mut failures = Vec::new();
    for (what, line) in [
        (
            "Authorization and authorization naming different principals",
            format!(r#"{{"Authorization":"Bearer {alice}","authorization":"Bearer {bob}"}}"#),
        ),
        (
            "authorization twice, different principals",
            format!(r#"{{"authorization":"Bearer {alice}","authorization":"Bearer {bob}"}}"#),
        ),
        (
            "authorization twice, a garbage value first",
            format!(r#"{{"authorization":"Bearer junk","authorization":"Bearer {bob}"}}"#),
        ),
    ] {
        let (first, closed) = tcp_first_line(&addr, &line).await;
        if first["error"]["code"] != -31001 || !closed {
            failures.push(format!("{what}: {first}"));
        }
    }
    assert!(failures.is_empty(), "accepted: {failures:#?}");
}
