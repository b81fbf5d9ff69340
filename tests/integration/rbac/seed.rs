//! The seed roles (admin, user, readonly) with tokens minted by `mcp-relay token jwt`.

use super::*;

// === seed roles ===

/// readonly blocks the method `tools/call` itself: a denied method is answered like an
/// unknown one (-32601, SECURITY.md §3), whatever the tool.
#[tokio::test]
async fn b1_seed_readonly_lists_tools_but_a_call_is_method_not_found_that_never_reaches_the_child()
{
    let rig = rig(Opts::default());
    let c = rig.session("rita", "readonly", "2025-11-25").await;
    let list = one(&c.post(req(json!(1), "tools/list", json!({}))).await);
    assert!(tool_names(&list).contains(&"echo".to_owned()), "{list}");
    let r = c.post(call(json!(2), "echo")).await;
    assert_eq!(r.status, 200);
    assert_unknown(&one(&r), json!(2), -32601, "Method not found");
    rig.barrier(&c, "ro").await;
    assert_eq!(rig.recorded_with("tools/call"), 0, "{:?}", rig.recorded());
    let deny = rig
        .audited(json!({"principal":"rita","method":"tools/call","decision":"deny"}))
        .await;
    assert_eq!(deny["auth"], "jwt");
    assert_eq!(deny["name"], "echo");
    assert_eq!(deny["outcome"], "denied");
    assert_eq!(deny["error_code"], -32601);
    assert!(
        deny["rule"].as_str().unwrap().starts_with("readonly."),
        "{deny}"
    );
}

/// A role that may list but call no tool sees the catalogue its name rules allow (readonly
/// "can list"); lists of callers that can call show only what they can call.
#[tokio::test]
async fn b1_seed_readonly_tools_list_is_the_catalogue() {
    let rig = rig(Opts::default());
    let c = rig.session("rita", "readonly", "2025-11-25").await;
    let list = one(&c.post(req(json!(1), "tools/list", json!({}))).await);
    let names = tool_names(&list);
    assert!(names.contains(&"echo".to_owned()), "{list}");
    assert!(names.contains(&"delete_everything".to_owned()), "{list}");
}

#[tokio::test]
async fn b1_seed_union_of_readonly_and_user_lists_only_callable_tools() {
    let rig = rig(Opts::default());
    let c = rig.session("una", "readonly,user", "2025-11-25").await;
    let r = c.post(call(json!(1), "delete_everything")).await;
    assert_unknown(
        &one(&r),
        json!(1),
        -32602,
        "Unknown tool: delete_everything",
    );
    assert_eq!(text_of(&one(&c.post(call(json!(2), "echo")).await)), "hi");
    let tools = tool_names(&one(&c.post(req(json!(3), "tools/list", json!({}))).await));
    assert!(tools.contains(&"echo".to_owned()));
    assert!(
        !tools.contains(&"delete_everything".to_owned()),
        "{tools:?}"
    );
}

#[tokio::test]
async fn b1_seed_readonly_call_is_denied_before_the_child_and_audited_with_its_rule() {
    // The part of the readonly case that holds whatever the error shape: nothing reaches the
    // child, the answer carries no relay marker, the audit names the blocking rule.
    let rig = rig(Opts::default());
    let c = rig.session("rita", "readonly", "2025-11-25").await;
    let r = c.post(call(json!(2), "echo")).await;
    assert_eq!(r.status, 200);
    let msg = one(&r);
    assert_eq!(msg["id"], 2);
    assert!(msg["error"].get("data").is_none(), "{msg}");
    rig.barrier(&c, "ro2").await;
    assert_eq!(rig.recorded_with("tools/call"), 0);
    let deny = rig
        .audited(json!({"principal":"rita","method":"tools/call","decision":"deny"}))
        .await;
    assert_eq!(deny["rule"], "readonly.blockedMethods[0]");
    assert_eq!(deny["auth"], "jwt");
    assert_eq!(deny["outcome"], "denied");
}

#[tokio::test]
async fn b1_seed_user_delete_tool_is_hidden_and_unknown_while_echo_works() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let list = one(&c.post(req(json!(1), "tools/list", json!({}))).await);
    let tools = tool_names(&list);
    assert!(tools.contains(&"echo".to_owned()), "{tools:?}");
    assert!(
        !tools.contains(&"delete_everything".to_owned()),
        "{tools:?}"
    );
    let ok = one(&c.post(call(json!(2), "echo")).await);
    assert_eq!(text_of(&ok), "hi");
    let r = c.post(call(json!(3), "delete_everything")).await;
    assert_eq!(r.status, 200);
    assert_unknown(
        &one(&r),
        json!(3),
        -32602,
        "Unknown tool: delete_everything",
    );
    rig.barrier(&c, "user").await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("\"echo\""), 1);

    let allow = rig
        .audited(json!({"principal":"ursula","method":"tools/call","name":"echo"}))
        .await;
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["auth"], "jwt");
    assert_eq!(allow["outcome"], "ok");
    assert_eq!(allow["rule"], "user.allowedMethods[0]");
    assert!(allow.get("error_code").is_none(), "{allow}");
    let deny = rig
        .audited(json!({"principal":"ursula","name":"delete_everything"}))
        .await;
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["method"], "tools/call");
    assert_eq!(deny["rule"], "user.tools.deny[0]");
    assert_eq!(deny["outcome"], "denied");
    assert_eq!(deny["error_code"], -32602);
    let listed = rig
        .audited(json!({"principal":"ursula","method":"tools/list"}))
        .await;
    assert_eq!(listed["decision"], "allow");
    // One line per request: initialize, tools/list, echo, delete, ping.
    eventually("five ursula records", || {
        rig.audit_lines()
            .iter()
            .filter(|r| r["principal"] == "ursula" && r.get("method").is_some())
            .count()
            == 5
    })
    .await;
}

#[tokio::test]
async fn b1_seed_admin_sees_and_calls_every_tool() {
    let rig = rig(Opts::default());
    let c = rig.session("alice", "admin", "2025-11-25").await;
    let tools = tool_names(&one(&c.post(req(json!(1), "tools/list", json!({}))).await));
    for t in ["echo", "delete_everything", "notify", "env"] {
        assert!(tools.contains(&t.to_owned()), "{t} missing from {tools:?}");
    }
    let del = one(&c.post(call(json!(2), "delete_everything")).await);
    assert_eq!(text_of(&del), "deleted");
    let p = one(&c.post(req(json!(3), "prompts/list", json!({}))).await);
    assert_eq!(names(&p, "prompts", "name"), ["greet", "internal_debug"]);
    let x = one(&c.post(req(json!(4), "x-anything", json!({"a":1}))).await);
    assert_eq!(x["result"]["method"], "x-anything");
    rig.barrier(&c, "admin").await;
    assert_eq!(rig.recorded_with("delete_everything"), 1);
    let rec = rig
        .audited(json!({"principal":"alice","name":"delete_everything"}))
        .await;
    assert_eq!(rec["decision"], "allow");
    assert_eq!(rec["rule"], "admin.allowedMethods[0]");
    assert_eq!(rec["outcome"], "ok");
    assert_eq!(rec["auth"], "jwt");
}
