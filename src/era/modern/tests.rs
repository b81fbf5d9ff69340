//! Table-style tests of the modern header rules; cases mirror the conformance suite's
//! `server-stateless`, `http-header-validation` and `http-custom-header-server-validation`.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::json;

use super::*;

/// The HTTP status `error.rs` answers a refusal with.
fn status(r: &Refusal) -> u16 {
    crate::error::Error::Modern(r.clone())
        .wire()
        .status
        .as_u16()
}

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

fn discover(params: serde_json::Value) -> Frame {
    frame(json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":params}))
}

fn tools() -> ToolHeaders {
    let mut t = ToolHeaders::default();
    t.learn(
        &json!({"tools":[{"name":"greet","inputSchema":{"type":"object","properties":{
            "who":{"type":"string","x-mcp-header":"Who"},
            "n":{"type":"integer","x-mcp-header":"N"},
            "loud":{"type":"boolean","x-mcp-header":"Loud"},
            "where":{"type":"object","properties":{
                "region":{"type":"string","x-mcp-header":"Region"}}},
            "plain":{"type":"string"}}}}]})
        .to_string(),
    );
    t
}

/// The standard headers of a `greet` call plus `extra`.
fn with(extra: &[(&str, &str)]) -> HeaderMap {
    let mut v: Vec<(&str, &str)> = vec![
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "greet"),
    ];
    v.extend_from_slice(extra);
    headers(&v)
}

fn refusal(h: &HeaderMap, f: &Frame) -> Refusal {
    validate(h, f, &tools()).unwrap_err()
}

#[test]
fn validate_matching_call_returns_what_was_checked() {
    let f = call(json!({"who":"Ann","n":3,"loud":true,"where":{"region":"eu"}}));
    let h = with(&[
        ("mcp-param-who", "Ann"),
        ("MCP-PARAM-N", "3.0"),
        ("Mcp-Param-Loud", "true"),
        ("Mcp-Param-Region", "eu"),
    ]);
    let ok = validate(&h, &f, &tools()).unwrap();
    assert_eq!(
        ok,
        ModernRequest {
            version: "2026-07-28".into(),
            method: "tools/call".into(),
            name: Some("greet".into()),
            params_checked: 4,
        }
    );
}

#[test]
fn validate_missing_meta_fields_are_invalid_params() {
    let h = headers(&[
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "server/discover"),
    ]);
    let cases = [
        (json!({}), "missing_meta"),
        (json!({"_meta": "x"}), "missing_meta"),
        (
            json!({"_meta":{"io.modelcontextprotocol/clientCapabilities":{}}}),
            "missing_meta_protocol_version",
        ),
        (
            json!({"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}),
            "missing_meta_client_capabilities",
        ),
        (
            json!({"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
                "io.modelcontextprotocol/clientCapabilities":null}}),
            "missing_meta_client_capabilities",
        ),
    ];
    for (params, reason) in cases {
        let r = refusal(&h, &discover(params));
        assert_eq!(r, Refusal::MissingMeta(reason));
        assert_eq!((r.code(), status(&r)), (-32602, 400));
    }
    let no_params = frame(json!({"jsonrpc":"2.0","id":1,"method":"server/discover"}));
    assert_eq!(
        refusal(&h, &no_params),
        Refusal::MissingMeta("missing_meta")
    );
    // clientInfo is only a SHOULD.
    assert!(validate(&h, &discover(json!({"_meta": meta()})), &tools()).is_ok());
}

#[test]
fn validate_version_header_must_be_present_equal_and_supported() {
    let body = |v: &str| {
        discover(json!({"_meta":{"io.modelcontextprotocol/protocolVersion":v,
            "io.modelcontextprotocol/clientCapabilities":{}}}))
    };
    let h = |v: &str| {
        headers(&[
            ("mcp-protocol-version", v),
            ("mcp-method", "server/discover"),
        ])
    };
    let mismatch = refusal(&h("2026-07-28"), &body("v999.0.0"));
    assert_eq!(
        mismatch,
        Refusal::HeaderMismatch("protocol_version_mismatch")
    );
    assert_eq!(mismatch.code(), -32020);
    let e = refusal(&h("v999.0.0"), &body("v999.0.0"));
    assert_eq!((e.code(), status(&e)), (-32022, 400));
    assert_eq!(e.data()["requested"], "v999.0.0");
    assert_eq!(e.data()["supported"], json!(["2026-07-28"]));
    let none = headers(&[("mcp-method", "server/discover")]);
    assert_eq!(
        refusal(&none, &body("2026-07-28")),
        Refusal::HeaderMismatch("missing_protocol_version_header")
    );
    // A missing header is reported before missing metadata, as the suite's reference does.
    assert_eq!(
        refusal(&none, &discover(json!({}))).code(),
        -32020,
        "header first"
    );
}

