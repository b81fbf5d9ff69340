//! Prompts and resources; shared children filter per session.

use super::*;

// === prompts and resources ===

#[tokio::test]
async fn b1_prompts_and_resources_are_filtered_and_denied_like_unknown_names() {
    let roles = roles_file(READER_ROLES);
    let rig = rig(Opts {
        roles: &roles,
        ..Opts::default()
    });
    let c = rig.session("rhea", "reader", "2025-11-25").await;
    let p = one(&c.post(req(json!(1), "prompts/list", json!({}))).await);
    assert_eq!(names(&p, "prompts", "name"), ["greet"]);
    let r = one(&c.post(req(json!(2), "resources/list", json!({}))).await);
    assert_eq!(names(&r, "resources", "uri"), ["file:///public/readme.txt"]);
    let t = one(&c
        .post(req(json!(3), "resources/templates/list", json!({})))
        .await);
    assert_eq!(
        names(&t, "resourceTemplates", "uriTemplate"),
        ["file:///public/{name}"]
    );
    let ok = one(&c
        .post(req(json!(4), "prompts/get", json!({"name":"greet"})))
        .await);
    assert!(ok.get("result").is_some(), "{ok}");
    let ok = one(&c
        .post(req(
            json!(5),
            "resources/read",
            json!({"uri":"file:///public/readme.txt"}),
        ))
        .await);
    assert!(ok.get("result").is_some(), "{ok}");

    let denied = one(&c
        .post(req(
            json!(6),
            "prompts/get",
            json!({"name":"internal_debug"}),
        ))
        .await);
    assert_unknown(&denied, json!(6), -32602, "Unknown prompt: internal_debug");
    let denied = one(&c
        .post(req(
            json!(7),
            "resources/read",
            json!({"uri":"file:///secret/keys.txt"}),
        ))
        .await);
    assert_eq!(denied["error"]["code"], -32002, "{denied}");
    assert_eq!(denied["error"]["message"], "Resource not found", "{denied}");
    // The spec's form carries the URI; nothing else (no relay marker).
    assert_eq!(
        denied["error"]["data"],
        json!({"uri": "file:///secret/keys.txt"}),
        "{denied}"
    );
    // The fixture's own answer for a resource it does not have, for comparison.
    let missing = one(&c
        .post(req(
            json!(7),
            "resources/read",
            json!({"uri":"file:///public/missing.txt"}),
        ))
        .await);
    assert_eq!(
        denied["error"]["code"], missing["error"]["code"],
        "denied vs truly missing"
    );
    assert_eq!(denied["error"]["message"], missing["error"]["message"]);
    assert_eq!(
        missing["error"]["data"],
        json!({"uri": "file:///public/missing.txt"})
    );

    rig.barrier(&c, "pr").await;
    assert_eq!(rig.recorded_with("internal_debug"), 0);
    assert_eq!(rig.recorded_with("file:///secret/keys.txt"), 0);
    let rec = rig
        .audited(json!({"principal":"rhea","name":"internal_debug"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], "reader.prompts.deny[0]");
    let rec = rig
        .audited(json!({"principal":"rhea","name":"file:///secret/keys.txt"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["error_code"], -32002);
    assert_eq!(rec["rule"], "reader.resources.default_deny");
}

// === shared mode ===

#[tokio::test]
async fn b1_shared_child_sessions_with_different_roles_get_their_own_tools_list() {
    let rig = rig(Opts {
        relay: &["--session-mode", "shared"],
        ..Opts::default()
    });
    let admin = rig.session("alice", "admin", "2025-11-25").await;
    let user = rig.session("ursula", "user", "2025-11-25").await;
    for round in 0..5 {
        let (a, u) = tokio::join!(
            admin.post(req(json!(round), "tools/list", json!({}))),
            user.post(req(json!(round), "tools/list", json!({})))
        );
        let (a, u) = (tool_names(&one(&a)), tool_names(&one(&u)));
        assert!(a.contains(&"delete_everything".to_owned()), "admin {a:?}");
        assert!(!u.contains(&"delete_everything".to_owned()), "user {u:?}");
        assert_eq!(a.len(), u.len() + 1);
    }
    let r = user.post(call(json!(99), "delete_everything")).await;
    assert_unknown(
        &one(&r),
        json!(99),
        -32602,
        "Unknown tool: delete_everything",
    );
    assert_eq!(rig.recorded_with("delete_everything"), 0);
}

/// A completion names its prompt or resource in `params.ref`: a hidden one is unknown, so
/// completions cannot reveal what the lists hide; an allowed one reaches the server.
#[tokio::test]
async fn b1_completion_for_a_hidden_prompt_or_resource_is_refused_like_an_unknown_name() {
    let roles = roles_file(
        r#"{"reader": {
            "allowedMethods": ["*/list", "prompts/get", "resources/read", "completion/complete"],
            "prompts": {"deny": ["internal_*"]},
            "resources": {"allow": ["file:///public/*"]}
        }}"#,
    );
    let rig = rig(Opts {
        roles: &roles,
        ..Opts::default()
    });
    let c = rig.session("rhea", "reader", "2025-11-25").await;
    let complete = |id: i64, r: Value| {
        req(
            json!(id),
            "completion/complete",
            json!({"ref": r, "argument": {"name": "a", "value": "x"}}),
        )
    };
    let hidden = one(&c
        .post(complete(
            1,
            json!({"type":"ref/prompt","name":"internal_debug"}),
        ))
        .await);
    assert_unknown(&hidden, json!(1), -32602, "Unknown prompt: internal_debug");
    let secret = one(&c
        .post(complete(
            2,
            json!({"type":"ref/resource","uri":"file:///secret/{name}"}),
        ))
        .await);
    assert_eq!(secret["error"]["code"], -32002, "{secret}");
    let allowed = one(&c
        .post(complete(3, json!({"type":"ref/prompt","name":"greet"})))
        .await);
    assert_eq!(allowed["id"], 3, "{allowed}");
    rig.barrier(&c, "completion").await;
    let seen = rig.recorded_with("completion/complete");
    assert_eq!(seen, 1, "only the allowed completion reaches the child");
}
