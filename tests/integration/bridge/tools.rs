//! Tool filters: `--deny-tool` hides and refuses locally (nothing reaches the server),
//! `--allow-tool` lists only what matches.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_deny_tool_hides_and_refuses_locally() {
    let record = tempdir().join("rec.log");
    let s = Server::fixture("127.0.0.1:0", &[], &record);
    let mut b = Bridge::spawn(&["--deny-tool", "crash*", &s.url]);
    b.initialize().await;
    let list = b.request(json!(1), "tools/list", json!({})).await;
    let names: Vec<String> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("crash")), "{names:?}");
    assert!(names.iter().any(|n| n == "echo"), "{names:?}");
    let r = b.call(json!(2), "crash", json!({"code": 3})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(r["error"]["message"], "Unknown tool: crash", "{r}");
    // Still working, and the refused call never reached the server.
    let r = b.call(json!(3), "echo", json!({"text": "after"})).await;
    assert_eq!(text_of(&r), "after");
    wait_for_text(&record, "after").await;
    let crashes = recorded(&record)
        .iter()
        .filter(|v| v["params"]["name"] == "crash")
        .count();
    assert_eq!(crashes, 0);
    // --allow-tool: only matching tools.
    let mut b = Bridge::spawn(&["--allow-tool", "ech*", &s.url]);
    b.initialize().await;
    let list = b.request(json!(1), "tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo"], "{list}");
    let r = b.call(json!(2), "progress", json!({})).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

async fn wait_for_text(record: &Path, text: &str) {
    eventually(&format!("echo {text} reached the server"), || {
        recorded(record)
            .iter()
            .any(|v| v["params"]["arguments"]["text"] == text)
    })
    .await;
}