#[test]
fn validate_method_header_is_required_on_requests_and_compared_case_sensitively() {
    let list =
        frame(json!({"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":meta()}}));
    let h = |pairs: &[(&str, &str)]| {
        let mut v = vec![("MCP-Protocol-Version", "2026-07-28")];
        v.extend_from_slice(pairs);
        headers(&v)
    };
    assert_eq!(
        refusal(&h(&[("Mcp-Method", "prompts/list")]), &list),
        Refusal::HeaderMismatch("method_mismatch")
    );
    assert_eq!(
        refusal(&h(&[]), &list),
        Refusal::HeaderMismatch("missing_method_header")
    );
    assert_eq!(
        refusal(&h(&[("Mcp-Method", "TOOLS/LIST")]), &list),
        Refusal::HeaderMismatch("method_mismatch")
    );
    for name in ["mcp-method", "MCP-METHOD", "Mcp-Method"] {
        assert!(validate(&h(&[(name, "tools/list")]), &list, &tools()).is_ok());
    }
    assert_eq!(
        refusal(
            &h(&[("Mcp-Method", "tools/list"), ("mcp-method", "tools/list")]),
            &list
        ),
        Refusal::HeaderMismatch("repeated_header")
    );
}

#[test]
fn validate_name_header_is_required_compared_and_may_be_base64() {
    let f = call(json!({}));
    let mut h = with(&[]);
    h.remove("mcp-name");
    assert_eq!(
        refusal(&h, &f),
        Refusal::HeaderMismatch("missing_name_header")
    );
    let wrong = headers(&[
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "wrong_tool_name"),
    ]);
    assert_eq!(
        refusal(&wrong, &f),
        Refusal::HeaderMismatch("name_mismatch")
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode("greet");
    let value = format!("=?base64?{b64}?=");
    let h = headers(&[
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", &value),
    ]);
    assert!(validate(&h, &f, &tools()).is_ok());
}

#[test]
fn validate_surrounding_whitespace_is_not_part_of_a_value() {
    let f = call(json!({"who":"Ann"}));
    let h = headers(&[
        ("MCP-Protocol-Version", " 2026-07-28\t"),
        ("Mcp-Method", "tools/call "),
        ("Mcp-Name", "  greet  "),
        ("Mcp-Param-Who", "\tAnn "),
    ]);
    assert!(validate(&h, &f, &tools()).is_ok());
}

#[test]
fn validate_resource_and_prompt_names_come_from_uri_and_name() {
    let read = frame(json!({"jsonrpc":"2.0","id":1,"method":"resources/read",
        "params":{"uri":"test://static-text","_meta":meta()}}));
    let h = |method: &str, name: &str| {
        headers(&[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
            ("Mcp-Name", name),
        ])
    };
    let ok = validate(&h("resources/read", "test://static-text"), &read, &tools()).unwrap();
    assert_eq!(ok.name.as_deref(), Some("test://static-text"));
    assert!(validate(&h("resources/read", "test://other"), &read, &tools()).is_err());
    let get = frame(json!({"jsonrpc":"2.0","id":1,"method":"prompts/get",
        "params":{"name":"p","_meta":meta()}}));
    assert!(validate(&h("prompts/get", "p"), &get, &tools()).is_ok());
    assert!(validate(&h("prompts/get", "q"), &get, &tools()).is_err());
}

