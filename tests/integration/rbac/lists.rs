//! B1: denied names answer like unknown ones; lists stay filtered.

use super::*;

// === B1 ===

/// The seed roles plus a `ghost_*` deny, for a tool the fixture does not have.
const GHOST_ROLES: &str = r#"{
  "admin": {"allowedMethods": ["*"]},
  "user": {
    "allowedMethods": ["tools/call", "*/list"],
    "tools": {"deny": ["delete_*", "ghost_*"]}
  }
}"#;

#[tokio::test]
async fn b1_denied_tool_answer_is_byte_identical_to_the_fixtures_unknown_tool() {
    let roles = roles_file(GHOST_ROLES);
    let rig = rig(Opts {
        roles: &roles,
        ..Opts::default()
    });
    let user = rig.session("ursula", "user", "2025-11-25").await;
    let admin = rig.session("alice", "admin", "2025-11-25").await;
    let denied = user.post(call(json!(9), "ghost_tool")).await;
    rig.barrier(&user, "ghost").await;
    assert_eq!(
        rig.recorded_with("ghost_tool"),
        0,
        "a denied call reached the child"
    );
    let unknown = admin.post(call(json!(9), "ghost_tool")).await;
    wait_recorded(&rig.record, "ghost_tool", 1).await;
    assert_eq!(denied.status, unknown.status);
    assert_eq!(denied.raw(), unknown.raw(), "denied vs truly unknown");
    assert_unknown(&one(&denied), json!(9), -32602, "Unknown tool: ghost_tool");
    let rec = rig
        .audited(json!({"principal":"ursula","name":"ghost_tool"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], "user.tools.deny[1]");
}

#[tokio::test]
async fn b1_json_response_mode_filters_lists_and_denies_like_sse() {
    let rig = rig(Opts {
        relay: &["--response-mode", "json"],
        ..Opts::default()
    });
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let r = c.post(req(json!(1), "tools/list", json!({}))).await;
    assert!(r.events.is_empty(), "expected a JSON answer: {r:?}");
    assert!(!tool_names(&one(&r)).contains(&"delete_everything".to_owned()));
    let r = c.post(call(json!(2), "delete_everything")).await;
    assert_eq!(r.status, 200);
    assert_unknown(
        &one(&r),
        json!(2),
        -32602,
        "Unknown tool: delete_everything",
    );
    rig.barrier(&c, "json").await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
}

#[tokio::test]
async fn b1_resumed_stream_replays_the_filtered_list() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let r = c.post(req(json!(1), "tools/list", json!({}))).await;
    assert!(!tool_names(&one(&r)).contains(&"delete_everything".to_owned()));
    let stream = r
        .events
        .last()
        .unwrap()
        .id
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    let resumed = c.get(Some(&format!("{stream}-0"))).await;
    assert_eq!(resumed.status(), 200);
    let evs = crate::support::collect_events(resumed, 1).await;
    let replayed: Value = serde_json::from_str(&evs[0].data).unwrap();
    assert_eq!(replayed["id"], 1);
    let tools = tool_names(&replayed);
    assert!(tools.contains(&"echo".to_owned()));
    assert!(
        !tools.contains(&"delete_everything".to_owned()),
        "{tools:?}"
    );
}

#[tokio::test]
async fn b1_tools_list_stays_filtered_after_list_changed() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let first = tool_names(&one(&c.post(req(json!(1), "tools/list", json!({}))).await));
    assert!(!first.contains(&"delete_everything".to_owned()));
    let get = c.get(None).await;
    assert_eq!(get.status(), 200);
    let mut events = eventsource_stream::Eventsource::eventsource(get.bytes_stream());
    let r = c.post(call(json!(2), "notify")).await;
    let inline = r
        .messages()
        .iter()
        .any(|m| m["method"] == "notifications/tools/list_changed");
    if !inline {
        wait_event(&mut events, |v| {
            v["method"] == "notifications/tools/list_changed"
        })
        .await;
    }
    let again = tool_names(&one(&c.post(req(json!(3), "tools/list", json!({}))).await));
    assert!(again.contains(&"echo".to_owned()));
    assert!(
        !again.contains(&"delete_everything".to_owned()),
        "{again:?}"
    );
    assert_eq!(first, again);
}
