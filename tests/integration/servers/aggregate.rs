//! The aggregate on the main path and a tool subset: every server's tools under `NAME__`,
//! calls routed by prefix, progress, sampling and `list_changed` through one session (over the
//! TCP front, where server→client traffic is plain lines); roles per server; a server killed
//! under load while the others keep serving.

use serde_json::{json, Value};

use super::{client_at, server, start, tool_names, write_config};
use crate::support::conn::Conn;
use crate::support::lines::Lines;
use crate::support::relay::tcp_listening;
use crate::support::{init_request, poll_until, tempdir, text_of, Client, Relay};

/// `echo` (echo mode) and `conf` (conformance mode, shared) behind one relay, with `serve` and
/// `rest` added to the file.
fn echo_and_conf(serve: &str, rest: &str) -> Relay {
    let toml = format!(
        "[serve]\n{serve}\n{}{}{rest}",
        server("echo", "echo", ""),
        server("conf", "conformance", "session_mode = \"shared\"")
    );
    start(&write_config(&toml))
}

async fn list(c: &Client, method: &str) -> Value {
    let r = c
        .post(json!({"jsonrpc": "2.0", "id": "l", "method": method}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.messages().pop().unwrap()
}

#[tokio::test]
async fn the_aggregate_serves_every_servers_tools_prompts_and_resources() {
    let relay = echo_and_conf("", "");
    let mut c = relay.client();
    let init = c.initialize("2025-11-25").await.messages()[0].clone();
    let result = &init["result"];
    assert!(result["capabilities"]["tools"].is_object(), "{init}");
    assert!(result["capabilities"]["prompts"].is_object(), "{init}");
    let instructions = result["instructions"].as_str().unwrap_or_default();
    assert!(
        instructions.contains("echo__") && instructions.contains("conf__"),
        "{init}"
    );

    let names = tool_names(&list(&c, "tools/list").await);
    for n in ["echo__echo", "echo__progress", "conf__test_simple_text"] {
        assert!(names.contains(&n.to_owned()), "{n} missing: {names:?}");
    }
    assert!(names
        .iter()
        .all(|n| n.starts_with("echo__") || n.starts_with("conf__")));

    let r = c
        .call(json!(1), "echo__echo", json!({"text": "routed"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "routed");
    let r = c.call(json!(2), "conf__test_simple_text", json!({})).await;
    assert!(r.messages()[0]["result"]["content"].is_array(), "{r:?}");
    let r = c.call(json!(3), "nope__echo", json!({})).await;
    assert!(r.messages()[0]["error"].is_object(), "{r:?}");

    let prompts = list(&c, "prompts/list").await;
    assert!(prompts.to_string().contains("echo__greet"), "{prompts}");
    let read = c
        .post(
            json!({"jsonrpc": "2.0", "id": 4, "method": "resources/read",
            "params": {"uri": "file:///public/readme.txt"}}),
        )
        .await;
    assert!(
        read.messages()[0]["result"]["contents"].is_array(),
        "{read:?}"
    );
}

#[tokio::test]
async fn progress_sampling_and_list_changed_pass_through_one_session() {
    let relay = echo_and_conf("tcp_listen = \"127.0.0.1:0\"", "");
    let mut c = Lines::tcp(&tcp_listening(&relay).await).await;
    let init = c
        .request(
            json!(0),
            "initialize",
            init_request(json!(0), "2025-11-25")["params"].clone(),
        )
        .await;
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    c.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;

    crate::support::conn::traffic(&mut c, "echo__").await;
}

#[tokio::test]
async fn an_endpoint_publishes_only_its_selection() {
    let relay = echo_and_conf(
        "",
        "[endpoints.support]\ntools = [\"echo:echo\", \"conf:test_simple_text\"]\n",
    );
    let mut c = client_at(&relay, "/endpoints/support/mcp");
    c.initialize("2025-11-25").await;
    let names = tool_names(&list(&c, "tools/list").await);
    assert_eq!(names, ["conf__test_simple_text", "echo__echo"]);
    let r = c
        .call(json!(1), "echo__echo", json!({"text": "subset"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "subset");
    let r = c.call(json!(2), "echo__pid", json!({})).await;
    assert!(r.messages()[0]["error"].is_object(), "{r:?}");
}

#[tokio::test]
async fn a_caller_allowed_on_one_server_sees_and_reaches_only_that_server() {
    let dir = tempdir();
    let record = dir.join("conf-stdin.log");
    std::fs::write(
        dir.join("roles.json"),
        r#"{"echo-only": {"allowedMethods": ["*"], "servers": ["echo"]}}"#,
    )
    .unwrap();
    let (key, block) = crate::support::mint_api_key(&[
        "--id",
        "agent",
        "--principal",
        "agent",
        "--roles",
        "echo-only",
    ]);
    let conf = format!(
        "[servers.conf]\ncommand = [{:?}, \"conformance\", \"--record\", {:?}]\n",
        crate::support::FIXTURE,
        record.to_str().unwrap()
    );
    let toml = format!(
        "[serve]\nroles = {:?}\n\n[auth]\nresource = \"http://relay.test/mcp\"\n{block}\n{}{conf}",
        dir.join("roles.json").to_str().unwrap(),
        server("echo", "echo", ""),
    );
    let relay = start(&write_config(&toml));
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), key)];
    c.initialize("2025-11-25").await;
    let names = tool_names(&list(&c, "tools/list").await);
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("echo__")),
        "{names:?}"
    );
    let r = c.call(json!(1), "conf__test_simple_text", json!({})).await;
    assert!(r.messages()[0]["error"].is_object(), "{r:?}");
    let r = c
        .call(json!(2), "echo__echo", json!({"text": "allowed"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "allowed");
    let seen = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(
        !seen.contains("initialize"),
        "a session was opened on the denied server: {seen}"
    );
}

#[tokio::test]
async fn a_server_killed_under_load_leaves_the_others_serving_and_comes_back() {
    let toml = format!(
        "{}{}",
        server("fragile", "echo", "session_mode = \"shared\""),
        server("steady", "echo", "")
    );
    let relay = start(&write_config(&toml));
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let load: Vec<_> = (0..8)
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let text = format!("{w}-{i}");
                    let r = c
                        .call(json!(text), "steady__echo", json!({"text": text}))
                        .await;
                    assert_eq!(text_of(&r.messages()[0]), text, "{r:?}");
                }
            })
        })
        .collect();
    let crash = c
        .call(json!("boom"), "fragile__crash", json!({"code": 3}))
        .await;
    let m = &crash.messages()[0];
    assert_eq!(m["error"]["code"], -31007, "{m}");
    for l in load {
        l.await.unwrap();
    }
    poll_until(
        "the crashed server comes back",
        || {
            let c = c.clone();
            async move {
                let r = c
                    .call(json!("again"), "fragile__echo", json!({"text": "back"}))
                    .await;
                r.messages().first().map(text_of)
            }
        },
        |t| t.as_deref() == Some("back"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_pointed_at_the_aggregate_or_an_endpoint_just_works() {
    use crate::support::bridge::Bridge;
    let relay = echo_and_conf("", "[endpoints.support]\nservers = [\"echo\"]\n");
    for (path, tool) in [
        ("/mcp", "conf__test_simple_text"),
        ("/endpoints/support/mcp", "echo__echo"),
    ] {
        let mut b = Bridge::spawn(&[&format!("{}{path}", relay.base)]);
        let init = b.initialize_raw().await;
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        b.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        let list = b.request(json!(1), "tools/list", json!({})).await;
        assert!(
            tool_names(&list).contains(&tool.to_owned()),
            "{path}: {list}"
        );
        let r = b
            .request(
                json!(2),
                "tools/call",
                json!({"name": "echo__echo", "arguments": {"text": "bridged"}}),
            )
            .await;
        assert_eq!(text_of(&r), "bridged", "{path}");
    }
}

#[tokio::test]
async fn per_identity_children_are_per_server_and_identity() {
    let (alice_key, alice) =
        crate::support::mint_api_key(&["--id", "alice", "--principal", "alice"]);
    let (bob_key, bob) = crate::support::mint_api_key(&["--id", "bob", "--principal", "bob"]);
    let toml = format!(
        "[auth]\nresource = \"http://relay.test/mcp\"\n{alice}\n{bob}\n{}{}",
        server("mine", "echo", "session_mode = \"per-identity\""),
        server("other", "echo", "session_mode = \"per-identity\"")
    );
    let relay = start(&write_config(&toml));
    let pid = |path: &'static str, key: String, tool: &'static str| {
        let mut c = client_at(&relay, path);
        c.extra = vec![("x-api-key".into(), key)];
        async move {
            c.initialize("2025-11-25").await;
            text_of(&c.call(json!(1), tool, json!({})).await.messages()[0])
        }
    };
    let a1 = pid("/mcp", alice_key.clone(), "mine__pid").await;
    let a2 = pid("/servers/mine/mcp", alice_key.clone(), "pid").await;
    let b1 = pid("/mcp", bob_key, "mine__pid").await;
    let a3 = pid("/mcp", alice_key, "other__pid").await;
    assert_eq!(a1, a2, "one child per (server, identity), whichever path");
    assert_ne!(a1, b1, "identities never share a child");
    assert_ne!(a1, a3, "servers never share a child");
}

#[tokio::test]
async fn requests_piped_behind_initialize_over_stdio_see_every_server() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let config = write_config(&format!(
        "{}{}",
        server("echo", "echo", ""),
        server("conf", "conformance", "")
    ));
    let mut child = tokio::process::Command::new(crate::support::RELAY)
        .args(["stdio", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let piped = [
        init_request(json!(1), "2025-11-25"),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ];
    for msg in piped {
        stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .unwrap();
    }
    stdin.flush().await.unwrap();
    let list = loop {
        let line = tokio::time::timeout(crate::support::patience(), lines.next_line())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("stdout open");
        let msg: Value = serde_json::from_str(&line).unwrap();
        if msg["id"] == 2 {
            break msg;
        }
    };
    let names = tool_names(&list);
    assert!(names.contains(&"echo__echo".to_owned()), "{names:?}");
    assert!(
        names.contains(&"conf__test_simple_text".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn an_aggregate_session_is_not_a_token_for_other_roles() {
    let dir = tempdir();
    std::fs::write(
        dir.join("roles.json"),
        r#"{"all": {"allowedMethods": ["*"]}, "echo-only": {"allowedMethods": ["*"], "servers": ["echo"]}}"#,
    )
    .unwrap();
    let (wide, wide_block) =
        crate::support::mint_api_key(&["--id", "wide", "--principal", "alice", "--roles", "all"]);
    let (narrow, narrow_block) = crate::support::mint_api_key(&[
        "--id",
        "narrow",
        "--principal",
        "alice",
        "--roles",
        "echo-only",
    ]);
    let toml = format!(
        "[serve]\nroles = {:?}\n\n[auth]\nresource = \"http://relay.test/mcp\"\n{wide_block}\n{narrow_block}\n{}{}",
        dir.join("roles.json").to_str().unwrap(),
        server("echo", "echo", ""),
        server("conf", "conformance", ""),
    );
    let relay = start(&write_config(&toml));
    let mut c = relay.client();
    c.extra = vec![("x-api-key".into(), wide)];
    c.initialize("2025-11-25").await;
    let r = c.call(json!(1), "conf__test_simple_text", json!({})).await;
    assert!(r.messages()[0]["result"].is_object(), "{r:?}");
    // The same principal with fewer roles cannot use the session opened with more.
    c.extra = vec![("x-api-key".into(), narrow)];
    let r = c.call(json!(2), "conf__test_simple_text", json!({})).await;
    assert_eq!(r.status, 404, "{r:?}");
    // Its own session sees what its roles allow.
    c.session = None;
    c.initialize("2025-11-25").await;
    let names = tool_names(&list(&c, "tools/list").await);
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("echo__")),
        "{names:?}"
    );
}
