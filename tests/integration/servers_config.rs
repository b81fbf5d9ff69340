//! Config files with several servers (issue 16): `check-config` reports every problem of
//! `[servers]`, `[endpoints]` and `[aggregate]` at once and counts what it found, `serve`
//! refuses a broken one before binding (exit 64), `schema` describes the tables, and
//! `--server NAME` serves one named server alone over HTTP and stdio.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{init_request, patience, tempdir, text_of, Relay, FIXTURE, RELAY};

/// Two fixture servers (echo and conformance), a tool subset and the aggregate's settings.
fn good_config(dir: &Path) -> PathBuf {
    let f = dir.join("relay.toml");
    std::fs::write(
        &f,
        format!(
            r#"
[serve]
request_timeout = "20s"

[servers.echo]
command = [{FIXTURE:?}]
env = {{ MCP_TEST_VAR = "from-the-echo-table" }}

[servers.conf]
command = [{FIXTURE:?}, "conformance"]
session_mode = "shared"
children = 2

[endpoints.support]
servers = ["conf"]
tools = ["echo:echo", "*:env"]

[aggregate]
separator = "__"
prefix = "always"
failure_mode = "open"
"#
        ),
    )
    .unwrap();
    f
}

fn run(args: &[&str], file: &Path) -> std::process::Output {
    Command::new(RELAY).args(args).arg(file).output().unwrap()
}

#[test]
fn check_config_counts_the_servers_and_endpoints_of_a_good_file() {
    let f = good_config(&tempdir());
    let out = run(&["check-config"], &f);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok (2 servers: echo, conf; 1 endpoint: support)"),
        "{stdout}"
    );
}

#[test]
fn every_problem_of_the_tables_is_reported_at_once_before_binding() {
    let dir = tempdir();
    let f = dir.join("bad.toml");
    std::fs::write(
        &f,
        format!(
            r#"
[servers.echo]
command = [{FIXTURE:?}]
tls_cert = "cert.pem"

[servers.zero]
command = [{FIXTURE:?}]
children = 0

[servers.gone]
command = ["no-such-program-anywhere"]

[servers.both]
command = [{FIXTURE:?}]
upstream = "http://127.0.0.1:1/mcp"

[servers."Bad Name"]
command = [{FIXTURE:?}]

[endpoints.support]
servers = ["nope"]
tools = ["echo:[", "db:query"]

[endpoints.nothing]

[aggregate]
separator = "::"
"#
        ),
    )
    .unwrap();
    for args in [vec!["check-config"], vec!["serve", "--config"]] {
        let out = run(&args, &f);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for want in [
            "servers.echo.tls_cert: `tls_cert` is set for the whole relay, not per server: it belongs in [serve]",
            "servers.both: command and upstream: keep one",
            "servers.Bad Name: `Bad Name` is not a valid name",
            "aggregate.separator: `::`",
            "servers.zero: --children and --max-inflight-per-child must be > 0",
            "servers.gone: command `no-such-program-anywhere` not found",
            "endpoints.support.servers: no server named `nope`",
            "endpoints.support.tools: `echo:[`",
            "endpoints.support.tools: `db:query`: no server named `db`",
            "endpoints.nothing: publishes nothing",
        ] {
            assert!(err.contains(want), "{args:?} misses {want:?} in:\n{err}");
        }
        assert!(!err.contains("listening"), "{err}");
    }
}

#[test]
fn a_command_beside_servers_and_a_server_not_in_the_file_are_refused() {
    let f = good_config(&tempdir());
    let out = Command::new(RELAY)
        .args(["serve", "--config"])
        .arg(&f)
        .args(["--", FIXTURE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("[servers] in --config"));
    let out = Command::new(RELAY)
        .args(["serve", "--config"])
        .arg(&f)
        .args(["--server", "github"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no [servers.github]") && err.contains("echo, conf"),
        "{err}"
    );
}

#[test]
fn schema_describes_servers_endpoints_and_the_aggregate() {
    let out = Command::new(RELAY).arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    let props = &schema["properties"];
    let server = &props["servers"]["additionalProperties"]["properties"];
    for key in [
        "command",
        "upstream",
        "session_mode",
        "children",
        "tcp_listen",
    ] {
        assert!(server.get(key).is_some(), "schema lacks servers.NAME.{key}");
    }
    assert!(server.get("listen").is_none());
    let endpoint = &props["endpoints"]["additionalProperties"]["properties"];
    for key in ["servers", "tools", "prompts", "resources"] {
        assert!(
            endpoint.get(key).is_some(),
            "schema lacks endpoints.NAME.{key}"
        );
    }
    assert_eq!(
        props["aggregate"]["properties"]["separator"]["default"],
        "__"
    );
    assert_eq!(
        props["aggregate"]["properties"]["failure_mode"]["enum"],
        json!(["open", "closed"])
    );
}

/// `serve --config FILE --server NAME`: that server alone, with its own table's settings.
#[tokio::test]
async fn server_name_serves_one_table_over_http() {
    let f = good_config(&tempdir());
    let relay = Relay::start_raw(&[
        "serve",
        "--config",
        f.to_str().unwrap(),
        "--server",
        "echo",
        "--listen",
        "127.0.0.1:0",
    ]);
    let mut c = relay.client();
    c.initialize("2025-11-25").await;
    let r = c
        .call(json!(1), "env", json!({"name": "MCP_TEST_VAR"}))
        .await;
    assert_eq!(text_of(&r.messages()[0]), "from-the-echo-table");
}

/// `stdio --config FILE --server NAME`: how a desktop host reaches one named server.
#[tokio::test]
async fn server_name_serves_one_table_over_stdio() {
    let f = good_config(&tempdir());
    let mut child = tokio::process::Command::new(RELAY)
        .args(["stdio", "--config"])
        .arg(&f)
        .args(["--server", "echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line_of = |msg: Value| {
        let mut line = msg.to_string();
        line.push('\n');
        line
    };
    let init = line_of(init_request(json!(1), "2025-11-25"));
    let initialized = line_of(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    let call = line_of(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "env", "arguments": {"name": "MCP_TEST_VAR"}}}));
    for line in [init, initialized, call] {
        stdin.write_all(line.as_bytes()).await.unwrap();
    }
    stdin.flush().await.unwrap();
    let mut answer = None;
    while answer.is_none() {
        let line = tokio::time::timeout(patience(), lines.next_line())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("stdout open");
        let msg: Value = serde_json::from_str(&line).unwrap();
        if msg["id"] == 2 {
            answer = Some(msg);
        }
    }
    assert_eq!(text_of(&answer.unwrap()), "from-the-echo-table");
}
