//! A server that cannot start: with `failure_mode = "open"` (the default) the aggregate serves
//! the others, its tools are absent and `/health` says why; with `"closed"` the aggregate
//! refuses to open a session and `/ready` says 503. Its own path answers as a failed server.

use serde_json::json;

use super::{server, start, tool_names, write_config};
use crate::support::{init_request, text_of, Relay};

/// `ok` (echo) and `broken` (the fixture crashing on `initialize`), with `[aggregate]` lines.
fn with_a_broken_server(aggregate: &str) -> Relay {
    let broken = format!(
        "[servers.broken]\ncommand = [{:?}, \"echo\", \"--crash-on-init\"]\n",
        crate::support::FIXTURE
    );
    let toml = format!(
        "[aggregate]\n{aggregate}\n{}{broken}",
        server("ok", "echo", "")
    );
    start(&write_config(&toml))
}

#[tokio::test]
async fn open_mode_serves_the_others_and_health_says_why() {
    let relay = with_a_broken_server("");
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let list = c
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    let names = tool_names(&list.messages()[0]);
    assert!(names.contains(&"ok__echo".to_owned()), "{names:?}");
    assert!(
        names.iter().all(|n| !n.starts_with("broken__")),
        "{names:?}"
    );
    let r = c.call(json!(2), "ok__echo", json!({"text": "fine"})).await;
    assert_eq!(text_of(&r.messages()[0]), "fine");

    let health = relay.health().await;
    let broken = &health["aggregate"]["servers"]["broken"];
    assert_ne!(broken["state"], "up", "{health}");
    assert!(broken["reason"].is_string(), "{health}");
    assert_eq!(
        health["aggregate"]["servers"]["ok"]["state"], "up",
        "{health}"
    );
}

#[tokio::test]
async fn closed_mode_refuses_the_aggregate_while_a_server_is_down() {
    let relay = with_a_broken_server("failure_mode = \"closed\"");
    let r = relay
        .client()
        .post(init_request(json!(1), "2025-11-25"))
        .await;
    let m = r.messages();
    let error = &m[0]["error"];
    assert_eq!(error["code"], -31006, "{r:?}");
    assert_eq!(error["data"]["source"], "mcp-relay", "{r:?}");
    assert_eq!(error["data"]["reason"], "child_unavailable", "{r:?}");
    assert!(!error.to_string().contains("broken"), "{r:?}");
    let ready = reqwest::get(format!("{}/ready", relay.base)).await.unwrap();
    assert_eq!(ready.status(), 503);
    // The healthy server's own path still works.
    let mut ok = super::client_at(&relay, "/servers/ok/mcp");
    ok.initialize("2025-11-25").await;
}
