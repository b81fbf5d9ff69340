//! B2–B3: parser differentials and batches under roles.

use super::*;

// === B2 ===

#[tokio::test]
async fn b2_ambiguous_keys_under_roles_are_400_and_the_child_sees_nothing() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let cases = [
        r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"echo","name":"delete_everything","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"echo","Name":"delete_everything","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"echo","name\u0000":"delete_everything","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":13,"method":"tools/list","Method":"tools/call","params":{"name":"delete_everything"}}"#,
        r#"{"jsonrpc":"2.0","id":14,"method":"tools/call","method":"tools/list","params":{"name":"delete_everything"}}"#,
    ];
    for body in cases {
        let r = c.post_raw(body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -32600, "{body}: {}", r.body);
    }
    rig.barrier(&c, "b2").await;
    assert_eq!(
        rig.recorded_with("delete_everything"),
        0,
        "{:?}",
        rig.recorded()
    );
    assert_eq!(rig.recorded_with("tools/"), 0, "{:?}", rig.recorded());
}

#[tokio::test]
async fn b2_deep_duplicates_and_folded_meta_keys_under_roles_are_400() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    let cases = [
        // Duplicate keys below `params`.
        r#"{"jsonrpc":"2.0","id":15,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a","text":"b"}}}"#,
        // `_meta` keys the relay reads, folded.
        r#"{"jsonrpc":"2.0","id":16,"method":"tools/call","params":{"name":"echo","arguments":{},"_meta":{"progressToken":"p","ProgressToken":"q"}}}"#,
        r#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"echo","_Meta":{},"_meta":{}}}"#,
        // A control character instead of NUL.
        r#"{"jsonrpc":"2.0","id":18,"method":"tools/call","params":{"name":"echo","name\u001f":"delete_everything"}}"#,
        // Envelope `Params` beside `params`.
        r#"{"jsonrpc":"2.0","id":19,"method":"tools/call","params":{"name":"echo"},"Params":{"name":"delete_everything"}}"#,
    ];
    for body in cases {
        let r = c.post_raw(body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -32600, "{body}: {}", r.body);
    }
    rig.barrier(&c, "b2deep").await;
    assert_eq!(rig.recorded_with("tools/"), 0, "{:?}", rig.recorded());
}

#[tokio::test]
async fn b2_escaped_identical_names_are_rejected_or_decided_on_the_decoded_name() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-11-25").await;
    // Escaped key, allowed tool: 400, or the child runs exactly `echo`.
    let r = c
        .post_raw(
            r#"{"jsonrpc":"2.0","id":20,"method":"tools/call","params":{"n\u0061me":"echo","arguments":{"text":"esc"}}}"#
                .to_owned(),
        )
        .await;
    if r.status != 400 {
        assert_eq!(text_of(&one(&r)), "esc", "{r:?}");
    }
    // Escaped key or escaped value naming a denied tool: 400, or Unknown tool; never the child.
    let denied = [
        (21, r#"{"n\u0061me":"delete_everything","arguments":{}}"#),
        (22, r#"{"name":"delete\u005feverything","arguments":{}}"#),
        (23, r#"{"name":"\u0064elete_everything","arguments":{}}"#),
    ];
    for (id, params) in denied {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#);
        let r = c.post_raw(body.clone()).await;
        if r.status == 400 {
            assert_eq!(r.json()["error"]["code"], -32600, "{body}");
        } else {
            assert_eq!(r.status, 200);
            assert_unknown(
                &one(&r),
                json!(id),
                -32602,
                "Unknown tool: delete_everything",
            );
        }
    }
    rig.barrier(&c, "esc").await;
    assert_eq!(
        rig.recorded_with("delete_everything"),
        0,
        "a denied tool reached the child: {:?}",
        rig.recorded()
    );
    // What the child ran for the escaped key is exactly the authorized name, or nothing: the
    // child's own JSON parser reads `echo` out of the bytes it got.
    let calls: Vec<Value> = rig
        .recorded()
        .iter()
        .filter(|l| l.contains("tools/call"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(calls.len() <= 1, "{calls:?}");
    for c in &calls {
        assert_eq!(c["params"]["name"], "echo", "{c}");
    }
}

// === B3 ===

#[tokio::test]
async fn b3_batches_on_2025_06_18_are_400_and_never_reach_the_child() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-06-18").await;
    let bodies = [
        json!([
            call(json!(30), "echo"),
            call(json!(31), "delete_everything")
        ])
        .to_string(),
        "[]".to_owned(),
        json!([[call(json!(32), "echo")]]).to_string(),
    ];
    for body in bodies {
        let r = c.post_raw(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert_eq!(r.json()["error"]["code"], -32600, "{body}: {}", r.body);
    }
    rig.barrier(&c, "b3").await;
    assert_eq!(rig.recorded_with("tools/call"), 0, "{:?}", rig.recorded());
}

#[tokio::test]
async fn b3_batch_on_2025_03_26_answers_each_element_under_its_own_decision() {
    let rig = rig(Opts::default());
    let c = rig.session("ursula", "user", "2025-03-26").await;
    let r = c
        .post(json!([
            call(json!(40), "echo"),
            call(json!(41), "delete_everything")
        ]))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut msgs = r.messages();
    if msgs.len() == 1 && msgs[0].is_array() {
        msgs = msgs[0].as_array().unwrap().clone();
    }
    let by_id = |id: i64| msgs.iter().find(|m| m["id"] == id).cloned().unwrap();
    assert_eq!(text_of(&by_id(40)), "hi");
    assert_unknown(
        &by_id(41),
        json!(41),
        -32602,
        "Unknown tool: delete_everything",
    );
    rig.barrier(&c, "b3b").await;
    assert_eq!(rig.recorded_with("delete_everything"), 0);
    assert_eq!(rig.recorded_with("\"name\":\"echo\""), 1);
    rig.audited(json!({"principal":"ursula","name":"delete_everything","decision":"deny"}))
        .await;

    // A list inside a batch is filtered like one on its own.
    let r = c
        .post(json!([
            req(json!(42), "tools/list", json!({})),
            req(json!(43), "prompts/list", json!({}))
        ]))
        .await;
    let msgs = r.messages();
    let list = msgs.iter().find(|m| m["id"] == 42).unwrap();
    assert!(tool_names(list).contains(&"echo".to_owned()));
    assert!(
        !tool_names(list).contains(&"delete_everything".to_owned()),
        "{list}"
    );

    let pings_before = rig.recorded_with("\"ping\"");
    let pings: Vec<Value> = (0..101)
        .map(|i| json!({"jsonrpc":"2.0","id":1000 + i,"method":"ping"}))
        .collect();
    let r = c.post(Value::Array(pings)).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"]["code"], -32600);
    rig.barrier(&c, "b3c").await;
    assert_eq!(rig.recorded_with("\"ping\""), pings_before + 1);
}
