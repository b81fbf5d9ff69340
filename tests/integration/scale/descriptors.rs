//! The relay out of file descriptors (docs/scale.md, "When the machine runs out"): started
//! under `prlimit --nofile=64:64`, it opens per-session children until a spawn fails with
//! EMFILE; that `initialize` is refused (503, -31006, audited), the relay and its sessions go
//! on, and new sessions open again once some have ended.

use serde_json::json;

use crate::support::{
    alive, eventually, init_request, poll_until, text_of, Client, Relay, Reply, FIXTURE, RELAY,
};

/// The relay started under `prlimit --nofile=SOFT:HARD`, with an audit log and the fixture
/// per session.
fn start_with_open_files(soft: u32, hard: u32, audit: &std::path::Path) -> Relay {
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .args([RELAY, "serve", "--listen", "127.0.0.1:0", "--audit-log"])
        .arg(audit)
        .args(["--", FIXTURE]);
    Relay::start_command(cmd)
}

/// `c` in the session `reply` (to its `initialize`) opened, once `notifications/initialized`
/// is sent.
async fn initialized(mut c: Client, reply: &Reply) -> Client {
    c.session = reply.header("mcp-session-id");
    c.version = Some("2025-11-25".to_owned());
    let ack = c
        .post(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    assert_eq!(ack.status, 202);
    c
}

/// Out of descriptors (docs/scale.md): the `initialize` whose child cannot be spawned gets
/// 503 + `Retry-After` and -31006 with an audit record, `/ready` says 503, the relay stays
/// up and its sessions keep answering; once sessions end, new ones open again. Every request
/// goes over one keep-alive connection, so the accept loop (which also needs a descriptor)
/// is not what refuses.
#[tokio::test]
async fn out_of_descriptors_refuses_new_sessions_and_recovers_when_some_end() {
    let audit = crate::support::tempdir().join("audit.log");
    // Soft = hard, so raising the soft limit at start changes nothing.
    let relay = start_with_open_files(64, 64, &audit);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let client = || Client {
        http: http.clone(),
        ..relay.client()
    };
    let mut open = Vec::new();
    let refused = loop {
        assert!(
            open.len() < 60,
            "64 descriptors never ran out: {}",
            relay.logs()
        );
        let c = client();
        let r = c.post(init_request(json!(0), "2025-11-25")).await;
        if r.status != 200 {
            break r;
        }
        let c = initialized(c, &r).await;
        open.push(c);
    };
    assert!(
        open.len() >= 2,
        "only {} sessions before the refusal",
        open.len()
    );
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    let err = &refused.json()["error"];
    assert_eq!(err["code"], -31006, "{err}");
    assert_eq!(err["data"]["reason"], "child_unavailable", "{err}");
    eventually("the refusal is audited", || {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let rec: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                rec["method"] == "initialize"
                    && rec["error_code"] == -31006
                    && rec["reason"] == "child_unavailable"
            })
    })
    .await;
    let ready = |http: reqwest::Client, url: String| async move {
        http.get(url).send().await.unwrap().status().as_u16()
    };
    let ready_url = format!("{}/ready", relay.base);
    assert_eq!(ready(http.clone(), ready_url.clone()).await, 503);
    for (i, c) in open.iter().enumerate() {
        let r = c
            .call(json!(i), "echo", json!({"text": format!("still {i}")}))
            .await;
        assert_eq!(text_of(&r.messages()[0]), format!("still {i}"));
    }
    for c in open.drain(..2) {
        assert_eq!(c.delete().await, 200);
    }
    let reply = poll_until(
        "a new session once two have ended",
        || {
            let c = client();
            async move { c.post(init_request(json!(0), "2025-11-25")).await }
        },
        |r| r.status == 200,
    )
    .await;
    let again = initialized(client(), &reply).await;
    let r = again
        .call(json!("new"), "echo", json!({"text": "back"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "back");
    assert_eq!(ready(http.clone(), ready_url).await, 200);
    assert!(alive(relay.pid()), "the relay stayed up");
}

/// The soft limit on open files of a process, from `/proc/PID/limits`.
fn soft_open_files(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// The relay raises its own soft open-files limit to the hard one at start, and its children
/// get the limit it was started with back (a server sees what it would see started by hand).
#[tokio::test]
async fn the_relay_raises_its_open_files_limit_and_its_children_keep_the_one_it_was_given() {
    let audit = crate::support::tempdir().join("audit.log");
    let relay = start_with_open_files(256, 2048, &audit);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let kids = relay.children();
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(soft_open_files(relay.child.id()), 2048);
    assert_eq!(soft_open_files(kids[0]), 256);
}
