//! SIGHUP with named servers: an added server is served, a removed one drains and its child
//! stops, a changed one restarts with its new settings; sessions on the unchanged servers do
//! not notice. A broken file changes nothing.

use serde_json::json;

use super::{client_at, server, start, write_config};
use crate::support::conn::Conn;
use crate::support::lines::Lines;
use crate::support::relay::tcp_listening;
use crate::support::{alive, eventually, hangup, text_of, Client};

async fn call_text(c: &Client, tool: &str, args: serde_json::Value) -> String {
    let r = c.call(json!(7), tool, args).await;
    assert_eq!(r.status, 200, "{r:?}");
    text_of(&r.messages()[0])
}

#[tokio::test]
async fn sighup_adds_removes_and_restarts_servers_and_keeps_the_others_sessions() {
    let before = format!(
        "{}{}{}",
        server("keep", "echo", ""),
        server(
            "change",
            "echo",
            "env = [\"FLAVOUR=old\"]\ntcp_listen = \"127.0.0.1:0\""
        ),
        server("gone", "echo", "")
    );
    let config = write_config(&before);
    let relay = start(&config);
    let mut keep = client_at(&relay, "/servers/keep/mcp");
    keep.initialize("2025-11-25").await;
    let keep_pid = call_text(&keep, "pid", json!({})).await;
    let mut change = client_at(&relay, "/servers/change/mcp");
    change.initialize("2025-11-25").await;
    assert_eq!(
        call_text(&change, "env", json!({"name": "FLAVOUR"})).await,
        "old"
    );
    let mut gone = client_at(&relay, "/servers/gone/mcp");
    gone.initialize("2025-11-25").await;
    let gone_pid: i32 = call_text(&gone, "pid", json!({})).await.parse().unwrap();

    let after = format!(
        "{}{}{}",
        server("keep", "echo", ""),
        server(
            "change",
            "echo",
            "env = [\"FLAVOUR=new\"]\ntcp_listen = \"127.0.0.1:0\""
        ),
        server("added", "echo", "")
    );
    std::fs::write(&config, after).unwrap();
    hangup(&relay);
    eventually("reloaded", || relay.logs().contains("policy reloaded")).await;

    // The unchanged server's session and child live on.
    assert_eq!(call_text(&keep, "pid", json!({})).await, keep_pid);
    // The added server is served.
    let mut added = client_at(&relay, "/servers/added/mcp");
    added.initialize("2025-11-25").await;
    assert_eq!(call_text(&added, "echo", json!({"text": "hi"})).await, "hi");
    // The removed one is gone, its child stopped.
    let r = client_at(&relay, "/servers/gone/mcp")
        .post(crate::support::init_request(json!(1), "2025-11-25"))
        .await;
    assert_eq!(r.status, 404);
    eventually("the removed server's child stops", || {
        !alive(gone_pid as u32)
    })
    .await;
    // The changed one restarted with its new settings.
    let mut changed = client_at(&relay, "/servers/change/mcp");
    changed.initialize("2025-11-25").await;
    assert_eq!(
        call_text(&changed, "env", json!({"name": "FLAVOUR"})).await,
        "new"
    );
    assert_ne!(
        change
            .call(json!(8), "echo", json!({"text": "x"}))
            .await
            .status,
        200
    );
    // Its TCP front, bound at startup, now reaches the new one.
    let mut tcp = Lines::tcp(&tcp_listening(&relay).await).await;
    tcp.initialize("2025-11-25").await;
    let env = tcp
        .request(
            json!(9),
            "tools/call",
            json!({"name": "env", "arguments": {"name": "FLAVOUR"}}),
        )
        .await;
    assert_eq!(text_of(&env), "new");

    // A broken file changes nothing.
    std::fs::write(&config, "[servers.BAD NAME]\ncommand = 1\n").unwrap();
    hangup(&relay);
    eventually("refused", || relay.logs().contains("configuration refused")).await;
    assert_eq!(call_text(&keep, "pid", json!({})).await, keep_pid);
    assert_eq!(
        call_text(&added, "echo", json!({"text": "still"})).await,
        "still"
    );
}

#[tokio::test]
async fn an_open_aggregate_session_follows_a_reload() {
    let config = write_config(&format!(
        "{}{}",
        server("keep", "echo", ""),
        server("gone", "echo", "")
    ));
    let relay = start(&config);
    let mut agg = relay.client();
    agg.initialize("2025-11-25").await;
    assert_eq!(
        call_text(&agg, "keep__echo", json!({"text": "before"})).await,
        "before"
    );

    std::fs::write(
        &config,
        format!(
            "{}{}",
            server("keep", "echo", ""),
            server("added", "echo", "")
        ),
    )
    .unwrap();
    hangup(&relay);
    eventually("reloaded", || relay.logs().contains("policy reloaded")).await;

    let names = crate::support::poll_until(
        "the aggregate's list follows the reload",
        || {
            let agg = agg.clone();
            async move {
                let r = agg
                    .post(json!({"jsonrpc": "2.0", "id": "l", "method": "tools/list"}))
                    .await;
                let answer = r.messages().into_iter().find(|m| m["id"] == "l");
                super::tool_names(&answer.expect("the list's answer"))
            }
        },
        |names| {
            names.iter().any(|n| n == "added__echo")
                && names.iter().all(|n| !n.starts_with("gone__"))
        },
    )
    .await;
    assert!(names.iter().any(|n| n == "keep__echo"), "{names:?}");
    // The same session, undisturbed, reaches the kept and the added server.
    assert_eq!(
        call_text(&agg, "keep__echo", json!({"text": "after"})).await,
        "after"
    );
    assert_eq!(
        call_text(&agg, "added__echo", json!({"text": "new"})).await,
        "new"
    );
}
