use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::json;

use super::*;

fn frame(v: serde_json::Value) -> Frame {
    Frame::parse(Bytes::from(v.to_string())).unwrap()
}

fn meta() -> serde_json::Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn call(args: serde_json::Value) -> Frame {
    frame(json!({"jsonrpc":"2.0","id":1,"method":"tools/call",
        "params":{"name":"greet","arguments":args,"_meta":meta()}}))
}

fn tools() -> ToolHeaders {
    let mut t = ToolHeaders::default();
    t.learn(
        &json!({"tools":[{"name":"greet","inputSchema":{"type":"object","properties":{
            "who":{"type":"string","x-mcp-header":"Who"},
            "n":{"type":"integer","x-mcp-header":"N"},
            "plain":{"type":"string"}}}}]})
        .to_string(),
    );
    t
}

fn with(extra: &[(&str, &str)]) -> HeaderMap {
    let mut v: Vec<(&str, &str)> = vec![
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "greet"),
    ];
    v.extend_from_slice(extra);
    headers(&v)
}

#[test]
fn a_matching_request_passes() {
    let f = call(json!({"who":"Ann","n":3}));
    let h = with(&[("mcp-param-who", "Ann"), ("MCP-PARAM-N", "3.0")]);
    assert_eq!(validate(&h, &f, &tools()), Ok(()));
}

#[test]
fn meta_fields_are_required_with_invalid_params() {
    let f = frame(json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}));
    let h = headers(&[
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "server/discover"),
    ]);
    assert_eq!(validate(&h, &f, &tools()).unwrap_err().code(), -32602);
    let f = frame(
        json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
        "io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}),
    );
    assert_eq!(
        validate(&h, &f, &tools()),
        Err(Refusal::MissingMeta("missing_meta_client_capabilities"))
    );
}

#[test]
fn version_header_must_match_and_be_supported() {
    let body = |v: &str| {
        frame(
            json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":v,
            "io.modelcontextprotocol/clientCapabilities":{}}}}),
        )
    };
    let h = |v: &str| {
        headers(&[
            ("mcp-protocol-version", v),
            ("mcp-method", "server/discover"),
        ])
    };
    let mismatch = validate(&h("2026-07-28"), &body("v999"), &tools()).unwrap_err();
    assert_eq!(mismatch.code(), -32020);
    let e = validate(&h("v999"), &body("v999"), &tools()).unwrap_err();
    assert_eq!(e.code(), -32022);
    assert_eq!(e.data()["requested"], "v999");
    assert_eq!(e.data()["supported"], json!(["2026-07-28"]));
    let none = headers(&[("mcp-method", "server/discover")]);
    let missing = validate(&none, &body("2026-07-28"), &tools()).unwrap_err();
    assert_eq!(missing.code(), -32020);
}

#[test]
fn method_and_name_headers_are_required_and_compared() {
    let f = call(json!({}));
    let mut h = with(&[]);
    h.remove("mcp-name");
    assert_eq!(
        validate(&h, &f, &tools()),
        Err(Refusal::HeaderMismatch("missing_name_header"))
    );
    let h = headers(&[
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/list"),
        ("Mcp-Name", "greet"),
    ]);
    assert_eq!(
        validate(&h, &f, &tools()),
        Err(Refusal::HeaderMismatch("method_mismatch"))
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode("greet");
    let value = format!("=?base64?{b64}?=");
    let h = headers(&[
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", &value),
    ]);
    assert_eq!(validate(&h, &f, &tools()), Ok(()));
}

#[test]
fn param_headers_follow_the_annotations() {
    let t = tools();
    // A present argument without its header.
    let f = call(json!({"who":"Ann"}));
    assert_eq!(
        validate(&with(&[]), &f, &t),
        Err(Refusal::HeaderMismatch("missing_param_header"))
    );
    assert!(validate(&with(&[("mcp-param-who", "Bob")]), &f, &t).is_err());
    // Numbers compare numerically.
    let f = call(json!({"n": 3}));
    assert!(validate(&with(&[("mcp-param-n", "3")]), &f, &t).is_ok());
    assert!(validate(&with(&[("mcp-param-n", "4")]), &f, &t).is_err());
    // Unannotated arguments need nothing.
    let f = call(json!({"plain": "x"}));
    assert!(validate(&with(&[]), &f, &t).is_ok());
}

#[test]
fn base64_values_decode_strictly_and_unwrapped_values_are_literal() {
    assert_eq!(decode("=?base64?SGVsbG8=?=").unwrap(), "Hello");
    assert!(decode("=?base64?SGVsbG8?=").is_err(), "missing padding");
    assert!(decode("=?base64?SGVs!!!bG8=?=").is_err(), "bad alphabet");
    assert_eq!(decode("SGVsbG8=").unwrap(), "SGVsbG8=");
    assert_eq!(decode("=?base64?SGVsbG8=").unwrap(), "=?base64?SGVsbG8=");
}