/// Long by design: one table row per case.
#[test]
fn validate_param_headers_follow_the_annotations() {
    // (arguments, extra headers, Ok or the refusal's reason)
    type Case = (
        serde_json::Value,
        Vec<(&'static str, &'static str)>,
        Result<(), &'static str>,
    );
    let cases: Vec<Case> = vec![
        // A present argument needs its header; a header needs its argument.
        (json!({"who":"Ann"}), vec![], Err("missing_param_header")),
        (
            json!({"who":"Ann"}),
            vec![("mcp-param-who", "Bob")],
            Err("param_mismatch"),
        ),
        (
            json!({}),
            vec![("mcp-param-who", "Ann")],
            Err("param_mismatch"),
        ),
        // null is absent.
        (json!({"who":null}), vec![], Ok(())),
        // Integers numerically, exactly past 2^53.
        (json!({"n":3}), vec![("mcp-param-n", "3")], Ok(())),
        (json!({"n":42}), vec![("mcp-param-n", "42.0")], Ok(())),
        (json!({"n":-7}), vec![("mcp-param-n", "-7")], Ok(())),
        (
            json!({"n":3}),
            vec![("mcp-param-n", "4")],
            Err("param_mismatch"),
        ),
        (
            json!({"n":3}),
            vec![("mcp-param-n", "three")],
            Err("param_mismatch"),
        ),
        (
            json!({"n":3}),
            vec![("mcp-param-n", "inf")],
            Err("param_mismatch"),
        ),
        (
            json!({"n":9_007_199_254_740_993_u64}),
            vec![("mcp-param-n", "9007199254740992")],
            Err("param_mismatch"),
        ),
        // A string argument compares as text, even when it looks like a number.
        (
            json!({"who":"42"}),
            vec![("mcp-param-who", "42.0")],
            Err("param_mismatch"),
        ),
        // Booleans as lowercase words.
        (
            json!({"loud":false}),
            vec![("mcp-param-loud", "false")],
            Ok(()),
        ),
        (
            json!({"loud":true}),
            vec![("mcp-param-loud", "True")],
            Err("param_mismatch"),
        ),
        // Nested through properties.
        (
            json!({"where":{"region":"eu"}}),
            vec![],
            Err("missing_param_header"),
        ),
        (json!({"where":{}}), vec![], Ok(())),
        (json!({"where":"eu"}), vec![], Ok(())),
        // Unannotated arguments and unknown Mcp-Param headers need nothing.
        (json!({"plain":"x"}), vec![("mcp-param-other", "y")], Ok(())),
    ];
    for (args, extra, want) in cases {
        let got = validate(&with(&extra), &call(args.clone()), &tools())
            .map(|_| ())
            .map_err(|r| r.reason());
        assert_eq!(got, want, "{args} {extra:?}");
    }
}

#[test]
fn validate_base64_param_values_match_the_suite_table() {
    let t = tools();
    let f = call(json!({"who":"Hello"}));
    let check = |v: &str| validate(&with(&[("Mcp-Param-Who", v)]), &f, &t).map(|_| ());
    assert_eq!(check("=?base64?SGVsbG8=?="), Ok(()));
    assert_eq!(
        check("=?base64?SGVsbG8?="),
        Err(Refusal::HeaderMismatch("bad_base64"))
    );
    assert_eq!(
        check("=?base64?SGVs!!!bG8=?="),
        Err(Refusal::HeaderMismatch("bad_base64"))
    );
    // Without both markers the value is literal.
    let literal = |v: &str| {
        let f = call(json!({ "who": v }));
        validate(&with(&[("Mcp-Param-Who", v)]), &f, &t).map(|_| ())
    };
    assert_eq!(literal("SGVsbG8="), Ok(()));
    assert_eq!(literal("=?base64?SGVsbG8="), Ok(()));
    // Non-ASCII survives the round trip.
    let f = call(json!({"who":"Hello, 世界"}));
    let h = with(&[("Mcp-Param-Who", "=?base64?SGVsbG8sIOS4lueVjA==?=")]);
    assert!(validate(&h, &f, &t).is_ok());
}

#[test]
fn validate_bytes_outside_visible_ascii_are_bad_chars() {
    let mut h = with(&[]);
    h.insert(
        HeaderName::from_static("mcp-param-who"),
        HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
    );
    assert_eq!(
        refusal(&h, &call(json!({"who":"café"}))),
        Refusal::HeaderMismatch("bad_header_chars")
    );
}

