//! A5–A6: credentials never reach the child; sessions and streams belong to a principal
//! and end with its credential.

use super::*;
// === A5: credentials never reach the child ===

#[tokio::test]
async fn a5_bearer_token_api_key_and_cookie_never_reach_the_child() {
    let (key, block) = api_key(&["--id", "a5", "--principal", "bob", "--roles", "user"]);
    let setup = Setup::new("", &block);
    let record = tempdir().join("stdin.log");
    let audit = tempdir().join("audit.log");
    let relay = setup.serve(&["--audit-log", audit.to_str().unwrap()], Some(&record));
    let token = setup.mint("alice", "user", &[]);
    let cookie = "session=COOKIE-SECRET-4f1d2c";
    let signature = token.rsplit('.').next().unwrap().to_owned();
    works(
        &relay,
        &[auth(&token), ("cookie", cookie.to_owned())],
        "a5-jwt",
    )
    .await;
    works(
        &relay,
        &[("x-api-key", key.clone()), ("cookie", cookie.to_owned())],
        "a5-key",
    )
    .await;
    wait_recorded(&record, "a5-jwt", 1).await;
    wait_recorded(&record, "a5-key", 1).await;
    let secrets = [
        token.as_str(),
        signature.as_str(),
        key.as_str(),
        "COOKIE-SECRET-4f1d2c",
        setup.secret.as_str(),
    ];
    let stdin = std::fs::read_to_string(&record).unwrap();
    let children = children_of(relay.pid());
    assert!(!children.is_empty(), "no child to inspect");
    let mut places = vec![("child stdin".to_owned(), stdin.into_bytes())];
    for pid in children {
        for file in ["environ", "cmdline"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
            places.push((format!("/proc/{pid}/{file}"), bytes));
        }
    }
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for s in secrets {
            assert!(
                !text.contains(s),
                "{place} holds a credential ({})",
                &s[..8]
            );
        }
    }
    let logs = relay.logs();
    for s in secrets {
        assert!(
            !logs.contains(s),
            "relay log holds a credential ({})",
            &s[..8]
        );
    }
    // The audit log names the key by id and holds no credential, also for a refusal.
    let wrong = format!("{}x", &token[..token.len() - 1]);
    expect_401(
        post_init(&relay.url, &[auth(&wrong)]).await,
        true,
        "tampered",
    )
    .await;
    crate::support::eventually("audit written", || {
        let a = std::fs::read_to_string(&audit).unwrap_or_default();
        a.contains("\"key_id\":\"a5\"") && a.contains("\"decision\"") && a.lines().count() >= 5
    })
    .await;
    let text = std::fs::read_to_string(&audit).unwrap();
    for s in secrets.iter().chain([&wrong.as_str()]) {
        assert!(
            !text.contains(s),
            "audit log holds a credential ({})",
            &s[..8]
        );
    }
}

// === A6: a session is not authentication ===

#[tokio::test]
async fn a6_session_of_another_principal_is_404_and_without_token_401() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&["--roles", &permissions()], Some(&record));
    let alice = setup.mint("alice", "user", &[]);
    let bob = setup.mint("bob", "user", &[]);
    let a = works(&relay, &[auth(&alice)], "alice").await;
    let session = a.session.clone().expect("no session id");

    let mut b = client(&relay, &[auth(&bob)]);
    b.session = Some(session.clone());
    b.version = a.version.clone();
    let reply = b
        .call(json!(1), "echo", json!({"text": "bob-was-here"}))
        .await;
    assert_eq!(reply.status, 404, "{reply:?}");
    assert_eq!(reply.json()["error"]["code"], -31003, "{reply:?}");
    let get = b.get(None).await;
    assert_eq!(get.status(), 404);
    assert_eq!(b.delete().await, 404);

    let mut anon = client(&relay, &[]);
    anon.session = Some(session.clone());
    anon.version = a.version.clone();
    let res = anon
        .post_builder()
        .body(call("echo", "anon-was-here").to_string())
        .send()
        .await
        .unwrap();
    expect_401(res, false, "no token with a session").await;
    let res = anon.request(reqwest::Method::DELETE).send().await.unwrap();
    expect_401(res, false, "DELETE without token").await;

    // Alice's session survived all of it; nothing of Bob's or the anonymous reached the child.
    let again = a
        .call(json!(2), "echo", json!({"text": "still-alice"}))
        .await;
    assert_eq!(text_of(&again.messages()[0]), "still-alice");
    wait_recorded(&record, "still-alice", 1).await;
    let stdin = std::fs::read_to_string(&record).unwrap();
    assert!(!stdin.contains("bob-was-here") && !stdin.contains("anon-was-here"));
}

