//! `--session-mode per-identity`: one child per identity kept apart, env templates that may
//! not target loader variables, and a child stopped once its last session is gone for the TTL.

use super::*;

#[tokio::test]
async fn per_identity_children_keep_each_identity_apart() {
    let relay = Relay::start(
        &[
            "--session-mode",
            "per-identity",
            "--identity-header",
            "X-User",
            "--env",
            "MCP_USER={identity}",
        ],
        &[],
    );
    let as_user = |name: &str| {
        let mut c = relay.client();
        c.extra.push(("x-user".into(), name.into()));
        c
    };
    let mut alice1 = as_user("alice");
    let mut alice2 = as_user("alice");
    let mut bob = as_user("bob");
    for c in [&mut alice1, &mut alice2, &mut bob] {
        c.initialize("2025-11-25").await;
    }
    let env = |c: &Client| {
        let c = c.clone();
        async move {
            text_of(
                &c.call(json!(1), "env", json!({"name": "MCP_USER"}))
                    .await
                    .messages()[0],
            )
        }
    };
    assert_eq!(env(&alice1).await, "alice");
    assert_eq!(env(&bob).await, "bob");
    assert_eq!(pid_of(&alice1).await, pid_of(&alice2).await);
    assert_ne!(pid_of(&alice1).await, pid_of(&bob).await);
    assert_eq!(relay.children().len(), 2);
    // Bob cannot use Alice's session: the same 404 as an unknown one.
    let mut stolen = as_user("bob");
    stolen.session = alice1.session.clone();
    stolen.version = alice1.version.clone();
    assert_eq!(stolen.call(json!(1), "pid", json!({})).await.status, 404);
    // No identity, or a malformed one: 400.
    let anonymous = relay.client();
    let r = anonymous.post(init_request(json!(1), "2025-11-25")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["data"]["reason"], "missing_identity");
    let r = as_user("a b;c")
        .post(init_request(json!(1), "2025-11-25"))
        .await;
    assert_eq!(r.json()["error"]["data"]["reason"], "bad_identity");
    // A modern request is served by its identity's own (legacy) child, through the relay.
    let r = as_user("alice")
        .post_builder()
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "server/discover")
        .body(
            json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
                "io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientCapabilities":{}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["result"]["supportedVersions"].is_array(), "{body}");
    assert_eq!(relay.children().len(), 2);
}

#[tokio::test]
async fn per_identity_env_templates_may_not_target_loader_variables() {
    let out = std::process::Command::new(crate::support::RELAY)
        .args([
            "serve",
            "--session-mode",
            "per-identity",
            "--identity-header",
            "x-user",
            "--env",
            "LD_PRELOAD={identity}",
            "--",
            crate::support::FIXTURE,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LD_PRELOAD"), "{err}");
}

#[tokio::test]
async fn per_identity_child_stops_after_its_last_session_has_been_gone_for_the_ttl() {
    let relay = Relay::start(
        &[
            "--session-mode",
            "per-identity",
            "--identity-header",
            "x-user",
            "--session-ttl",
            "1s",
        ],
        &[],
    );
    let mut c = relay.client();
    c.extra.push(("x-user".into(), "carol".into()));
    c.initialize("2025-11-25").await;
    assert_eq!(relay.children().len(), 1);
    assert_eq!(c.delete().await, 200);
    eventually("carol's child stopped", || relay.children().is_empty()).await;
    // She comes back: a new child.
    let mut again = relay.client();
    again.extra.push(("x-user".into(), "carol".into()));
    again.initialize("2025-11-25").await;
    assert_eq!(relay.children().len(), 1);
}
