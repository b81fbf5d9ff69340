//! Unit tests of the legacy face's pure translations.

use super::*;

fn discover_result() -> Value {
    json!({
        "supportedVersions": ["2026-07-28"],
        "capabilities": {"tools": {"listChanged": true}, "logging": {}},
        "instructions": "be nice",
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "s", "version": "1"}}
    })
}

#[test]
fn initialize_result_keeps_legacy_fields_and_drops_modern_ones() {
    let r = initialize_result(&discover_result(), json!("2025-06-18"));
    assert_eq!(
        r,
        json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {"listChanged": true}, "logging": {}},
            "serverInfo": {"name": "s", "version": "1"},
            "instructions": "be nice"
        })
    );
}

#[test]
fn initialize_result_without_server_info_names_an_unknown_server() {
    let r = initialize_result(
        &json!({"serverInfo": {"name": "x", "version": "2"}}),
        json!("v"),
    );
    assert_eq!(r["serverInfo"], json!({"name": "x", "version": "2"}));
    assert_eq!(r["capabilities"], json!({}));
    let r = initialize_result(&json!({}), json!("v"));
    assert_eq!(r["serverInfo"]["name"], "unknown");
    assert!(r.get("instructions").is_none());
}

#[test]
fn discovered_needs_the_modern_version() {
    let ok = json!({"jsonrpc": "2.0", "id": 0, "result": discover_result()});
    assert!(discovered(&ok).is_some());
    let old = json!({"result": {"supportedVersions": ["2025-11-25"]}});
    assert!(discovered(&old).is_none());
    let err = json!({"error": {"code": -32601, "message": "Method not found"}});
    assert!(discovered(&err).is_none());
}

#[test]
fn with_meta_adds_hello_and_log_level_and_keeps_params() {
    let hello = Hello::of(&json!({
        "protocolVersion": "2025-11-25",
        "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "c", "version": "1"}
    }));
    let msg = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "t", "_meta": {"progressToken": 3}}});
    let out: Value = serde_json::from_slice(&hello.with_meta(&msg, Some("debug"))).unwrap();
    let meta = &out["params"]["_meta"];
    assert_eq!(meta["progressToken"], 3);
    assert_eq!(meta[META_VERSION], MODERN);
    assert_eq!(meta[META_CAPS], json!({"elicitation": {}}));
    assert_eq!(meta[META_INFO], json!({"name": "c", "version": "1"}));
    assert_eq!(meta[META_LOG_LEVEL], "debug");
    assert_eq!(out["params"]["name"], "t");
    assert_eq!(out["id"], 7);
}

#[test]
fn with_meta_creates_params_and_omits_what_was_not_declared() {
    let hello = Hello::of(&json!({}));
    let out: Value = serde_json::from_slice(&hello.with_meta(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        None,
    ))
    .unwrap();
    let meta = &out["params"]["_meta"];
    assert_eq!(meta[META_CAPS], json!({}));
    assert!(meta.get(META_INFO).is_none());
    assert!(meta.get(META_LOG_LEVEL).is_none());
    let d: Value = serde_json::from_slice(&hello.discover(json!(0))).unwrap();
    assert_eq!(d["method"], "server/discover");
    assert_eq!(d["params"]["_meta"][META_VERSION], MODERN);
}

#[test]
fn input_required_is_recognised_and_unpacked_in_order() {
    let answer = json!({"jsonrpc": "2.0", "id": 1, "result": {
        "resultType": "input_required",
        "inputRequests": {
            "a": {"method": "elicitation/create", "params": {"message": "name?"}},
            "b": {"method": "roots/list"}
        },
        "requestState": "opaque.state"
    }});
    let result = input_required(&answer).unwrap();
    let inputs = input_requests(result).unwrap();
    assert_eq!(inputs.len(), 2);
    assert_eq!(inputs[0].key, "a");
    assert_eq!(inputs[0].method, "elicitation/create");
    assert_eq!(inputs[1].params, json!({}));
    let req: Value = serde_json::from_slice(&input_request("x-1", &inputs[0])).unwrap();
    assert_eq!(
        req,
        json!({"jsonrpc": "2.0", "id": "x-1", "method": "elicitation/create",
        "params": {"message": "name?"}})
    );
    let done = json!({"result": {"content": [], "resultType": "complete"}});
    assert!(input_required(&done).is_none());
    assert!(input_required(&json!({"result": {"content": []}})).is_none());
    let bad = json!({"inputRequests": {"a": {"params": {}}}});
    assert!(input_requests(&bad).is_none());
}