#[test]
fn validate_notifications_need_only_a_supported_version_header() {
    let n = frame(json!({"jsonrpc":"2.0","method":"notifications/cancelled",
        "params":{"requestId":1}}));
    let v = [("MCP-Protocol-Version", "2026-07-28")];
    let ok = validate(&headers(&v), &n, &tools()).unwrap();
    assert_eq!(ok.method, "notifications/cancelled");
    let wrong = [v[0], ("Mcp-Method", "notifications/progress")];
    assert_eq!(
        refusal(&headers(&wrong), &n),
        Refusal::HeaderMismatch("method_mismatch")
    );
    assert_eq!(refusal(&headers(&[]), &n).code(), -32020);
    let old = [("MCP-Protocol-Version", "2025-11-25")];
    assert_eq!(refusal(&headers(&old), &n).code(), -32022);
}

#[test]
fn learn_follows_properties_chains_and_skips_invalid_annotations() {
    let mut t = ToolHeaders::default();
    t.learn(
        &json!({"tools":[{"name":"t","inputSchema":{"type":"object","properties":{
            "a":{"type":"string","x-mcp-header":"A"},
            "num":{"type":"number","x-mcp-header":"Num"},
            "bad":{"type":"string","x-mcp-header":"Bad Name"},
            "list":{"type":"array","items":{"properties":{
                "x":{"type":"string","x-mcp-header":"X"}}}},
            "any":{"anyOf":[{"type":"string","x-mcp-header":"Any"}]},
            "opt":{"type":["integer","null"],"x-mcp-header":"Opt"},
            "o":{"type":"object","properties":{"b":{"x-mcp-header":"B"}}}}}}]})
        .to_string(),
    );
    let mut got: Vec<(String, Vec<String>)> = t
        .of("t")
        .iter()
        .map(|b| (b.header.clone(), b.path.clone()))
        .collect();
    got.sort();
    let want: Vec<(String, Vec<String>)> = vec![
        ("mcp-param-a".into(), vec!["a".into()]),
        ("mcp-param-b".into(), vec!["o".into(), "b".into()]),
        ("mcp-param-opt".into(), vec!["opt".into()]),
    ];
    assert_eq!(got, want);
}

#[test]
fn learn_relisted_tool_replaces_what_was_known() {
    let mut t = tools();
    assert_eq!(t.of("greet").len(), 4);
    t.learn(r#"{"tools":[{"name":"greet","inputSchema":{"type":"object"}}]}"#);
    assert!(t.of("greet").is_empty());
    let f = call(json!({"who":"Ann"}));
    assert!(validate(&with(&[]), &f, &t).is_ok());
    // Not a tools/list result: nothing changes.
    let mut t = tools();
    t.learn("not json");
    t.learn(r#"{"tools":"nope"}"#);
    assert_eq!(t.of("greet").len(), 4);
    assert!(ToolHeaders::default().of("greet").is_empty());
}

#[test]
fn refusal_maps_to_400_with_reason_and_message() {
    let all = [
        Refusal::HeaderMismatch("name_mismatch"),
        Refusal::MissingMeta("missing_meta"),
        Refusal::Unsupported {
            requested: "v9".into(),
        },
    ];
    let got: Vec<(i64, u16, &str)> = all
        .iter()
        .map(|r| (r.code(), status(r), r.reason()))
        .collect();
    assert_eq!(
        got,
        [
            (-32020, 400, "name_mismatch"),
            (-32602, 400, "missing_meta"),
            (-32022, 400, "unsupported_protocol_version"),
        ]
    );
    assert!(all[0].data().is_empty() && all[1].data().is_empty());
    assert_eq!(all[0].to_string(), "header mismatch (name_mismatch)");
    assert_eq!(all[2].message(), "Unsupported protocol version");
}

#[test]
fn decode_is_strict_and_unwrapped_values_are_literal() {
    assert_eq!(decode("=?base64?SGVsbG8=?=").unwrap(), "Hello");
    assert_eq!(decode("=?base64??=").unwrap(), "");
    assert!(decode("=?base64?SGVsbG8?=").is_err(), "missing padding");
    assert!(decode("=?base64?SGVs!!!bG8=?=").is_err(), "bad alphabet");
    assert!(decode("=?base64?SGVsbG8_?=").is_err(), "url-safe alphabet");
    assert!(decode("=?base64?/w==?=").is_err(), "not UTF-8");
    assert_eq!(decode("SGVsbG8=").unwrap(), "SGVsbG8=");
    assert_eq!(decode("=?base64?SGVsbG8=").unwrap(), "=?base64?SGVsbG8=");
    assert_eq!(
        decode("=?BASE64?SGVsbG8=?=").unwrap(),
        "=?BASE64?SGVsbG8=?="
    );
}
