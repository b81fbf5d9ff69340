//! The 2026-07-28 era: denials with that era's codes and statuses.

use super::*;

// === modern era ===

fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "it", "version": "1"}
    })
}

async fn modern_post(c: &Client, body: &Value) -> Reply {
    let mut b = c
        .http
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", body["method"].as_str().unwrap());
    if let Some(name) = body["params"]["name"].as_str() {
        b = b.header("mcp-name", name);
    }
    for (k, v) in &c.extra {
        b = b.header(k, v);
    }
    read_reply(b.body(body.to_string()).send().await.unwrap()).await
}

fn modern_call(id: i64, tool: &str, text: &str) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
        "params":{"name":tool,"arguments":{"text":text},"_meta":modern_meta()}})
}

#[tokio::test]
async fn b1_modern_denied_tool_is_200_unknown_tool_and_denied_method_is_404() {
    let rig = rig(Opts {
        child: &["--era", "dual"],
        ..Opts::default()
    });
    let user = rig.client(&mint("ursula", "user"));
    let ok = modern_post(&user, &modern_call(1, "echo", "hi")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(text_of(&one(&ok)), "hi");
    let list = modern_post(
        &user,
        &json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":modern_meta()}}),
    )
    .await;
    assert!(!tool_names(&one(&list)).contains(&"delete_everything".to_owned()));
    let r = modern_post(&user, &modern_call(3, "delete_everything", "hi")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_unknown(
        &one(&r),
        json!(3),
        -32602,
        "Unknown tool: delete_everything",
    );
    // `user` lists allowedMethods, so an unlisted method is denied.
    let r = modern_post(
        &user,
        &json!({"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{
            "ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"a","value":"b"},
            "_meta":modern_meta()}}),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_unknown(&one(&r), json!(4), -32601, "Method not found");
    // readonly: `tools/call` itself is blocked.
    let ro = rig.client(&mint("rita", "readonly"));
    let r = modern_post(&ro, &modern_call(5, "echo", "readonly-marker")).await;
    let msg = one(&r);
    assert!(msg["error"].get("data").is_none(), "{msg}");
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("completion/complete"), 0);
    assert_eq!(rig.recorded_with("readonly-marker"), 0);
    let rec = rig
        .audited(json!({"principal":"ursula","name":"delete_everything"}))
        .await;
    assert_eq!(rec["decision"], "deny");
    assert_eq!(rec["rule"], "user.tools.deny[0]");
}

#[tokio::test]
async fn b1_modern_denied_prompt_and_resource_are_200_with_minus_32602() {
    let roles = roles_file(READER_ROLES);
    let rig = rig(Opts {
        roles: &roles,
        child: &["--era", "dual"],
        ..Opts::default()
    });
    let c = rig.client(&mint("rhea", "reader"));
    let list = modern_post(
        &c,
        &json!({"jsonrpc":"2.0","id":1,"method":"prompts/list","params":{"_meta":modern_meta()}}),
    )
    .await;
    assert_eq!(names(&one(&list), "prompts", "name"), ["greet"]);
    let r = modern_post(
        &c,
        &json!({"jsonrpc":"2.0","id":2,"method":"prompts/get",
            "params":{"name":"internal_debug","_meta":modern_meta()}}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_unknown(&one(&r), json!(2), -32602, "Unknown prompt: internal_debug");
    let read = json!({"jsonrpc":"2.0","id":3,"method":"resources/read",
        "params":{"uri":"file:///secret/keys.txt","_meta":modern_meta()}});
    let res = c
        .http
        .post(&c.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT_BOTH)
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "resources/read")
        .header("mcp-name", "file:///secret/keys.txt")
        .header("authorization", c.extra[0].1.clone())
        .body(read.to_string())
        .send()
        .await
        .unwrap();
    let r = read_reply(res).await;
    assert_eq!(r.status, 200, "{r:?}");
    let msg = one(&r);
    assert_eq!(msg["error"]["code"], -32602, "{msg}");
    assert!(msg["error"]["data"].get("source").is_none(), "{msg}");
    assert_eq!(rig.recorded_with("internal_debug"), 0);
    assert_eq!(rig.recorded_with("file:///secret/keys.txt"), 0);
}

#[tokio::test]
async fn b4_modern_name_header_body_mismatch_is_400_and_rbac_reads_the_body() {
    let rig = rig(Opts {
        child: &["--era", "dual"],
        ..Opts::default()
    });
    let c = rig.client(&mint("ursula", "user"));
    // Warm the pool so the child has seen its one tools/list.
    let ok = modern_post(&c, &modern_call(1, "echo", "hi")).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    for (id, header, body) in [
        (2, "echo", "delete_everything"),
        (3, "delete_everything", "echo"),
    ] {
        let msg = modern_call(id, body, "mismatch");
        let res = c
            .http
            .post(&c.url)
            .header("content-type", "application/json")
            .header("accept", ACCEPT_BOTH)
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", header)
            .header("authorization", c.extra[0].1.clone())
            .body(msg.to_string())
            .send()
            .await
            .unwrap();
        let r = read_reply(res).await;
        assert_eq!(r.status, 400, "header {header}, body {body}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -32020, "{}", r.body);
    }
    assert_eq!(rig.recorded_with("mismatch"), 0, "{:?}", rig.recorded());
    // Header and body agree on the denied name: decided from the body, Unknown tool.
    let r = modern_post(&c, &modern_call(4, "delete_everything", "agreed")).await;
    assert_unknown(
        &one(&r),
        json!(4),
        -32602,
        "Unknown tool: delete_everything",
    );
    assert_eq!(rig.recorded_with("agreed"), 0);
}

#[tokio::test]
async fn seed_roles_never_deny_server_discover_whatever_the_childs_era() {
    // Issue 14, bug 5: the seed's `user` and `readonly` denied `server/discover` (404 from a
    // modern child, so the client fell back to legacy), and its audit decision was `deny` or
    // `allow` depending on the child's era.
    for era in ["modern", "dual", "legacy"] {
        let rig = rig(Opts {
            child: &["--era", era],
            ..Opts::default()
        });
        for (id, role) in [(1, "user"), (2, "readonly")] {
            let who = format!("{role}-{era}");
            let c = rig.client(&mint(&who, role));
            let discover = json!({"jsonrpc":"2.0","id":id,"method":"server/discover",
                "params":{"_meta":modern_meta()}});
            let r = modern_post(&c, &discover).await;
            // A legacy child's discover is answered by the relay from its `initialize`.
            assert_eq!(r.status, 200, "{who}: {r:?}");
            let versions = &one(&r)["result"]["supportedVersions"];
            assert!(
                versions
                    .as_array()
                    .is_some_and(|v| v.contains(&json!("2026-07-28"))),
                "{who}: {r:?}"
            );
            let rec = rig
                .audited(json!({"principal": who, "method": "server/discover"}))
                .await;
            assert_eq!(rec["decision"], "allow", "{rec}");
            assert_eq!(rec["rule"], "always_allowed", "{rec}");
        }
    }
}