#[tokio::test]
async fn a6_role_change_applies_on_the_next_request() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    // The seed's roles plus one that may call tools but not `echo`.
    let mut roles: Value =
        serde_json::from_str(&std::fs::read_to_string(permissions()).unwrap()).unwrap();
    roles["noecho"] = json!({"allowedMethods": ["tools/call", "*/list"],
        "tools": {"deny": ["echo"]}});
    let roles_file = tempdir().join("roles.json");
    std::fs::write(&roles_file, roles.to_string()).unwrap();
    let relay = setup.serve(&["--roles", roles_file.to_str().unwrap()], Some(&record));
    let user = setup.mint("alice", "user", &[]);
    let readonly = setup.mint("alice", "readonly", &[]);
    let noecho = setup.mint("alice", "noecho", &[]);
    let mut a = works(&relay, &[auth(&user)], "as-user").await;
    let bearer = |t: &str| vec![("authorization".to_owned(), format!("Bearer {t}"))];

    // Same sub, same session, a token with another role: its roles apply at once.
    a.extra = bearer(&noecho);
    let reply = a.call(json!(2), "echo", json!({"text": "as-noecho"})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let msg = &reply.messages()[0];
    assert_eq!(msg["id"], 2, "{msg}");
    assert_eq!(msg["error"]["code"], -32602, "{msg}");
    assert_eq!(msg["error"]["message"], "Unknown tool: echo", "{msg}");
    // `readonly` blocks tools/call itself: the answer for an unknown method (SECURITY.md §3).
    a.extra = bearer(&readonly);
    let reply = a
        .call(json!(3), "echo", json!({"text": "as-readonly"}))
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let msg = &reply.messages()[0];
    assert_eq!(msg["id"], 3, "{msg}");
    assert_eq!(msg["error"]["code"], -32601, "{msg}");
    // Listing is still allowed for readonly.
    let list = a
        .post(json!({"jsonrpc":"2.0","id":4,"method":"tools/list"}))
        .await;
    assert!(list.messages()[0]["result"]["tools"].is_array(), "{list:?}");
    // And back: the user token calls again in the same session.
    a.extra = bearer(&user);
    let reply = a
        .call(json!(5), "echo", json!({"text": "user-again"}))
        .await;
    assert_eq!(text_of(&reply.messages()[0]), "user-again");
    wait_recorded(&record, "user-again", 1).await;
    let stdin = std::fs::read_to_string(&record).unwrap();
    assert!(!stdin.contains("as-readonly") && !stdin.contains("as-noecho"));
}

#[tokio::test]
async fn a6_conflicting_or_duplicate_credentials_are_401() {
    let (key, block) = api_key(&["--id", "k", "--principal", "alice", "--roles", "user"]);
    let (other_key, other_block) =
        api_key(&["--id", "k2", "--principal", "bob", "--roles", "user"]);
    let setup = Setup::new("", &format!("{block}\n{other_block}"));
    let relay = setup.serve(&[], None);
    let token = setup.mint("alice", "user", &[]);
    let token_b = setup.mint("bob", "user", &[]);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "bearer jwt and a different x-api-key",
            vec![auth(&token), ("x-api-key", key.clone())],
        ),
        (
            "bearer key and a different x-api-key",
            vec![auth(&key), ("x-api-key", other_key.clone())],
        ),
        ("the same token twice", vec![auth(&token), auth(&token)]),
        ("two different tokens", vec![auth(&token), auth(&token_b)]),
        (
            "two x-api-key headers",
            vec![("x-api-key", key.clone()), ("x-api-key", key.clone())],
        ),
    ];
    for (what, headers) in cases {
        expect_401(post_init(&relay.url, &headers).await, true, what).await;
    }
    // The same key in both places is one credential.
    works(
        &relay,
        &[auth(&key), ("x-api-key", key.clone())],
        "same key",
    )
    .await;
}

// === Legacy SSE and Streamable HTTP streams ===

type Events = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

/// `GET /sse` with `headers`: the event stream (endpoint read) and the message URL.
async fn legacy_open(relay: &Relay, headers: &[(&str, String)]) -> (Events, String) {
    use eventsource_stream::Eventsource;
    let mut b = reqwest::Client::new()
        .get(format!("{}/sse", relay.base))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    let res = b.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let mut events: Events = Box::pin(res.bytes_stream().eventsource());
    let first = tokio::time::timeout(patience(), events.next())
        .await
        .expect("endpoint timeout")
        .expect("stream ended")
        .expect("sse error");
    assert_eq!(first.event, "endpoint");
    (events, format!("{}{}", relay.base, first.data))
}

/// Reads until the stream ends; the time (s) it ended, or `None` if still open at `until`.
async fn stream_end(events: &mut Events, until: u64) -> Option<u64> {
    let left = Duration::from_secs(until.saturating_sub(now()));
    let read = async {
        while let Some(Ok(_)) = events.next().await {}
        now()
    };
    tokio::time::timeout(left, read).await.ok()
}

