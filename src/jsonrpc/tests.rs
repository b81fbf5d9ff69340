//! Table tests for frame parsing, the ambiguity rule and id splicing.

use super::*;

fn frame(s: &str) -> Result<Frame, Error> {
    Frame::parse(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn kinds_and_fields_are_read() {
    let f = frame(r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"echo","_meta":{"progressToken":7},"x":[1.0]}}"#).unwrap();
    assert_eq!(f.kind(), Kind::Request);
    assert_eq!(f.method(), Some("tools/call"));
    assert_eq!(f.id().unwrap().as_str(), r#""1""#);
    assert_eq!(f.name(), Some("echo"));
    assert_eq!(f.progress_token(), Some("7"));

    let n =
        frame(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1.0}}"#)
            .unwrap();
    assert_eq!(n.kind(), Kind::Notification);
    assert_eq!(n.request_id(), Some("1.0"));

    let r = frame(r#"{"jsonrpc":"2.0","id":12345678901234567890123456789012345678901234567890123456789012345,"result":{"a":1}}"#).unwrap();
    assert_eq!(r.kind(), Kind::Response);
    assert_eq!(r.id().unwrap().as_str().len(), 65);
    assert_eq!(r.result(), Some(r#"{"a":1}"#));

    let e = frame(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#).unwrap();
    assert!(e.is_error());
    assert_eq!(e.id().unwrap().as_str(), "null");
}

#[test]
fn invalid_frames_are_classified() {
    let cases: &[(&str, Error)] = &[
        ("not json", Error::Parse),
        ("", Error::Parse),
        (r#"{"jsonrpc":"2.0","id":1,"method":"a"} x"#, Error::Parse),
        ("[1e999999]", Error::Parse),
        (r#""str""#, Error::Invalid("not_envelope")),
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"a"}"#,
            Error::Invalid("bad_jsonrpc_version"),
        ),
        (
            r#"{"id":1,"method":"a"}"#,
            Error::Invalid("bad_jsonrpc_version"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":true,"method":"a"}"#,
            Error::Invalid("bad_id"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":{},"method":"a"}"#,
            Error::Invalid("bad_id"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"a"}"#,
            Error::Invalid("bad_id"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            Error::Invalid("bad_method"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1}"#,
            Error::Invalid("not_envelope"),
        ),
        (
            r#"{"jsonrpc":"2.0","result":{}}"#,
            Error::Invalid("missing_id"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            Error::Invalid("not_envelope"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":3}"#,
            Error::Invalid("bad_params"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"a"}"#,
            Error::Invalid("duplicate_key"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":{"k":1,"k":2}}}"#,
            Error::Invalid("duplicate_key"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"name":"a","n\u0061me":"b"}}"#,
            Error::Invalid("duplicate_key"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"name":"a","Name":"b"}}"#,
            Error::Invalid("ambiguous_key"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"name\u0000":"b"}}"#,
            Error::Invalid("ambiguous_key"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"Method":"b","method":"a"}"#,
            Error::Invalid("ambiguous_key"),
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"_meta":{"ProgressToken":1}}}"#,
            Error::Invalid("ambiguous_key"),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(frame(input).err().as_ref(), Some(want), "input: {input}");
    }
}

#[test]
fn lookalike_keys_fold_case_and_control_characters_ascii_or_not() {
    let in_params = |key: &str| {
        frame(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{"{key}":1}}}}"#
        ))
        .err()
    };
    let refused = Some(Error::Invalid("ambiguous_key"));
    // ASCII keys fold by case alone; control characters are dropped; non-ASCII letters are
    // lowercased as Unicode says (U+212A, the Kelvin sign, lowercases to `k`).
    for key in [
        "ID",
        "Params",
        "METHOD",
        "_Meta",
        "REQUESTID",
        "i\\u0000d",
        "progressTo\\u212Aen",
        "IO.MODELCONTEXTPROTOCOL/SUBSCRIPTIONID",
        "io.modelcontextprotocol/subscription\\u0000Id",
    ] {
        assert_eq!(in_params(key), refused, "{key}");
    }
    // U+0130 lowercases to `i` and a combining dot: not `id`.
    for key in [
        "result",
        "error",
        "arguments",
        "names",
        "i d",
        "id ",
        "\\u0130d",
    ] {
        assert_eq!(in_params(key), None, "{key}");
    }
}

#[test]
fn lookalikes_outside_read_scopes_pass() {
    let f = frame(
        r#"{"jsonrpc":"2.0","id":1,"method":"a","params":{"arguments":{"Name":1,"name":2}}}"#,
    );
    assert!(f.is_ok());
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{"x":{}1{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(frame(&deep).is_err());
    let ok = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{"x":{}1{}}}}}"#,
        "[".repeat(60),
        "]".repeat(60)
    );
    assert!(frame(&ok).is_ok());
}

#[test]
fn batches_parse_as_slices_of_the_body() {
    let body = Bytes::from_static(
        br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, {"jsonrpc":"2.0","method":"b"}]"#,
    );
    let Message::Batch(frames) = Message::parse(body).unwrap() else {
        panic!("not a batch")
    };
    assert_eq!(frames.len(), 2);
    assert_eq!(&frames[1].bytes()[..], br#"{"jsonrpc":"2.0","method":"b"}"#);
    assert_eq!(
        Message::parse(Bytes::from_static(b"[]")).err(),
        Some(Error::Invalid("empty_batch"))
    );
    assert_eq!(
        Message::parse(Bytes::from_static(br#"[[{"jsonrpc":"2.0","method":"b"}]]"#)).err(),
        Some(Error::Invalid("nested_batch"))
    );
}

#[test]
fn splicing_replaces_only_the_spans() {
    let f = frame("{\"jsonrpc\":\"2.0\",\n\"id\":\"abc\",\"method\":\"m\",\"params\":{\"_meta\":{\"progressToken\":\"t\"},\"u\":1.0}}").unwrap();
    assert!(!f.bytes().contains(&b'\n'));
    let out = f.splice(&mut [
        (f.progress_token_span().unwrap(), "42"),
        (f.id_span().unwrap(), "7"),
    ]);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#"{"jsonrpc":"2.0", "id":7,"method":"m","params":{"_meta":{"progressToken":42},"u":1.0}}"#
    );
}

#[test]
fn many_keys_still_detect_duplicates_in_linear_time() {
    let keys: Vec<String> = (0..20_000).map(|i| format!("\"k{i}\":1")).collect();
    let ok = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{{}}}}}"#,
        keys.join(",")
    );
    assert!(frame(&ok).is_ok());
    let dup = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"a","params":{{{},"k7":2}}}}"#,
        keys.join(",")
    );
    assert_eq!(frame(&dup).err(), Some(Error::Invalid("duplicate_key")));
}

