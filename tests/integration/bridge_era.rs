//! `connect --protocol auto` in front of a 2026-07-28 server: a legacy host initializes,
//! lists, calls, and answers the server's input requests (multi-round-trip results unpacked
//! into ordinary server→client requests), without knowing the server is modern.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{patience, Relay, FIXTURE, RELAY};

/// A host: the bridge's stdin and every stdout line (each must be JSON-RPC).
struct Host {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: mpsc::Receiver<Value>,
}

impl Host {
    fn connect(url: &str, extra: &[&str]) -> Host {
        let mut child = Command::new(RELAY)
            .arg("connect")
            .arg(url)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                assert_eq!(v["jsonrpc"], "2.0", "{line}");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Host {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, v: Value) {
        writeln!(self.stdin, "{v}").unwrap();
    }

    /// The answer to `id`, answering input requests on the way with `reply`.
    fn answer(&mut self, id: Value, reply: &dyn Fn(&Value) -> Value) -> (Value, Vec<String>) {
        let mut asked = Vec::new();
        loop {
            let m = self.lines.recv_timeout(patience()).expect("no answer");
            if m.get("method").is_some() && m.get("id").is_some() {
                asked.push(m["method"].as_str().unwrap().to_owned());
                let r = reply(&m);
                self.send(json!({"jsonrpc":"2.0","id":m["id"],"result":r}));
            } else if m["id"] == id {
                return (m, asked);
            }
        }
    }
}

#[test]
fn legacy_host_talks_to_a_modern_server_through_connect() {
    let relay = Relay::start_raw(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--",
        FIXTURE,
        "conformance",
        "--era",
        "modern",
    ]);
    let mut host = Host::connect(&relay.url, &[]);
    let none = |_: &Value| json!({});
    host.send(
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25",
        "capabilities":{"elicitation":{},"sampling":{}},
        "clientInfo":{"name":"legacy-host","version":"1"}}}),
    );
    let (init, _) = host.answer(json!(0), &none);
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    host.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));

    host.send(json!({"jsonrpc":"2.0","id":1,"method":"ping"}));
    let (pong, _) = host.answer(json!(1), &none);
    assert_eq!(pong["result"], json!({}), "{pong}");

    host.send(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}));
    let (list, _) = host.answer(json!(2), &none);
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"test_simple_text"), "{list}");

    host.send(json!({"jsonrpc":"2.0","id":"three","method":"tools/call",
        "params":{"name":"test_simple_text","arguments":{}}}));
    let (text, _) = host.answer(json!("three"), &none);
    assert!(text["result"]["content"][0]["text"].is_string(), "{text}");

    let elicit = |m: &Value| {
        assert_eq!(m["method"], "elicitation/create", "{m}");
        json!({"action":"accept","content":{"name":"Ada","username":"ada","email":"a@b.c","color":"red"}})
    };
    host.send(json!({"jsonrpc":"2.0","id":4,"method":"tools/call",
        "params":{"name":"test_input_required_result_elicitation","arguments":{}}}));
    let (done, asked) = host.answer(json!(4), &elicit);
    assert_eq!(asked, ["elicitation/create"]);
    assert_eq!(
        done["result"]["content"][0]["text"], "Hello, Ada!",
        "{done}"
    );

    host.send(json!({"jsonrpc":"2.0","id":5,"method":"tools/call",
        "params":{"name":"test_input_required_result_multi_round","arguments":{}}}));
    let (multi, asked) = host.answer(json!(5), &elicit);
    assert!(asked.len() >= 2, "{asked:?}");
    assert!(
        multi["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("state-ok"),
        "{multi}"
    );

    drop(host.stdin);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = host.child.try_wait() {
            assert!(status.success(), "{status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = host.child.kill();
    panic!("the bridge did not exit after stdin closed");
}
