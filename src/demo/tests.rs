//! Tests of the demo server's loop and dispatch over in-memory stdin/stdout (the tools have
//! their own tests in `tools.rs`; the server behind the relay is tested in
//! tests/integration/first_run.rs).

use serde_json::{json, Value};

use super::{serve, MAX_LINE};

/// Runs the server on `input` and returns every answer line, parsed.
fn answers(input: &str) -> Vec<Value> {
    let mut out = Vec::new();
    serve(input.as_bytes(), &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn demo_initialize_negotiates_a_known_version_or_the_latest() {
    let input = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":"two","method":"initialize","params":{"protocolVersion":"2099-01-01"}}"#,
    ]
    .join("\n");
    let got = answers(&input);
    assert_eq!(got.len(), 2, "the notification is not answered: {got:?}");
    assert_eq!(got[0]["id"], 1);
    assert_eq!(got[0]["result"]["protocolVersion"], "2025-03-26");
    assert_eq!(got[0]["result"]["serverInfo"]["name"], "mcp-relay-demo");
    assert_eq!(got[1]["id"], "two");
    assert_eq!(got[1]["result"]["protocolVersion"], "2025-11-25");
}

#[test]
fn demo_bad_messages_get_json_rpc_errors() {
    let cases = [
        ("{not json", json!(null), -32700),
        ("[1,2]", json!(null), -32600),
        (
            r#"{"jsonrpc":"1.0","id":3,"method":"ping"}"#,
            json!(3),
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"server/discover"}"#,
            json!(4),
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":[1]}"#,
            json!(5),
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"nope"}}"#,
            json!(6),
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"file:///etc/passwd"}}"#,
            json!(7),
            -32002,
        ),
        (
            r#"{"jsonrpc":"2.0","id":8,"method":"prompts/get","params":{"name":"remember"}}"#,
            json!(8),
            -32602,
        ),
    ];
    for (line, id, code) in cases {
        let got = answers(line);
        assert_eq!(got.len(), 1, "{line}");
        assert_eq!(got[0]["id"], id, "{line}");
        assert_eq!(got[0]["error"]["code"], code, "{line}: {got:?}");
    }
}

#[test]
fn demo_responses_blank_lines_and_notifications_are_not_answered() {
    let input = "\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n  \n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":1}}\n";
    assert!(answers(input).is_empty());
}

#[test]
fn demo_overlong_line_is_refused_and_the_next_one_served() {
    let long = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(MAX_LINE)
    );
    let input = format!("{long}\n{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}}\n");
    let got = answers(&input);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["error"]["code"], -32600);
    assert_eq!(got[1], json!({"jsonrpc":"2.0","id":2,"result":{}}));
}

#[test]
fn demo_store_is_readable_as_a_resource_and_the_prompt_fills_in() {
    let input = [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"kv_set","arguments":{"key":"colour","value":"blue"}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"demo://kv"}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"remember","arguments":{"fact":"the sky"}}}"#,
    ]
    .join("\n");
    let got = answers(&input);
    assert_eq!(got[0]["result"]["isError"], false);
    let text = got[1]["result"]["contents"][0]["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"colour":"blue"})
    );
    let prompt = got[2]["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(prompt.ends_with("the sky"), "{prompt}");
}