#[test]
fn upstream_frames_are_checked_where_the_relay_reads() {
    let up = |s: &str| Frame::parse_upstream(Bytes::copy_from_slice(s.as_bytes()));
    assert!(up(r#"{"jsonrpc":"2.0","id":1,"result":{"a":{"k":1,"k":2}}}"#).is_ok());
    assert_eq!(
        up(r#"{"jsonrpc":"2.0","id":1,"id":2,"result":{}}"#).err(),
        Some(Error::Invalid("duplicate_key"))
    );
    assert_eq!(
        up(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"ProgressToken":2}}"#).err(),
        Some(Error::Invalid("ambiguous_key"))
    );
    assert_eq!(
        up(r#"{"jsonrpc":"2.0","id":1,"result":{"a":tru}}"#).err(),
        Some(Error::Parse)
    ); // The envelope's own keys, read in the same pass as its values.
    let refused = [
        (r#"{"jsonrpc":"2.0","ID":1,"result":{}}"#, "ambiguous_key"),
        (
            r#"{"jsonrpc":"2.0","id":1,"x":1,"x":2,"result":{}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"\u0069d":2,"result":{}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"m","params":{"_meta":{"progressToken":1,"progresstoken":2}}}"#,
            "ambiguous_key",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"m","params":{"a":1,"a":1}}"#,
            "duplicate_key",
        ),
        (r#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#, "not_envelope"),
        (r#"["2.0",1,"roots/list"]"#, "not_envelope"),
        (
            r#"{"jsonrpc":"1.0","id":1,"result":{}}"#,
            "bad_jsonrpc_version",
        ),
        (r#"{"jsonrpc":"2.0","result":{}}"#, "missing_id"),
    ];
    for (text, why) in refused {
        assert_eq!(up(text).err(), Some(Error::Invalid(why)), "{text}");
    }
    assert_eq!(
        up(r#"{"jsonrpc":"2.0","id":1,"result":{}} x"#).err(),
        Some(Error::Parse)
    );
    // What is kept raw is read back exactly.
    let f = up(r#"{"jsonrpc":"2.0","id":"a\"b","result":{"n":[1,{"k":2}]},"z":null}"#).unwrap();
    assert_eq!(f.kind(), Kind::Response);
    assert_eq!(f.id().unwrap().as_str(), r#""a\"b""#);
    let f = up(r#"{"method":"notifications/progress","jsonrpc":"2.0","params":{"progressToken":"t","progress":1}}"#).unwrap();
    assert_eq!(
        (f.kind(), f.progress_token()),
        (Kind::Notification, Some(r#""t""#))
    );
}
