//! The shared child under faults and load: killed with -9 (E2), crash-looping until the circuit
//! opens (E3), 500 sessions on exactly N children (D1), the in-flight cap, and a session that
//! stops reading without stalling the others (D5).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_kill_9_of_the_shared_child_fails_pending_calls_and_sessions_carry_on() {
    let (relay, record) = Relay::start_recorded(SHARED, &[]);
    let clients = join_all((0..10).map(|_| session(&relay))).await;
    let sub = clients[0]
        .post(
            json!({"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"x://k"}}),
        )
        .await;
    assert_eq!(sub.messages()[0]["result"], json!({}));
    let old_pid = pid_of(&clients[0]).await;
    let pending: Vec<_> = clients
        .iter()
        .flat_map(|c| {
            (0..3).map(move |i| {
                let c = c.clone();
                tokio::spawn(async move { c.call(json!(i), "slow", json!({"ms": 60000})).await })
            })
        })
        .collect();
    wait_recorded(&record, r#""name":"slow""#, 30).await;
    let pid: i32 = old_pid.parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for p in join_all(pending).await {
        let r = p.unwrap();
        let m = r.messages();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0]["error"]["code"], -31007, "{m:?}");
    }
    let mut new_pid = String::new();
    for c in &clients {
        new_pid = pid_of(c).await;
        assert!(!new_pid.is_empty() && new_pid != old_pid);
    }
    assert_eq!(relay.health().await["sessions"], 10);
    assert_eq!(relay.children().len(), 1);
    // The subscription was issued again to the new child.
    let r = clients[1]
        .call(json!(1), "touch", json!({"uri": "x://k"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "touched x://k", "{new_pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d1_five_hundred_sessions_run_on_exactly_n_children() {
    let relay = Relay::start(&["--session-mode", "shared", "--children", "3"], &[]);
    let clients: Vec<Client> = futures_util::stream::iter(0..500)
        .map(|_| session(&relay))
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(relay.health().await["sessions"], 500);
    assert_eq!(relay.children().len(), 3);
    assert_eq!(relay.health().await["children"], 3);
    let pids: HashSet<String> = futures_util::stream::iter(clients.iter().take(30))
        .map(pid_of)
        .buffer_unordered(8)
        .collect()
        .await;
    assert_eq!(pids.len(), 3, "{pids:?}");
}

#[tokio::test]
async fn e3_crash_looping_shared_child_opens_the_circuit() {
    let relay = Relay::start(SHARED, &["--crash-on-init"]);
    eventually("circuit open", || relay.logs().contains("circuit open")).await;
    let res = relay
        .client()
        .post_builder()
        .body(init_request(json!(1), "2025-11-25").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], -31006);
    assert_eq!(body["error"]["data"]["reason"], "circuit_open");
    let ready = reqwest::get(format!("{}/ready", relay.base)).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(relay.children().len() <= 1);
}

#[tokio::test]
async fn shared_child_in_flight_cap_answers_503_and_frees_up() {
    let (relay, record) = Relay::start_recorded(
        &["--session-mode", "shared", "--max-inflight-per-child", "2"],
        &[],
    );
    let a = session(&relay).await;
    let b = session(&relay).await;
    let c = session(&relay).await;
    let busy: Vec<_> = [&a, &b]
        .into_iter()
        .map(|s| {
            let s = s.clone();
            tokio::spawn(async move { s.call(json!(1), "slow", json!({"ms": 800})).await })
        })
        .collect();
    wait_recorded(&record, r#""name":"slow""#, 2).await;
    let mut refused = None;
    for _ in 0..100 {
        let r = c.call(json!(2), "echo", json!({"text": "x"})).await;
        if r.status == 503 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("the third call was never refused");
    assert_eq!(r.json()["error"]["code"], -31005);
    assert!(r.header("retry-after").is_some());
    for t in busy {
        assert_eq!(t.await.unwrap().messages().len(), 1);
    }
    let r = c.call(json!(3), "echo", json!({"text": "y"})).await;
    assert_eq!(text_of(&r.messages()[0]), "y");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5_a_session_that_stops_reading_does_not_stall_the_others() {
    let relay = Relay::start(SHARED, &[]);
    let stalled = session(&relay).await;
    let other = session(&relay).await;
    // 20,000 progress events nobody reads.
    let res = stalled
        .post_builder()
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{
                "name":"progress","arguments":{"steps":20000,"interval_ms":0},
                "_meta":{"progressToken":1}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    for i in 0..50 {
        let started = std::time::Instant::now();
        let r = other.call(json!(i), "echo", json!({"text": "ok"})).await;
        assert_eq!(text_of(&r.messages()[0]), "ok");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    drop(res);
}