#[test]
fn retry_carries_responses_and_the_exact_state() {
    let mut req = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "t", "requestState": "old"}});
    let result = json!({"requestState": "new.state=="});
    retry(&mut req, json!({"a": {"action": "accept"}}), &result);
    assert_eq!(req["params"]["requestState"], "new.state==");
    assert_eq!(req["params"]["inputResponses"]["a"]["action"], "accept");
    retry(&mut req, json!({}), &json!({}));
    assert!(req["params"].get("requestState").is_none());
}

#[test]
fn input_response_is_the_result_or_the_error() {
    let ok = json!({"jsonrpc": "2.0", "id": "x", "result": {"action": "decline"}});
    assert_eq!(input_response(&ok), Some(json!({"action": "decline"})));
    let err = json!({"jsonrpc": "2.0", "id": "x", "error": {"code": -1, "message": "no"}});
    assert_eq!(
        input_response(&err),
        Some(json!({"error": {"code": -1, "message": "no"}}))
    );
    assert_eq!(input_response(&json!({"id": 1})), None);
}

#[test]
fn with_id_and_fixed_answers_keep_the_raw_id() {
    let id = RawId::from_u64(42);
    let answer = Bytes::from_static(br#"{"jsonrpc":"2.0","id":"retry-9","result":{"x":1.0}}"#);
    assert_eq!(
        &with_id(&answer, &id)[..],
        br#"{"jsonrpc":"2.0","id":42,"result":{"x":1.0}}"#
    );
    assert_eq!(
        &empty_result(&id)[..],
        br#"{"jsonrpc":"2.0","id":42,"result":{}}"#
    );
    let r = result_message(&id, &json!({"a": 1}));
    assert_eq!(&r[..], br#"{"jsonrpc":"2.0","id":42,"result":{"a":1}}"#);
}

#[test]
fn listen_filter_follows_declared_list_changes_and_uris() {
    let caps = json!({"tools": {"listChanged": true}, "prompts": {"listChanged": false},
        "resources": {"subscribe": true, "listChanged": true}});
    assert_eq!(
        listen_filter(&caps, true, &[]),
        json!({"toolsListChanged": true, "resourcesListChanged": true})
    );
    assert_eq!(
        listen_filter(&caps, false, &["test://a".to_owned()]),
        json!({"resourceSubscriptions": ["test://a"]})
    );
    assert_eq!(listen_filter(&json!({}), true, &[]), json!({}));
    let req = listen_request("l-1", json!({"toolsListChanged": true}));
    assert_eq!(req["method"], "subscriptions/listen");
    assert_eq!(req["params"]["notifications"]["toolsListChanged"], true);
}

#[test]
fn from_listen_drops_the_acknowledgement_and_the_subscription_id() {
    let ack =
        br#"{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{}}"#;
    assert!(from_listen(ack).is_none());
    let upd = br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"test://a","_meta":{"io.modelcontextprotocol/subscriptionId":"l-1"}}}"#;
    let out: Value = serde_json::from_slice(&from_listen(upd).unwrap()).unwrap();
    assert_eq!(
        out,
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
            "params": {"uri": "test://a"}})
    );
    let kept = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":1,"x":2}}}"#;
    let out: Value = serde_json::from_slice(&from_listen(kept).unwrap()).unwrap();
    assert_eq!(out["params"]["_meta"], json!({"x": 2}));
}

#[test]
fn log_level_needs_the_capability_and_a_known_level() {
    let caps = json!({"logging": {}});
    assert_eq!(
        log_level(&json!({"level": "debug"}), &caps),
        Ok("debug".to_owned())
    );
    assert_eq!(
        log_level(&json!({"level": "loud"}), &caps).unwrap_err().0,
        -32602
    );
    assert_eq!(log_level(&json!({}), &caps).unwrap_err().0, -32602);
    assert_eq!(
        log_level(&json!({"level": "debug"}), &json!({}))
            .unwrap_err()
            .0,
        -32601
    );
}
