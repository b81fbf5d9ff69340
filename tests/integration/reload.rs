//! SIGHUP reloads the policy (credentials, roles, limits) from the same command line and
//! config file, for the next requests, without dropping sessions; a broken file is refused
//! and the old policy stays.

use serde_json::json;

use crate::support::{eventually, hangup, tempdir, Relay, FIXTURE};

/// `mcp-relay token key`: the key and its config block.
fn api_key(id: &str, roles: &str) -> (String, String) {
    crate::support::mint_api_key(&["--id", id, "--principal", id, "--roles", roles])
}

async fn status_with(relay: &Relay, key: &str) -> u16 {
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), key.into())];
    c.post(crate::support::init_request(json!(1), "2025-11-25"))
        .await
        .status
}

#[tokio::test]
async fn sighup_reloads_keys_and_roles_without_dropping_sessions() {
    let dir = tempdir();
    let (a, block_a) = api_key("alice", "user");
    let (b, block_b) = api_key("bob", "user");
    let roles = dir.join("roles.json");
    std::fs::write(&roles, r#"{"user": {"allowedMethods": ["*"]}}"#).unwrap();
    let config = dir.join("relay.toml");
    let write = |blocks: &str| {
        std::fs::write(
            &config,
            format!(
                "[serve]\nroles = \"roles.json\"\n\n[auth]\nresource = \"http://relay.test/mcp\"\n\n{blocks}"
            ),
        )
        .unwrap()
    };
    write(&block_a);
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--",
        FIXTURE,
    ]);
    let mut alice = relay.client();
    alice.extra = vec![("x-api-key".into(), a.clone())];
    alice.initialize("2025-11-25").await;
    assert_eq!(status_with(&relay, &b).await, 401);

    // Bob's key is added and echo is denied to `user`: both apply after SIGHUP.
    write(&format!("{block_a}\n{block_b}"));
    std::fs::write(
        &roles,
        r#"{"user": {"allowedMethods": ["*"], "tools": {"deny": ["echo"]}}}"#,
    )
    .unwrap();
    hangup(&relay);
    eventually("policy reloaded", || {
        relay.logs().contains("policy reloaded")
    })
    .await;
    assert_eq!(status_with(&relay, &b).await, 200);
    // Alice's session lives on, under the new roles.
    let r = alice.call(json!(2), "echo", json!({"text": "x"})).await;
    assert_eq!(r.status, 200, "the session was dropped");
    assert_eq!(r.messages()[0]["error"]["message"], "Unknown tool: echo");

    // A broken file is refused; the policy in force stays.
    std::fs::write(&config, "[auth]\nnot_a_key = 1\n").unwrap();
    hangup(&relay);
    eventually("refusal logged", || {
        relay.logs().contains("configuration refused")
    })
    .await;
    assert_eq!(status_with(&relay, &b).await, 200);
    assert_eq!(status_with(&relay, &a).await, 200);
}
