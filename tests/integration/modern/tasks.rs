//! Tasks on a pool: a task's follow-ups reach the child that made it, whatever child the pool
//! would pick, and a handle that does not open reaches no child.

use serde_json::{json, Value};

use super::{meta, modern};
use crate::support::{read_reply, Relay};

fn opted_in() -> Value {
    let mut m = meta();
    m["io.modelcontextprotocol/clientCapabilities"] =
        json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    m
}

async fn post(c: &crate::support::Client, body: Value) -> Value {
    let r = read_reply(modern(c, &body).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
}

#[tokio::test]
async fn task_follow_ups_reach_the_child_that_made_the_task() {
    let relay = Relay::start(&["--children", "2"], &["conformance", "--era", "modern"]);
    let c = relay.client();
    let mut handles = Vec::new();
    // Each child numbers its tasks from 1, so both children hold a `task-1`.
    for (n, label) in ["first", "second", "third", "fourth"].iter().enumerate() {
        let created = post(
            &c,
            json!({"jsonrpc":"2.0","id":n,"method":"tools/call","params":{
                "name":"slow_compute","arguments":{"seconds":0.3,"label":label},
                "_meta":opted_in()}}),
        )
        .await;
        assert_eq!(created["result"]["resultType"], "task", "{created}");
        let handle = created["result"]["taskId"].as_str().unwrap().to_owned();
        assert!(handle.starts_with("mcpt1."), "{created}");
        handles.push((handle, *label));
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // Many times each: the pool would spread them, the handle pins them.
    for round in 0..3 {
        for (handle, label) in &handles {
            let got = post(
                &c,
                json!({"jsonrpc":"2.0","id":format!("g{round}"),"method":"tasks/get",
                    "params":{"taskId":handle,"_meta":meta()}}),
            )
            .await;
            assert_eq!(got["result"]["taskId"], handle.as_str(), "{got}");
            assert_eq!(got["result"]["status"], "completed", "{got}");
            let text = got["result"]["result"]["content"][0]["text"].as_str();
            assert_eq!(text, Some(format!("computed {label}").as_str()), "{got}");
        }
    }
    // A child's own id, or an altered handle, is an unknown task.
    let mut altered = handles[0].0.clone();
    altered.pop();
    altered.push(if handles[0].0.ends_with('A') {
        'B'
    } else {
        'A'
    });
    for bad in ["task-1".to_owned(), altered] {
        let r = post(
            &c,
            json!({"jsonrpc":"2.0","id":"bad","method":"tasks/get",
                "params":{"taskId":bad,"_meta":meta()}}),
        )
        .await;
        assert_eq!(r["error"]["code"], -32602, "{r}");
        assert_eq!(r["error"]["data"]["reason"], "unknown_task", "{r}");
    }
    // Without the extension the tool answers at once, and no handle is made.
    let sync = post(
        &c,
        json!({"jsonrpc":"2.0","id":"s","method":"tools/call","params":{
            "name":"slow_compute","arguments":{"seconds":0,"label":"now"},"_meta":meta()}}),
    )
    .await;
    assert_eq!(
        sync["result"]["content"][0]["text"], "computed now",
        "{sync}"
    );
}
