//! `--spare-children N`: per-session children started before any session asks; a new
//! session gets one of them (the child it calls is the spare that was waiting) and another is
//! started behind it; a spare that exits unused is replaced, and a command that cannot stay up
//! is not restarted in a loop; shutdown stops the spares; the configurations where a spare
//! cannot be used are refused. Also `spare_children` in a `[servers.NAME]` table.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{alive, eventually, poll_until, text_of, Client, Relay, FIXTURE, RELAY};

const VERSION: &str = "2025-11-25";

/// The relay's children now (spares and sessions' children alike).
fn children(relay: &Relay) -> Vec<u32> {
    let mut pids = relay.children();
    pids.sort_unstable();
    pids
}

/// The pid of the child a session runs on (the fixture's `pid` tool).
async fn child_of(c: &Client) -> u32 {
    let reply = c.call(json!("pid"), "pid", json!({})).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    text_of(&reply.messages()[0]).parse().unwrap()
}

async fn spares_ready(relay: &Relay) -> u64 {
    relay.health().await["spare_children"].as_u64().unwrap()
}

#[tokio::test]
async fn a_new_session_runs_on_a_spare_started_before_it_and_another_takes_its_place() {
    let relay = Relay::start(&["--spare-children", "1"], &[]);
    // Before any session: one child, waiting.
    eventually("a spare child", || children(&relay).len() == 1).await;
    let spare = children(&relay)[0];
    assert_eq!(spares_ready(&relay).await, 1);
    assert_eq!(relay.health().await["sessions"], 0);

    let mut c = relay.client();
    c.initialize(VERSION).await;
    assert_eq!(child_of(&c).await, spare, "the session runs on the spare");
    // Another spare is started behind it: two children, one of them the session's.
    eventually("the next spare", || children(&relay).len() == 2).await;
    let next: Vec<u32> = children(&relay)
        .into_iter()
        .filter(|p| *p != spare)
        .collect();
    assert_eq!(next.len(), 1);
    assert_eq!(spares_ready(&relay).await, 1);

    // The second session gets that one; the sessions never share a child.
    let mut d = relay.client();
    d.initialize(VERSION).await;
    assert_eq!(child_of(&d).await, next[0]);
    assert_eq!(child_of(&c).await, spare);
    // Ending a session stops its child; the spare started for the next session stays.
    assert_eq!(c.delete().await, 200);
    eventually("the first session's child stopped", || !alive(spare)).await;
    eventually("a spare and the second session's child", || {
        children(&relay).len() == 2
    })
    .await;
    assert_eq!(spares_ready(&relay).await, 1);
}

#[tokio::test]
async fn a_spare_that_exits_unused_is_replaced_and_shutdown_stops_the_spares() {
    let mut relay = Relay::start(
        &["--spare-children", "2", "--admin-listen", "127.0.0.1:0"],
        &[],
    );
    eventually("two spares", || children(&relay).len() == 2).await;
    // The admin listener's gauge counts them apart from the sessions' children.
    let admin = relay.admin_base().await;
    let gauge = |name: &'static str| {
        let url = format!("{admin}/metrics");
        async move {
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
        }
    };
    poll_until(
        "the spares gauge",
        || gauge("mcp_relay_spare_children"),
        |v| *v == Some(2),
    )
    .await;
    assert_eq!(gauge("mcp_relay_children_running").await, Some(0));
    let first = children(&relay);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the killed spare reaped and replaced", || {
        let now = children(&relay);
        now.len() == 2 && !now.contains(&first[0])
    })
    .await;
    assert!(relay
        .logs()
        .contains("spare children exited before a session took them"));
    // A session still gets a working child.
    let mut c = relay.client();
    c.initialize(VERSION).await;
    let reply = c.call(json!(1), "echo", json!({"text": "hi"})).await;
    assert_eq!(text_of(&reply.messages()[0]), "hi");

    let pids = children(&relay);
    assert_eq!(relay.terminate(), Some(0), "{}", relay.final_logs());
    for pid in pids {
        assert!(!alive(pid), "child {pid} outlived the relay");
    }
}

#[tokio::test]
async fn a_command_that_cannot_stay_up_is_not_restarted_in_a_loop() {
    // `true` exits at once: every spare dies unused.
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--spare-children",
        "1",
        "--",
        "true",
    ]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let logs = relay.logs();
    let spawned = logs.matches("child spawned").count();
    // Pauses of 1 s, then 2 s, ... between attempts: a handful in 4 s, not hundreds.
    assert!((2..=6).contains(&spawned), "{spawned} spawns:\n{logs}");
    assert!(
        logs.contains("spare children exited before a session took them"),
        "{logs}"
    );
    // The relay itself is fine; a session is refused as without spares.
    assert_eq!(relay.health().await["status"], "ok");
}

#[test]
fn spares_are_refused_where_no_session_starts_its_own_child() {
    for (args, says) in [
        (
            vec!["--spare-children", "1", "--session-mode", "shared"],
            "--spare-children starts children ahead of sessions",
        ),
        (
            vec!["--spare-children", "1", "--session-mode", "per-identity"],
            "--spare-children starts children ahead of sessions",
        ),
        (vec!["--spare-children", "65"], "at most 64"),
    ] {
        let out = Command::new(RELAY)
            .arg("serve")
            .args(&args)
            .args(["--identity-header", "X-User", "--", FIXTURE])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn named_servers_take_the_relays_spares_or_their_own() {
    // `[serve]`'s value is every server's; `plain` sets its own; `pool` is shared, where an
    // inherited value does not apply and is left out.
    let config = crate::servers::write_config(&format!(
        r#"
[serve]
spare_children = 1

[servers.echo]
command = [{FIXTURE:?}]

[servers.plain]
command = [{FIXTURE:?}]
spare_children = 0

[servers.pool]
command = [{FIXTURE:?}]
session_mode = "shared"
"#
    ));
    let out = Command::new(RELAY)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let relay = crate::servers::start(&config);
    let spares = |relay: &Relay| {
        let url = format!("{}/health", relay.base);
        async move {
            let health: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            ["echo", "plain", "pool"].map(|s| health["servers"][s]["spare_children"].as_u64())
        }
    };
    let ready = [Some(1), Some(0), Some(0)];
    poll_until("echo's spare", || spares(&relay), |s| *s == ready).await;
    // The pool's shared child and echo's spare.
    eventually("two children", || children(&relay).len() == 2).await;
    let before = children(&relay);
    let mut c = crate::servers::client_at(&relay, "/servers/echo/mcp");
    c.initialize(VERSION).await;
    assert!(
        before.contains(&child_of(&c).await),
        "echo runs on its spare"
    );
    // The other server starts its child with its session, as before.
    let mut p = crate::servers::client_at(&relay, "/servers/plain/mcp");
    p.initialize(VERSION).await;
    assert!(!before.contains(&child_of(&p).await));
    eventually(
        "echo's next spare beside the pool and the two sessions",
        || children(&relay).len() == 4,
    )
    .await;
    poll_until("echo's next spare", || spares(&relay), |s| *s == ready).await;
}

#[test]
fn a_servers_own_spares_where_none_can_be_used_are_refused() {
    let config = crate::servers::write_config(&format!(
        r#"
[servers.pool]
command = [{FIXTURE:?}]
session_mode = "shared"
spare_children = 2
"#
    ));
    let out = Command::new(RELAY)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let all = format!("{out:?}");
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("servers.pool: --spare-children starts children ahead of sessions"),
        "{all}"
    );
}
