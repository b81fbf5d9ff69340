//! Pure helpers of the HTTP upstream; the link itself is exercised end to end by
//! `tests/integration/remote.rs` (relays, Streamable HTTP and legacy SSE) and
//! `tests/interop/http_upstream_interop.test.mjs` (server-everything).

use super::link::split;
use super::modern::header_text;
use super::sse::{candidates, endpoint};
use super::stream::backoff;
use super::*;

fn frame(json: &str) -> Frame {
    Frame::parse_upstream(Bytes::copy_from_slice(json.as_bytes())).unwrap()
}

#[test]
fn bodies_split_into_messages_and_batches_into_elements() {
    assert_eq!(split(Bytes::from_static(b" \n")), Vec::<Bytes>::new());
    let one = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    assert_eq!(split(one.clone()), vec![one]);
    let batch = Bytes::from_static(
        br#" [{"jsonrpc":"2.0","id":1,"result":{"n":1.0}}, {"jsonrpc":"2.0","method":"x"}]"#,
    );
    assert_eq!(
        split(batch),
        vec![
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{"n":1.0}}"#),
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"x"}"#),
        ]
    );
    // Junk goes through unchanged: the relay drops and counts it.
    let junk = Bytes::from_static(b"[not json");
    assert_eq!(split(junk.clone()), vec![junk]);
}

#[test]
fn reconnect_delay_respects_retry_and_grows_when_nothing_arrives() {
    let ms = Duration::from_millis;
    assert_eq!(backoff(ms(200), 0), ms(200));
    assert_eq!(backoff(ms(200), 2), ms(800));
    assert_eq!(backoff(ms(0), 0), MIN_RETRY);
    assert_eq!(backoff(ms(200), 40), MAX_RETRY);
}

#[test]
fn legacy_fallback_tries_the_url_then_its_sse_sibling() {
    let list = |u: &str| -> Vec<String> {
        candidates(&Url::parse(u).unwrap())
            .iter()
            .map(Url::to_string)
            .collect()
    };
    assert_eq!(list("http://h:1/mcp"), ["http://h:1/mcp", "http://h:1/sse"]);
    assert_eq!(
        list("http://h:1/a/mcp?k=v"),
        ["http://h:1/a/mcp?k=v", "http://h:1/a/sse?k=v"]
    );
    assert_eq!(list("http://h:1/sse"), ["http://h:1/sse"]);
}

#[test]
fn endpoints_resolve_against_the_stream_and_stay_on_its_origin() {
    let base = Url::parse("http://h:1/a/sse").unwrap();
    assert_eq!(
        endpoint(&base, "/message?sessionId=x\n").unwrap().as_str(),
        "http://h:1/message?sessionId=x"
    );
    assert_eq!(
        endpoint(&base, "message?sessionId=x").unwrap().as_str(),
        "http://h:1/a/message?sessionId=x"
    );
    assert!(endpoint(&base, "http://other:1/message").is_err());
    assert!(endpoint(&base, "http://h:2/message").is_err());
}

#[test]
fn modern_messages_get_their_headers_and_legacy_ones_none() {
    assert!(modern_headers(&frame(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)).is_none());
    let h = modern_headers(&frame(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    ))
    .unwrap();
    assert_eq!(h[VERSION_HEADER], "2026-07-28");
    assert_eq!(h["mcp-method"], "tools/call");
    assert_eq!(h["mcp-name"], "echo");
    let h = modern_headers(&frame(
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///é",
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    ))
    .unwrap();
    assert_eq!(
        crate::era::modern::decode(h["mcp-name"].to_str().unwrap()).unwrap(),
        "file:///é"
    );
    // The serde rename above spells the era's key.
    assert_eq!(
        crate::era::MODERN_META_KEY,
        "io.modelcontextprotocol/protocolVersion"
    );
}

#[test]
fn header_text_encodes_what_a_header_cannot_carry_plainly() {
    assert_eq!(header_text("get_weather").unwrap(), "get_weather");
    for text in [" lead", "trail ", "naïve", "=?base64?x?=", "a\nb"] {
        let v = header_text(text).unwrap();
        assert_eq!(
            crate::era::modern::decode(v.to_str().unwrap()).unwrap(),
            text
        );
    }
}

#[test]
fn logs_name_the_url_without_its_query() {
    assert_eq!(log_name("http://h:1/mcp?token=s#f"), "http://h:1/mcp");
}

#[tokio::test]
async fn network_errors_never_carry_the_url_or_its_query() {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let e = client
        .get("http://127.0.0.1:1/mcp?token=secret")
        .send()
        .await
        .unwrap_err();
    let e = Error::network(e);
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&c.to_string());
        cause = c.source();
    }
    assert!(
        !text.contains("secret") && !text.contains("127.0.0.1"),
        "{text}"
    );
}
