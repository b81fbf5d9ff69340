//! Roles that speak of named servers, on a single-server relay (issue 16): there is no server
//! name, so `servers` covers nothing and qualified `server:name` globs match no tool, while
//! everything else in the file decides as before; records carry no `server`. (Relays of
//! named servers and the aggregate are tested with the hub.)

use super::*;

const SERVER_ROLES: &str = r#"{
  "scoped": {"allowedMethods": ["*"], "servers": ["github"]},
  "notfs": {"allowedMethods": ["*"], "blockedServers": ["fs"]},
  "dev": {"allowedMethods": ["*"], "tools": {"allow": ["github:*", "echo"]}}
}"#;

#[tokio::test]
async fn a_role_scoped_to_servers_covers_nothing_on_a_single_server_relay() {
    let roles = roles_file(SERVER_ROLES);
    let rig = rig(Opts {
        roles: &roles,
        ..Opts::default()
    });
    // The session opens (plumbing), the list is empty, the call is an unknown tool.
    let c = rig.session("sam", "scoped", "2025-11-25").await;
    let list = one(&c.post(req(json!(1), "tools/list", json!({}))).await);
    assert_eq!(tool_names(&list), Vec::<String>::new(), "{list}");
    let denied = c.post(call(json!(2), "echo")).await;
    assert_unknown(&one(&denied), json!(2), -32602, "Unknown tool: echo");
    rig.barrier(&c, "scoped").await;
    assert_eq!(
        rig.recorded_with("\"echo\""),
        0,
        "a denied call reached the child"
    );
    let rec = rig
        .audited(json!({"principal":"sam","method":"tools/call"}))
        .await;
    assert_eq!(rec["rule"], "scoped.servers.default_deny");
    assert!(rec.get("server").is_none(), "{rec}");
    // `blockedServers` has nothing to block here.
    let n = rig.session("nora", "notfs", "2025-11-25").await;
    let r = one(&n.post(call(json!(3), "echo")).await);
    assert!(r.get("result").is_some(), "{r}");
}

#[tokio::test]
async fn qualified_tool_globs_match_no_tool_on_a_single_server_relay() {
    let roles = roles_file(SERVER_ROLES);
    let rig = rig(Opts {
        roles: &roles,
        ..Opts::default()
    });
    let c = rig.session("dana", "dev", "2025-11-25").await;
    let list = one(&c.post(req(json!(1), "tools/list", json!({}))).await);
    assert_eq!(tool_names(&list), ["echo"], "{list}");
    let r = one(&c.post(call(json!(2), "echo")).await);
    assert!(r.get("result").is_some(), "{r}");
    let denied = one(&c.post(call(json!(3), "delete_everything")).await);
    assert_unknown(&denied, json!(3), -32602, "Unknown tool: delete_everything");
    let rec = rig
        .audited(json!({"principal":"dana","name":"delete_everything"}))
        .await;
    assert_eq!(rec["rule"], "dev.tools.default_deny");
    assert!(rec.get("server").is_none(), "{rec}");
}