#[tokio::test]
async fn a6_legacy_sse_connection_is_bound_to_its_principal_and_closed_at_expiry() {
    let setup = Setup::new("", "");
    let record = tempdir().join("stdin.log");
    let relay = setup.serve(&[], Some(&record));
    let alice = setup.mint("alice", "user", &["--expires-in", "4s"]);
    let exp = claim_exp(&alice);
    let bob = setup.mint("bob", "user", &[]);
    let (mut events, endpoint) = legacy_open(&relay, &[auth(&alice)]).await;
    let init = init_request(json!(0), VERSION);
    let res = post_json(&endpoint, &[auth(&alice)], init).await;
    assert_eq!(res.status(), 202);
    // Bob cannot post into Alice's connection; nobody can without a credential.
    let res = post_json(&endpoint, &[auth(&bob)], call("echo", "bob-sse")).await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31003, "{body}");
    expect_401(
        post_json(&endpoint, &[], call("echo", "anon-sse")).await,
        false,
        "legacy post without token",
    )
    .await;
    let res = post_json(&endpoint, &[auth(&alice)], call("echo", "alice-sse")).await;
    assert_eq!(res.status(), 202);
    wait_recorded(&record, "alice-sse", 1).await;
    let ended = stream_end(&mut events, exp + 10)
        .await
        .expect("legacy stream still open 10 s after exp");
    assert!(ended >= exp, "closed at {ended}, before exp {exp}");
    let stdin = std::fs::read_to_string(&record).unwrap();
    assert!(!stdin.contains("bob-sse") && !stdin.contains("anon-sse"));
}

#[tokio::test]
async fn a6_legacy_sse_stream_without_a_session_is_closed_at_expiry() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let alice = setup.mint("alice", "user", &["--expires-in", "3s"]);
    let exp = claim_exp(&alice);
    let (mut events, _) = legacy_open(&relay, &[auth(&alice)]).await;
    let ended = stream_end(&mut events, exp + 8).await;
    assert!(ended.is_some(), "legacy stream still open 8 s after exp");
}

#[tokio::test]
async fn a6_streamable_http_get_stream_is_closed_when_its_token_expires() {
    use eventsource_stream::Eventsource;
    let setup = Setup::new("", "");
    let relay = setup.serve(&[], None);
    let alice = setup.mint("alice", "user", &["--expires-in", "3s"]);
    let exp = claim_exp(&alice);
    let mut c = client(&relay, &[auth(&alice)]);
    c.initialize(VERSION).await;
    let res = c.get(None).await;
    assert_eq!(res.status(), 200);
    let mut events: Events = Box::pin(res.bytes_stream().eventsource());
    let ended = stream_end(&mut events, exp + 8).await;
    assert!(ended.is_some(), "GET stream still open 8 s after exp");
}

// === Session modes with principals ===

/// `--session-mode per-identity` keys children by the authenticated principal: one child per
/// principal, shared by its sessions, with the principal templated into the child's env.
#[tokio::test]
async fn per_identity_children_follow_the_authenticated_principal() {
    let setup = Setup::new("", "");
    let relay = setup.serve(
        &[
            "--session-mode",
            "per-identity",
            "--env",
            "MCP_USER={identity}",
        ],
        None,
    );
    let alice = setup.mint("alice", "user", &[]);
    let bob = setup.mint("bob", "user", &[]);
    let pid = |c: crate::support::Client| async move {
        text_of(&c.call(json!(9), "pid", json!({})).await.messages()[0])
    };
    let user = |c: crate::support::Client| async move {
        text_of(
            &c.call(json!(8), "env", json!({"name": "MCP_USER"}))
                .await
                .messages()[0],
        )
    };
    let a1 = works(&relay, &[auth(&alice)], "a1").await;
    let a2 = works(&relay, &[auth(&alice)], "a2").await;
    let b1 = works(&relay, &[auth(&bob)], "b1").await;
    assert_eq!(pid(a1.clone()).await, pid(a2.clone()).await);
    assert_ne!(pid(a1.clone()).await, pid(b1.clone()).await);
    assert_eq!(user(a1).await, "alice");
    assert_eq!(user(b1).await, "bob");
    assert_eq!(relay.children().len(), 2);
}

/// D3: the sessions one principal may hold are capped (429), others are unaffected.
#[tokio::test]
async fn d3_sessions_per_principal_are_capped_with_429() {
    let setup = Setup::new("", "");
    let relay = setup.serve(&["--max-sessions-per-principal", "2"], None);
    let alice = setup.mint("alice", "user", &[]);
    let bob = setup.mint("bob", "user", &[]);
    let _a1 = works(&relay, &[auth(&alice)], "a1").await;
    let a2 = works(&relay, &[auth(&alice)], "a2").await;
    let third = post_init(&relay.url, &[auth(&alice)]).await;
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31005, "{body}");
    works(&relay, &[auth(&bob)], "bob still opens").await;
    assert_eq!(a2.delete().await, 200);
    works(&relay, &[auth(&alice)], "a slot freed").await;
}
