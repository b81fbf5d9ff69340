//! Transparency: each message goes straight to the fixture over stdio and through the relay;
//! the client must receive the same bytes (ids of every form, unknown fields, `_meta`, unknown
//! methods), and the child must receive the client's bytes with only the id rewritten.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{Relay, FIXTURE};

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// Requests whose answers must be byte-identical both ways.
const CASES: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":"1","method":"echo/raw","params":{"a":1}}"#,
    r#"{"jsonrpc":"2.0","id":1,"method":"echo/raw","params":{"a":"1"}}"#,
    r#"{"jsonrpc":"2.0","id":1.0,"method":"echo/raw","params":{"n":1.0,"e":1e2,"big":123456789012345678901234567890}}"#,
    r#"{"jsonrpc":"2.0","id":-0,"method":"x-vendor/thing","params":{"_meta":{"traceparent":"00-abc-def-01","io.example/x":[1,{"y":null}]},"z":"\u00e9\ud83d\ude00"}}"#,
    r#"{"jsonrpc":"2.0","id":1234567890123456789012345678901234567890123456789012345678901234,"method":"echo/raw"}"#,
    r#"{"jsonrpc":"2.0","id":"with \"quotes\" and \\ slashes","method":"echo/raw","params":[1,2,3],"extra":{"unknown":true}}"#,
    r#"{"jsonrpc":"2.0","id":"u","method":"tools/call","params":{"name":"echo","arguments":{"text":"hi","ignored":{"deep":[true]}},"_meta":{"vendor":"v"}}}"#,
    r#"{"jsonrpc":"2.0","id":"nf","method":"no/such/method"}"#,
];

fn direct(lines: &[&str]) -> Vec<String> {
    let mut child = Command::new(FIXTURE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut answers = Vec::new();
    writeln!(stdin, "{INIT}").unwrap();
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        answers.push(line.trim_end().to_owned());
    }
    drop(stdin);
    let _ = child.wait();
    answers
}

#[tokio::test]
async fn answers_are_byte_identical_to_the_direct_child() {
    let want = direct(CASES);
    let relay = Relay::start(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    for (case, want) in CASES.iter().zip(want) {
        let got = c.post_raw((*case).to_owned()).await.raw();
        assert_eq!(got, vec![want], "case {case}");
    }
}

#[tokio::test]
async fn the_child_sees_the_client_bytes_with_only_the_id_rewritten() {
    let (relay, record) = Relay::start_recorded(&[], &[]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    // Pretty-printed input: newlines are insignificant whitespace and become spaces.
    let sent = "{\"jsonrpc\":\"2.0\",\n \"id\":\"k\",\"method\":\"echo/raw\",\"params\":{\"_meta\":{\"progressToken\":\"tok\",\"x\":1.50},\"v\":[1.0]},\"zz\":{}}";
    c.post_raw(sent.to_owned()).await;
    crate::support::eventually("line recorded", || {
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains("echo/raw")
    })
    .await;
    let log = std::fs::read_to_string(&record).unwrap();
    let line = log.lines().find(|l| l.contains("echo/raw")).unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    let id = v["id"].as_u64().expect("relay id is an integer");
    let token = v["params"]["_meta"]["progressToken"]
        .as_u64()
        .expect("token namespaced");
    let expected = sent
        .replace('\n', " ")
        .replace("\"id\":\"k\"", &format!("\"id\":{id}"))
        .replace(
            "\"progressToken\":\"tok\"",
            &format!("\"progressToken\":{token}"),
        );
    assert_eq!(line, expected);
}
