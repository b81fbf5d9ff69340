//! Child faults (SECURITY.md E): crashes answer every pending request, junk and oversize
//! stdout lines are dropped without smuggling, stderr floods never block, spawn failures 503.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::json;

use crate::support::{alive, eventually, init_request, tempdir, text_of, Relay, FIXTURE};

#[tokio::test]
async fn e2_child_killed_mid_call_answers_every_pending_request_and_next_session_works() {
    let (relay, record) = Relay::start_recorded(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let calls: Vec<_> = (0..5)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move { c.call(json!(i), "slow", json!({"ms": 30000})).await })
        })
        .collect();
    crate::support::wait_recorded(&record, "\"slow\"", 5).await;
    let crash = c.call(json!("boom"), "crash", json!({"code": 17})).await;
    let m = &crash.messages()[0];
    assert_eq!(
        (m["id"].clone(), m["error"]["code"].clone()),
        (json!("boom"), json!(-31007))
    );
    for (i, call) in calls.into_iter().enumerate() {
        let reply = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap()
            .unwrap();
        let msgs = reply.messages();
        assert_eq!(msgs.len(), 1, "exactly one answer");
        assert_eq!(msgs[0]["id"], i);
        assert_eq!(msgs[0]["error"]["code"], -31007);
        assert_eq!(msgs[0]["error"]["data"]["reason"], "child_exited");
    }
    // The session is over; a new one works.
    assert_eq!(
        c.call(json!(9), "echo", json!({"text":"x"})).await.status,
        404
    );
    let mut d = relay.client();
    d.initialize("2025-11-25").await;
    assert_eq!(
        text_of(
            &d.call(json!(1), "echo", json!({"text":"alive"}))
                .await
                .messages()[0]
        ),
        "alive"
    );
}

#[tokio::test]
async fn e1_crash_during_initialize_is_answered_and_the_relay_survives() {
    let relay = Relay::start(&[], &["--crash-on-init"]);
    let c = relay.client();
    let started = std::time::Instant::now();
    let r = c.post(init_request(json!(1), "2025-11-25")).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(r.messages()[0]["error"]["code"], -31007);
    assert_eq!(relay.health().await["status"], "ok");
}

#[tokio::test]
async fn e4_junk_is_dropped_and_an_oversize_line_cannot_smuggle_a_response() {
    let relay = Relay::start(&["--max-line", "64KiB"], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c.call(json!(3), "junk", json!({})).await;
    assert_eq!(r.messages().len(), 1);
    assert_eq!(text_of(&r.messages()[0]), "after junk");
    // banner, ANSI, LSP header, half JSON, `[]`, `{"foo":1}`, `42`: dropped and counted.
    assert!(
        relay.health().await["child_lines_dropped"]
            .as_u64()
            .unwrap()
            >= 7
    );
    // The over-cap line ends with a valid answer for id 7 (the tail must never be parsed).
    let r = c
        .call(json!(7), "huge", json!({"bytes": 200000, "tail_id": 1}))
        .await;
    let msgs = r.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(text_of(&msgs[0]), "after huge");
    assert!(msgs[0].get("result").unwrap().get("smuggled").is_none());
    let r = c.call(json!(8), "echo", json!({"text":"still fine"})).await;
    assert_eq!(text_of(&r.messages()[0]), "still fine");
}

#[tokio::test]
async fn e5_stderr_flood_does_not_block_the_child() {
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c
        .call(json!(1), "stderr", json!({"bytes": 5_000_000}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "flooded");
}

#[tokio::test]
async fn spawn_failure_answers_503_and_ready_reports_it() {
    let dir = tempdir();
    let script = dir.join("server.sh");
    std::fs::write(&script, format!("#!/bin/sh\nexec {FIXTURE}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--",
        script.to_str().unwrap(),
    ]);
    std::fs::remove_file(&script).unwrap();
    let c = relay.client();
    let r = c.post(init_request(json!(1), "2025-11-25")).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"]["code"], -31006);
    assert!(r.header("retry-after").is_some());
    let ready = reqwest::get(format!("{}/ready", relay.base)).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(!r.body.contains(dir.to_str().unwrap()), "no paths leak");
}

// Both builds: natively SIGTERM, then SIGKILL to the group; on the portable path (Windows)
// the child itself is killed once it has ignored stdin EOF for the stop timeout.
#[tokio::test]
async fn e6_a_child_that_ignores_stdin_eof_and_sigterm_is_killed_when_its_session_ends() {
    let relay = Relay::start(
        &["--child-stop-timeout", "300ms"],
        &["--ignore-sigterm", "--ignore-stdin-eof"],
    );
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let pid: u32 = text_of(&c.call(json!(1), "pid", json!({})).await.messages()[0])
        .parse()
        .unwrap();
    assert!(alive(pid));
    assert_eq!(c.delete().await, 200);
    eventually("child killed", || !alive(pid)).await;
    let killed = if cfg!(feature = "portable") {
        "child ignored stdin close; killing it"
    } else {
        "child ignored SIGTERM; SIGKILL"
    };
    eventually("the stop sequence logged", || relay.logs().contains(killed)).await;
}

// Process groups and SIGTERM: Unix only (docs/platforms.md).
#[cfg(all(unix, not(feature = "portable")))]
#[tokio::test]
async fn e6_grandchildren_and_sigterm_ignorers_are_stopped_with_their_group() {
    let relay = Relay::start(
        &["--child-stop-timeout", "300ms"],
        &["--grandchild", "--ignore-sigterm", "--ignore-stdin-eof"],
    );
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let pid: u32 = text_of(&c.call(json!(1), "pid", json!({})).await.messages()[0])
        .parse()
        .unwrap();
    eventually("grandchild logged", || relay.logs().contains("grandchild ")).await;
    let logs = relay.logs();
    let gpid: u32 = logs
        .split("grandchild ")
        .nth(1)
        .and_then(|s| s.split(|ch: char| !ch.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .expect("grandchild pid");
    assert!(alive(gpid));
    assert_eq!(c.delete().await, 200);
    eventually("child killed", || !alive(pid)).await;
    eventually("grandchild killed", || !alive(gpid)).await;
}

// The kernel's parent-death signal: Linux only (docs/platforms.md).
#[cfg(all(target_os = "linux", not(feature = "portable")))]
#[tokio::test]
async fn e6_children_die_with_the_relay_even_when_it_is_sigkilled() {
    // A child that ignores stdin EOF and SIGTERM: only the kernel's parent-death signal,
    // armed between fork and exec, can end it once the relay is gone without cleaning up.
    let mut relay = Relay::start(&[], &["--ignore-stdin-eof", "--ignore-sigterm"]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let pid: u32 = text_of(&c.call(json!(1), "pid", json!({})).await.messages()[0])
        .parse()
        .unwrap();
    assert!(
        relay.children().contains(&pid),
        "the program is the relay's direct child"
    );
    relay.child.kill().unwrap();
    relay.child.wait().unwrap();
    eventually("child killed with the relay", || !alive(pid)).await;
}
